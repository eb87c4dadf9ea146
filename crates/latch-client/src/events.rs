//! What the engine tells a UI: events as they happen, and views of stored rows. Both
//! serialize to JSON (the CLI prints them; the desktop shell forwards them to the webview).

use latch_store::{
    CallEvent, CallKind, CallOutcome, ContactStanding, Conversation, ConversationKind, Direction,
    Message, MessageStatus,
};
use serde::Serialize;

/// The relay connection's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// Trying to connect.
    Connecting,
    /// Connected and authenticated.
    Online,
    /// Not connected; retrying with back-off.
    Offline,
}

/// A message as a UI shows it.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct MessageView {
    /// Row id.
    pub id: i64,
    /// Its conversation.
    pub conversation_id: i64,
    /// `incoming` or `outgoing`.
    pub direction: &'static str,
    /// `pending`, `sent`, `delivered`, `read`, `failed` or `received`.
    pub status: &'static str,
    /// The text.
    pub body: String,
    /// Sender's clock, Unix milliseconds.
    pub sent_at: i64,
    /// When it disappears, if it does.
    pub expires_at: Option<i64>,
    /// Whether the sender edited it.
    pub edited: bool,
    /// Whether it was deleted for everyone (only in the event announcing the deletion).
    pub deleted: bool,
    /// Set when the row is a call in the chat, not a message (its body is empty).
    pub call: Option<CallView>,
}

/// A call as its chat shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CallView {
    /// `voice` or `video`.
    pub kind: &'static str,
    /// `completed`, `missed`, `declined`, `busy`, `no_answer`, `cancelled` or `failed`.
    pub outcome: &'static str,
    /// Whole seconds connected, for calls that connected.
    pub duration_secs: Option<u64>,
}

impl From<&CallEvent> for CallView {
    fn from(c: &CallEvent) -> Self {
        Self {
            kind: match c.kind {
                CallKind::Voice => "voice",
                CallKind::Video => "video",
            },
            outcome: match c.outcome {
                CallOutcome::Completed => "completed",
                CallOutcome::Missed => "missed",
                CallOutcome::Declined => "declined",
                CallOutcome::Busy => "busy",
                CallOutcome::NoAnswer => "no_answer",
                CallOutcome::Cancelled => "cancelled",
                CallOutcome::Failed => "failed",
            },
            duration_secs: c.duration_ms.map(|ms| ms / 1_000),
        }
    }
}

impl std::fmt::Debug for MessageView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageView")
            .field("id", &self.id)
            .field("conversation_id", &self.conversation_id)
            .field("status", &self.status)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish_non_exhaustive()
    }
}

/// The wire name of a status.
pub fn status_name(s: MessageStatus) -> &'static str {
    match s {
        MessageStatus::Pending => "pending",
        MessageStatus::Sent => "sent",
        MessageStatus::Delivered => "delivered",
        MessageStatus::Read => "read",
        MessageStatus::Failed => "failed",
        MessageStatus::Received => "received",
    }
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id.0,
            conversation_id: m.conversation_id.0,
            direction: match m.direction {
                Direction::Incoming => "incoming",
                Direction::Outgoing => "outgoing",
            },
            status: status_name(m.status),
            body: m.body.clone(),
            sent_at: m.sent_at,
            expires_at: m.expires_at,
            edited: m.edited_at.is_some(),
            deleted: false,
            call: m.call.as_ref().map(CallView::from),
        }
    }
}

impl MessageView {
    /// The view announcing that `m` was deleted for everyone: its text is gone with it, so the
    /// event carries none.
    pub fn deleted(m: &Message) -> Self {
        Self {
            deleted: true,
            body: String::new(),
            ..Self::from(m)
        }
    }
}

/// A conversation as a list shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConversationView {
    /// Row id.
    pub id: i64,
    /// `standard` or `secret`.
    pub kind: &'static str,
    /// The contact's row id.
    pub contact_id: i64,
    /// The contact's name as shown (their handle).
    pub contact_name: String,
    /// Whether the contact's safety number is verified.
    pub verified: bool,
    /// Disappearing timer in seconds.
    pub disappear_after_secs: Option<u32>,
    /// Who last changed the timer: `true` this device, `false` the contact, `None` never
    /// changed since the chat started.
    pub timer_set_by_me: Option<bool>,
    /// Unread incoming messages.
    pub unread: usize,
    /// Whether the contact's key changed and the user has not accepted the new one yet.
    pub key_change_pending: bool,
    /// The contact's current key (hex of its signing key), which accepting a pending
    /// change accepts.
    pub contact_key: String,
    /// `accepted`; `request` while the contact wrote first and the user has not answered
    /// (no text in notifications, nothing can be sent); `blocked`.
    pub standing: &'static str,
    /// The unsent text kept for this chat (standard chats only; see `Engine::save_draft`).
    pub draft: Option<String>,
    /// The newest message, if any.
    pub last_message: Option<MessageView>,
}

/// How a contact's standing is named to the UI.
pub fn standing_name(s: ContactStanding) -> &'static str {
    match s {
        ContactStanding::Accepted => "accepted",
        ContactStanding::Request => "request",
        _ => "blocked",
    }
}

/// `standard` or `secret`.
pub fn kind_name(c: &Conversation) -> &'static str {
    match c.kind {
        ConversationKind::Standard => "standard",
        ConversationKind::Secret { .. } => "secret",
    }
}

/// Something that happened.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A new message arrived (or was sent from this device).
    Message {
        /// The message.
        message: MessageView,
    },
    /// A message changed: status, text (edit), or deleted for everyone (`message.deleted`;
    /// it is then gone from the store).
    MessageUpdated {
        /// The message as it is now.
        message: MessageView,
    },
    /// The sweeper deleted disappearing messages.
    MessagesExpired {
        /// Their conversation.
        conversation_id: i64,
        /// The messages.
        message_ids: Vec<i64>,
    },
    /// A conversation's disappearing timer changed.
    TimerChanged {
        /// The conversation.
        conversation_id: i64,
        /// The new timer in seconds (`None`: off).
        seconds: Option<u32>,
        /// Whether this device changed it (otherwise the contact did).
        by_me: bool,
    },
    /// A new conversation appeared (the contact started it).
    ConversationStarted {
        /// The conversation.
        conversation_id: i64,
        /// `standard` or `secret`.
        kind: &'static str,
    },
    /// A contact's identity key changed: verification was reset, secret chats hold their
    /// outgoing messages until the user accepts the new key.
    KeyChanged {
        /// The contact.
        contact_id: i64,
        /// Their handle.
        contact: String,
        /// Whether the old key had been verified.
        was_verified: bool,
        /// The new key (hex of its signing key): what accepting the change accepts.
        key: String,
    },
    /// The relay connection changed state.
    Connection {
        /// The new state.
        state: ConnectionState,
    },
    /// Everything queued while offline has been received.
    Synced,
    /// The user accepted, blocked or unblocked a contact: their chats changed standing.
    ContactStanding {
        /// The contact.
        contact_id: i64,
        /// `accepted`, `request` or `blocked`.
        standing: &'static str,
    },
    /// A contact and their chats were deleted (a declined message request).
    ContactRemoved {
        /// The contact.
        contact_id: i64,
        /// Their chats, now gone.
        conversation_ids: Vec<i64>,
    },
    /// The relay ran low on this device's one-time prekeys; a fresh batch was published.
    PrekeysReplenished {
        /// How many.
        count: usize,
    },
    /// A call changed state: `dialing` or `ringing` first, then `connecting`, `connected`,
    /// `reconnecting`, and last `ended` with a reason.
    Call {
        /// The call (hex).
        call_id: String,
        /// The chat it belongs to.
        conversation_id: i64,
        /// `outgoing` or `incoming`.
        direction: &'static str,
        /// `audio` or `video`, as the caller offered.
        media: &'static str,
        /// `dialing`, `ringing`, `connecting`, `connected`, `reconnecting` or `ended`.
        state: &'static str,
        /// Why it ended: `declined`, `busy`, `no_answer`, `cancelled`, `hung_up`, `failed`,
        /// or `not_allowed` (from a message request or an unaccepted key: not rung).
        reason: Option<&'static str>,
        /// Whether the peer sends video.
        remote_video: bool,
    },
    /// An envelope from the relay could not be used (malformed, undecryptable, replayed,
    /// unknown sender). It was dropped; the conversation goes on.
    ReceiveFailed {
        /// What was wrong (never message content).
        reason: String,
    },
}
