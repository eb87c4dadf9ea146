//! Desktop integration: notifications, the tray icon with the unread count, a single
//! instance per data directory, the remembered window size, and the system browser.

pub(crate) mod instance;
pub(crate) mod notify;
pub(crate) mod window_state;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use latch_client::{Engine, Event};
use tauri::menu::{Menu, MenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager, Wry};
use tokio::sync::broadcast::error::RecvError;

use notify::{Notice, Notifier};

/// The label of the app's one window.
pub(crate) const MAIN_WINDOW: &str = "main";

/// Desktop integration state, managed by Tauri.
#[derive(Clone)]
pub(crate) struct Desktop {
    inner: Arc<Inner>,
}

struct Inner {
    app: AppHandle<Wry>,
    notifier: Notifier,
    /// The conversation on screen in a focused window.
    active: Mutex<Option<i64>>,
    tray: Mutex<Option<TrayIcon<Wry>>>,
    /// The call whose notification is up, if one rings here.
    ringing: Mutex<Option<String>>,
    watching: AtomicBool,
    recount_waiting: AtomicBool,
}

/// The message id under which the ringing call's notification is kept: message ids are
/// positive, and there is one call at a time.
const RINGING_CALL: i64 = -1;

/// How long a recount of the unread messages waits for more events to cover.
const RECOUNT_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

impl Desktop {
    /// Sets up the tray icon and the notification sender.
    pub(crate) fn new(app: &AppHandle<Wry>) -> Self {
        let tray = build_tray(app).ok();
        Self {
            inner: Arc::new(Inner {
                app: app.clone(),
                notifier: Notifier::start(),
                active: Mutex::new(None),
                tray: Mutex::new(tray),
                ringing: Mutex::new(None),
                watching: AtomicBool::new(false),
                recount_waiting: AtomicBool::new(false),
            }),
        }
    }

    /// Follows the engine's events for notifications and the unread count (once).
    pub(crate) fn watch(&self, engine: &Engine) {
        if self.inner.watching.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut events = engine.subscribe();
        let engine = engine.clone();
        let desktop = self.clone();
        tauri::async_runtime::spawn(async move {
            desktop.recount_unread(&engine);
            loop {
                match events.recv().await {
                    Ok(event) => desktop.on_event(&engine, event).await,
                    Err(RecvError::Lagged(_)) => desktop.recount_unread(&engine),
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    async fn on_event(&self, engine: &Engine, event: Event) {
        match event {
            Event::Message { message } if message.direction == "incoming" => {
                let active = *self
                    .inner
                    .active
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if active != Some(message.conversation_id) {
                    let e = engine.clone();
                    let conversation = message.conversation_id;
                    let found = tauri::async_runtime::spawn_blocking(move || {
                        e.conversation(latch_store::ConversationId(conversation))
                    })
                    .await;
                    if let Ok(Ok(view)) = found {
                        self.inner.notifier.show(
                            conversation,
                            message.id,
                            Notice::for_message(&view, &message),
                        );
                    }
                }
                self.recount_unread(engine);
            }
            Event::MessagesExpired { message_ids, .. } => {
                self.inner.notifier.withdraw(message_ids);
                self.recount_unread(engine);
            }
            // Deleted, or edited: a notification must not keep showing the old text.
            Event::MessageUpdated { message } if message.deleted || message.edited => {
                self.inner.notifier.withdraw(vec![message.id]);
                self.recount_unread(engine);
            }
            // A declined request takes its chats, their notifications and unread with it.
            Event::ContactRemoved {
                conversation_ids, ..
            } => {
                for c in conversation_ids {
                    self.inner.notifier.withdraw_conversation(c);
                }
                self.recount_unread(engine);
            }
            // A call ringing here: a notification, and the window brought back from the tray
            // (not focused: whatever the user is typing elsewhere stays theirs).
            Event::Call {
                direction: "incoming",
                state: "ringing",
                conversation_id,
                call_id,
                ..
            } => {
                *self
                    .inner
                    .ringing
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(call_id);
                let e = engine.clone();
                let found = tauri::async_runtime::spawn_blocking(move || {
                    e.conversation(latch_store::ConversationId(conversation_id))
                })
                .await;
                if let Ok(Ok(view)) = found {
                    self.inner.notifier.show(
                        conversation_id,
                        RINGING_CALL,
                        Notice::for_call(&view),
                    );
                }
                if let Some(window) = self.inner.app.get_webview_window(MAIN_WINDOW) {
                    let _ = window.unminimize();
                    let _ = window.show();
                }
            }
            // Answered, declined, given up: it rings no more. Only that call's own events count
            // (a second caller's busy, say, must not silence it).
            Event::Call { call_id, .. } => {
                let mut ringing = self
                    .inner
                    .ringing
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if ringing.as_deref() == Some(call_id.as_str()) {
                    *ringing = None;
                    self.inner.notifier.withdraw(vec![RINGING_CALL]);
                }
            }
            // A block or an accept changes nothing counted, but costs one recount at most.
            Event::ConversationStarted { .. } | Event::Synced | Event::ContactStanding { .. } => {
                self.recount_unread(engine);
            }
            _ => {}
        }
    }

    /// The user opened `conversation`: its notifications have done their job.
    pub(crate) fn conversation_read(&self, conversation: i64) {
        self.inner.notifier.withdraw_conversation(conversation);
        if let Ok(engine) = self
            .inner
            .app
            .state::<crate::session::SharedLatch>()
            .engine()
        {
            self.recount_unread(&engine);
        }
    }

    /// Which conversation is on screen in a focused window (`None`: none).
    pub(crate) fn set_active(&self, conversation: Option<i64>) {
        *self
            .inner
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = conversation;
        if let Some(c) = conversation {
            self.inner.notifier.withdraw_conversation(c);
        }
    }

    /// Withdraws every notification before the app exits (they would point at nothing).
    pub(crate) fn before_exit(&self) {
        self.inner.notifier.withdraw_all_and_wait();
    }

    /// Recounts the unread messages for the tray, off the event loop (which must go on
    /// showing notifications). A burst of events (a backlog after reconnecting) is counted
    /// once: a recount already waiting covers the later events.
    fn recount_unread(&self, engine: &Engine) {
        if self.inner.recount_waiting.swap(true, Ordering::SeqCst) {
            return;
        }
        let (desktop, engine) = (self.clone(), engine.clone());
        tauri::async_runtime::spawn(async move {
            tokio::time::sleep(RECOUNT_DELAY).await;
            desktop.inner.recount_waiting.store(false, Ordering::SeqCst);
            let total = tauri::async_runtime::spawn_blocking(move || {
                engine
                    .conversations()
                    .map(|list| list.iter().map(|c| c.unread).sum::<usize>())
            })
            .await;
            if let Ok(Ok(total)) = total {
                desktop.show_unread(total);
            }
        });
    }

    fn show_unread(&self, total: usize) {
        let label = unread_label(total);
        if let Some(tray) = self
            .inner
            .tray
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            let _ = tray.set_tooltip(Some(&label));
            let _ = tray.set_title((total > 0).then(|| total.to_string()));
        }
    }
}

/// The tray's tooltip for `total` unread messages.
pub(crate) fn unread_label(total: usize) -> String {
    match total {
        0 => "Latch: no unread messages".to_owned(),
        1 => "Latch: 1 unread message".to_owned(),
        n => format!("Latch: {n} unread messages"),
    }
}

fn build_tray(app: &AppHandle<Wry>) -> tauri::Result<TrayIcon<Wry>> {
    let show = MenuItem::with_id(app, "show", "Show Latch", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit Latch", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&show, &quit])?;
    let mut builder = TrayIconBuilder::with_id("latch")
        .tooltip(unread_label(0))
        .menu(&menu)
        .on_menu_event(|app, event| match event.id.as_ref() {
            "show" => show_main_window(app),
            "quit" => app.exit(0),
            _ => {}
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)
}

/// Brings the main window to the front (tray menu, second launch).
pub(crate) fn show_main_window(app: &AppHandle<Wry>) {
    if let Some(window) = app.get_webview_window(MAIN_WINDOW) {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
    }
}

/// Opens a checked http(s) link in the user's browser.
pub(crate) fn open_in_browser(url: &str) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    let mut command = std::process::Command::new("xdg-open");
    #[cfg(target_os = "macos")]
    let mut command = std::process::Command::new("open");
    #[cfg(target_os = "windows")]
    let mut command = {
        let mut c = std::process::Command::new("rundll32");
        c.arg("url.dll,FileProtocolHandler");
        c
    };
    command
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(|mut child| {
            // Reaped in the background so no zombie stays behind.
            std::thread::spawn(move || child.wait());
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unread_label_counts_in_words() {
        assert_eq!(unread_label(0), "Latch: no unread messages");
        assert_eq!(unread_label(1), "Latch: 1 unread message");
        assert_eq!(unread_label(12), "Latch: 12 unread messages");
    }
}
