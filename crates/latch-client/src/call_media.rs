//! The I/O half of a call's media: the UDP sockets, the 20 ms clock, and the devices, around
//! the sans-I/O transport and codecs of `latch-call`.
//!
//! One task per call owns the transport. Socket readers hand it datagrams; every 20 ms it
//! takes a frame from the microphone (once connected), encodes, seals and sends it, and plays
//! one frame from the jitter buffer. It reports connection changes back to the engine, which
//! feeds them to the call's state machine. Stopping the task (hang-up, end of call) drops the
//! transport and with it the call's keys.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use latch_call::audio::{AudioSink, AudioSource, FRAME_SAMPLES, VoiceDecoder, VoiceEncoder};
use latch_call::{MediaTransport, Role, TransportEvent, TransportOutput};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::engine::{CallMedia, ClientError, LocalTransport};

/// The devices a call plays through.
pub struct CallDevices {
    /// Where this side's voice comes from.
    pub microphone: Box<dyn AudioSource>,
    /// Where the peer's voice goes.
    pub speaker: Box<dyn AudioSink>,
}

impl std::fmt::Debug for CallDevices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallDevices")
    }
}

/// What a media task tells the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaReport {
    /// DTLS with the pinned peer completed.
    Connected,
    /// The peer stopped answering.
    Lost,
    /// It answers again.
    Reconnected,
}

enum Command {
    Connect(Box<CallMedia>),
    RemoteCandidates(Vec<String>),
    Mute(bool),
}

/// A running media task. Dropping it stops the task and closes its sockets.
pub(crate) struct MediaSession {
    commands: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    local: LocalTransport,
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        self.task.abort();
        for r in &self.readers {
            r.abort();
        }
    }
}

/// The addresses to offer as host candidates: `LATCH_CALL_HOSTS` (comma-separated) when set,
/// else the one the default route leaves from, and loopback (two devices on one machine).
/// Finding the route sends nothing: connecting a UDP socket only picks one.
pub(crate) fn default_hosts() -> Vec<IpAddr> {
    if let Ok(list) = std::env::var("LATCH_CALL_HOSTS") {
        let hosts: Vec<IpAddr> = list
            .split(',')
            .filter_map(|h| h.trim().parse().ok())
            .collect();
        if !hosts.is_empty() {
            return hosts;
        }
    }
    let mut hosts = Vec::new();
    if let Ok(s) = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        && s.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).is_ok()
        && let Ok(a) = s.local_addr()
        && !a.ip().is_unspecified()
        && !a.ip().is_loopback()
    {
        hosts.push(a.ip());
    }
    hosts.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    hosts
}

/// Largest datagram read (str0m keeps every datagram it sends under 1,200 bytes).
const MAX_DATAGRAM: usize = 2_048;

/// Datagrams waiting for the media task at most; beyond that the socket readers drop, so a
/// flood from anyone who learnt the port costs memory up to this and no more.
const DATAGRAM_QUEUE: usize = 512;

impl MediaSession {
    /// Binds a socket on each host address and starts the media task.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] when no socket could be bound or the transport refused.
    pub(crate) async fn open(
        role: Role,
        hosts: &[IpAddr],
        devices: CallDevices,
        serial: u64,
        reports: mpsc::UnboundedSender<(u64, MediaReport)>,
    ) -> Result<Self, ClientError> {
        let mut sockets = HashMap::new();
        for ip in hosts {
            if let Ok(s) = UdpSocket::bind(SocketAddr::new(*ip, 0)).await
                && let Ok(addr) = s.local_addr()
            {
                sockets.insert(addr, Arc::new(s));
            }
        }
        if sockets.is_empty() {
            return Err(ClientError::Invalid("no network address for the call"));
        }
        let addrs: Vec<SocketAddr> = sockets.keys().copied().collect();
        let mut transport = MediaTransport::new(role, &addrs, Instant::now())
            .map_err(|_| ClientError::Invalid("the call's transport could not start"))?;
        let (dtls, ice, candidates) = transport.local_params();
        let (datagrams_tx, datagrams) = mpsc::channel(DATAGRAM_QUEUE);
        let readers = sockets
            .iter()
            .map(|(addr, socket)| {
                let (addr, socket, tx) = (*addr, socket.clone(), datagrams_tx.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; MAX_DATAGRAM];
                    while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                        let _ = tx.try_send((from, addr, buf[..n].to_vec()));
                    }
                })
            })
            .collect();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(
            transport,
            sockets,
            datagrams,
            commands_rx,
            devices,
            Reports {
                serial,
                to: reports,
            },
        ));
        Ok(Self {
            commands,
            task,
            readers,
            local: LocalTransport {
                dtls,
                ice,
                candidates,
            },
        })
    }

    /// What this side offers.
    pub(crate) fn local(&self) -> LocalTransport {
        self.local.clone()
    }

    /// Both sides are known: connect.
    pub(crate) fn connect(&self, media: CallMedia) {
        let _ = self.commands.send(Command::Connect(Box::new(media)));
    }

    /// The peer trickled more candidates.
    pub(crate) fn remote_candidates(&self, candidates: Vec<String>) {
        let _ = self.commands.send(Command::RemoteCandidates(candidates));
    }

    /// Mutes or unmutes this side's microphone.
    pub(crate) fn mute(&self, muted: bool) {
        let _ = self.commands.send(Command::Mute(muted));
    }
}

const FRAME: Duration = Duration::from_millis(20);

/// How long the peer's voice may stop before the call counts as lost. Opus frames flow every
/// 20 ms for as long as a call lasts (no discontinuous transmission), so this notices a peer
/// that died far sooner than ICE consent checks do.
const SILENCE_IS_LOSS: Duration = Duration::from_secs(4);

/// Whether the peer's media still arrives.
#[derive(Default)]
struct Liveness {
    last_heard: Option<Instant>,
    lost: bool,
}

impl Liveness {
    fn heard(&mut self, reports: &Reports) {
        self.last_heard = Some(Instant::now());
        if self.lost {
            self.lost = false;
            reports.send(MediaReport::Reconnected);
        }
    }

    fn check(&mut self, reports: &Reports) {
        if !self.lost
            && self
                .last_heard
                .is_some_and(|t| t.elapsed() > SILENCE_IS_LOSS)
        {
            self.lost = true;
            reports.send(MediaReport::Lost);
        }
    }
}

/// Where a media task reports, tagged with its session's serial so a report still queued
/// from an earlier call is never taken for the current one's.
struct Reports {
    serial: u64,
    to: mpsc::UnboundedSender<(u64, MediaReport)>,
}

impl Reports {
    fn send(&self, r: MediaReport) {
        let _ = self.to.send((self.serial, r));
    }
}

async fn run(
    mut transport: MediaTransport,
    sockets: HashMap<SocketAddr, Arc<UdpSocket>>,
    mut datagrams: mpsc::Receiver<(SocketAddr, SocketAddr, Vec<u8>)>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut devices: CallDevices,
    reports: Reports,
) {
    let (Ok(mut encoder), Ok(mut decoder)) = (VoiceEncoder::new(), VoiceDecoder::new()) else {
        tracing::warn!("the Opus codec could not start");
        return;
    };
    let mut tick = tokio::time::interval(FRAME);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut frame = vec![0i16; FRAME_SAMPLES];
    let mut played = vec![0i16; FRAME_SAMPLES];
    let mut media_time: u64 = 0;
    let mut microphone_open = true;
    let mut muted = false;
    let mut liveness = Liveness::default();
    loop {
        let wake = flush(
            &mut transport,
            &sockets,
            &reports,
            &mut decoder,
            &mut liveness,
        )
        .await;
        tokio::select! {
            d = datagrams.recv() => match d {
                Some((from, to, bytes)) => transport.handle_receive(from, to, &bytes, Instant::now()),
                None => break,
            },
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                transport.handle_timeout(Instant::now());
            }
            _ = tick.tick() => {
                liveness.check(&reports);
                if transport.is_connected() {
                    if microphone_open && !devices.microphone.read(&mut frame) {
                        // The source ended (a file): send silence from now on.
                        microphone_open = false;
                    }
                    // Muted: silence still goes out every 20 ms (tiny Opus frames), so the peer
                    // goes on hearing that the call is alive.
                    if !microphone_open || muted {
                        frame.fill(0);
                    }
                    match encoder.encode(&frame) {
                        Ok(packet) => {
                            if let Err(e) = transport.send_audio(&packet, media_time, Instant::now()) {
                                tracing::warn!(error = %e, "an audio frame could not be sent");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "an audio frame could not be encoded"),
                    }
                    media_time += FRAME_SAMPLES as u64;
                    if decoder.pull(&mut played).is_ok() {
                        devices.speaker.write(&played);
                    }
                }
            }
            c = commands.recv() => match c {
                Some(Command::Connect(media)) => {
                    if let Err(e) = transport.connect(&media.remote, &media.secrets) {
                        tracing::warn!(error = %e, "the call's transport refused the peer");
                    }
                }
                Some(Command::RemoteCandidates(c)) => {
                    if transport.add_remote_candidates(&c).is_err() {
                        tracing::warn!("ignored an unusable remote candidate");
                    }
                }
                Some(Command::Mute(m)) => muted = m,
                None => break,
            },
        }
    }
}

/// Sends what the transport has to send and handles what it reports; returns when it wants
/// to be woken.
async fn flush(
    transport: &mut MediaTransport,
    sockets: &HashMap<SocketAddr, Arc<UdpSocket>>,
    reports: &Reports,
    decoder: &mut VoiceDecoder,
    liveness: &mut Liveness,
) -> Instant {
    loop {
        match transport.poll() {
            TransportOutput::Transmit { from, to, bytes } => {
                if let Some(s) = sockets.get(&from) {
                    // A full socket buffer drops the datagram, as the network may.
                    let _ = s.send_to(&bytes, to).await;
                }
            }
            TransportOutput::Event(e) => match e {
                TransportEvent::Connected => {
                    reports.send(MediaReport::Connected);
                }
                TransportEvent::Disconnected => {
                    reports.send(MediaReport::Lost);
                }
                TransportEvent::Reconnected => {
                    reports.send(MediaReport::Reconnected);
                }
                TransportEvent::Audio { payload, time } => {
                    liveness.heard(reports);
                    decoder.push(time, payload);
                }
                TransportEvent::Dropped(e) => tracing::debug!(error = %e, "dropped a media frame"),
                _ => {}
            },
            TransportOutput::Timeout(at) => return at,
        }
    }
}
