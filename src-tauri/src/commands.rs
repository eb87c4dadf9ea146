//! The commands the UI may invoke. Each is listed in `build.rs` and granted per window in
//! `capabilities/`.

use latch_store::selftest::{self, StorageReport};
use tauri::{AppHandle, Manager, Runtime};

use crate::error::CommandError;

/// Proves encrypted storage works on this machine and reports the SQLCipher version.
///
/// Runs on a blocking thread: it writes and reads a file, and the UI must stay responsive.
#[tauri::command]
pub(crate) async fn storage_check<R: Runtime>(
    app: AppHandle<R>,
) -> Result<StorageReport, CommandError> {
    let dir = app
        .path()
        .app_data_dir()
        .map_err(|_| CommandError::NO_DATA_DIR)?;
    tauri::async_runtime::spawn_blocking(move || selftest::run(&dir))
        .await
        .map_err(|_| CommandError::INTERRUPTED)?
        .map_err(CommandError::from)
}
