//! Call signalling: what two devices tell each other to set up, run and end a call.
//!
//! These messages never travel on their own: the client carries each one as an encrypted
//! control message inside the 1:1 session of the chat the call belongs to, so the relay sees
//! an envelope like any other. Everything here is still checked on arrival as if it came from
//! a stranger ([`CallSignal::check`]): a peer's own device can be hostile too.

use serde::{Deserialize, Serialize};

/// Most ICE candidates one signal may carry (a desktop with several interfaces, both address
/// families, a server-reflexive and a relayed candidate each stays well below).
pub const MAX_CANDIDATES: usize = 24;

/// Longest ICE candidate line, in bytes (RFC 8839 lines are well under 200).
pub const MAX_CANDIDATE_LEN: usize = 256;

/// ICE username fragment length range (RFC 8839: 4 to 256 characters).
pub const UFRAG_LEN: std::ops::RangeInclusive<usize> = 4..=256;

/// ICE password length range (RFC 8839: 22 to 256 characters).
pub const PWD_LEN: std::ops::RangeInclusive<usize> = 22..=256;

/// A call's identity, random, chosen by the caller.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CallId(pub [u8; 16]);

impl CallId {
    /// A fresh random id.
    ///
    /// # Errors
    /// The operating system's random source failed.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id)?;
        Ok(Self(id))
    }
}

impl std::fmt::Debug for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The first bytes are enough to follow a call through the logs.
        write!(
            f,
            "CallId({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// What the caller asks for. The callee may still answer a video call with audio only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MediaKind {
    /// Voice only.
    Audio,
    /// Voice and camera.
    Video,
}

/// The SHA-256 fingerprint of a device's DTLS certificate for this call. Carried inside the
/// session, so the transport can pin it: nobody between the two devices can stand in for
/// either end of the DTLS handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DtlsFingerprint(pub [u8; 32]);

/// ICE credentials of one side (RFC 8445 §5.3).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCredentials {
    /// Username fragment.
    pub ufrag: String,
    /// Password.
    pub pwd: String,
}

impl std::fmt::Debug for IceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password authenticates connectivity checks: it stays out of logs.
        f.debug_struct("IceCredentials")
            .field("ufrag", &self.ufrag)
            .field("pwd", &"<redacted>")
            .finish()
    }
}

/// What one side brings to the call: its call key and its transport's parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaOffer {
    /// The public half of a fresh X25519 key made for this call only (see [`crate::keys`]).
    pub call_key: [u8; 32],
    /// The DTLS certificate the transport will present.
    pub dtls: DtlsFingerprint,
    /// ICE credentials.
    pub ice: IceCredentials,
    /// Candidates known when the signal was made; more follow in [`CallSignal::Candidates`].
    pub candidates: Vec<String>,
}

/// Why a call ended, as one side tells the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HangupReason {
    /// Someone hung up an established call, or the caller gave up before an answer.
    Normal,
    /// The callee declined.
    Declined,
    /// The callee did not answer in time.
    NoAnswer,
    /// The media could not connect or was lost for good.
    Failed,
}

/// One call signalling message. Variants are only ever appended (postcard numbers them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallSignal {
    /// The caller starts a call.
    Offer {
        /// The call.
        call_id: CallId,
        /// Voice or video.
        media: MediaKind,
        /// The caller's clock, Unix milliseconds: an offer that waited in a mailbox longer
        /// than a ring is shown as a missed call, never rung.
        sent_at: i64,
        /// The caller's side.
        offer: MediaOffer,
    },
    /// The callee's device received the offer and is ringing.
    Ringing {
        /// The call.
        call_id: CallId,
    },
    /// The callee accepted.
    Answer {
        /// The call.
        call_id: CallId,
        /// Whether the callee sends video.
        video: bool,
        /// The callee's side.
        answer: MediaOffer,
    },
    /// More ICE candidates (trickle ICE).
    Candidates {
        /// The call.
        call_id: CallId,
        /// Candidate lines (`candidate:…`).
        candidates: Vec<String>,
    },
    /// The callee is already in another call.
    Busy {
        /// The call being refused.
        call_id: CallId,
    },
    /// Either side ends the call.
    Hangup {
        /// The call.
        call_id: CallId,
        /// Why.
        reason: HangupReason,
    },
}

/// Why a signal was refused before it reached a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// More candidates than [`MAX_CANDIDATES`].
    #[error("too many ICE candidates ({0})")]
    TooManyCandidates(usize),
    /// A candidate line is too long, not printable ASCII, or not a candidate.
    #[error("malformed ICE candidate")]
    BadCandidate,
    /// ICE credentials outside RFC 8839's lengths or alphabet.
    #[error("malformed ICE credentials")]
    BadIceCredentials,
}

impl CallSignal {
    /// The call this signal belongs to.
    pub fn call_id(&self) -> CallId {
        match self {
            Self::Offer { call_id, .. }
            | Self::Ringing { call_id }
            | Self::Answer { call_id, .. }
            | Self::Candidates { call_id, .. }
            | Self::Busy { call_id }
            | Self::Hangup { call_id, .. } => *call_id,
        }
    }

    /// A short name for logs and errors (no content).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Offer { .. } => "offer",
            Self::Ringing { .. } => "ringing",
            Self::Answer { .. } => "answer",
            Self::Candidates { .. } => "candidates",
            Self::Busy { .. } => "busy",
            Self::Hangup { .. } => "hangup",
        }
    }

    /// Checks every bound on what a peer sent, before anything acts on it.
    ///
    /// # Errors
    /// A [`SignalError`] naming the first problem.
    pub fn check(&self) -> Result<(), SignalError> {
        match self {
            Self::Offer { offer: m, .. } | Self::Answer { answer: m, .. } => {
                check_ice(&m.ice)?;
                check_candidates(&m.candidates)
            }
            Self::Candidates { candidates, .. } => check_candidates(candidates),
            Self::Ringing { .. } | Self::Busy { .. } | Self::Hangup { .. } => Ok(()),
        }
    }
}

/// RFC 8839 `ice-char`: ALPHA / DIGIT / "+" / "/".
fn is_ice_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '+' || c == '/'
}

fn check_ice(ice: &IceCredentials) -> Result<(), SignalError> {
    let ok = |s: &str, range: &std::ops::RangeInclusive<usize>| {
        range.contains(&s.len()) && s.chars().all(is_ice_char)
    };
    if ok(&ice.ufrag, &UFRAG_LEN) && ok(&ice.pwd, &PWD_LEN) {
        Ok(())
    } else {
        Err(SignalError::BadIceCredentials)
    }
}

fn check_candidates(candidates: &[String]) -> Result<(), SignalError> {
    if candidates.len() > MAX_CANDIDATES {
        return Err(SignalError::TooManyCandidates(candidates.len()));
    }
    for c in candidates {
        let printable = c.bytes().all(|b| (0x20..0x7f).contains(&b));
        if c.len() > MAX_CANDIDATE_LEN || !printable || !c.starts_with("candidate:") {
            return Err(SignalError::BadCandidate);
        }
    }
    Ok(())
}

/// A well-formed side of a call for tests: every field derived from `n`.
#[cfg(test)]
pub(crate) fn test_side(n: u8) -> MediaOffer {
    MediaOffer {
        call_key: [n; 32],
        dtls: DtlsFingerprint([n; 32]),
        ice: IceCredentials {
            ufrag: "abcd".into(),
            pwd: "0123456789abcdefghijkl".into(),
        },
        candidates: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media() -> MediaOffer {
        MediaOffer {
            call_key: [7; 32],
            dtls: DtlsFingerprint([1; 32]),
            ice: IceCredentials {
                ufrag: "abcd".into(),
                pwd: "0123456789abcdefghij+/".into(),
            },
            candidates: vec!["candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".into()],
        }
    }

    fn offer(m: MediaOffer) -> CallSignal {
        CallSignal::Offer {
            call_id: CallId([2; 16]),
            media: MediaKind::Video,
            sent_at: 1,
            offer: m,
        }
    }

    #[test]
    fn a_well_formed_offer_passes_and_round_trips() {
        let s = offer(media());
        assert_eq!(s.check(), Ok(()));
        let bytes = postcard::to_stdvec(&s).unwrap();
        assert_eq!(postcard::from_bytes::<CallSignal>(&bytes).unwrap(), s);
        assert_eq!(s.call_id(), CallId([2; 16]));
    }

    #[test]
    fn hostile_signals_are_refused_before_use() {
        let mut m = media();
        m.candidates = vec![m.candidates[0].clone(); MAX_CANDIDATES + 1];
        assert_eq!(
            offer(m).check(),
            Err(SignalError::TooManyCandidates(MAX_CANDIDATES + 1))
        );

        for bad in [
            format!("candidate:{}", "1".repeat(MAX_CANDIDATE_LEN)),
            "candidate:1 1 udp 1 10.0.0.1 5\r\na=evil".into(),
            "a=fingerprint:sha-256 00".into(),
        ] {
            let s = CallSignal::Candidates {
                call_id: CallId([0; 16]),
                candidates: vec![bad],
            };
            assert_eq!(s.check(), Err(SignalError::BadCandidate));
        }

        for (ufrag, pwd) in [
            ("abc", "0123456789abcdefghij+/"),
            ("abcd", "short"),
            ("ab d", "0123456789abcdefghij+/"),
            ("abcd", "0123456789abcdefghij+/\u{e9}"),
        ] {
            let mut m = media();
            m.ice = IceCredentials {
                ufrag: ufrag.into(),
                pwd: pwd.into(),
            };
            assert_eq!(offer(m).check(), Err(SignalError::BadIceCredentials));
        }
    }

    #[test]
    fn debug_hides_the_ice_password() {
        let m = media();
        let shown = format!("{:?}", offer(m.clone()));
        assert!(!shown.contains(&m.ice.pwd), "{shown}");
        assert!(shown.contains("abcd"));
    }
}
