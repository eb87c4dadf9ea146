//! The client <-> relay wire API: every frame, error code and limit a client needs.
//!
//! This module has no server dependencies (only `serde`, `postcard` and `thiserror`), so the
//! client crate can depend on `latch-relay` with `default-features = false` and share these
//! types instead of re-declaring them. The encoding is described in the crate README.
//!
//! Every WebSocket *binary* message carries exactly one frame encoded with
//! [postcard](https://postcard.jamesmunk.com/wire-format.html) (a stable, documented,
//! compact binary serde format). Enum variants are encoded as a varint of their index, so
//! **variants are only ever appended**, never reordered; a breaking change bumps
//! [`PROTOCOL_VERSION`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// Version of the frame vocabulary. Sent by the server in [`ServerFrame::Challenge`] and by
/// the client in [`ClientFrame::Authenticate`]; a mismatch is refused with
/// [`ErrorCode::UnsupportedVersion`] so old clients fail loudly instead of misparsing.
pub const PROTOCOL_VERSION: u16 = 1;

/// HTTP path of the WebSocket endpoint (the version is in the path so a v2 can live beside it).
pub const WS_PATH: &str = "/v1/ws";

/// Domain-separation context prefixed to every signed challenge, so a signature made for the
/// relay can never be replayed as a signature over anything else the identity key signs.
pub const AUTH_CONTEXT: &[u8] = b"latch-relay/v1/auth-challenge";

/// Default cap on an envelope body. 64 KiB fits any text message with ratchet headers and
/// post-quantum prekey material; attachments travel out of band, so a larger body is abuse.
pub const DEFAULT_MAX_ENVELOPE_BYTES: usize = 64 * 1024;

/// Room for the frame around a body (addresses, ids, postcard lengths), added to the envelope
/// cap to get the largest WebSocket message the relay reads.
pub const FRAME_OVERHEAD_BYTES: usize = 1024;

/// The smallest WebSocket message cap the relay uses, whatever the envelope cap: a full
/// prekey upload ([`MAX_PREKEYS_PER_UPLOAD`] keys of [`MAX_PREKEY_BYTES`]) or ack list must fit.
pub const MIN_MESSAGE_LIMIT_BYTES: usize = 512 * 1024;

/// Longest handle a client may claim, in bytes: short enough to type and index cheaply.
pub const MAX_HANDLE_LEN: usize = 32;

/// Shortest handle: fewer characters make handles trivially enumerable.
pub const MIN_HANDLE_LEN: usize = 3;

/// Most envelopes named in one [`ClientFrame::AckIds`] or [`ClientFrame::AckEnvelopes`]:
/// bounds the work of one frame.
pub const MAX_ACK_IDS: usize = 1024;

/// Most one-time prekeys in one upload: bounds one frame's work and a device's storage.
pub const MAX_PREKEYS_PER_UPLOAD: usize = 200;

/// Most bytes of one prekey's public material (room for an ML-KEM-1024 key and signature).
pub const MAX_PREKEY_BYTES: usize = 2048;

/// Length of an Ed25519 signature; checked before verification.
pub const SIGNATURE_LEN: usize = 64;

/// Most bytes one encoded [`PrekeyBundle`] can take: a device number and three prekeys of
/// [`MAX_PREKEY_BYTES`], each with its `Option` tag, id and length varints.
pub const MAX_BUNDLE_BYTES: usize = 5 + 3 * (1 + 5 + 3 + MAX_PREKEY_BYTES);

/// Most bundles one [`Response::Prekeys`] carries: with every bundle at [`MAX_BUNDLE_BYTES`]
/// the answer still fits in [`MIN_MESSAGE_LIMIT_BYTES`] less [`FRAME_OVERHEAD_BYTES`], so it
/// is never larger than what a client accepts. The relay's devices-per-identity cap may not
/// exceed it.
pub const MAX_BUNDLES_PER_CLAIM: usize =
    (MIN_MESSAGE_LIMIT_BYTES - FRAME_OVERHEAD_BYTES) / MAX_BUNDLE_BYTES;

/// A device's Ed25519 identity public key. `Debug` and `Display` print only a short
/// fingerprint so keys never end up whole in logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IdentityKey(pub [u8; 32]);

impl IdentityKey {
    /// The first 4 bytes in hex: enough to tell devices apart in logs, useless to an attacker.
    pub fn fingerprint(&self) -> String {
        let mut s = String::with_capacity(8);
        for b in self.0.iter().take(4) {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey({}…)", self.fingerprint())
    }
}

impl fmt::Display for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.fingerprint())
    }
}

/// One device of an account: the account's identity key plus a device number the client picks
/// (linked devices share the identity key, so the number tells their mailboxes apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeviceAddress {
    /// The account's identity key; the device proves possession by signing challenges.
    pub identity_key: IdentityKey,
    /// The device's number within the account.
    pub device_id: u32,
}

impl fmt::Display for DeviceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.identity_key, self.device_id)
    }
}

/// Sender-chosen random envelope id. A sender that retries after a lost ack reuses the id, so
/// the relay stores the envelope once and the recipient can drop any duplicate delivery.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EnvelopeId(pub [u8; 16]);

impl fmt::Debug for EnvelopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnvelopeId(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// One public prekey, opaque to the relay: the protocol crate decides what `key` holds (an
/// X25519 or ML-KEM public key, with its signature where one applies).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prekey {
    /// The client's id for this key, echoed back so the initiator can name it in its message.
    pub id: u32,
    /// Public key material; at most [`MAX_PREKEY_BYTES`].
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
}

/// What a device publishes about itself. `signed` and `last_resort` *replace* the stored ones
/// when present; `one_time` keys are *added* (replenishing), ignoring ids already stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrekeyUpload {
    /// The current signed prekey.
    pub signed: Option<Prekey>,
    /// The key handed out when no one-time key is left, so a session can always start.
    pub last_resort: Option<Prekey>,
    /// Fresh one-time prekeys; at most [`MAX_PREKEYS_PER_UPLOAD`] per upload.
    pub one_time: Vec<Prekey>,
}

/// What an initiator gets for one device of a peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrekeyBundle {
    /// The device these keys belong to.
    pub device_id: u32,
    /// The device's signed prekey, if it published one.
    pub signed: Option<Prekey>,
    /// A one-time prekey, removed from the relay by this claim; `None` when none were left.
    pub one_time: Option<Prekey>,
    /// The last-resort key: present whenever `one_time` is `None` and the device published one.
    pub last_resort: Option<Prekey>,
}

/// An envelope as delivered to its recipient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredEnvelope {
    /// Relay-assigned position, increasing in commit order; the cursor for [`ClientFrame::AckThrough`].
    pub seq: u64,
    /// The sender's id, for de-duplication.
    pub id: EnvelopeId,
    /// The authenticated device that sent it.
    pub from: DeviceAddress,
    /// When the relay committed it (Unix milliseconds).
    pub received_at_ms: u64,
    /// The ciphertext, untouched.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// Frames a client sends. Requests carry a client-chosen `req` number echoed in the answer, so
/// a client may pipeline many requests on one connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientFrame {
    /// Answer to the current [`ServerFrame::Challenge`]: the signature covers
    /// [`auth_message`]`(nonce, device, register)`. With `register` the device is created if
    /// new; without it an unknown device is refused.
    Authenticate {
        /// Must equal [`PROTOCOL_VERSION`].
        version: u16,
        /// The nonce being answered (must be the connection's current, unexpired challenge).
        nonce: [u8; 32],
        /// Who is signing in.
        device: DeviceAddress,
        /// Create the device if it does not exist yet.
        register: bool,
        /// Ed25519 signature, [`SIGNATURE_LEN`] bytes.
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
    },
    /// Ask for a fresh challenge (each one is single-use, so a failed attempt needs a new one).
    NewChallenge,
    /// Store an envelope in `to`'s mailbox. Answered with [`Response::Sent`] only after commit.
    Send {
        /// Request number.
        req: u32,
        /// Sender-chosen id (reuse it when retrying).
        id: EnvelopeId,
        /// Recipient device (must be registered).
        to: DeviceAddress,
        /// Ciphertext.
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
    },
    /// Delete these envelopes from the caller's own mailbox, matching by id alone.
    ///
    /// **Deprecated**: ids are unique only per (recipient, sender) since schema migration 2,
    /// so this deletes every envelope with a listed id whatever its sender, including another
    /// sender's envelope that reused the id and was not yet processed. Use
    /// [`ClientFrame::AckEnvelopes`] (or [`ClientFrame::AckThrough`]); this frame stays for
    /// clients that predate it.
    AckIds {
        /// Request number.
        req: u32,
        /// Ids to delete; at most [`MAX_ACK_IDS`].
        ids: Vec<EnvelopeId>,
    },
    /// Delete every envelope in the caller's own mailbox with `seq <= seq`. Safe because
    /// a connection delivers its mailbox strictly in `seq` order.
    AckThrough {
        /// Request number.
        req: u32,
        /// Highest `seq` processed.
        seq: u64,
    },
    /// Claim a handle for the caller's identity key (replacing any handle it had).
    ClaimHandle {
        /// Request number.
        req: u32,
        /// `[a-z0-9_.]`, [`MIN_HANDLE_LEN`]..=[`MAX_HANDLE_LEN`] bytes; upper case is folded.
        handle: String,
    },
    /// Look up who owns a handle.
    LookupHandle {
        /// Request number.
        req: u32,
        /// The handle.
        handle: String,
    },
    /// Publish or replenish the caller's own prekeys.
    PublishPrekeys {
        /// Request number.
        req: u32,
        /// What to store.
        upload: PrekeyUpload,
    },
    /// Claim prekey bundles of one device (`device_id`) or all devices of an identity.
    ClaimPrekeys {
        /// Request number.
        req: u32,
        /// The peer's identity key.
        identity_key: IdentityKey,
        /// One device, or `None` for every registered device.
        device_id: Option<u32>,
    },
    /// Keep-alive and round-trip probe.
    Ping {
        /// Request number.
        req: u32,
    },
    /// Delete the caller's device everywhere: its registration, its mailbox and its prekeys,
    /// and the identity's handle once the identity has no device left (so a person can
    /// recreate a profile under the same handle, or another identity can claim it).
    /// Answered with [`Response::Unregistered`], after which the relay closes the connection;
    /// frames sent after this one on the same connection are not read.
    Unregister {
        /// Request number.
        req: u32,
    },
    /// Delete these envelopes from the caller's own mailbox, each named by its sender and id
    /// (the pair that is unique in a mailbox). Replaces [`ClientFrame::AckIds`].
    AckEnvelopes {
        /// Request number.
        req: u32,
        /// (sender, id) pairs to delete; at most [`MAX_ACK_IDS`].
        envelopes: Vec<(DeviceAddress, EnvelopeId)>,
    },
}

/// Successful answers to requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    /// The envelope is committed. `duplicate` says it was already queued under that id.
    Sent {
        /// Whether the id was already in the recipient's mailbox.
        duplicate: bool,
    },
    /// Number of envelopes deleted by the ack.
    Acked {
        /// How many were deleted (0 for unknown or foreign ids).
        deleted: u32,
    },
    /// The handle now points at the caller's identity key.
    HandleClaimed,
    /// Who owns a looked-up handle.
    Handle {
        /// The owner's identity key.
        identity_key: IdentityKey,
        /// The owner's registered device numbers.
        devices: Vec<u32>,
    },
    /// Prekeys stored.
    PrekeysPublished {
        /// One-time prekeys now stored for the caller.
        one_time_remaining: u32,
    },
    /// Claimed bundles, one per device.
    Prekeys {
        /// The bundles.
        bundles: Vec<PrekeyBundle>,
    },
    /// Answer to [`ClientFrame::Ping`].
    Pong,
    /// The device, its mailbox and its prekeys are deleted (and the handle released if the
    /// identity has no device left); the relay closes the connection next.
    Unregistered,
}

/// Frames the relay sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ServerFrame {
    /// Sent on connect and on [`ClientFrame::NewChallenge`]: sign it to authenticate.
    Challenge {
        /// The relay's [`PROTOCOL_VERSION`].
        version: u16,
        /// Fresh random nonce, single-use.
        nonce: [u8; 32],
        /// How long the nonce stays valid.
        expires_in_ms: u32,
    },
    /// Authentication succeeded; the backlog follows, then [`ServerFrame::BacklogDone`].
    Authenticated {
        /// One-time prekeys the device still has on the relay.
        one_time_prekeys: u32,
        /// The relay wants more one-time prekeys (count below its threshold).
        replenish: bool,
    },
    /// An envelope for this device (backlog in `seq` order, then live pushes in `seq` order).
    Envelope(DeliveredEnvelope),
    /// Everything queued at connect time has been sent; later envelopes are pushed live.
    BacklogDone,
    /// Someone claimed one of this device's one-time prekeys and few are left: upload more.
    PrekeysLow {
        /// One-time prekeys left.
        remaining: u32,
    },
    /// Successful answer to request `req`.
    Response {
        /// The request number.
        req: u32,
        /// The answer.
        body: Response,
    },
    /// A request failed, or (with [`ErrorCode::is_fatal`]) the connection is closing.
    Error {
        /// The failed request, if the error belongs to one.
        req: Option<u32>,
        /// What went wrong.
        code: ErrorCode,
        /// For [`ErrorCode::RateLimited`]: when a retry will be accepted; 0 otherwise.
        retry_after_ms: u32,
    },
}

/// Why a request failed. Codes are stable numbers on the wire (postcard variant index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame did not decode, was not binary, or broke a structural rule.
    Malformed,
    /// [`ClientFrame::Authenticate`] named a version the relay does not speak.
    UnsupportedVersion,
    /// The signature did not verify for the claimed device.
    BadSignature,
    /// The nonce is not this connection's current challenge, was already used, or expired.
    ChallengeInvalid,
    /// A request that needs authentication came before it.
    NotAuthenticated,
    /// A second authentication on an authenticated connection.
    AlreadyAuthenticated,
    /// Login (without `register`) for a device the relay does not know.
    UnknownDevice,
    /// The recipient device is not registered.
    UnknownRecipient,
    /// The body exceeds the relay's envelope cap.
    EnvelopeTooLarge,
    /// The recipient's mailbox is at its cap; retry later.
    QueueFull,
    /// A token bucket (per device or per IP) is empty; see `retry_after_ms`.
    RateLimited,
    /// The handle belongs to another identity.
    HandleTaken,
    /// The handle breaks the character or length rules.
    HandleInvalid,
    /// Nothing found (unknown handle, identity without devices).
    NotFound,
    /// Too many prekeys or a prekey too large.
    PrekeysInvalid,
    /// Fatal: no valid authentication within the handshake time.
    HandshakeTimeout,
    /// Fatal: nothing received for the idle timeout.
    IdleTimeout,
    /// Fatal: the same device connected again; this older connection is closed.
    Superseded,
    /// Fatal: the relay is shutting down; reconnect later.
    ShuttingDown,
    /// The relay failed internally (storage); the request may be retried.
    Internal,
    /// Fatal: the client did not read its frames fast enough (its outgoing queue filled or a
    /// socket write timed out); reconnect and resume from the backlog.
    TooSlow,
    /// Fatal: the relay could not read this device's mailbox, so live delivery stopped;
    /// reconnect to resume from the backlog.
    DeliveryFailed,
    /// Registering this device would give its identity more devices than the relay allows;
    /// unregister one first.
    TooManyDevices,
}

impl ErrorCode {
    /// Fatal errors are followed by the relay closing the connection; all others leave it open.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            Self::HandshakeTimeout
                | Self::IdleTimeout
                | Self::Superseded
                | Self::ShuttingDown
                | Self::TooSlow
                | Self::DeliveryFailed
        )
    }
}

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes are not a valid frame (truncated, unknown variant, trailing bytes...).
    #[error("malformed frame")]
    Malformed,
    /// Encoding failed (only possible for types serde cannot express; a bug).
    #[error("frame could not be encoded")]
    Encode,
}

/// The bytes a device signs to answer a challenge: context, nonce, identity key, device id
/// (big-endian) and the register flag. Binding the device and the intent stops a signature
/// from being reused for another device number or to register instead of log in.
pub fn auth_message(nonce: &[u8; 32], device: &DeviceAddress, register: bool) -> Vec<u8> {
    let mut m = Vec::with_capacity(AUTH_CONTEXT.len() + 32 + 32 + 4 + 1);
    m.extend_from_slice(AUTH_CONTEXT);
    m.extend_from_slice(nonce);
    m.extend_from_slice(&device.identity_key.0);
    m.extend_from_slice(&device.device_id.to_be_bytes());
    m.push(u8::from(register));
    m
}

fn decode_exact<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((v, [])) => Ok(v),
        _ => Err(CodecError::Malformed),
    }
}

impl ClientFrame {
    /// Encode for a WebSocket binary message.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        postcard::to_stdvec(self).map_err(|_| CodecError::Encode)
    }

    /// Decode one frame; trailing bytes are refused so one message is exactly one frame.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_exact(bytes)
    }
}

impl ServerFrame {
    /// Encode for a WebSocket binary message.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        postcard::to_stdvec(self).map_err(|_| CodecError::Encode)
    }

    /// Decode one frame; trailing bytes are refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_exact(bytes)
    }
}

/// Normalise and validate a handle: ASCII upper case is folded, then only `[a-z0-9_.]` of
/// [`MIN_HANDLE_LEN`]..=[`MAX_HANDLE_LEN`] bytes is accepted (no homoglyphs, no confusables).
pub fn normalize_handle(handle: &str) -> Option<String> {
    let h = handle.to_ascii_lowercase();
    let ok_len = (MIN_HANDLE_LEN..=MAX_HANDLE_LEN).contains(&h.len());
    let ok_chars = h
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    (ok_len && ok_chars).then_some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> DeviceAddress {
        DeviceAddress {
            identity_key: IdentityKey([0xab; 32]),
            device_id: 7,
        }
    }

    #[test]
    fn frames_round_trip() {
        let f = ClientFrame::Send {
            req: 9,
            id: EnvelopeId([1; 16]),
            to: dev(),
            body: vec![1, 2, 3],
        };
        assert_eq!(ClientFrame::decode(&f.encode().unwrap()).unwrap(), f);
        let s = ServerFrame::Error {
            req: Some(3),
            code: ErrorCode::QueueFull,
            retry_after_ms: 0,
        };
        assert_eq!(ServerFrame::decode(&s.encode().unwrap()).unwrap(), s);
    }

    #[test]
    fn the_largest_claim_answer_fits_the_smallest_message_limit() {
        let key = |id| {
            Some(Prekey {
                id,
                key: vec![0xff; MAX_PREKEY_BYTES],
            })
        };
        let bundle = PrekeyBundle {
            device_id: u32::MAX,
            signed: key(u32::MAX),
            one_time: key(u32::MAX),
            last_resort: key(u32::MAX),
        };
        let one = postcard::to_allocvec(&bundle).unwrap().len();
        assert!(one <= MAX_BUNDLE_BYTES, "{one} > {MAX_BUNDLE_BYTES}");
        let frame = ServerFrame::Response {
            req: u32::MAX,
            body: Response::Prekeys {
                bundles: vec![bundle; MAX_BUNDLES_PER_CLAIM],
            },
        };
        let len = frame.encode().unwrap().len();
        assert!(len <= MIN_MESSAGE_LIMIT_BYTES, "{len} bytes");
        const { assert!(MAX_BUNDLES_PER_CLAIM >= 16) };
    }

    #[test]
    fn trailing_and_truncated_bytes_are_malformed() {
        let mut b = ClientFrame::Ping { req: 1 }.encode().unwrap();
        b.push(0);
        assert!(matches!(
            ClientFrame::decode(&b),
            Err(CodecError::Malformed)
        ));
        let b = ClientFrame::Send {
            req: 1,
            id: EnvelopeId([0; 16]),
            to: dev(),
            body: vec![9; 50],
        }
        .encode()
        .unwrap();
        for cut in 0..b.len() {
            assert!(
                ClientFrame::decode(&b[..cut]).is_err(),
                "prefix {cut} decoded"
            );
        }
        assert!(ClientFrame::decode(&[0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn identity_key_debug_shows_only_a_fingerprint() {
        let d = format!("{:?} {} {}", dev().identity_key, dev().identity_key, dev());
        assert_eq!(d, "IdentityKey(abababab…) abababab… abababab…/7");
        assert!(!d.contains(&"ab".repeat(5)));
    }

    #[test]
    fn wire_format_is_stable() {
        // Known answer: changing variant order or field types breaks deployed clients.
        assert_eq!(
            ClientFrame::Ping { req: 300 }.encode().unwrap(),
            vec![9, 0xac, 0x02]
        );
        assert_eq!(ClientFrame::NewChallenge.encode().unwrap(), vec![1]);
        let e = ServerFrame::Error {
            req: None,
            code: ErrorCode::RateLimited,
            retry_after_ms: 5,
        };
        assert_eq!(e.encode().unwrap(), vec![6, 0, 10, 5]);
        // Appended variants keep every older index.
        assert_eq!(
            ClientFrame::Unregister { req: 1 }.encode().unwrap(),
            vec![10, 1]
        );
        assert_eq!(
            ClientFrame::AckEnvelopes {
                req: 2,
                envelopes: vec![]
            }
            .encode()
            .unwrap(),
            vec![11, 2, 0]
        );
        let u = ServerFrame::Response {
            req: 3,
            body: Response::Unregistered,
        };
        assert_eq!(u.encode().unwrap(), vec![5, 3, 7]);
    }

    #[test]
    fn handles_are_normalised_and_validated() {
        assert_eq!(normalize_handle("Alice.B_1").as_deref(), Some("alice.b_1"));
        assert_eq!(normalize_handle("ab"), None);
        assert_eq!(normalize_handle("alïce"), None);
        assert_eq!(normalize_handle(&"a".repeat(33)), None);
    }

    #[test]
    fn auth_message_binds_context_device_and_intent() {
        let a = auth_message(&[1; 32], &dev(), false);
        assert!(a.starts_with(AUTH_CONTEXT));
        assert_ne!(a, auth_message(&[1; 32], &dev(), true));
        let other = DeviceAddress {
            device_id: 8,
            ..dev()
        };
        assert_ne!(a, auth_message(&[1; 32], &other, false));
    }
}
