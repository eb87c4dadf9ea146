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
            commands::start_chat,
            commands::safety_number,
            commands::verify_qr_image,
            commands::mark_verified,
            commands::accept_key_change,
            commands::accept_request,
            commands::decline_request,
            commands::block_contact,
            commands::unblock_contact,
            commands::search,
            commands::start_call,
            commands::answer_call,
            commands::decline_call,
            commands::hang_up_call,
            commands::set_call_muted,
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
    use std::path::Path;

    use serde_json::Value;
    use tauri::ipc::Origin;

    /// Tauri's own command that fetches a channel message too large to be pushed inline.
    const FETCH_CHANNEL_DATA_COMMAND: &str = "plugin:__TAURI_CHANNEL__|fetch";

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

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    /// The commands the capability grants. Every entry must be a plain `allow-<command>` of
    /// this app: a core or plugin permission, a set or an object entry fails here.
    fn granted(capability: &Value) -> BTreeSet<String> {
        let fields: BTreeSet<&str> = capability
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields,
            BTreeSet::from([
                "$schema",
                "identifier",
                "description",
                "windows",
                "permissions"
            ]),
            "no webviews, remote URLs, platforms or local=false in the capability"
        );
        assert_eq!(capability["windows"], serde_json::json!(["main"]));
        capability["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                let name = entry
                    .as_str()
                    .unwrap_or_else(|| panic!("{entry}: only allow-<command> entries"));
                let command = name
                    .strip_prefix("allow-")
                    .filter(|c| c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '-'))
                    .unwrap_or_else(|| panic!("{name}: only allow-<command> entries"));
                command.replace('-', "_")
            })
            .collect()
    }

    #[test]
    fn build_rs_capability_isolation_and_handlers_list_the_same_commands() {
        let declared = declared();
        assert!(declared.contains("startup") && declared.len() >= 20);

        // The one capability file there is, and the one the config enables.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("capabilities");
        let files: BTreeSet<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, BTreeSet::from(["main-window.json".to_owned()]));
        let config = json(include_str!("../tauri.conf.json"));
        assert_eq!(
            config["app"]["security"]["capabilities"],
            serde_json::json!(["main-window"])
        );

        let capability = json(include_str!("../capabilities/main-window.json"));
        assert_eq!(
            granted(&capability),
            declared,
            "capabilities/main-window.json"
        );

        // Every entry of the isolation list: the app's commands and Tauri's channel fetch.
        let isolation = include_str!("../../ui/isolation/index.js");
        let set = isolation
            .split_once("new Set([")
            .and_then(|(_, rest)| rest.split_once("])"))
            .map(|(list, _)| list)
            .unwrap_or_default();
        let mut expected = declared.clone();
        expected.insert(FETCH_CHANNEL_DATA_COMMAND.to_owned());
        assert_eq!(quoted(set), expected, "ui/isolation/index.js");

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

    /// The commands a piece of `ui/src/lib/api.ts` invokes: each `call<T>("name"`.
    fn invoked(api: &str) -> BTreeSet<String> {
        api.split("call<")
            .skip(1)
            .filter_map(|rest| {
                let (ty, after) = rest.split_once("(\"")?;
                // `call<T>(command: string…` (the definition) is not a call.
                (ty.ends_with('>') && !ty.contains(['(', '\n']))
                    .then(|| after.split('"').next())
                    .flatten()
            })
            .map(str::to_owned)
            .collect()
    }

    /// The UI's own source files (not its tests or test helpers), by path.
    fn ui_sources() -> Vec<(std::path::PathBuf, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src");
        let mut stack = vec![root];
        let mut files = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if path.is_dir() {
                    if name != "test" {
                        stack.push(path);
                    }
                } else if (name.ends_with(".ts") || name.ends_with(".svelte"))
                    && !name.contains(".test.")
                    && !name.contains(".bench.")
                {
                    let text = std::fs::read_to_string(&path).unwrap();
                    files.push((path, text));
                }
            }
        }
        files
    }

    /// Whether `source` uses `api.ts`'s export `name`: `api.name` through a namespace import,
    /// or `name` in a named import from the api module.
    fn uses(source: &str, name: &str) -> bool {
        let qualified = format!("api.{name}");
        let through_namespace = source.match_indices(&qualified).any(|(at, _)| {
            !source[at + qualified.len()..]
                .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        });
        let imported = source.split("import {").skip(1).any(|rest| {
            rest.split_once('}').is_some_and(|(names, from)| {
                from.trim_start()
                    .strip_prefix("from \"")
                    .and_then(|m| m.split('"').next())
                    .is_some_and(|module| module.ends_with("/api"))
                    && names
                        .split(',')
                        .map(|n| n.trim().trim_start_matches("type "))
                        .any(|n| n == name)
            })
        });
        through_namespace || imported
    }

    /// The commands the UI calls: those invoked by a function of `api.ts` that some other
    /// module of the UI uses.
    fn called_by_the_ui() -> BTreeSet<String> {
        let api = include_str!("../../ui/src/lib/api.ts");
        let others: Vec<String> = ui_sources()
            .into_iter()
            .filter(|(path, _)| !path.ends_with("lib/api.ts"))
            .map(|(_, text)| text)
            .collect();
        api.split("\nexport ")
            .skip(1)
            .filter_map(|item| {
                let signature = item
                    .strip_prefix("async function ")
                    .or_else(|| item.strip_prefix("function "))?;
                let name = signature.split(['(', '<']).next()?.trim();
                others
                    .iter()
                    .any(|source| uses(source, name))
                    .then(|| invoked(item))
            })
            .flatten()
            .collect()
    }

    #[test]
    fn every_granted_command_is_one_the_ui_calls() {
        let called = called_by_the_ui();
        assert!(called.contains("startup") && called.contains("verify_qr_image"));
        assert!(called.contains("send_message") && called.contains("ui_ready"));
        let capability = json(include_str!("../capabilities/main-window.json"));
        let unused: Vec<String> = granted(&capability).difference(&called).cloned().collect();
        assert!(
            unused.is_empty(),
            "granted but never called by the UI: {unused:?}"
        );
        assert_eq!(
            called,
            declared(),
            "the UI calls a command build.rs does not declare"
        );
        // api.ts is the one door: nothing else in the UI reaches Tauri's invoke.
        for (path, text) in ui_sources() {
            if path.ends_with("lib/api.ts") {
                continue;
            }
            assert!(
                !text.contains("@tauri-apps/api/core") && !text.contains("__TAURI_INTERNALS__"),
                "{} reaches the core around lib/api.ts",
                path.display()
            );
        }
    }

    /// The capability layer on its own, as the core resolves it for each IPC request (the
    /// isolation hook plays no part here): the main window on the app's own page may call
    /// exactly the declared commands; no core or plugin command, no other window and no remote
    /// page gets anything.
    #[test]
    fn the_acl_allows_the_main_window_exactly_the_declared_commands() {
        let mut context: tauri::Context<tauri::Wry> = tauri::generate_context!(test = true);
        let authority = context.runtime_authority_mut();
        let local = Origin::Local;
        for command in declared() {
            assert!(
                authority
                    .resolve_access(&command, "main", "main", &local)
                    .is_some(),
                "{command} is refused to the main window"
            );
            assert!(
                authority
                    .resolve_access(&command, "other", "other", &local)
                    .is_none(),
                "{command} is allowed to another window"
            );
            let remote = Origin::Remote {
                url: "https://example.org/".parse().unwrap(),
            };
            assert!(
                authority
                    .resolve_access(&command, "main", "main", &remote)
                    .is_none(),
                "{command} is allowed to a remote page"
            );
        }
        // A command of every core plugin, and an app command nobody declared.
        for command in [
            "plugin:app|version",
            "plugin:app|name",
            "plugin:app|app_show",
            "plugin:event|listen",
            "plugin:event|emit",
            "plugin:window|close",
            "plugin:window|create",
            "plugin:window|set_title",
            "plugin:webview|create_webview",
            "plugin:webview|print",
            "plugin:path|resolve_directory",
            "plugin:resources|close",
            "plugin:menu|new",
            "plugin:tray|new",
            "plugin:image|from_bytes",
            "contacts",
            "selftest",
        ] {
            assert!(
                authority
                    .resolve_access(command, "main", "main", &local)
                    .is_none(),
                "{command} is allowed"
            );
        }
    }

    /// `devCsp` (under `tauri dev` only) is the shipped CSP plus inline styles and Vite's
    /// hot-reload websocket, nothing else.
    #[test]
    fn the_dev_csp_widens_the_shipped_one_only_for_vite() {
        let config = json(include_str!("../tauri.conf.json"));
        let security = &config["app"]["security"];
        let mut expected = security["csp"].as_object().unwrap().clone();
        for (directive, dev) in [
            ("style-src", " 'unsafe-inline'"),
            ("connect-src", " ws://localhost:5173"),
        ] {
            let shipped = expected[directive].as_str().unwrap().to_owned();
            expected.insert(directive.to_owned(), Value::from(shipped + dev));
        }
        assert_eq!(security["devCsp"], Value::Object(expected));
    }
}
