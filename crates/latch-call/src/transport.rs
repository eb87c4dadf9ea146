//! The media transport of one call: ICE, DTLS-SRTP and RTP (str0m), carrying frames sealed
//! with [`crate::frame`]. Sans-I/O like the rest of the crate: the owner moves datagrams
//! between this and its sockets, and tells it the time.
//!
//! Why it is end to end twice over: the DTLS fingerprints travel inside the encrypted
//! signalling and each side pins the other's ([`MediaTransport::connect`]), so nobody between
//! the two devices (not the relay, not a TURN server) can terminate DTLS; and every frame is
//! sealed with keys from the call's own X25519 exchange before RTP sees it, which is what a
//! group call through a forwarding server will rely on.
//!
//! No SDP: both sides know the layout. Each role sends on fixed SSRCs (one DTLS session per
//! call, so they never collide with another call's), with one RTP packet per sealed audio
//! frame.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use str0m::format::Codec;
use str0m::media::{MediaKind as RtcMediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc};

use crate::frame::{FrameError, FrameOpener, FrameSealer, MediaStream};
use crate::keys::{MediaSecrets, Role};
use crate::signal::{DtlsFingerprint, IceCredentials, MediaOffer};

/// The SSRC each role sends its audio on.
fn audio_ssrc(role: Role) -> Ssrc {
    match role {
        Role::Caller => 0x4c41_0001.into(),
        Role::Callee => 0x4c41_0002.into(),
    }
}

fn other(role: Role) -> Role {
    match role {
        Role::Caller => Role::Callee,
        Role::Callee => Role::Caller,
    }
}

const AUDIO_MID: &str = "a";

/// Most remote candidates one call takes. Every candidate is an address this device will send
/// connectivity checks to, so a peer must not be able to aim it at as many as it likes.
pub const MAX_REMOTE_CANDIDATES: usize = 48;

/// Why the transport refused something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A candidate line did not parse or names an unusable address.
    #[error("unusable ICE candidate")]
    BadCandidate,
    /// The peer sent more than [`MAX_REMOTE_CANDIDATES`].
    #[error("too many ICE candidates from the peer")]
    TooManyCandidates,
    /// The peer's parameters were already set.
    #[error("the transport is already connecting")]
    AlreadyConnecting,
    /// The media engine refused an operation (the message says which).
    #[error("media transport error: {0}")]
    Rtc(String),
}

/// What the transport tells its owner.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportEvent {
    /// DTLS completed with the pinned peer: media can flow.
    Connected,
    /// The peer stopped answering connectivity checks.
    Disconnected,
    /// ICE found its way back after [`TransportEvent::Disconnected`].
    Reconnected,
    /// An opened audio frame from the peer.
    Audio {
        /// The frame's payload (Opus).
        payload: Vec<u8>,
        /// Its RTP time at 48 kHz, extended (never wraps).
        time: u64,
    },
    /// A frame that did not open (altered, replayed, foreign): dropped, the call goes on.
    Dropped(FrameError),
}

/// What to do next.
#[derive(Debug)]
pub enum TransportOutput {
    /// Send this datagram from `from` to `to`.
    Transmit {
        /// The local address (one of the candidates).
        from: SocketAddr,
        /// The peer's address.
        to: SocketAddr,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// Something happened.
    Event(TransportEvent),
    /// Nothing more until this time (or until input).
    Timeout(Instant),
}

/// One call's media transport.
pub struct MediaTransport {
    rtc: Rtc,
    role: Role,
    opus: Pt,
    /// The local candidates as sent to the peer.
    local_lines: Vec<String>,
    /// Remote candidates taken so far.
    remote_count: usize,
    connecting: bool,
    connected: bool,
    lost: bool,
    audio_seal: Option<FrameSealer>,
    audio_open: Option<FrameOpener>,
    audio_seq: u64,
    events: VecDeque<TransportEvent>,
}

impl std::fmt::Debug for MediaTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaTransport")
            .field("role", &self.role)
            .field("connected", &self.connected)
            .finish_non_exhaustive()
    }
}

impl MediaTransport {
    /// A transport with a host candidate on each of `local` (sockets the owner has bound).
    ///
    /// # Errors
    /// [`TransportError::BadCandidate`] for an address ICE cannot use.
    pub fn new(role: Role, local: &[SocketAddr], now: Instant) -> Result<Self, TransportError> {
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .build(now);
        let mut local_lines = Vec::with_capacity(local.len());
        for addr in local {
            let c = Candidate::host(*addr, "udp").map_err(|_| TransportError::BadCandidate)?;
            if let Some(added) = rtc.add_local_candidate(c) {
                local_lines.push(added.to_sdp_string());
            }
        }
        let opus = rtc
            .codec_config()
            .find(|p| p.spec().codec == Codec::Opus)
            .map(|p| p.pt())
            .ok_or_else(|| TransportError::Rtc("no Opus payload type".into()))?;
        Ok(Self {
            rtc,
            role,
            opus,
            local_lines,
            remote_count: 0,
            connecting: false,
            connected: false,
            lost: false,
            audio_seal: None,
            audio_open: None,
            audio_seq: 0,
            events: VecDeque::new(),
        })
    }

    /// What goes into this side's offer or answer.
    pub fn local_params(&mut self) -> (DtlsFingerprint, IceCredentials, Vec<String>) {
        let api = self.rtc.direct_api();
        let fp = api.local_dtls_fingerprint();
        let mut dtls = [0u8; 32];
        if fp.bytes.len() == 32 {
            dtls.copy_from_slice(&fp.bytes);
        }
        let creds = api.local_ice_credentials();
        let candidates = self.local_lines.clone();
        (
            DtlsFingerprint(dtls),
            IceCredentials {
                ufrag: creds.ufrag,
                pwd: creds.pass,
            },
            candidates,
        )
    }

    /// Adds candidates the peer sent (in its offer or answer, or trickled later).
    ///
    /// # Errors
    /// [`TransportError::BadCandidate`] for the first line that does not parse, or
    /// [`TransportError::TooManyCandidates`] past the cap; the ones before were added.
    pub fn add_remote_candidates(&mut self, lines: &[String]) -> Result<(), TransportError> {
        for line in lines {
            if self.remote_count >= MAX_REMOTE_CANDIDATES {
                return Err(TransportError::TooManyCandidates);
            }
            let c = Candidate::from_sdp_string(line).map_err(|_| TransportError::BadCandidate)?;
            self.rtc.add_remote_candidate(c);
            self.remote_count += 1;
        }
        Ok(())
    }

    /// Starts connecting to the peer: its ICE credentials, its pinned DTLS fingerprint, its
    /// candidates, and the frame keys.
    ///
    /// # Errors
    /// [`TransportError`] when already connecting or a candidate is unusable.
    pub fn connect(
        &mut self,
        remote: &MediaOffer,
        secrets: &MediaSecrets,
    ) -> Result<(), TransportError> {
        if self.connecting {
            return Err(TransportError::AlreadyConnecting);
        }
        self.audio_seal = Some(secrets.sealer(MediaStream::Audio).map_err(rtc_error)?);
        self.audio_open = Some(secrets.opener(MediaStream::Audio).map_err(rtc_error)?);
        let controlling = self.role == Role::Caller;
        let mid: Mid = AUDIO_MID.into();
        {
            let mut api = self.rtc.direct_api();
            api.set_remote_ice_credentials(IceCreds {
                ufrag: remote.ice.ufrag.clone(),
                pass: remote.ice.pwd.clone(),
            });
            api.set_remote_fingerprint(str0m::config::Fingerprint {
                hash_func: "sha-256".into(),
                bytes: remote.dtls.0.to_vec(),
            });
            api.set_ice_controlling(controlling);
            api.declare_media(mid, RtcMediaKind::Audio);
            api.declare_stream_tx(audio_ssrc(self.role), None, mid, None);
            api.expect_stream_rx(audio_ssrc(other(self.role)), None, mid, None);
            api.start_dtls(controlling).map_err(rtc_error)?;
        }
        self.connecting = true;
        self.add_remote_candidates(&remote.candidates)
    }

    /// Whether media can flow.
    pub fn is_connected(&self) -> bool {
        self.connected && !self.lost
    }

    /// Seals and sends one encoded audio frame taken at `time` (48 kHz samples). Frames
    /// before the connection are dropped: there is nobody to hear them yet.
    ///
    /// # Errors
    /// [`TransportError::Rtc`] if the frame cannot be sealed.
    pub fn send_audio(
        &mut self,
        payload: &[u8],
        time: u64,
        now: Instant,
    ) -> Result<(), TransportError> {
        if !self.connected {
            return Ok(());
        }
        let Some(seal) = self.audio_seal.as_mut() else {
            return Ok(());
        };
        let sealed = seal.seal(&[], payload).map_err(rtc_error)?;
        let seq: SeqNo = self.audio_seq.into();
        self.audio_seq += 1;
        let pt = self.opus;
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx(&audio_ssrc(self.role)) else {
            return Ok(());
        };
        // RTP time wraps at 32 bits; the receiver extends it again.
        tx.write_rtp(RtpWrite::new(pt, seq, time as u32, now, sealed).marker(true));
        Ok(())
    }

    /// A datagram arrived on one of the local sockets.
    pub fn handle_receive(&mut self, from: SocketAddr, to: SocketAddr, bytes: &[u8], now: Instant) {
        let Ok(contents) = bytes.try_into() else {
            return; // neither STUN, DTLS, RTP nor RTCP: somebody else's traffic
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: to,
                contents,
            },
        );
        if let Err(e) = self.rtc.handle_input(input) {
            tracing_free_note(&e);
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing_free_note(&e);
        }
    }

    /// The next thing to do. Call until it returns [`TransportOutput::Timeout`].
    pub fn poll(&mut self) -> TransportOutput {
        loop {
            if let Some(e) = self.events.pop_front() {
                return TransportOutput::Event(e);
            }
            let out = match self.rtc.poll_output() {
                Ok(o) => o,
                // A broken session is a dead connection: report it once, then idle (the call's
                // reconnect timer ends it).
                Err(_) => {
                    if self.rtc.is_alive() {
                        self.rtc.disconnect();
                        if self.connected && !self.lost {
                            self.lost = true;
                            return TransportOutput::Event(TransportEvent::Disconnected);
                        }
                    }
                    return TransportOutput::Timeout(far_future());
                }
            };
            match out {
                Output::Timeout(at) => return TransportOutput::Timeout(at),
                Output::Transmit(t) => {
                    return TransportOutput::Transmit {
                        from: t.source,
                        to: t.destination,
                        bytes: t.contents.into(),
                    };
                }
                Output::Event(e) => self.on_event(e),
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected => {
                self.connected = true;
                self.events.push_back(TransportEvent::Connected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected)
                if self.connected && !self.lost =>
            {
                self.lost = true;
                self.events.push_back(TransportEvent::Disconnected);
            }
            Event::IceConnectionStateChange(s) if s.is_connected() && self.lost => {
                self.lost = false;
                self.events.push_back(TransportEvent::Reconnected);
            }
            Event::RtpPacket(p) if p.header.ssrc == audio_ssrc(other(self.role)) => {
                let Some(open) = self.audio_open.as_mut() else {
                    return;
                };
                match open.open(&[], &p.payload) {
                    Ok(payload) => self.events.push_back(TransportEvent::Audio {
                        payload,
                        time: p.time.numer(),
                    }),
                    Err(e) => self.events.push_back(TransportEvent::Dropped(e)),
                }
            }
            _ => {}
        }
    }
}

fn rtc_error(e: impl std::fmt::Display) -> TransportError {
    TransportError::Rtc(e.to_string())
}

/// Errors on input are a peer's or the network's doing (a malformed or unexpected packet);
/// str0m drops the packet and the call goes on. This crate does no logging of its own.
fn tracing_free_note(_e: &str0m::RtcError) {}

fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(3600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{CallKeyPair, CallTranscript};
    use crate::signal::CallId;
    use std::net::{Ipv4Addr, SocketAddr};
    use std::time::Duration;

    struct Side {
        t: MediaTransport,
        addr: SocketAddr,
        heard: Vec<Vec<u8>>,
        events: Vec<TransportEvent>,
        next: Instant,
    }

    fn side(role: Role, port: u16, now: Instant) -> (Side, MediaOffer, CallKeyPair) {
        let addr = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), port));
        let mut t = MediaTransport::new(role, &[addr], now).unwrap();
        let (dtls, ice, candidates) = t.local_params();
        let pair = CallKeyPair::generate().unwrap();
        let offer = MediaOffer {
            call_key: pair.public(),
            dtls,
            ice,
            candidates,
        };
        (
            Side {
                t,
                addr,
                heard: vec![],
                events: vec![],
                next: now,
            },
            offer,
            pair,
        )
    }

    /// Moves every datagram between the two sides (dropping those `lose` picks) until both
    /// are quiet, advancing a simulated clock.
    fn run(
        a: &mut Side,
        b: &mut Side,
        now: &mut Instant,
        until: Duration,
        lose: &mut dyn FnMut(&[u8]) -> bool,
    ) {
        let end = *now + until;
        while *now < end {
            for (from, to) in [(0, 1), (1, 0)] {
                let (src, dst) = if from == 0 {
                    (&mut *a, &mut *b)
                } else {
                    (&mut *b, &mut *a)
                };
                loop {
                    match src.t.poll() {
                        TransportOutput::Transmit { from, to, bytes } => {
                            assert_eq!(from, src.addr);
                            if to == dst.addr && !lose(&bytes) {
                                dst.t.handle_receive(from, to, &bytes, *now);
                            }
                        }
                        TransportOutput::Event(TransportEvent::Audio { payload, .. }) => {
                            src.heard.push(payload);
                        }
                        TransportOutput::Event(e) => src.events.push(e),
                        TransportOutput::Timeout(at) => {
                            src.next = at;
                            break;
                        }
                    }
                }
                let _ = to;
            }
            *now += Duration::from_millis(5);
            for s in [&mut *a, &mut *b] {
                if s.next <= *now {
                    s.t.handle_timeout(*now);
                }
            }
        }
    }

    fn connected_pair(now: &mut Instant) -> (Side, Side) {
        let (mut a, offer, pa) = side(Role::Caller, 1000, *now);
        let (mut b, answer, pb) = side(Role::Callee, 2000, *now);
        let t = CallTranscript {
            call_id: CallId([1; 16]),
            caller_identity: b"a",
            callee_identity: b"b",
            caller: &offer,
            callee: &answer,
        };
        let sa = pa.agree(Role::Caller, &t).unwrap();
        let sb = pb.agree(Role::Callee, &t).unwrap();
        a.t.connect(&answer, &sa).unwrap();
        b.t.connect(&offer, &sb).unwrap();
        run(&mut a, &mut b, now, Duration::from_secs(2), &mut |_| false);
        (a, b)
    }

    #[test]
    fn two_transports_connect_and_carry_sealed_audio_both_ways() {
        let mut now = Instant::now();
        let (mut a, mut b) = connected_pair(&mut now);
        assert!(
            a.events.contains(&TransportEvent::Connected),
            "{:?}",
            a.events
        );
        assert!(
            b.events.contains(&TransportEvent::Connected),
            "{:?}",
            b.events
        );
        for i in 0..50u64 {
            a.t.send_audio(format!("caller frame {i}").as_bytes(), i * 960, now)
                .unwrap();
            b.t.send_audio(format!("callee frame {i}").as_bytes(), i * 960, now)
                .unwrap();
            run(
                &mut a,
                &mut b,
                &mut now,
                Duration::from_millis(20),
                &mut |_| false,
            );
        }
        assert_eq!(b.heard.len(), 50);
        assert_eq!(b.heard[7], b"caller frame 7");
        assert_eq!(a.heard[49], b"callee frame 49");
        // Nothing readable on the wire: every datagram carrying media is ciphertext twice over.
        let mut clear = false;
        a.t.send_audio(b"PLAINTEXT-MARKER", 50 * 960, now).unwrap();
        run(
            &mut a,
            &mut b,
            &mut now,
            Duration::from_millis(20),
            &mut |bytes| {
                clear |= bytes.windows(16).any(|w| w == b"PLAINTEXT-MARKER");
                false
            },
        );
        assert!(!clear);
        assert_eq!(b.heard.last().unwrap(), b"PLAINTEXT-MARKER");
    }

    #[test]
    fn a_pinned_fingerprint_that_does_not_match_never_connects() {
        let mut now = Instant::now();
        let (mut a, offer, pa) = side(Role::Caller, 1000, now);
        let (mut b, answer, pb) = side(Role::Callee, 2000, now);
        let t = CallTranscript {
            call_id: CallId([1; 16]),
            caller_identity: b"a",
            callee_identity: b"b",
            caller: &offer,
            callee: &answer,
        };
        let sa = pa.agree(Role::Caller, &t).unwrap();
        let sb = pb.agree(Role::Callee, &t).unwrap();
        // As if someone in the middle answered with its own certificate.
        let mut forged = answer.clone();
        forged.dtls = DtlsFingerprint([0xee; 32]);
        a.t.connect(&forged, &sa).unwrap();
        b.t.connect(&offer, &sb).unwrap();
        run(
            &mut a,
            &mut b,
            &mut now,
            Duration::from_secs(3),
            &mut |_| false,
        );
        assert!(
            !a.events.contains(&TransportEvent::Connected),
            "{:?}",
            a.events
        );
        a.t.send_audio(b"x", 0, now).unwrap();
        run(
            &mut a,
            &mut b,
            &mut now,
            Duration::from_millis(100),
            &mut |_| false,
        );
        assert!(b.heard.is_empty());
    }

    #[test]
    fn a_peer_that_goes_silent_is_reported_lost() {
        let mut now = Instant::now();
        let (mut a, mut b) = connected_pair(&mut now);
        run(
            &mut a,
            &mut b,
            &mut now,
            Duration::from_secs(30),
            &mut |_| true,
        );
        assert!(
            a.events.contains(&TransportEvent::Disconnected),
            "{:?}",
            a.events
        );
        assert!(!a.t.is_connected());
    }

    #[test]
    fn garbage_and_too_many_candidates_are_refused() {
        let now = Instant::now();
        let (mut a, _, _) = side(Role::Caller, 1000, now);
        assert_eq!(
            a.t.add_remote_candidates(&["candidate:nonsense".into()]),
            Err(TransportError::BadCandidate)
        );
        let many: Vec<String> = (0..=MAX_REMOTE_CANDIDATES)
            .map(|i| {
                format!(
                    "candidate:{i} 1 udp 2130706431 10.1.{}.{} 9 typ host",
                    i / 200,
                    i % 200 + 1
                )
            })
            .collect();
        assert_eq!(
            a.t.add_remote_candidates(&many),
            Err(TransportError::TooManyCandidates)
        );
        assert_eq!(a.t.remote_count, MAX_REMOTE_CANDIDATES);
    }
}
