//! What the client puts in a relay envelope's body, and what it encrypts inside it.
//!
//! An envelope body is a [`Sealed`] frame: a version byte, the thread tag, the sender's
//! claimed handle (prekey messages only), and the protocol ciphertext. Inside the ciphertext
//! is one [`Content`], encoded with postcard.
//!
//! The thread tag tells the recipient which of the sender's chats (the standard one, tag
//! all zeros, or a secret one, a random tag) and therefore which ratchet session the message
//! belongs to. The relay can see the tag: it learns that two devices have more than one
//! thread and which envelopes share one, never what they say. The claimed handle is checked
//! against the directory before it is believed; the relay learns nothing from it that the
//! directory does not already publish.

use latch_protocol::{CiphertextMessage, MessageKind};
use serde::{Deserialize, Serialize};

/// Version byte of [`Sealed`].
pub const SEALED_VERSION: u8 = 1;

/// The thread tag of the standard chat between two people.
pub const STANDARD_THREAD: ThreadTag = ThreadTag([0; 16]);

/// Longest text a message may carry, in bytes. The largest message (a prekey message with the
/// longest text) must fit the relay's envelope cap; a unit test checks that it does.
pub const MAX_TEXT_BYTES: usize = 60 * 1024;

/// Which chat an envelope belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ThreadTag(pub [u8; 16]);

impl ThreadTag {
    /// A fresh random tag for a new secret chat.
    ///
    /// # Errors
    /// The operating system's random source failed.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut t = [0u8; 16];
        getrandom::fill(&mut t)?;
        Ok(Self(t))
    }

    /// Whether this is the standard chat's tag.
    pub fn is_standard(&self) -> bool {
        *self == STANDARD_THREAD
    }
}

/// Why an envelope body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The body ended early.
    #[error("envelope body is truncated")]
    Truncated,
    /// The version byte is not one this build reads.
    #[error("unknown envelope body version {0}")]
    UnknownVersion(u8),
    /// The message-kind byte is not a known kind.
    #[error("unknown message kind")]
    UnknownKind,
    /// The claimed handle is not valid UTF-8 or is too long.
    #[error("invalid sender handle")]
    BadHandle,
    /// The protocol ciphertext did not decode.
    #[error("ciphertext did not decode: {0}")]
    Ciphertext(latch_protocol::DecodeError),
    /// The decrypted content did not decode (a bug or a hostile peer).
    #[error("decrypted content did not decode")]
    Content,
    /// The thread inside the encrypted message differs from the envelope's clear tag: the
    /// envelope was altered on the way.
    #[error("the envelope's thread tag was altered")]
    ThreadMismatch,
}

/// An envelope body: routing inside the client, around the protocol ciphertext.
#[derive(Clone, Debug)]
pub struct Sealed {
    /// Which chat (and so which session) it belongs to.
    pub thread: ThreadTag,
    /// The sender's handle, sent with prekey messages so a new contact can be resolved.
    pub sender_handle: Option<String>,
    /// The protocol message.
    pub message: CiphertextMessage,
}

/// Longest handle carried in a [`Sealed`] frame (the relay's own limit).
const MAX_HANDLE_LEN: usize = latch_relay::api::MAX_HANDLE_LEN;

impl Sealed {
    /// Encodes: version, tag (16), kind (1), handle length (1), handle, ciphertext.
    ///
    /// # Errors
    /// [`WireError::UnknownKind`] for a message kind this format has no byte for.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        let body = self.message.to_bytes();
        let handle = self.sender_handle.as_deref().unwrap_or("").as_bytes();
        let handle = &handle[..handle.len().min(MAX_HANDLE_LEN)];
        let mut out = Vec::with_capacity(19 + handle.len() + body.len());
        out.push(SEALED_VERSION);
        out.extend_from_slice(&self.thread.0);
        out.push(match self.message.kind() {
            MessageKind::Ratchet => 1,
            MessageKind::PreKey => 2,
            _ => return Err(WireError::UnknownKind),
        });
        out.push(handle.len() as u8);
        out.extend_from_slice(handle);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes a body from the relay (untrusted: every length is checked).
    ///
    /// # Errors
    /// A [`WireError`] naming what was wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let (&version, rest) = bytes.split_first().ok_or(WireError::Truncated)?;
        if version != SEALED_VERSION {
            return Err(WireError::UnknownVersion(version));
        }
        let (tag, rest) = rest.split_at_checked(16).ok_or(WireError::Truncated)?;
        let (&kind, rest) = rest.split_first().ok_or(WireError::Truncated)?;
        let kind = match kind {
            1 => MessageKind::Ratchet,
            2 => MessageKind::PreKey,
            _ => return Err(WireError::UnknownKind),
        };
        let (&len, rest) = rest.split_first().ok_or(WireError::Truncated)?;
        let len = usize::from(len);
        if len > MAX_HANDLE_LEN {
            return Err(WireError::BadHandle);
        }
        let (handle, rest) = rest.split_at_checked(len).ok_or(WireError::Truncated)?;
        let handle = std::str::from_utf8(handle).map_err(|_| WireError::BadHandle)?;
        let message = CiphertextMessage::from_bytes(kind, rest).map_err(WireError::Ciphertext)?;
        let mut t = [0u8; 16];
        t.copy_from_slice(tag);
        Ok(Self {
            thread: ThreadTag(t),
            sender_handle: (!handle.is_empty()).then(|| handle.to_owned()),
            message,
        })
    }
}

/// Delivery or read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReceiptKind {
    /// The recipient's device stored the message.
    Delivered,
    /// The recipient read it.
    Read,
}

/// What one encrypted message says. Variants are only ever appended (postcard numbers them).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content {
    /// A text message.
    Text {
        /// The id both sides use for it.
        id: [u8; 16],
        /// Sender's clock, Unix milliseconds.
        sent_at: i64,
        /// The text.
        body: String,
        /// The disappearing timer in force when it was sent.
        expire_after_secs: Option<u32>,
    },
    /// Receipts for messages the other side sent.
    Receipt {
        /// Delivered or read.
        kind: ReceiptKind,
        /// Their ids.
        ids: Vec<[u8; 16]>,
    },
    /// The sender changed the text of one of its messages.
    Edit {
        /// The message.
        id: [u8; 16],
        /// The new text.
        body: String,
        /// When, on the sender's clock.
        edited_at: i64,
    },
    /// The sender deleted one of its messages for everyone.
    Delete {
        /// The message.
        id: [u8; 16],
    },
    /// The sender set the chat's disappearing timer (also opens a secret chat).
    Timer {
        /// Seconds, or `None` for off.
        secs: Option<u32>,
    },
    /// Call signalling (offer, answer, candidates, hang-up...) for a call in this chat.
    Call(latch_call::CallSignal),
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Text { body, .. } => write!(f, "Text(<{} bytes>)", body.len()),
            Self::Receipt { kind, ids } => write!(f, "Receipt({kind:?}, {} ids)", ids.len()),
            Self::Edit { body, .. } => write!(f, "Edit(<{} bytes>)", body.len()),
            Self::Delete { .. } => f.write_str("Delete"),
            Self::Timer { secs } => write!(f, "Timer({secs:?})"),
            Self::Call(s) => write!(f, "Call({})", s.name()),
        }
    }
}

impl Content {
    /// Encodes for encryption.
    ///
    /// # Errors
    /// [`WireError::Content`] if encoding failed (cannot happen for these types).
    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        postcard::to_stdvec(self).map_err(|_| WireError::Content)
    }

    /// Decodes decrypted bytes; trailing bytes are an error.
    ///
    /// # Errors
    /// [`WireError::Content`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        match postcard::take_from_bytes::<Self>(bytes) {
            Ok((c, [])) => Ok(c),
            _ => Err(WireError::Content),
        }
    }

    /// What is encrypted: the thread tag, then the content. The tag inside is authenticated
    /// with the message, so a relay that changes the envelope's clear tag (to move a secret
    /// message into the searchable standard chat, say) is caught when the two differ.
    ///
    /// # Errors
    /// [`WireError::Content`] (cannot happen for these types).
    pub fn to_plaintext(&self, thread: ThreadTag) -> Result<Vec<u8>, WireError> {
        let mut out = thread.0.to_vec();
        out.extend_from_slice(&self.to_bytes()?);
        Ok(out)
    }

    /// Splits a decrypted plaintext into its thread tag and content.
    ///
    /// # Errors
    /// [`WireError::Truncated`] or [`WireError::Content`].
    pub fn from_plaintext(bytes: &[u8]) -> Result<(ThreadTag, Self), WireError> {
        let (tag, rest) = bytes.split_at_checked(16).ok_or(WireError::Truncated)?;
        let mut t = [0u8; 16];
        t.copy_from_slice(tag);
        Ok((ThreadTag(t), Self::from_bytes(rest)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latch_protocol::wire::MAX_PREKEY_MESSAGE_LEN;

    #[test]
    fn largest_message_fits_the_relay_cap() {
        let content = Content::Text {
            id: [0xff; 16],
            sent_at: i64::MAX,
            body: "\u{10FFFF}".repeat(MAX_TEXT_BYTES / 4),
            expire_after_secs: Some(u32::MAX),
        };
        let plaintext = content.to_plaintext(STANDARD_THREAD).unwrap().len();
        // A prekey message adds its fixed fields and the AEAD tag to the plaintext.
        let prekey_overhead = MAX_PREKEY_MESSAGE_LEN - latch_protocol::wire::MAX_CIPHERTEXT_LEN;
        let sealed = 19 + MAX_HANDLE_LEN + prekey_overhead + plaintext + 16;
        assert!(
            sealed <= latch_relay::api::DEFAULT_MAX_ENVELOPE_BYTES,
            "{sealed} bytes"
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = [SEALED_VERSION; 40];
        for cut in 0..bytes.len() {
            assert!(Sealed::from_bytes(&bytes[..cut]).is_err());
        }
        assert_eq!(
            Sealed::from_bytes(&[9]).unwrap_err(),
            WireError::UnknownVersion(9)
        );
        let mut bad_kind = vec![SEALED_VERSION];
        bad_kind.extend_from_slice(&[0; 16]);
        bad_kind.push(7);
        assert_eq!(
            Sealed::from_bytes(&bad_kind).unwrap_err(),
            WireError::UnknownKind
        );
    }

    #[test]
    fn content_round_trips_and_debug_hides_text() {
        let c = Content::Text {
            id: [1; 16],
            sent_at: 5,
            body: "secret words".into(),
            expire_after_secs: Some(30),
        };
        let bytes = c.to_bytes().unwrap();
        assert_eq!(Content::from_bytes(&bytes).unwrap(), c);
        assert!(!format!("{c:?}").contains("secret"));
        let mut long = bytes.clone();
        long.push(0);
        assert!(Content::from_bytes(&long).is_err());
        let tag = ThreadTag([3; 16]);
        let (t, back) = Content::from_plaintext(&c.to_plaintext(tag).unwrap()).unwrap();
        assert_eq!((t, back), (tag, c));
        assert!(Content::from_plaintext(&[0; 15]).is_err());
    }
}
