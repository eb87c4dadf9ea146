//! The one error type every command returns to the UI.

use latch_store::selftest::SelfTestError;
use serde::Serialize;

/// A command failure as the UI sees it: a stable machine-readable `kind` for the UI to branch
/// on and a fixed sentence to show. The sentence is always written here, never copied from a
/// library's error text, which can quote SQL (including a `PRAGMA key`) or file paths.
#[derive(Debug, Serialize, thiserror::Error)]
#[error("{message}")]
pub(crate) struct CommandError {
    kind: ErrorKind,
    message: &'static str,
}

/// The families of failure the UI distinguishes.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorKind {
    /// Encrypted storage is unusable; nothing may be stored.
    Storage,
    /// The app could not find or use where it keeps its data.
    Environment,
}

impl CommandError {
    pub(crate) const NO_DATA_DIR: Self = Self {
        kind: ErrorKind::Environment,
        message: "Latch could not find a folder for its data on this system.",
    };

    pub(crate) const INTERRUPTED: Self = Self {
        kind: ErrorKind::Environment,
        message: "The storage check was interrupted before it finished.",
    };
}

impl From<SelfTestError> for CommandError {
    fn from(error: SelfTestError) -> Self {
        let message = match error {
            SelfTestError::NotSqlCipher => {
                "This build of Latch is not linked against SQLCipher, so it cannot encrypt."
            }
            SelfTestError::WroteCleartext => {
                "The database was written unencrypted; Latch refuses to store anything."
            }
            SelfTestError::NoRandomness => {
                "The system's random number generator failed, so no key could be made."
            }
            SelfTestError::Io(_) => "Latch could not write to its data folder.",
            _ => "The encrypted database could not be created in Latch's data folder.",
        };
        Self {
            kind: ErrorKind::Storage,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_error_text_never_reaches_the_ui() {
        let leaky = rusqlite_error_quoting("PRAGMA key = \"x'00ff'\"");
        let error = CommandError::from(SelfTestError::Sqlite(leaky));
        let json = serde_json::to_string(&error).unwrap();
        assert!(!json.contains("PRAGMA"), "{json}");
        assert_eq!(
            json,
            r#"{"kind":"storage","message":"The encrypted database could not be created in Latch's data folder."}"#
        );
    }

    fn rusqlite_error_quoting(sql: &str) -> rusqlite::Error {
        rusqlite::Error::SqlInputError {
            error: rusqlite::ffi::Error::new(1),
            msg: format!("near {sql}: syntax error"),
            sql: sql.to_owned(),
            offset: 0,
        }
    }
}
