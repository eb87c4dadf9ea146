//! Call keys: a fresh X25519 exchange per call, carried in the encrypted 1:1 session.
//!
//! Each side makes a key pair for this call only and puts its public half in its offer or
//! answer. Both signals travel inside the Double Ratchet session of the chat, so only the two
//! devices of that session see them: the relay and a TURN server see neither half. Both sides
//! then derive one media secret per direction from the shared secret and a transcript of the
//! call (its id, both identity keys, both call keys and both DTLS fingerprints). A relay that
//! swapped any of those, even if it could, would leave the two sides with different secrets, so
//! not one frame would open. The secrets key RFC 9605 frame encryption ([`crate::frame`]),
//! which group calls will key from MLS instead.
//!
//! The call key pair is dropped (and zeroed) as soon as the secrets exist, and the secrets go
//! with the call: a later compromise of the long-term keys reveals no call (forward secrecy,
//! as in Signal's RingRTC).

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::frame::{FrameError, FrameOpener, FrameSealer, MediaStream};
use crate::signal::{CallId, MediaOffer};

/// Domain separation for everything derived here.
const LABEL: &[u8] = b"Latch call media v1";

/// Which end of the call this device is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sent the offer.
    Caller,
    /// Received it.
    Callee,
}

impl Role {
    /// The frame-encryption sender slot of this role (0 caller, 1 callee).
    fn slot(self) -> u64 {
        match self {
            Self::Caller => 0,
            Self::Callee => 1,
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Caller => Self::Callee,
            Self::Callee => Self::Caller,
        }
    }
}

/// Why call keys could not be agreed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The peer's call key is a low-order point: the exchange would contribute nothing secret.
    #[error("the peer's call key is not a valid key")]
    NonContributory,
    /// Our own public key is not the one in the transcript: the signal we sent is not the one
    /// these keys belong to.
    #[error("the transcript does not carry this device's call key")]
    NotOurKey,
}

/// This device's key pair for one call.
pub struct CallKeyPair {
    secret: StaticSecret,
}

impl std::fmt::Debug for CallKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallKeyPair(<redacted>)")
    }
}

/// Everything both sides must agree on for the call's keys to match.
#[derive(Debug, Clone, Copy)]
pub struct CallTranscript<'a> {
    /// The call.
    pub call_id: CallId,
    /// The caller's long-term identity key, as the session knows it.
    pub caller_identity: &'a [u8],
    /// The callee's long-term identity key.
    pub callee_identity: &'a [u8],
    /// The caller's offer.
    pub caller: &'a MediaOffer,
    /// The callee's answer.
    pub callee: &'a MediaOffer,
}

impl CallTranscript<'_> {
    /// An unambiguous encoding: fixed-length fields, and length prefixes on the identities.
    fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(LABEL);
        h.update(self.call_id.0);
        for id in [self.caller_identity, self.callee_identity] {
            h.update((id.len() as u64).to_be_bytes());
            h.update(id);
        }
        for side in [self.caller, self.callee] {
            h.update(side.call_key);
            h.update(side.dtls.0);
        }
        h.finalize().into()
    }
}

impl CallKeyPair {
    /// A fresh key pair from the operating system's random source.
    ///
    /// # Errors
    /// The random source failed.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut())?;
        Ok(Self {
            secret: StaticSecret::from(*bytes),
        })
    }

    /// The public half, for the offer or answer.
    pub fn public(&self) -> [u8; 32] {
        PublicKey::from(&self.secret).to_bytes()
    }

    /// Agrees the call's media secrets with the peer named in the transcript, consuming the
    /// key pair so it cannot be used twice.
    ///
    /// # Errors
    /// [`KeyError::NonContributory`] for a low-order peer key; [`KeyError::NotOurKey`] when
    /// the transcript's side for `role` does not carry this pair's public key.
    pub fn agree(
        self,
        role: Role,
        transcript: &CallTranscript<'_>,
    ) -> Result<MediaSecrets, KeyError> {
        let (ours, theirs) = match role {
            Role::Caller => (transcript.caller, transcript.callee),
            Role::Callee => (transcript.callee, transcript.caller),
        };
        if ours.call_key != self.public() {
            return Err(KeyError::NotOurKey);
        }
        let shared = self
            .secret
            .diffie_hellman(&PublicKey::from(theirs.call_key));
        if !shared.was_contributory() {
            return Err(KeyError::NonContributory);
        }
        let salt = transcript.digest();
        let hk = Hkdf::<Sha256>::new(Some(&salt), shared.as_bytes());
        let mut okm = Zeroizing::new([0u8; 64]);
        hk.expand(LABEL, okm.as_mut())
            .map_err(|_| KeyError::NonContributory)?;
        let mut caller_to_callee = Zeroizing::new([0u8; 32]);
        let mut callee_to_caller = Zeroizing::new([0u8; 32]);
        caller_to_callee.copy_from_slice(&okm[..32]);
        callee_to_caller.copy_from_slice(&okm[32..]);
        let (send, receive) = match role {
            Role::Caller => (caller_to_callee, callee_to_caller),
            Role::Callee => (callee_to_caller, caller_to_callee),
        };
        Ok(MediaSecrets {
            role,
            send,
            receive,
        })
    }
}

/// One call's media secrets, one per direction. Zeroed when dropped.
pub struct MediaSecrets {
    role: Role,
    send: Zeroizing<[u8; 32]>,
    receive: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for MediaSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSecrets")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl MediaSecrets {
    /// Seals this device's frames of one stream.
    ///
    /// # Errors
    /// [`FrameError`] if the frame key could not be derived.
    pub fn sealer(&self, stream: MediaStream) -> Result<FrameSealer, FrameError> {
        FrameSealer::new(stream.key_id(self.role.slot()), &self.send)
    }

    /// Opens the peer's frames of one stream.
    ///
    /// # Errors
    /// [`FrameError`] if the frame key could not be derived.
    pub fn opener(&self, stream: MediaStream) -> Result<FrameOpener, FrameError> {
        FrameOpener::new(stream.key_id(self.role.other().slot()), &self.receive)
    }
}

impl Drop for CallKeyPair {
    fn drop(&mut self) {
        // StaticSecret zeroes itself; this states the intent where a reader looks for it.
        self.secret.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::{DtlsFingerprint, IceCredentials};

    fn side(key: &CallKeyPair, dtls: u8) -> MediaOffer {
        MediaOffer {
            call_key: key.public(),
            dtls: DtlsFingerprint([dtls; 32]),
            ice: IceCredentials {
                ufrag: "abcd".into(),
                pwd: "0123456789abcdefghijkl".into(),
            },
            candidates: vec![],
        }
    }

    struct Pair {
        caller: MediaSecrets,
        callee: MediaSecrets,
    }

    fn agree_with(tamper: impl Fn(&mut MediaOffer, &mut MediaOffer)) -> Pair {
        let a = CallKeyPair::generate().unwrap();
        let b = CallKeyPair::generate().unwrap();
        let (offer, answer) = (side(&a, 1), side(&b, 2));
        // What the callee received may differ from what the caller sent, and vice versa.
        let (mut offer_seen, mut answer_seen) = (offer.clone(), answer.clone());
        tamper(&mut offer_seen, &mut answer_seen);
        let call_id = CallId([9; 16]);
        let caller = a
            .agree(
                Role::Caller,
                &CallTranscript {
                    call_id,
                    caller_identity: b"alice",
                    callee_identity: b"bob",
                    caller: &offer,
                    callee: &answer_seen,
                },
            )
            .unwrap();
        let callee = b
            .agree(
                Role::Callee,
                &CallTranscript {
                    call_id,
                    caller_identity: b"alice",
                    callee_identity: b"bob",
                    caller: &offer_seen,
                    callee: &answer,
                },
            )
            .unwrap();
        Pair { caller, callee }
    }

    fn frames_open(p: &Pair) -> bool {
        let mut seal = p.caller.sealer(MediaStream::Audio).unwrap();
        let mut open = p.callee.opener(MediaStream::Audio).unwrap();
        let wire = seal.seal(b"", b"hello").unwrap();
        let there = open.open(b"", &wire).is_ok();
        let mut seal = p.callee.sealer(MediaStream::Audio).unwrap();
        let mut open = p.caller.opener(MediaStream::Audio).unwrap();
        let wire = seal.seal(b"", b"back").unwrap();
        there && open.open(b"", &wire).is_ok()
    }

    #[test]
    fn both_sides_derive_the_same_secrets_each_way() {
        assert!(frames_open(&agree_with(|_, _| {})));
    }

    #[test]
    fn a_changed_dtls_fingerprint_or_call_key_leaves_the_sides_unable_to_talk() {
        // As if the relay could rewrite the signal: the callee saw another caller fingerprint.
        assert!(!frames_open(&agree_with(
            |o, _| o.dtls = DtlsFingerprint([7; 32])
        )));
        assert!(!frames_open(&agree_with(
            |_, a| a.dtls = DtlsFingerprint([8; 32])
        )));
    }

    #[test]
    fn a_key_pair_refuses_a_transcript_that_is_not_its_own() {
        let a = CallKeyPair::generate().unwrap();
        let b = CallKeyPair::generate().unwrap();
        let other = CallKeyPair::generate().unwrap();
        let t = CallTranscript {
            call_id: CallId([0; 16]),
            caller_identity: b"a",
            callee_identity: b"b",
            caller: &side(&other, 1),
            callee: &side(&b, 2),
        };
        assert_eq!(a.agree(Role::Caller, &t).unwrap_err(), KeyError::NotOurKey);
    }

    #[test]
    fn a_low_order_peer_key_is_refused() {
        let a = CallKeyPair::generate().unwrap();
        let ours = side(&a, 1);
        let mut theirs = ours.clone();
        theirs.call_key = [0; 32];
        let t = CallTranscript {
            call_id: CallId([0; 16]),
            caller_identity: b"a",
            callee_identity: b"b",
            caller: &ours,
            callee: &theirs,
        };
        assert_eq!(
            a.agree(Role::Caller, &t).unwrap_err(),
            KeyError::NonContributory
        );
    }

    #[test]
    fn debug_shows_no_key_material() {
        let p = agree_with(|_, _| {});
        let shown = format!("{:?}", p.caller);
        assert!(shown.contains("Caller") && !shown.contains('['), "{shown}");
        assert_eq!(
            format!("{:?}", CallKeyPair::generate().unwrap()),
            "CallKeyPair(<redacted>)"
        );
    }
}
