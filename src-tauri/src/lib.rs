//! The Latch desktop shell: Tauri commands that validate input, call the Latch engine and
//! return serializable results, plus desktop integration. No protocol or storage logic lives
//! here.
#![forbid(unsafe_code)]

mod commands;
mod desktop;
mod error;
mod launch;
mod session;
mod webview;

use std::process::ExitCode;
use std::sync::Arc;

use desktop::instance::{self, Claim};
use desktop::window_state::WindowState;
use desktop::{Desktop, MAIN_WINDOW};
use session::{Latch, SharedLatch};
use tauri::{Manager, RunEvent, WindowEvent};

/// Builds and runs the app until it is quit.
#[must_use]
pub fn run() -> ExitCode {
    launch::started();
    let latch: SharedLatch = match Latch::new() {
        Ok(latch) => Arc::new(latch),
        Err(e) => return fail(&e),
    };
    let mut lock = match instance::claim(latch.home()) {
        Ok(Claim::First(lock)) => lock,
        // The running instance shows its window instead.
        Ok(Claim::Second) => return ExitCode::SUCCESS,
        Err(_) => return fail(&error::CommandError::NO_DATA_DIR),
    };
    let home = latch.home().to_owned();
    let app = tauri::Builder::default()
        .plugin(webview::navigation_guard())
        .manage(latch.clone())
        .setup(move |app| {
            let handle = app.handle().clone();
            app.manage(Desktop::new(&handle));
            lock.serve(move || desktop::show_main_window(&handle));
            if let Some(window) = app.get_webview_window(MAIN_WINDOW) {
                webview::tune(&window);
                restore_window(&window, &home);
            }
            // Kept until the app exits: it is what makes this the one instance.
            app.manage(lock);
            exit_on_signals(app.handle().clone());
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::storage_check,
            commands::startup,
            commands::create_profile,
            commands::unlock_profile,
            commands::subscribe,
            commands::conversations,
            commands::messages,
            commands::send_message,
            commands::mark_read,
            commands::edit_message,
            commands::delete_message,
            commands::set_timer,
            commands::save_draft,
            commands::contacts,
            commands::start_chat,
            commands::safety_number,
            commands::verify_qr_image,
            commands::mark_verified,
            commands::accept_key_change,
            commands::search,
            commands::open_link,
            commands::set_active_conversation,
            commands::ui_ready,
        ])
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                // Tauri's start-up errors name a missing display, webview or config.
                eprintln!("latch-desktop: could not start: {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    app.run(move |app, event| match event {
        RunEvent::WindowEvent {
            label,
            event: WindowEvent::CloseRequested { .. },
            ..
        } if label == MAIN_WINDOW => {
            if let Some(window) = app.get_webview_window(MAIN_WINDOW) {
                save_window(&window, latch.home());
            }
        }
        // Quit from the tray, SIGTERM at logout: the window still exists here.
        RunEvent::ExitRequested { .. } => {
            if let Some(window) = app.get_webview_window(MAIN_WINDOW) {
                save_window(&window, latch.home());
            }
        }
        RunEvent::Exit => {
            if let Some(desktop) = app.try_state::<Desktop>() {
                desktop.before_exit();
            }
            // Finishes the engine's in-flight commits and releases the profile's lock.
            tauri::async_runtime::block_on(latch.shutdown());
        }
        _ => {}
    });
    ExitCode::SUCCESS
}

/// SIGTERM (logout, `kill`) and SIGINT (Ctrl+C in a terminal) quit like the tray's Quit: the
/// window size is saved, notifications withdrawn, and the engine's commits finish.
fn exit_on_signals(app: tauri::AppHandle) {
    #[cfg(unix)]
    tauri::async_runtime::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        app.exit(0);
    });
    #[cfg(not(unix))]
    let _ = app;
}

fn fail(e: &error::CommandError) -> ExitCode {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("latch-desktop: could not start: {e}");
    }
    ExitCode::FAILURE
}

fn restore_window(window: &tauri::WebviewWindow, home: &std::path::Path) {
    if let Some(state) = WindowState::load(home) {
        let _ = window.set_size(tauri::LogicalSize::new(state.width, state.height));
        if state.maximized {
            let _ = window.maximize();
        }
    }
}

fn save_window(window: &tauri::WebviewWindow, home: &std::path::Path) {
    let (Ok(size), Ok(scale)) = (window.inner_size(), window.scale_factor()) else {
        return;
    };
    let maximized = window.is_maximized().unwrap_or(false);
    let logical = size.to_logical::<f64>(scale);
    let state = match WindowState::load(home) {
        // A maximized window keeps the size it had before, to return to when unmaximized.
        Some(previous) if maximized => WindowState {
            maximized,
            ..previous
        },
        _ => WindowState {
            width: logical.width.round() as u32,
            height: logical.height.round() as u32,
            maximized,
        },
    };
    state.save(home);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The commands `build.rs` declares.
    fn declared() -> BTreeSet<String> {
        env!("LATCH_COMMANDS")
            .split(',')
            .map(str::to_owned)
            .collect()
    }

    /// Every double-quoted string in `text`.
    fn quoted(text: &str) -> BTreeSet<String> {
        text.split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn build_rs_capability_isolation_and_handlers_list_the_same_commands() {
        let declared = declared();
        assert!(declared.contains("startup") && declared.len() >= 20);

        let capability = include_str!("../capabilities/main-window.json");
        let granted: BTreeSet<String> = quoted(capability)
            .into_iter()
            .filter_map(|p| p.strip_prefix("allow-").map(|c| c.replace('-', "_")))
            .collect();
        assert_eq!(granted, declared, "capabilities/main-window.json");

        let isolation = include_str!("../../ui/isolation/index.js");
        let set = isolation
            .split_once("new Set([")
            .and_then(|(_, rest)| rest.split_once("])"))
            .map(|(list, _)| list)
            .unwrap_or_default();
        let allowed: BTreeSet<String> = quoted(set)
            .into_iter()
            .filter(|c| !c.contains(' ') && !c.starts_with("plugin:"))
            .collect();
        assert_eq!(allowed, declared, "ui/isolation/index.js");

        let source = include_str!("lib.rs");
        let handlers: BTreeSet<String> = source
            .split("commands::")
            .skip(1)
            .filter_map(|rest| rest.split(',').next())
            .map(|c| c.trim().to_owned())
            .filter(|c| c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'))
            .collect();
        assert_eq!(handlers, declared, "generate_handler! in lib.rs");
    }
}
