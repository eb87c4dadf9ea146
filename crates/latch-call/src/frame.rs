//! Frame encryption (SFrame, RFC 9605): every encoded audio or video frame is sealed by its
//! sender before it reaches the transport and opened by the receiver after it.
//!
//! DTLS-SRTP already encrypts each hop, but SRTP keys belong to whoever terminates DTLS: a
//! group call's forwarding server would hold them. Sealing the frames themselves with keys
//! only the participants have keeps media closed through any server, so the 1:1 and the
//! group design are the same: a 1:1 call keys this from the call's X25519 exchange
//! ([`crate::keys`]), a group call will key it from MLS.
//!
//! Key ids: each sender has a slot (0 the caller, 1 the callee; in a group call, its member
//! index) and each stream its own key under that slot, so two streams never share a counter
//! space and a frame of one stream can never be played as another.
//!
//! Metadata: the few bytes a packetizer must read (the VP8 payload descriptor, say) may stay in
//! clear as RFC 9605 metadata; they are authenticated with the frame, so a change is caught.

use sframe::CipherSuite;
use sframe::frame::validation::{ReplayAttackProtection, Tolerance};
use sframe::frame::{EncryptedFrame, MediaFrame, MonotonicCounter};
use sframe::key::{DecryptionKey, EncryptionKey};

/// RFC 9605's AES-GCM suite with 128-bit keys and a full 16-byte tag.
pub const SUITE: CipherSuite = CipherSuite::AesGcm128Sha256;

/// How far behind the newest frame a late frame may arrive and still be played. A video
/// keyframe split over many packets can be overtaken by a few audio frames; 128 frames is
/// over two seconds of audio or four of video, far past any jitter buffer's patience.
pub const REPLAY_WINDOW: usize = 128;

/// Largest frame this accepts, sealed or open: a 1080p keyframe stays well below it, and a
/// hostile peer cannot make the receiver allocate more.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// The kind of media a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaStream {
    /// Opus audio.
    Audio,
    /// VP8 video.
    Video,
}

impl MediaStream {
    /// The RFC 9605 key id of this stream for the sender in `slot`.
    pub fn key_id(self, slot: u64) -> u64 {
        let stream = match self {
            Self::Audio => 0,
            Self::Video => 1,
        };
        (slot << 1) | stream
    }
}

/// Why a frame could not be sealed or opened. Opening failures are normal traffic on a lossy
/// or hostile path: the frame is dropped, the call goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    #[error("frame too large ({0} bytes)")]
    TooLarge(usize),
    /// The frame is not a well-formed SFrame ciphertext.
    #[error("not an encrypted frame")]
    Malformed,
    /// The frame was sealed under another key (another stream, sender or call).
    #[error("frame sealed under key id {0}, expected another")]
    WrongKey(u64),
    /// The frame was seen before, or is too old to tell.
    #[error("frame replayed or too late")]
    Replayed,
    /// Authentication failed: the frame or its metadata was altered, or the keys differ.
    #[error("frame did not authenticate")]
    Forged,
    /// This sender used up every counter value under its key (2^64 frames: never in practice).
    #[error("frame counter exhausted")]
    Exhausted,
    /// The frame key could not be derived.
    #[error("frame key derivation failed")]
    KeyDerivation,
}

/// Seals one sender's frames of one stream.
pub struct FrameSealer {
    key: EncryptionKey,
    counter: MonotonicCounter,
}

impl std::fmt::Debug for FrameSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameSealer")
            .field("key_id", &self.key.key_id())
            .field("counter", &self.counter.current())
            .finish_non_exhaustive()
    }
}

impl FrameSealer {
    /// A sealer for key id `key_id` from a 32-byte base key.
    ///
    /// # Errors
    /// [`FrameError::KeyDerivation`].
    pub fn new(key_id: u64, base_key: &[u8; 32]) -> Result<Self, FrameError> {
        let key = EncryptionKey::derive_from(SUITE, key_id, base_key)
            .map_err(|_| FrameError::KeyDerivation)?;
        Ok(Self {
            key,
            counter: MonotonicCounter::default(),
        })
    }

    /// Seals one frame; `meta` stays readable but authenticated.
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] or [`FrameError::Exhausted`].
    pub fn seal(&mut self, meta: &[u8], payload: &[u8]) -> Result<Vec<u8>, FrameError> {
        if meta.len() + payload.len() > MAX_FRAME_BYTES {
            return Err(FrameError::TooLarge(meta.len() + payload.len()));
        }
        let frame = MediaFrame::try_with_meta_data(&mut self.counter, payload, meta)
            .map_err(|_| FrameError::Exhausted)?;
        let sealed = frame
            .encrypt(&self.key)
            .map_err(|_| FrameError::Exhausted)?;
        Ok(sealed.sframe_cipher_text().to_vec())
    }
}

/// Opens one peer's frames of one stream, refusing replays.
pub struct FrameOpener {
    key: DecryptionKey,
    key_id: u64,
    replay: ReplayAttackProtection,
}

impl std::fmt::Debug for FrameOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameOpener")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl FrameOpener {
    /// An opener for key id `key_id` from the 32-byte base key its sender seals with.
    ///
    /// # Errors
    /// [`FrameError::KeyDerivation`].
    pub fn new(key_id: u64, base_key: &[u8; 32]) -> Result<Self, FrameError> {
        let key = DecryptionKey::derive_from(SUITE, key_id, base_key)
            .map_err(|_| FrameError::KeyDerivation)?;
        Ok(Self {
            key,
            key_id,
            replay: ReplayAttackProtection::new(key_id, Tolerance::new(REPLAY_WINDOW)),
        })
    }

    /// Opens one frame sealed with `meta`; returns the payload.
    ///
    /// # Errors
    /// A [`FrameError`]; the opener's state is unchanged by a frame that fails.
    pub fn open(&mut self, meta: &[u8], wire: &[u8]) -> Result<Vec<u8>, FrameError> {
        if meta.len() + wire.len() > MAX_FRAME_BYTES {
            return Err(FrameError::TooLarge(meta.len() + wire.len()));
        }
        let frame =
            EncryptedFrame::try_with_meta_data(wire, meta).map_err(|_| FrameError::Malformed)?;
        let kid = frame.header().key_id();
        if kid != self.key_id {
            return Err(FrameError::WrongKey(kid));
        }
        match frame.validated_decrypt(&self.key, &mut self.replay) {
            Ok(media) => Ok(media.payload().to_vec()),
            Err(sframe::error::SframeError::FrameValidationFailed(_)) => Err(FrameError::Replayed),
            Err(_) => Err(FrameError::Forged),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(kid: u64) -> (FrameSealer, FrameOpener) {
        (
            FrameSealer::new(kid, &[5; 32]).unwrap(),
            FrameOpener::new(kid, &[5; 32]).unwrap(),
        )
    }

    #[test]
    fn frames_round_trip_with_authenticated_metadata() {
        let (mut s, mut o) = pair(MediaStream::Video.key_id(1));
        let wire = s.seal(&[0x90, 0x80], b"a keyframe").unwrap();
        assert!(
            !wire.windows(10).any(|w| w == b"a keyframe"),
            "payload in clear"
        );
        assert_eq!(o.open(&[0x90, 0x80], &wire).unwrap(), b"a keyframe");
        let wire = s.seal(&[0x90, 0x80], b"next").unwrap();
        assert_eq!(o.open(&[0x10, 0x80], &wire), Err(FrameError::Forged));
        // The failed frame left the window alone: the genuine one still opens.
        assert_eq!(o.open(&[0x90, 0x80], &wire).unwrap(), b"next");
    }

    #[test]
    fn replays_altered_and_foreign_frames_are_refused() {
        let (mut s, mut o) = pair(MediaStream::Audio.key_id(0));
        let first = s.seal(b"", b"one").unwrap();
        let second = s.seal(b"", b"two").unwrap();
        assert!(o.open(b"", &second).is_ok());
        // Late but inside the window: played once, then refused.
        assert!(o.open(b"", &first).is_ok());
        assert_eq!(o.open(b"", &first), Err(FrameError::Replayed));

        let mut flipped = s.seal(b"", b"three").unwrap();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(o.open(b"", &flipped), Err(FrameError::Forged));

        // The same base key under the video stream's id is another key.
        let (mut video, _) = pair(MediaStream::Video.key_id(0));
        let v = video.seal(b"", b"frame").unwrap();
        assert_eq!(
            o.open(b"", &v),
            Err(FrameError::WrongKey(MediaStream::Video.key_id(0)))
        );

        let mut stranger = FrameSealer::new(MediaStream::Audio.key_id(0), &[6; 32]).unwrap();
        // Counters this opener has not seen yet, so only the key can refuse them.
        let w = (0..5)
            .map(|_| stranger.seal(b"", b"hi").unwrap())
            .last()
            .unwrap();
        assert_eq!(o.open(b"", &w), Err(FrameError::Forged));

        assert_eq!(o.open(b"", &[]), Err(FrameError::Malformed));
    }

    #[test]
    fn oversized_frames_are_refused_both_ways() {
        let (mut s, mut o) = pair(0);
        let big = vec![0u8; MAX_FRAME_BYTES + 1];
        assert_eq!(s.seal(b"", &big), Err(FrameError::TooLarge(big.len())));
        assert_eq!(o.open(b"", &big), Err(FrameError::TooLarge(big.len())));
    }

    #[test]
    fn key_ids_keep_senders_and_streams_apart() {
        let ids: std::collections::HashSet<u64> = (0..4)
            .flat_map(|slot| {
                [
                    MediaStream::Audio.key_id(slot),
                    MediaStream::Video.key_id(slot),
                ]
            })
            .collect();
        assert_eq!(ids.len(), 8);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_never_open(bytes in proptest::collection::vec(0u8.., 0..300)) {
            let (_, mut o) = pair(0);
            proptest::prop_assert!(o.open(b"", &bytes).is_err());
        }
    }
}
