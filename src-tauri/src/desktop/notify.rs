//! Desktop notifications that never show a secret chat's text and are withdrawn when their
//! message disappears, is deleted, or is read.
//!
//! On Linux they go to `org.freedesktop.Notifications` over the session bus from one thread
//! that owns the connection; elsewhere nothing is shown yet. Without a notification service
//! (a bare test session) every request fails quietly: notifications are a courtesy, never a
//! reason to lose or delay a message.

use std::collections::HashMap;
use std::sync::mpsc;

use latch_client::{ConversationView, MessageView};

/// Longest message text shown in a notification.
const PREVIEW_CHARS: usize = 160;

/// Notifications remembered for withdrawal; the oldest are forgotten beyond this (the
/// server has long dropped them: it keeps a handful on screen).
const REMEMBERED: usize = 256;

/// What a notification says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    /// The title line.
    pub(crate) summary: String,
    /// The body (plain text; escaped for the notification server's markup).
    pub(crate) body: String,
}

impl Notice {
    /// The notification for an incoming message. Secret chats show neither text nor sender;
    /// a disappearing message in a standard chat shows the sender but not the text, which
    /// would otherwise outlive the message on screen. A message request (someone the user
    /// never added, writing first) shows neither: a stranger chooses both.
    pub(crate) fn for_message(conversation: &ConversationView, message: &MessageView) -> Self {
        if conversation.standing != "accepted" {
            return Self {
                summary: "Latch".to_owned(),
                body: "New message request".to_owned(),
            };
        }
        if conversation.kind == "secret" {
            return Self {
                summary: "Latch".to_owned(),
                body: "New message in a secret chat".to_owned(),
            };
        }
        if message.expires_at.is_some() || conversation.disappear_after_secs.is_some() {
            return Self {
                summary: conversation.contact_name.clone(),
                body: "New disappearing message".to_owned(),
            };
        }
        let mut body: String = message.body.chars().take(PREVIEW_CHARS).collect();
        if message.body.chars().nth(PREVIEW_CHARS).is_some() {
            body.push('…');
        }
        Self {
            summary: conversation.contact_name.clone(),
            body: escape_markup(&body),
        }
    }
}

impl Notice {
    /// The notification for a call ringing here. A secret chat's names no one, as its
    /// messages' do; only accepted contacts ring at all.
    pub(crate) fn for_call(conversation: &ConversationView) -> Self {
        if conversation.kind == "secret" {
            return Self {
                summary: "Latch".to_owned(),
                body: "Incoming call in a secret chat".to_owned(),
            };
        }
        Self {
            summary: conversation.contact_name.clone(),
            body: "Incoming voice call".to_owned(),
        }
    }
}

/// Notification servers may read the body as a small HTML subset: text must stay text.
fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

enum Request {
    Show {
        conversation: i64,
        message: i64,
        notice: Notice,
    },
    WithdrawMessages(Vec<i64>),
    WithdrawConversation(i64),
    WithdrawAll(mpsc::Sender<()>),
}

/// The sending side; the notification thread owns the bus connection.
pub(crate) struct Notifier {
    requests: mpsc::Sender<Request>,
}

impl Notifier {
    /// Starts the notification thread.
    pub(crate) fn start() -> Self {
        let (requests, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("latch-notify".into())
            .spawn(move || serve(&rx, &mut Server::connect()));
        // Without the thread, requests are dropped: no notifications, nothing else lost.
        let _ = spawned;
        Self { requests }
    }

    /// Shows `notice` for a message.
    pub(crate) fn show(&self, conversation: i64, message: i64, notice: Notice) {
        let _ = self.requests.send(Request::Show {
            conversation,
            message,
            notice,
        });
    }

    /// Withdraws the notifications of these messages.
    pub(crate) fn withdraw(&self, messages: Vec<i64>) {
        let _ = self.requests.send(Request::WithdrawMessages(messages));
    }

    /// Withdraws every notification of a conversation.
    pub(crate) fn withdraw_conversation(&self, conversation: i64) {
        let _ = self
            .requests
            .send(Request::WithdrawConversation(conversation));
    }

    /// Withdraws everything and waits (briefly) until it is done.
    pub(crate) fn withdraw_all_and_wait(&self) {
        let (done, wait) = mpsc::channel();
        if self.requests.send(Request::WithdrawAll(done)).is_ok() {
            let _ = wait.recv_timeout(std::time::Duration::from_secs(2));
        }
    }
}

/// Where notifications are shown and closed.
trait Shows {
    /// Shows a notice; returns its server id.
    fn show(&mut self, notice: &Notice) -> Option<u32>;
    /// Closes a shown notice.
    fn close(&mut self, id: u32);
}

/// Which notification belongs to which message.
#[derive(Default)]
struct Shown {
    by_message: HashMap<i64, (i64, u32)>,
}

fn serve(requests: &mpsc::Receiver<Request>, server: &mut dyn Shows) {
    let mut shown = Shown::default();
    while let Ok(request) = requests.recv() {
        handle(request, &mut shown, server);
    }
}

fn handle(request: Request, shown: &mut Shown, server: &mut dyn Shows) {
    match request {
        Request::Show {
            conversation,
            message,
            notice,
        } => {
            if let Some(id) = server.show(&notice) {
                if shown.by_message.len() >= REMEMBERED
                    && let Some(oldest) = shown.by_message.iter().min_by_key(|(_, (_, id))| *id)
                {
                    let oldest = *oldest.0;
                    shown.by_message.remove(&oldest);
                }
                shown.by_message.insert(message, (conversation, id));
            }
        }
        Request::WithdrawMessages(messages) => {
            for m in messages {
                if let Some((_, id)) = shown.by_message.remove(&m) {
                    server.close(id);
                }
            }
        }
        Request::WithdrawConversation(conversation) => {
            shown.by_message.retain(|_, (c, id)| {
                let keep = *c != conversation;
                if !keep {
                    server.close(*id);
                }
                keep
            });
        }
        Request::WithdrawAll(done) => {
            for (_, (_, id)) in shown.by_message.drain() {
                server.close(id);
            }
            let _ = done.send(());
        }
    }
}

#[cfg(target_os = "linux")]
struct Server {
    connection: Option<dbus::blocking::Connection>,
}

#[cfg(target_os = "linux")]
impl Server {
    fn connect() -> Self {
        Self {
            connection: dbus::blocking::Connection::new_session().ok(),
        }
    }

    fn proxy(&self) -> Option<dbus::blocking::Proxy<'_, &dbus::blocking::Connection>> {
        self.connection.as_ref().map(|c| {
            c.with_proxy(
                "org.freedesktop.Notifications",
                "/org/freedesktop/Notifications",
                std::time::Duration::from_secs(2),
            )
        })
    }
}

#[cfg(target_os = "linux")]
impl Shows for Server {
    fn show(&mut self, notice: &Notice) -> Option<u32> {
        use dbus::arg::{PropMap, Variant};
        let mut hints = PropMap::new();
        hints.insert(
            "category".into(),
            Variant(Box::new("im.received".to_owned())),
        );
        hints.insert(
            "desktop-entry".into(),
            Variant(Box::new("latch-desktop".to_owned())),
        );
        let (id,): (u32,) = self
            .proxy()?
            .method_call(
                "org.freedesktop.Notifications",
                "Notify",
                (
                    "Latch",
                    0u32,
                    "latch-desktop",
                    notice.summary.as_str(),
                    notice.body.as_str(),
                    Vec::<String>::new(),
                    hints,
                    -1i32,
                ),
            )
            .ok()?;
        Some(id)
    }

    fn close(&mut self, id: u32) {
        if let Some(proxy) = self.proxy() {
            let _: Result<(), _> =
                proxy.method_call("org.freedesktop.Notifications", "CloseNotification", (id,));
        }
    }
}

#[cfg(not(target_os = "linux"))]
struct Server;

#[cfg(not(target_os = "linux"))]
impl Server {
    fn connect() -> Self {
        Self
    }
}

#[cfg(not(target_os = "linux"))]
impl Shows for Server {
    fn show(&mut self, _: &Notice) -> Option<u32> {
        None
    }
    fn close(&mut self, _: u32) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation(kind: &'static str, timer: Option<u32>) -> ConversationView {
        ConversationView {
            id: 7,
            kind,
            contact_id: 3,
            contact_name: "bob".into(),
            verified: false,
            disappear_after_secs: timer,
            timer_set_by_me: None,
            unread: 1,
            key_change_pending: false,
            contact_key: "ab".repeat(32),
            standing: "accepted",
            draft: None,
            last_message: None,
        }
    }

    fn message(body: &str, expires_at: Option<i64>) -> MessageView {
        MessageView {
            id: 11,
            conversation_id: 7,
            direction: "incoming",
            status: "received",
            body: body.into(),
            sent_at: 0,
            expires_at,
            edited: false,
            deleted: false,
            call: None,
        }
    }

    #[test]
    fn a_secret_chat_notification_shows_neither_text_nor_sender() {
        let n = Notice::for_message(
            &conversation("secret", Some(5)),
            &message("meet at 6", Some(5_000)),
        );
        assert!(!n.body.contains("meet") && !n.summary.contains("meet"));
        assert!(!n.summary.contains("bob") && !n.body.contains("bob"));
    }

    #[test]
    fn a_ringing_call_in_a_secret_chat_names_no_one() {
        let n = Notice::for_call(&conversation("secret", Some(5)));
        assert!(
            !n.summary.contains("bob") && !n.body.contains("bob"),
            "{n:?}"
        );
        assert_eq!(n.body, "Incoming call in a secret chat");
        let n = Notice::for_call(&conversation("standard", None));
        assert_eq!(
            (n.summary.as_str(), n.body.as_str()),
            ("bob", "Incoming voice call")
        );
    }

    #[test]
    fn a_message_request_notification_shows_neither_text_nor_sender() {
        let request = ConversationView {
            standing: "request",
            ..conversation("standard", None)
        };
        let n = Notice::for_message(&request, &message("click my link", None));
        assert_eq!(n.body, "New message request");
        assert!(
            !n.summary.contains("bob") && !n.body.contains("click"),
            "{n:?}"
        );
    }

    #[test]
    fn a_disappearing_message_in_a_standard_chat_hides_its_text() {
        let n = Notice::for_message(
            &conversation("standard", Some(30)),
            &message("meet at 6", Some(30_000)),
        );
        assert_eq!(n.summary, "bob");
        assert!(!n.body.contains("meet"), "{n:?}");
    }

    #[test]
    fn a_standard_message_is_previewed_as_escaped_text() {
        let long = format!("<b>hi</b> & {}", "x".repeat(500));
        let n = Notice::for_message(&conversation("standard", None), &message(&long, None));
        assert!(n.body.starts_with("&lt;b&gt;hi&lt;/b&gt; &amp; "), "{n:?}");
        assert!(n.body.ends_with('…'));
        assert!(n.body.chars().count() < 200);
    }

    #[derive(Default)]
    struct Recorder {
        next: u32,
        open: Vec<u32>,
    }

    impl Shows for Recorder {
        fn show(&mut self, _: &Notice) -> Option<u32> {
            self.next += 1;
            self.open.push(self.next);
            Some(self.next)
        }
        fn close(&mut self, id: u32) {
            self.open.retain(|&o| o != id);
        }
    }

    fn show(conversation: i64, message: i64) -> Request {
        Request::Show {
            conversation,
            message,
            notice: Notice {
                summary: "s".into(),
                body: "b".into(),
            },
        }
    }

    #[test]
    fn only_the_newest_notifications_are_remembered() {
        let mut server = Recorder::default();
        let mut shown = Shown::default();
        for m in 0..(REMEMBERED as i64 + 10) {
            handle(show(1, m), &mut shown, &mut server);
        }
        assert_eq!(shown.by_message.len(), REMEMBERED);
        assert!(
            !shown.by_message.contains_key(&0),
            "the oldest is forgotten"
        );
        assert!(shown.by_message.contains_key(&(REMEMBERED as i64 + 9)));
    }

    #[test]
    fn notifications_are_withdrawn_with_their_message_or_conversation() {
        let mut server = Recorder::default();
        let mut shown = Shown::default();
        for (c, m) in [(1, 10), (1, 11), (2, 20), (3, 30)] {
            handle(show(c, m), &mut shown, &mut server);
        }
        assert_eq!(server.open, [1, 2, 3, 4]);

        handle(
            Request::WithdrawMessages(vec![11, 99]),
            &mut shown,
            &mut server,
        );
        assert_eq!(server.open, [1, 3, 4], "message 11 expired");

        handle(Request::WithdrawConversation(2), &mut shown, &mut server);
        assert_eq!(server.open, [1, 4], "conversation 2 was read");

        let (done, wait) = mpsc::channel();
        handle(Request::WithdrawAll(done), &mut shown, &mut server);
        assert!(server.open.is_empty());
        assert!(wait.try_recv().is_ok());
    }
}
