//! Voice: 20 ms frames of 48 kHz mono, Opus in both directions, a jitter buffer that turns
//! packets arriving late, early, twice or never into one frame every 20 ms, and the device
//! traits a call plays through.
//!
//! Loss is covered twice: Opus in-band FEC (each packet carries a low-rate copy of the one
//! before, so a single lost packet is rebuilt from its successor) and Opus packet-loss
//! concealment when that is not there either.

use std::collections::BTreeMap;

/// Samples per second.
pub const SAMPLE_RATE: u32 = 48_000;

/// Samples in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 960;

/// The largest Opus packet we make or accept (RFC 6716 caps one frame at 1275 bytes).
pub const MAX_PACKET: usize = 1275;

/// Frames the jitter buffer holds before it plays: 60 ms of tolerance for late packets.
pub const JITTER_TARGET: usize = 3;

/// Frames it holds at most; beyond that the oldest go (a peer that floods cannot grow it).
pub const JITTER_MAX: usize = 50;

/// A microphone, a file or a generator: gives one frame each time it is asked.
pub trait AudioSource: Send {
    /// Fills `frame` ([`FRAME_SAMPLES`] samples). Returns `false` when the source has ended.
    fn read(&mut self, frame: &mut [i16]) -> bool;
}

/// A speaker, a file or a recorder: takes one frame each time one is due.
pub trait AudioSink: Send {
    /// Plays `frame` ([`FRAME_SAMPLES`] samples).
    fn write(&mut self, frame: &[i16]);
}

/// Why a codec operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// libopus refused (the message says why).
    #[error("opus: {0}")]
    Opus(String),
    /// A frame of the wrong length.
    #[error("an audio frame must be {FRAME_SAMPLES} samples")]
    FrameLength,
}

fn opus_error(e: opus::Error) -> AudioError {
    AudioError::Opus(e.description().to_owned())
}

/// Encodes this side's voice.
pub struct VoiceEncoder {
    inner: opus::Encoder,
}

impl std::fmt::Debug for VoiceEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VoiceEncoder")
    }
}

impl VoiceEncoder {
    /// An Opus encoder tuned for calls: VoIP mode, 32 kbit/s, in-band FEC for 10 % loss.
    ///
    /// # Errors
    /// [`AudioError::Opus`].
    pub fn new() -> Result<Self, AudioError> {
        let mut inner =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)
                .map_err(opus_error)?;
        inner
            .set_bitrate(opus::Bitrate::Bits(32_000))
            .map_err(opus_error)?;
        inner.set_inband_fec(true).map_err(opus_error)?;
        inner.set_packet_loss_perc(10).map_err(opus_error)?;
        Ok(Self { inner })
    }

    /// Encodes one frame.
    ///
    /// # Errors
    /// [`AudioError`].
    pub fn encode(&mut self, frame: &[i16]) -> Result<Vec<u8>, AudioError> {
        if frame.len() != FRAME_SAMPLES {
            return Err(AudioError::FrameLength);
        }
        self.inner.encode_vec(frame, MAX_PACKET).map_err(opus_error)
    }
}

/// Decodes the peer's voice through a jitter buffer.
pub struct VoiceDecoder {
    inner: opus::Decoder,
    /// Packets by frame index (RTP time / [`FRAME_SAMPLES`]).
    pending: BTreeMap<u64, Vec<u8>>,
    /// The next frame index to play, once playing.
    next: Option<u64>,
    /// Counters for call quality.
    stats: VoiceStats,
}

/// What the decoder has seen, for the call's quality indicator.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VoiceStats {
    /// Frames played from their own packet.
    pub decoded: u64,
    /// Frames rebuilt from the next packet's FEC.
    pub recovered: u64,
    /// Frames concealed (no packet at all).
    pub concealed: u64,
    /// Packets that came after their frame was played, or twice.
    pub late: u64,
}

impl std::fmt::Debug for VoiceDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceDecoder")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl VoiceDecoder {
    /// A decoder with an empty jitter buffer.
    ///
    /// # Errors
    /// [`AudioError::Opus`].
    pub fn new() -> Result<Self, AudioError> {
        Ok(Self {
            inner: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono).map_err(opus_error)?,
            pending: BTreeMap::new(),
            next: None,
            stats: VoiceStats::default(),
        })
    }

    /// How it went so far.
    pub fn stats(&self) -> VoiceStats {
        self.stats
    }

    /// A packet arrived, taken at RTP time `time` (48 kHz).
    pub fn push(&mut self, time: u64, packet: Vec<u8>) {
        let index = time / FRAME_SAMPLES as u64;
        if packet.len() > MAX_PACKET
            || self.next.is_some_and(|n| index < n)
            || self.pending.contains_key(&index)
        {
            self.stats.late += 1;
            return;
        }
        self.pending.insert(index, packet);
        while self.pending.len() > JITTER_MAX {
            self.pending.pop_first();
        }
        if self.next.is_some_and(|n| {
            self.pending
                .first_key_value()
                .is_some_and(|(k, _)| *k > n + JITTER_MAX as u64)
        }) {
            // A jump far ahead (the peer's clock restarted): follow it rather than conceal forever.
            self.next = self.pending.first_key_value().map(|(k, _)| *k);
        }
    }

    /// The frame due now (call every 20 ms). Silence until the buffer first fills; then each
    /// call plays one frame, decoded, rebuilt or concealed.
    ///
    /// # Errors
    /// [`AudioError::Opus`] if libopus fails outright (a corrupt packet is concealed instead).
    pub fn pull(&mut self, out: &mut [i16]) -> Result<(), AudioError> {
        if out.len() != FRAME_SAMPLES {
            return Err(AudioError::FrameLength);
        }
        let next = match self.next {
            Some(n) => n,
            None if self.pending.len() >= JITTER_TARGET => {
                let first = self.pending.first_key_value().map_or(0, |(k, _)| *k);
                self.next = Some(first);
                first
            }
            None => {
                out.fill(0);
                return Ok(());
            }
        };
        self.next = Some(next + 1);
        if let Some(packet) = self.pending.remove(&next) {
            if self.inner.decode(&packet, out, false).is_ok() {
                self.stats.decoded += 1;
                return Ok(());
            }
        } else if let Some(following) = self.pending.get(&(next + 1))
            && self.inner.decode(following, out, true).is_ok()
        {
            self.stats.recovered += 1;
            return Ok(());
        }
        self.stats.concealed += 1;
        self.inner.decode(&[], out, false).map_err(opus_error)?;
        Ok(())
    }
}

/// A generator for tests and the CLI: a sequence of pure tones, each for a number of frames.
#[derive(Debug, Clone)]
pub struct ToneSource {
    /// (frequency in Hz, frames) in order; the source ends after the last.
    steps: Vec<(f64, usize)>,
    step: usize,
    frames_in_step: usize,
    phase: f64,
    amplitude: f64,
}

impl ToneSource {
    /// Tones in order, each `(hz, frames)`, at a quarter of full scale.
    pub fn new(steps: Vec<(f64, usize)>) -> Self {
        Self {
            steps,
            step: 0,
            frames_in_step: 0,
            phase: 0.0,
            amplitude: f64::from(i16::MAX) / 4.0,
        }
    }
}

impl AudioSource for ToneSource {
    fn read(&mut self, frame: &mut [i16]) -> bool {
        let Some(&(hz, frames)) = self.steps.get(self.step) else {
            return false;
        };
        let step = std::f64::consts::TAU * hz / f64::from(SAMPLE_RATE);
        for s in frame.iter_mut() {
            *s = (self.phase.sin() * self.amplitude) as i16;
            self.phase = (self.phase + step) % std::f64::consts::TAU;
        }
        self.frames_in_step += 1;
        if self.frames_in_step >= frames {
            self.step += 1;
            self.frames_in_step = 0;
        }
        true
    }
}

/// The power of `samples` at `hz` (Goertzel), relative to the signal's total power: near 1
/// for a pure tone at `hz`, near 0 for anything else. What the tests and the CLI's
/// `--check-tone` use to tell that the right sound arrived, not just some bytes.
pub fn tone_share(samples: &[i16], hz: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let w = std::f64::consts::TAU * hz / f64::from(SAMPLE_RATE);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut energy = 0.0f64;
    for &x in samples {
        let x = f64::from(x);
        energy += x * x;
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    if energy == 0.0 {
        return 0.0;
    }
    // A pure tone of N samples gives power = energy * N / 2.
    (2.0 * power / (energy * samples.len() as f64)).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, frames: usize) -> Vec<Vec<i16>> {
        let mut src = ToneSource::new(vec![(hz, frames)]);
        let mut out = Vec::new();
        let mut f = vec![0i16; FRAME_SAMPLES];
        while src.read(&mut f) {
            out.push(f.clone());
        }
        out
    }

    /// Encodes, drops what `lose` picks, decodes through the jitter buffer.
    fn through(frames: &[Vec<i16>], lose: impl Fn(usize) -> bool) -> (Vec<i16>, VoiceStats) {
        let mut enc = VoiceEncoder::new().unwrap();
        let mut dec = VoiceDecoder::new().unwrap();
        let mut heard = Vec::new();
        let mut out = vec![0i16; FRAME_SAMPLES];
        for (i, f) in frames.iter().enumerate() {
            let packet = enc.encode(f).unwrap();
            if !lose(i) {
                dec.push((i * FRAME_SAMPLES) as u64, packet);
            }
            dec.pull(&mut out).unwrap();
            heard.extend_from_slice(&out);
        }
        (heard, dec.stats())
    }

    #[test]
    fn a_tone_survives_opus_and_the_jitter_buffer() {
        let frames = tone(440.0, 100);
        let (heard, stats) = through(&frames, |_| false);
        // Skip the buffer's start and the codec's settling.
        let steady = &heard[20 * FRAME_SAMPLES..];
        assert!(
            tone_share(steady, 440.0) > 0.9,
            "{}",
            tone_share(steady, 440.0)
        );
        assert!(tone_share(steady, 880.0) < 0.05);
        assert_eq!(stats.concealed, 0);
    }

    #[test]
    fn ten_percent_loss_is_rebuilt_or_concealed_and_still_sounds_right() {
        let frames = tone(660.0, 200);
        let (heard, stats) = through(&frames, |i| i % 10 == 5);
        let steady = &heard[20 * FRAME_SAMPLES..];
        assert!(
            tone_share(steady, 660.0) > 0.8,
            "{}",
            tone_share(steady, 660.0)
        );
        assert!(stats.recovered + stats.concealed >= 15, "{stats:?}");
    }

    #[test]
    fn late_duplicate_and_oversized_packets_are_counted_not_played() {
        let mut dec = VoiceDecoder::new().unwrap();
        let mut enc = VoiceEncoder::new().unwrap();
        let f = tone(440.0, 1).remove(0);
        let mut out = vec![0i16; FRAME_SAMPLES];
        for i in 0..4u64 {
            dec.push(i * FRAME_SAMPLES as u64, enc.encode(&f).unwrap());
        }
        dec.pull(&mut out).unwrap();
        dec.push(0, enc.encode(&f).unwrap()); // frame 0 was played
        dec.push(2 * FRAME_SAMPLES as u64, enc.encode(&f).unwrap()); // frame 2 is there
        dec.push(9 * FRAME_SAMPLES as u64, vec![0; MAX_PACKET + 1]);
        assert_eq!(dec.stats().late, 3);
        for i in 10..200u64 {
            dec.push(i * FRAME_SAMPLES as u64, enc.encode(&f).unwrap());
        }
        assert!(dec.pending.len() <= JITTER_MAX);
        assert_eq!(dec.pull(&mut [0i16; 3]), Err(AudioError::FrameLength));
    }

    #[test]
    fn the_tone_measure_tells_tones_apart() {
        let a = tone(440.0, 10).concat();
        assert!(tone_share(&a, 440.0) > 0.95);
        assert!(tone_share(&a, 1000.0) < 0.01);
        assert_eq!(tone_share(&vec![0; 960], 440.0), 0.0);
    }
}
