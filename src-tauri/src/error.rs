//! The one error type every command returns to the UI.

use latch_client::relay::{ErrorCode, RelayError};
use latch_client::{ClientError, ProfileError};
use latch_store::selftest::SelfTestError;
use latch_store::{KeyStoreError, OpenError};
use serde::Serialize;

/// A command failure as the UI sees it: a stable machine-readable `kind` for the UI to branch
/// on and a fixed sentence to show. The sentence is always written here, never copied from a
/// library's error text, which can quote SQL (including a `PRAGMA key`), file paths, handles
/// or message sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub(crate) struct CommandError {
    kind: ErrorKind,
    message: &'static str,
}

/// The families of failure the UI distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorKind {
    /// Encrypted storage is unusable; nothing may be stored.
    Storage,
    /// The app could not find or use where it keeps its data.
    Environment,
    /// The OS keyring is missing, locked or refused.
    Keyring,
    /// The passphrase does not open the profile.
    WrongPassphrase,
    /// Someone else has the handle.
    HandleTaken,
    /// The relay cannot be reached right now.
    Offline,
    /// The relay refused or answered nonsense.
    Relay,
    /// No such contact, conversation or message.
    NotFound,
    /// The input breaks a rule the sentence names.
    Invalid,
    /// No profile is open yet.
    NoProfile,
}

const fn error(kind: ErrorKind, message: &'static str) -> CommandError {
    CommandError { kind, message }
}

impl CommandError {
    pub(crate) const NO_DATA_DIR: Self = error(
        ErrorKind::Environment,
        "Latch could not find a folder for its data on this system.",
    );
    pub(crate) const INTERRUPTED: Self = error(
        ErrorKind::Environment,
        "The operation was interrupted before it finished.",
    );
    pub(crate) const NO_PROFILE: Self = error(
        ErrorKind::NoProfile,
        "No profile is open. Create one or unlock yours first.",
    );
    pub(crate) const PROFILE_EXISTS: Self = error(
        ErrorKind::Invalid,
        "This Latch already has a profile on this computer.",
    );
    pub(crate) const PROFILE_IN_USE: Self = error(
        ErrorKind::Environment,
        "This profile is open in another Latch process (the app or the latch command).",
    );
    pub(crate) const BAD_PROFILE_NAME: Self = error(
        ErrorKind::Invalid,
        "A profile name is 1 to 32 lower-case letters, digits, '-' or '_'.",
    );
    pub(crate) const BAD_RELAY_URL: Self = error(
        ErrorKind::Invalid,
        "The relay address must start with ws:// or wss://.",
    );
    pub(crate) const SHORT_PASSPHRASE: Self = error(
        ErrorKind::Invalid,
        "A passphrase needs at least 8 characters.",
    );
    pub(crate) const WRONG_PASSPHRASE: Self = error(
        ErrorKind::WrongPassphrase,
        "That passphrase does not unlock this profile.",
    );
    pub(crate) const NEEDS_PASSPHRASE: Self = error(
        ErrorKind::WrongPassphrase,
        "This profile is protected by a passphrase.",
    );
    pub(crate) const BAD_IMAGE: Self = error(
        ErrorKind::Invalid,
        "The image could not be read; use a PNG or JPEG file of at most 16 MiB.",
    );
    pub(crate) const BAD_LINK: Self = error(
        ErrorKind::Invalid,
        "Only web links (http and https) can be opened.",
    );
    pub(crate) const NO_BROWSER: Self = error(
        ErrorKind::Environment,
        "No web browser could be started to open the link.",
    );
    pub(crate) const BAD_KEY: Self = error(ErrorKind::Invalid, "That is not a contact's key.");
    pub(crate) const BAD_CALL_ID: Self = error(ErrorKind::Invalid, "That is not a call.");
    pub(crate) const NO_TIMER: Self = error(
        ErrorKind::Invalid,
        "A secret chat needs a disappearing timer between 5 seconds and 24 hours.",
    );
}

impl From<SelfTestError> for CommandError {
    fn from(e: SelfTestError) -> Self {
        let message = match e {
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
        error(ErrorKind::Storage, message)
    }
}

fn keyring(e: &KeyStoreError) -> CommandError {
    let message = match e {
        KeyStoreError::Unavailable(_) => {
            "No system keyring (Secret Service) is available. Start one, or protect the profile \
             with a passphrase instead."
        }
        KeyStoreError::Locked(_) => "The system keyring is locked. Unlock it and try again.",
        KeyStoreError::NotFound(_) => {
            "This profile's keys are missing from the system keyring, so its messages cannot be \
             read."
        }
        _ => "The system keyring refused to store or give back Latch's keys.",
    };
    error(ErrorKind::Keyring, message)
}

fn open(e: &OpenError) -> CommandError {
    match e {
        OpenError::KeyStore(k) => keyring(k),
        OpenError::Passphrase(_) => CommandError::WRONG_PASSPHRASE,
        _ => error(
            ErrorKind::Storage,
            "The encrypted database could not be opened. It may be damaged, from a newer Latch, \
             or the disk may be full.",
        ),
    }
}

impl From<ProfileError> for CommandError {
    fn from(e: ProfileError) -> Self {
        match e {
            ProfileError::InvalidName => Self::BAD_PROFILE_NAME,
            ProfileError::Exists(_) => Self::PROFILE_EXISTS,
            ProfileError::NotFound(_) => Self::NO_PROFILE,
            ProfileError::InUse(_) => Self::PROFILE_IN_USE,
            ProfileError::NeedsPassphrase(_) => Self::NEEDS_PASSPHRASE,
            ProfileError::WrongPassphrase => Self::WRONG_PASSPHRASE,
            ProfileError::KeyStore(k) => keyring(&k),
            ProfileError::Open(o) => open(&o),
            ProfileError::BadIdentity => error(
                ErrorKind::Storage,
                "This profile's identity key is damaged, so it cannot be opened.",
            ),
            _ => error(
                ErrorKind::Storage,
                "Latch could not read or write this profile's files.",
            ),
        }
    }
}

fn relay(e: &RelayError) -> CommandError {
    match e {
        RelayError::BadUrl => CommandError::BAD_RELAY_URL,
        RelayError::Unreachable | RelayError::Timeout => error(
            ErrorKind::Offline,
            "The relay cannot be reached. Check the relay address and your connection, then try \
             again.",
        ),
        RelayError::Refused(ErrorCode::HandleTaken) => error(
            ErrorKind::HandleTaken,
            "That handle is taken. Choose another one.",
        ),
        RelayError::Refused(ErrorCode::HandleInvalid) => error(
            ErrorKind::Invalid,
            "A handle is 3 to 32 characters of a-z, 0-9, '_' or '.'.",
        ),
        RelayError::Refused(ErrorCode::NotFound) => error(
            ErrorKind::NotFound,
            "Nobody with that handle is registered on this relay.",
        ),
        RelayError::Refused(ErrorCode::RateLimited) => error(
            ErrorKind::Relay,
            "The relay asks to slow down. Try again in a moment.",
        ),
        _ => error(
            ErrorKind::Relay,
            "The relay refused the request or answered with something Latch does not understand.",
        ),
    }
}

impl From<ClientError> for CommandError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Relay(r) => relay(&r),
            ClientError::Offline => error(
                ErrorKind::Offline,
                "Latch is not connected to the relay. It keeps trying; try again when it is \
                 online.",
            ),
            ClientError::NotRegistered => error(
                ErrorKind::NoProfile,
                "This profile is not registered with a relay yet.",
            ),
            ClientError::NotFound("contact") => {
                error(ErrorKind::NotFound, "That contact does not exist.")
            }
            ClientError::NotFound("conversation") => {
                error(ErrorKind::NotFound, "That chat does not exist any more.")
            }
            ClientError::NotFound("call") => error(ErrorKind::NotFound, "That call has ended."),
            ClientError::NotFound(_) => error(
                ErrorKind::NotFound,
                "That message does not exist any more (it may have disappeared).",
            ),
            // The engine's own rule sentences are fixed text that quotes no user data.
            ClientError::Invalid(rule) => error(ErrorKind::Invalid, rule),
            ClientError::Bundle(_) => error(
                ErrorKind::Relay,
                "The contact's published keys are unusable, so no chat can be started.",
            ),
            ClientError::Fingerprint => error(
                ErrorKind::Invalid,
                "That is not a Latch safety-number code.",
            ),
            ClientError::Qr(_) => error(
                ErrorKind::Invalid,
                "No safety-number QR code was found in that image.",
            ),
            ClientError::Store(_) => error(
                ErrorKind::Storage,
                "The encrypted database failed. Nothing was changed.",
            ),
            _ => error(
                ErrorKind::Storage,
                "The operation failed inside Latch. Nothing was changed.",
            ),
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

    #[test]
    fn profile_and_client_errors_keep_names_and_handles_out() {
        let cases = [
            CommandError::from(ProfileError::Exists("secret-name".into())),
            CommandError::from(ProfileError::InUse("secret-name".into())),
            CommandError::from(ProfileError::BadInfo("secret-name".into())),
            CommandError::from(ProfileError::KeyStore(KeyStoreError::Unavailable(
                "secret-name".into(),
            ))),
        ];
        for e in cases {
            let json = serde_json::to_string(&e).unwrap();
            assert!(!json.contains("secret-name"), "{json}");
        }
        assert_eq!(
            CommandError::from(ProfileError::WrongPassphrase).kind,
            ErrorKind::WrongPassphrase
        );
        assert_eq!(
            CommandError::from(ClientError::Relay(RelayError::Refused(
                ErrorCode::HandleTaken
            )))
            .kind,
            ErrorKind::HandleTaken
        );
        assert_eq!(
            CommandError::from(ClientError::Offline).kind,
            ErrorKind::Offline
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
