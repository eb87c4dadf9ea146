//! A bare Tauri 2 window showing one line of text: what the desktop benchmark compares
//! Latch's memory against, built with the same release profile in the same run.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    match tauri::Builder::default().run(tauri::generate_context!()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::FAILURE,
    }
}
