//! The Latch desktop shell: Tauri commands that validate input, call the Latch libraries and
//! return serializable results. No protocol or storage logic lives here.
#![forbid(unsafe_code)]

mod commands;
mod error;

use std::process::ExitCode;

/// Builds and runs the app until its last window closes.
#[must_use]
pub fn run() -> ExitCode {
    let result = tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![commands::storage_check])
        .run(tauri::generate_context!());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Tauri's start-up errors name a missing display, webview or config: nothing secret.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("latch-desktop: could not start: {error}");
            }
            ExitCode::FAILURE
        }
    }
}
