//! The rows the store hands out, as typed values rather than raw integers.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub i64);
    };
}

id_type!(
    /// Row id of a contact.
    ContactId
);
id_type!(
    /// Row id of a conversation.
    ConversationId
);
id_type!(
    /// Row id of a message (also its rowid in the search index).
    MessageId
);
id_type!(
    /// Row id of an attachment.
    AttachmentId
);
id_type!(
    /// Row id of an outbox entry.
    OutboxId
);

/// Milliseconds since the Unix epoch, UTC: every timestamp in the store.
pub type UnixMillis = i64;

/// The profile's own row.
///
/// `Debug` hides the handle and display name (who the user is stays out of logs).
#[derive(Clone, PartialEq, Eq)]
pub struct Profile {
    /// This device's id, the one secret chats are bound to.
    pub device_id: u32,
    /// The relay handle, once registered.
    pub handle: Option<String>,
    /// The name shown to contacts.
    pub display_name: Option<String>,
    /// When the profile row was first written.
    pub created_at: UnixMillis,
}

/// A contact and the identity key we trust for it.
///
/// `Debug` hides the address and display name (who the user talks to stays out of logs).
#[derive(Clone, PartialEq, Eq)]
pub struct Contact {
    /// Row id.
    pub id: ContactId,
    /// The relay address (handle or account id).
    pub address: String,
    /// Local display name.
    pub display_name: Option<String>,
    /// The identity public key currently trusted (protocol encoding).
    pub identity_key: Vec<u8>,
    /// Whether the safety number was verified for *this* key.
    pub verified: bool,
    /// When the contact was added.
    pub added_at: UnixMillis,
    /// Whether the user let them in.
    pub standing: ContactStanding,
}

/// Whether the user let a contact in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ContactStanding {
    /// The user added them, or accepted their request: their messages notify with text and
    /// get receipts.
    #[default]
    Accepted,
    /// They wrote first and the user has not answered: their chat waits in the requests, its
    /// notifications show no text, and they learn nothing (no receipts) until accepted.
    Request,
    /// The user blocked them: what they send is dropped unread.
    Blocked,
}

impl ContactStanding {
    /// The stored code.
    pub(crate) fn to_sql(self) -> i64 {
        match self {
            Self::Accepted => 0,
            Self::Request => 1,
            Self::Blocked => 2,
        }
    }

    /// From the stored code (anything unknown is treated as blocked: the safe side).
    pub(crate) fn from_sql(v: i64) -> Self {
        match v {
            0 => Self::Accepted,
            1 => Self::Request,
            _ => Self::Blocked,
        }
    }
}

/// Stands in for a personal string in `Debug` output: says whether it is there, not what.
struct Redacted<'a>(Option<&'a str>);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Some(<redacted>)"),
            None => f.write_str("None"),
        }
    }
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("device_id", &self.device_id)
            .field("handle", &Redacted(self.handle.as_deref()))
            .field("display_name", &Redacted(self.display_name.as_deref()))
            .field("created_at", &self.created_at)
            .finish()
    }
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contact")
            .field("id", &self.id)
            .field("address", &format_args!("<redacted>"))
            .field("display_name", &Redacted(self.display_name.as_deref()))
            .field(
                "identity_key",
                &format_args!("<{} bytes>", self.identity_key.len()),
            )
            .field("verified", &self.verified)
            .field("added_at", &self.added_at)
            .field("standing", &self.standing)
            .finish()
    }
}

/// One change of a contact's identity key, kept so the UI can warn and explain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyChange {
    /// The key trusted before.
    pub old_identity_key: Vec<u8>,
    /// The key seen now.
    pub new_identity_key: Vec<u8>,
    /// Whether the old key had been verified (a verified key changing is the loud case).
    pub was_verified: bool,
    /// When the change was recorded.
    pub changed_at: UnixMillis,
}

/// What recording a contact's identity key found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityChange {
    /// The contact is new.
    New,
    /// The key is the one already trusted.
    Unchanged,
    /// The key differs: history recorded, verification reset.
    Changed {
        /// Whether the replaced key had been verified.
        was_verified: bool,
    },
}

/// Standard or secret chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConversationKind {
    /// Synced, searchable, optionally disappearing.
    Standard,
    /// Bound to one device, always disappearing, never in the search index.
    Secret {
        /// The local device this chat lives on.
        bound_device_id: u32,
    },
}

impl ConversationKind {
    /// Whether messages of this kind may enter the full-text index.
    pub fn is_searchable(self) -> bool {
        matches!(self, Self::Standard)
    }
}

/// A conversation with one contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversation {
    /// Row id.
    pub id: ConversationId,
    /// The other side.
    pub contact_id: ContactId,
    /// Standard or secret.
    pub kind: ConversationKind,
    /// Disappearing timer in seconds, if any (secret chats: always, 5 s to 24 h).
    pub disappear_after_secs: Option<u32>,
    /// When it was created.
    pub created_at: UnixMillis,
}

/// Which way a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the contact.
    Incoming,
    /// From us.
    Outgoing,
}

/// Delivery state of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageStatus {
    /// Outgoing, in the outbox.
    Pending,
    /// Outgoing, accepted by the relay.
    Sent,
    /// Outgoing, delivered to the contact's device.
    Delivered,
    /// Read (by them for outgoing, by us for incoming).
    Read,
    /// Outgoing, gave up.
    Failed,
    /// Incoming, not yet read.
    Received,
}

/// A message to insert.
#[derive(Clone)]
pub struct NewMessage<'a> {
    /// The conversation it belongs to.
    pub conversation_id: ConversationId,
    /// Incoming or outgoing.
    pub direction: Direction,
    /// Initial status.
    pub status: MessageStatus,
    /// The text.
    pub body: &'a str,
    /// Sender's timestamp.
    pub sent_at: UnixMillis,
    /// When it arrived here (incoming only).
    pub received_at: Option<UnixMillis>,
    /// When the sweeper must delete it.
    pub expires_at: Option<UnixMillis>,
    /// The id both sides use for this message (receipts, edits and deletes name it).
    pub remote_id: Option<[u8; 16]>,
    /// For an incoming disappearing message: the timer whose clock starts when it is read.
    pub expire_after_secs: Option<u32>,
}

impl fmt::Debug for NewMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewMessage")
            .field("conversation_id", &self.conversation_id)
            .field("direction", &self.direction)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A stored message. `Debug` leaves the text out so messages never reach logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// Row id.
    pub id: MessageId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// Incoming or outgoing.
    pub direction: Direction,
    /// Delivery state.
    pub status: MessageStatus,
    /// The text.
    pub body: String,
    /// Sender's timestamp.
    pub sent_at: UnixMillis,
    /// Arrival time (incoming).
    pub received_at: Option<UnixMillis>,
    /// Deletion time, if disappearing.
    pub expires_at: Option<UnixMillis>,
    /// The id both sides use for this message.
    pub remote_id: Option<[u8; 16]>,
    /// An incoming message's timer, started when it is read.
    pub expire_after_secs: Option<u32>,
    /// When the sender last edited it.
    pub edited_at: Option<UnixMillis>,
    /// Set when the row is a call in the chat rather than a message.
    pub call: Option<CallEvent>,
}

/// Voice or video.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// Voice only.
    Voice,
    /// With video.
    Video,
}

/// How a call went, as the chat shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// Answered, and later hung up by either side.
    Completed,
    /// Incoming, and nobody here answered (it rang out, the caller gave up, or this device
    /// was busy or not allowed to ring).
    Missed,
    /// Declined by the callee.
    Declined,
    /// Outgoing; the callee was in another call.
    Busy,
    /// Outgoing; nobody answered.
    NoAnswer,
    /// Outgoing; given up before an answer.
    Cancelled,
    /// Media never connected, or was lost for good.
    Failed,
}

/// A call as a row of its chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallEvent {
    /// Voice or video.
    pub kind: CallKind,
    /// How it went.
    pub outcome: CallOutcome,
    /// How long it was connected, for calls that connected.
    pub duration_ms: Option<u64>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("conversation_id", &self.conversation_id)
            .field("direction", &self.direction)
            .field("status", &self.status)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .field("sent_at", &self.sent_at)
            .field("received_at", &self.received_at)
            .field("expires_at", &self.expires_at)
            .field("edited_at", &self.edited_at)
            .finish_non_exhaustive()
    }
}

/// Where a conversation page starts: the oldest message of the previous page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageCursor {
    /// `sent_at` of the last message seen.
    pub sent_at: UnixMillis,
    /// Its id, to break ties.
    pub id: MessageId,
}

impl From<&Message> for PageCursor {
    fn from(m: &Message) -> Self {
        Self {
            sent_at: m.sent_at,
            id: m.id,
        }
    }
}

/// Metadata of an attachment (the bytes are read separately, decrypted on demand).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// Row id.
    pub id: AttachmentId,
    /// The message it belongs to.
    pub message_id: MessageId,
    /// MIME type as sent.
    pub content_type: Option<String>,
    /// Plaintext size in bytes.
    pub size: u64,
}

/// Which kind of prekey a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreKeyKind {
    /// One-time X25519 prekey.
    OneTime,
    /// Signed X25519 prekey.
    Signed,
    /// Post-quantum (ML-KEM) prekey.
    PostQuantum,
}

/// An envelope waiting for the relay.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboxItem {
    /// Row id.
    pub id: OutboxId,
    /// The message it carries, if any (receipts carry none).
    pub message_id: Option<MessageId>,
    /// Recipient address.
    pub recipient: String,
    /// Recipient device.
    pub device_id: u32,
    /// The relay's de-duplication id, the same on every attempt.
    pub envelope_id: [u8; 16],
    /// The encrypted envelope, ready to send.
    pub envelope: Vec<u8>,
    /// Send attempts so far.
    pub attempts: u32,
    /// Not before this time.
    pub next_attempt_at: UnixMillis,
}

impl fmt::Debug for OutboxItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxItem")
            .field("id", &self.id)
            .field("message_id", &self.message_id)
            .field("device_id", &self.device_id)
            .field("envelope", &format_args!("<{} bytes>", self.envelope.len()))
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// A message the sweeper removed, as announced on the event channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiredMessage {
    /// The deleted message.
    pub message_id: MessageId,
    /// Its conversation (so the UI can drop it and withdraw its notification).
    pub conversation_id: ConversationId,
    /// When it was due.
    pub expires_at: UnixMillis,
    /// Attachments deleted with it.
    pub attachments: Vec<AttachmentId>,
}

/// Events the store publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreEvent {
    /// The sweeper deleted these messages, their search entries and attachment files.
    MessagesExpired {
        /// What was removed.
        messages: Vec<ExpiredMessage>,
        /// Clock time of the deletion.
        swept_at: UnixMillis,
    },
    /// A sweep failed; it is retried when the next expiry is added or after a back-off.
    SweepFailed {
        /// The error, as text (never message content).
        error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_debug_hides_handle_and_name() {
        let p = Profile {
            device_id: 7,
            handle: Some("alice-handle".into()),
            display_name: Some("Alice Liddell".into()),
            created_at: 5,
        };
        assert_eq!(
            format!("{p:?}"),
            "Profile { device_id: 7, handle: Some(<redacted>), \
             display_name: Some(<redacted>), created_at: 5 }"
        );
        let empty = Profile {
            handle: None,
            display_name: None,
            ..p
        };
        assert_eq!(
            format!("{empty:?}"),
            "Profile { device_id: 7, handle: None, display_name: None, created_at: 5 }"
        );
    }

    #[test]
    fn contact_debug_hides_address_and_name() {
        let c = Contact {
            id: ContactId(3),
            address: "bob-handle".into(),
            display_name: Some("Bob Builder".into()),
            identity_key: vec![0xAB; 33],
            verified: true,
            added_at: 9,
            standing: ContactStanding::Accepted,
        };
        let shown = format!("{c:?}");
        assert_eq!(
            shown,
            "Contact { id: ContactId(3), address: <redacted>, \
             display_name: Some(<redacted>), identity_key: <33 bytes>, verified: true, \
             added_at: 9, standing: Accepted }"
        );
        let pretty = format!("{c:#?}");
        for secret in ["bob-handle", "Bob Builder", "171"] {
            assert!(!pretty.contains(secret), "{secret} leaked: {pretty}");
        }
    }
}
