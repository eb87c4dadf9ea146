//! The versioned wire format of every message Latch sends.
//!
//! Every encoding starts with a one-byte format version, uses big-endian integers and
//! u32-length-prefixed variable fields, and is decoded with hard size limits. Unknown versions,
//! truncation, trailing bytes and oversize inputs are distinct [`DecodeError`]s.
//!
//! # Envelope (what the relay sees)
//!
//! The relay routes [`Envelope`]s and treats `body` as opaque bytes. Its layout is stable:
//!
//! ```text
//! offset  size  field
//! 0       1     version = 0x01
//! 1       32    recipient: Ed25519 identity public key of the receiving device
//! 33      32    sender: Ed25519 identity public key of the sending device
//! 65      1     kind: 0x01 = PreKeyMessage, 0x02 = RatchetMessage
//! 66      4     body length, u32 big-endian, at most MAX_BODY_LEN
//! 70      n     body: the encoded message of that kind
//! ```
//!
//! Devices are identified by the 32-byte Ed25519 key of their [`IdentityKey`]: the same key the
//! relay checks challenge signatures against, so routing needs no other device id.

use crate::codec::{self, Writer};
use crate::error::DecodeError;
use crate::identity::{IDENTITY_KEY_LEN, IdentityKey};
use crate::keys::{AEAD_TAG_LEN, KEM_CIPHERTEXT_LEN};

/// Version byte of [`RatchetMessage`].
pub const RATCHET_MESSAGE_VERSION: u8 = 1;
/// Version byte of [`PreKeyMessage`].
pub const PREKEY_MESSAGE_VERSION: u8 = 1;
/// Version byte of [`Envelope`].
pub const ENVELOPE_VERSION: u8 = 1;

/// Largest ciphertext a ratchet message may carry. Latch messages are text and attachment
/// pointers (attachments travel separately), so 64 KiB is generous while keeping every decode
/// and every relay mailbox entry small.
pub const MAX_CIPHERTEXT_LEN: usize = 64 * 1024;
/// Largest plaintext [`crate::SessionRecord::encrypt`] accepts (the ciphertext adds the tag).
pub const MAX_PLAINTEXT_LEN: usize = MAX_CIPHERTEXT_LEN - AEAD_TAG_LEN;
/// Encoded header length: version, ratchet key, previous counter, counter.
pub const RATCHET_HEADER_LEN: usize = 1 + 32 + 4 + 4;
/// Largest encoded [`RatchetMessage`].
pub const MAX_RATCHET_MESSAGE_LEN: usize = RATCHET_HEADER_LEN + 4 + MAX_CIPHERTEXT_LEN;
/// Largest encoded [`PreKeyMessage`]: fixed fields plus one ratchet message.
pub const MAX_PREKEY_MESSAGE_LEN: usize =
    1 + 4 + 1 + 4 + 4 + 32 + IDENTITY_KEY_LEN + KEM_CIPHERTEXT_LEN + 4 + MAX_RATCHET_MESSAGE_LEN;
/// Largest envelope body.
pub const MAX_BODY_LEN: usize = MAX_PREKEY_MESSAGE_LEN;
/// Fixed part of an [`Envelope`] before the body.
pub const ENVELOPE_HEADER_LEN: usize = 1 + 32 + 32 + 1 + 4;
/// Largest encoded [`Envelope`]; the relay can refuse larger frames before parsing.
pub const MAX_ENVELOPE_LEN: usize = ENVELOPE_HEADER_LEN + MAX_BODY_LEN;

/// A Double Ratchet message: header in the clear (authenticated as associated data) and the
/// ChaCha20-Poly1305 ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct RatchetMessage {
    /// The sender's current ratchet public key.
    pub ratchet_key: [u8; 32],
    /// Length of the sender's previous sending chain (lets the receiver store skipped keys).
    pub previous_counter: u32,
    /// Index of this message in the sending chain.
    pub counter: u32,
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

impl core::fmt::Debug for RatchetMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RatchetMessage")
            .field("previous_counter", &self.previous_counter)
            .field("counter", &self.counter)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

impl RatchetMessage {
    /// The header bytes bound into the AEAD as associated data.
    pub fn header_bytes(&self) -> [u8; RATCHET_HEADER_LEN] {
        let mut h = [0u8; RATCHET_HEADER_LEN];
        h[0] = RATCHET_MESSAGE_VERSION;
        h[1..33].copy_from_slice(&self.ratchet_key);
        h[33..37].copy_from_slice(&self.previous_counter.to_be_bytes());
        h[37..41].copy_from_slice(&self.counter.to_be_bytes());
        h
    }

    /// `header(41) || u32 length || ciphertext`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(RATCHET_HEADER_LEN + 4 + self.ciphertext.len());
        w.bytes(&self.header_bytes());
        w.var_bytes(&self.ciphertext);
        w.finish()
    }

    /// Decodes with the limits above.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = codec::open(bytes, MAX_RATCHET_MESSAGE_LEN, RATCHET_MESSAGE_VERSION)?;
        let ratchet_key = r.array()?;
        let previous_counter = r.u32()?;
        let counter = r.u32()?;
        let ciphertext = r.var_bytes(MAX_CIPHERTEXT_LEN)?;
        if ciphertext.len() < AEAD_TAG_LEN {
            return Err(DecodeError::InvalidField("ciphertext shorter than tag"));
        }
        let ciphertext = ciphertext.to_vec();
        r.finish()?;
        Ok(Self {
            ratchet_key,
            previous_counter,
            counter,
            ciphertext,
        })
    }
}

/// The first messages of a session: everything the responder needs to run PQXDH, plus the
/// first ratchet message. The initiator keeps sending these until it hears back.
#[derive(Clone, PartialEq, Eq)]
pub struct PreKeyMessage {
    /// Id of the responder's signed X25519 prekey that was used.
    pub signed_prekey_id: u32,
    /// Id of the responder's one-time X25519 prekey, if the bundle had one.
    pub one_time_prekey_id: Option<u32>,
    /// Id of the responder's ML-KEM prekey (one-time or last-resort).
    pub kem_prekey_id: u32,
    /// The initiator's ephemeral X25519 key (`EK_A`), which also names the session.
    pub base_key: [u8; 32],
    /// The initiator's identity.
    pub identity: IdentityKey,
    /// ML-KEM-1024 ciphertext to the responder's KEM prekey.
    pub kem_ciphertext: Vec<u8>,
    /// The first ratchet message.
    pub message: RatchetMessage,
}

impl core::fmt::Debug for PreKeyMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PreKeyMessage")
            .field("signed_prekey_id", &self.signed_prekey_id)
            .field("one_time_prekey_id", &self.one_time_prekey_id)
            .field("kem_prekey_id", &self.kem_prekey_id)
            .field("identity", &self.identity)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl PreKeyMessage {
    /// Encodes the message.
    pub fn to_bytes(&self) -> Vec<u8> {
        let inner = self.message.to_bytes();
        let mut w =
            Writer::with_capacity(MAX_PREKEY_MESSAGE_LEN - MAX_RATCHET_MESSAGE_LEN + inner.len());
        w.u8(PREKEY_MESSAGE_VERSION);
        w.u32(self.signed_prekey_id);
        match self.one_time_prekey_id {
            Some(id) => {
                w.u8(1);
                w.u32(id);
            }
            None => {
                w.u8(0);
                w.u32(0);
            }
        }
        w.u32(self.kem_prekey_id);
        w.bytes(&self.base_key);
        w.bytes(&self.identity.to_bytes());
        w.bytes(&self.kem_ciphertext);
        w.var_bytes(&inner);
        w.finish()
    }

    /// Decodes with the limits above; verifies the sender identity's certificate.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = codec::open(bytes, MAX_PREKEY_MESSAGE_LEN, PREKEY_MESSAGE_VERSION)?;
        let signed_prekey_id = r.u32()?;
        let has_otpk = r.bool()?;
        let otpk = r.u32()?;
        if !has_otpk && otpk != 0 {
            return Err(DecodeError::InvalidField("one-time prekey id"));
        }
        let kem_prekey_id = r.u32()?;
        let base_key = r.array()?;
        let identity = IdentityKey::from_bytes(r.take(IDENTITY_KEY_LEN)?)?;
        let kem_ciphertext = r.take(KEM_CIPHERTEXT_LEN)?.to_vec();
        let message = RatchetMessage::from_bytes(r.var_bytes(MAX_RATCHET_MESSAGE_LEN)?)?;
        r.finish()?;
        Ok(Self {
            signed_prekey_id,
            one_time_prekey_id: has_otpk.then_some(otpk),
            kem_prekey_id,
            base_key,
            identity,
            kem_ciphertext,
            message,
        })
    }
}

/// Either kind of encrypted message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "values are short-lived and moved rarely; the ML-KEM ciphertext is already on the heap"
)]
pub enum CiphertextMessage {
    /// A session-establishing message.
    PreKey(PreKeyMessage),
    /// A message on an established session.
    Ratchet(RatchetMessage),
}

/// The `kind` byte of an [`Envelope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageKind {
    /// The body is a [`PreKeyMessage`].
    PreKey,
    /// The body is a [`RatchetMessage`].
    Ratchet,
}

impl MessageKind {
    fn to_byte(self) -> u8 {
        match self {
            Self::PreKey => 1,
            Self::Ratchet => 2,
        }
    }
    fn from_byte(b: u8) -> Result<Self, DecodeError> {
        match b {
            1 => Ok(Self::PreKey),
            2 => Ok(Self::Ratchet),
            _ => Err(DecodeError::InvalidField("message kind")),
        }
    }
}

impl CiphertextMessage {
    /// The envelope kind of this message.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::PreKey(_) => MessageKind::PreKey,
            Self::Ratchet(_) => MessageKind::Ratchet,
        }
    }

    /// The encoded message (an envelope body).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::PreKey(m) => m.to_bytes(),
            Self::Ratchet(m) => m.to_bytes(),
        }
    }

    /// Decodes a body of the given kind.
    pub fn from_bytes(kind: MessageKind, bytes: &[u8]) -> Result<Self, DecodeError> {
        match kind {
            MessageKind::PreKey => PreKeyMessage::from_bytes(bytes).map(Self::PreKey),
            MessageKind::Ratchet => RatchetMessage::from_bytes(bytes).map(Self::Ratchet),
        }
    }
}

/// What the relay routes: addressing in the clear, the message opaque.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Ed25519 identity key of the receiving device.
    pub recipient: [u8; 32],
    /// Ed25519 identity key of the sending device.
    pub sender: [u8; 32],
    /// What `body` decodes as.
    pub kind: MessageKind,
    /// The encoded message.
    pub body: Vec<u8>,
}

impl core::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Envelope")
            .field("kind", &self.kind)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Envelope {
    /// Wraps an encrypted message for the relay.
    pub fn new(recipient: [u8; 32], sender: [u8; 32], message: &CiphertextMessage) -> Self {
        Self {
            recipient,
            sender,
            kind: message.kind(),
            body: message.to_bytes(),
        }
    }

    /// Encodes per the layout in the module docs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(ENVELOPE_HEADER_LEN + self.body.len());
        w.u8(ENVELOPE_VERSION);
        w.bytes(&self.recipient);
        w.bytes(&self.sender);
        w.u8(self.kind.to_byte());
        w.var_bytes(&self.body);
        w.finish()
    }

    /// Decodes the routing part; the body is checked only for its length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = codec::open(bytes, MAX_ENVELOPE_LEN, ENVELOPE_VERSION)?;
        let recipient = r.array()?;
        let sender = r.array()?;
        let kind = MessageKind::from_byte(r.u8()?)?;
        let body = r.var_bytes(MAX_BODY_LEN)?.to_vec();
        r.finish()?;
        Ok(Self {
            recipient,
            sender,
            kind,
            body,
        })
    }

    /// Decodes the body as the message its kind names.
    pub fn message(&self) -> Result<CiphertextMessage, DecodeError> {
        CiphertextMessage::from_bytes(self.kind, &self.body)
    }
}
