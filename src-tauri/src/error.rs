//! The one error type every command returns to the UI.

use serde::Serialize;

/// A command failure as the UI sees it: a stable machine-readable `kind` for the UI to branch
/// on and a human sentence to show. Neither ever carries key material or message text.
#[derive(Debug, Serialize, thiserror::Error)]
#[error("{message}")]
pub(crate) struct CommandError {
    kind: ErrorKind,
    message: String,
}

/// The families of failure the UI distinguishes.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorKind {
    /// Encrypted storage is unusable; nothing may be stored.
    Storage,
    /// The app could not find where to keep its data.
    Environment,
}

impl CommandError {
    pub(crate) fn new(kind: ErrorKind, message: impl ToString) -> Self {
        Self {
            kind,
            message: message.to_string(),
        }
    }
}

impl From<latch_store::selftest::SelfTestError> for CommandError {
    fn from(error: latch_store::selftest::SelfTestError) -> Self {
        Self::new(ErrorKind::Storage, error)
    }
}
