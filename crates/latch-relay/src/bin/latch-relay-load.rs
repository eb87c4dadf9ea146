//! `latch-relay-load`: a bounded load generator for the relay, loopback only.
//!
//! It starts the real `latch-relay` binary (next to this one) on a temporary database unless
//! `--url` names a running relay, connects `--devices` devices, and runs, in one process run:
//!
//! 1. a raw WebSocket echo reference (an in-process echo server, same message size);
//! 2. a saturation phase: every device keeps `--window` sends in flight to random peers;
//! 3. a paced phase at `--paced-rate` (default: half the saturation rate).
//!
//! It prints delivered envelopes per second and sender-to-recipient latency percentiles.
//! Every phase is bounded in time; the whole run stops by itself. Needs about two file
//! descriptors per device (raise `ulimit -n` if the hard limit is low; the soft limit is raised
//! here up to the hard limit).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use latch_relay::api::{
    ClientFrame, DeviceAddress, EnvelopeId, IdentityKey, PROTOCOL_VERSION, Response, ServerFrame,
    auth_message,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Parser)]
#[command(about = "Bounded loopback load generator for latch-relay")]
struct Args {
    /// An already running relay (ws://127.0.0.1:PORT); by default one is spawned.
    #[arg(long)]
    url: Option<String>,
    /// The relay binary to spawn (default: `latch-relay` beside this executable).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// Connected devices.
    #[arg(long, default_value_t = 1000)]
    devices: u32,
    /// Envelope body size in bytes.
    #[arg(long, default_value_t = 256)]
    body_bytes: usize,
    /// Sends in flight per device in the saturation phase.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Measured seconds per phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Unmeasured seconds at the start of each phase.
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// Total envelopes per second in the paced phase (default: half the saturation rate).
    #[arg(long)]
    paced_rate: Option<f64>,
    /// Echo connections for the reference measurement.
    #[arg(long, default_value_t = 100)]
    echo_connections: u32,
    /// `--durability` of the spawned relay: `full` fsyncs every group commit, `normal`
    /// survives a relay crash but not a power loss.
    #[arg(long, default_value = "full")]
    durability: String,
}

/// WebSocket settings for every socket of this tool (the relay uses the same read buffer):
/// tungstenite zero-fills its whole read buffer (128 KiB by default) before each read, which
/// would make the generator, not the relay, the bottleneck. Nagle is off on both ends.
fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(8 * 1024)
}

fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(idx).copied().unwrap_or(0) as f64 / 1e6
}

/// Phase numbers carried in each envelope body.
const PHASE_IDLE: u8 = 0;
const PHASE_SATURATE: u8 = 1;
const PHASE_PACED: u8 = 2;

struct Stats {
    /// Which phase senders are in.
    phase: AtomicU8,
    /// Whether deliveries are being counted.
    measuring: AtomicBool,
    delivered: AtomicU64,
    acked: AtomicU64,
    in_flight: AtomicU64,
    latencies_ns: Mutex<Vec<u64>>,
    errors: AtomicU64,
    paced_interval_ns: AtomicU64,
}

#[allow(clippy::print_stderr)]
fn fail(msg: &str) -> ! {
    eprintln!("latch-relay-load: {msg}");
    std::process::exit(1)
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    runtime.block_on(run(args));
}

#[allow(clippy::print_stdout)]
async fn run(args: Args) {
    let wanted = u64::from(args.devices) * 2 + 256;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(n) if n < wanted => println!("warning: fd limit {n} < {wanted}; raise ulimit -n"),
        Ok(_) => {}
        Err(e) => println!("warning: cannot raise fd limit: {e}"),
    }
    now_ns();
    let (echo_p50, echo_p99, echo_rate) = echo_reference(&args).await;
    println!(
        "echo reference: {} connections, {} B messages: {:.0} round trips/s, RTT p50 {:.3} ms p99 {:.3} ms",
        args.echo_connections, args.body_bytes, echo_rate, echo_p50, echo_p99
    );

    let dir = std::env::temp_dir().join(format!("latch-relay-load-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let mut child = None;
    let addr: SocketAddr = match &args.url {
        Some(url) => url
            .trim_start_matches("ws://")
            .trim_end_matches("/v1/ws")
            .parse()
            .unwrap_or_else(|_| fail("--url must be ws://IP:PORT")),
        None => {
            let bin = args.relay_bin.clone().unwrap_or_else(|| {
                std::env::current_exe()
                    .map(|p| p.with_file_name("latch-relay"))
                    .unwrap_or_else(|_| PathBuf::from("latch-relay"))
            });
            let mut c = tokio::process::Command::new(bin)
                .args(["--listen", "127.0.0.1:0", "--database"])
                .arg(dir.join("relay.db"))
                .args(["--durability", args.durability.as_str()])
                .args(["--device-rate", "1e9", "--device-burst", "1e9"])
                .args(["--ip-rate", "1e9", "--ip-burst", "1e9"])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| fail(&format!("cannot start relay: {e}")));
            let out = c.stdout.take().unwrap_or_else(|| fail("no relay stdout"));
            let mut lines = BufReader::new(out).lines();
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .ok()
                .and_then(|l| l.ok().flatten())
                .unwrap_or_else(|| fail("relay did not report its address"));
            child = Some(c);
            line.rsplit(' ')
                .next()
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| fail("bad address line"))
        }
    };

    let stats = Arc::new(Stats {
        phase: AtomicU8::new(PHASE_IDLE),
        measuring: AtomicBool::new(false),
        delivered: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        latencies_ns: Mutex::new(Vec::new()),
        errors: AtomicU64::new(0),
        paced_interval_ns: AtomicU64::new(u64::MAX),
    });
    let keys: Vec<SigningKey> = (0..args.devices)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..4].copy_from_slice(&i.to_be_bytes());
            SigningKey::from_bytes(&seed)
        })
        .collect();
    let peers: Arc<Vec<DeviceAddress>> = Arc::new(
        keys.iter()
            .map(|k| DeviceAddress {
                identity_key: IdentityKey(k.verifying_key().to_bytes()),
                device_id: 1,
            })
            .collect(),
    );
    let connect_start = Instant::now();
    let mut devices = Vec::new();
    let ready = Arc::new(tokio::sync::Semaphore::new(0));
    for (i, key) in keys.into_iter().enumerate() {
        let (stats, peers, ready) = (stats.clone(), peers.clone(), ready.clone());
        let (body_bytes, window) = (args.body_bytes, args.window);
        devices.push(tokio::spawn(async move {
            device(addr, i, key, peers, stats, ready, body_bytes, window).await
        }));
    }
    let all = u32::try_from(devices.len()).unwrap_or(u32::MAX);
    if tokio::time::timeout(Duration::from_secs(120), ready.acquire_many(all))
        .await
        .is_err()
    {
        fail("devices did not all connect within 120 s");
    }
    println!(
        "{} devices connected and authenticated in {:.2} s",
        args.devices,
        connect_start.elapsed().as_secs_f64()
    );

    let (rate, sat_p50, sat_p99) = phase(&stats, PHASE_SATURATE, &args).await;
    println!(
        "saturation (window {} per device): {:.0} envelopes/s delivered, latency p50 {:.2} ms p99 {:.2} ms",
        args.window, rate, sat_p50, sat_p99
    );
    let paced = args.paced_rate.unwrap_or(rate / 2.0).max(1.0);
    let per_device_interval = f64::from(args.devices) / paced * 1e9;
    stats
        .paced_interval_ns
        .store(per_device_interval as u64, Ordering::SeqCst);
    let (paced_rate, p50, p99) = phase(&stats, PHASE_PACED, &args).await;
    println!(
        "paced at {:.0}/s: {:.0} envelopes/s delivered, latency p50 {:.2} ms p99 {:.2} ms",
        paced, paced_rate, p50, p99
    );
    println!("errors: {}", stats.errors.load(Ordering::SeqCst));

    stats.phase.store(PHASE_IDLE, Ordering::SeqCst);
    for d in devices {
        d.abort();
    }
    if let Some(mut c) = child {
        if let Some(pid) = c.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), c.wait()).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn phase(stats: &Stats, phase: u8, args: &Args) -> (f64, f64, f64) {
    stats.phase.store(phase, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(args.warmup_seconds)).await;
    stats
        .latencies_ns
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    stats.delivered.store(0, Ordering::SeqCst);
    stats.measuring.store(true, Ordering::SeqCst);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stats.measuring.store(false, Ordering::SeqCst);
    let elapsed = start.elapsed().as_secs_f64();
    let delivered = stats.delivered.load(Ordering::SeqCst) as f64;
    stats.phase.store(PHASE_IDLE, Ordering::SeqCst);
    // Let the in-flight sends settle (bounded) before the next phase.
    let settle = Instant::now();
    while stats.in_flight.load(Ordering::SeqCst) > 0 && settle.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Receivers flush their samples on an idle tick (200 ms).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut lat =
        std::mem::take(&mut *stats.latencies_ns.lock().unwrap_or_else(|p| p.into_inner()));
    lat.sort_unstable();
    (
        delivered / elapsed,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
    )
}

#[allow(clippy::too_many_arguments)]
async fn device(
    addr: SocketAddr,
    me: usize,
    key: SigningKey,
    peers: Arc<Vec<DeviceAddress>>,
    stats: Arc<Stats>,
    ready: Arc<tokio::sync::Semaphore>,
    body_bytes: usize,
    window: usize,
) {
    let url = format!("ws://{addr}/v1/ws");
    let Ok((ws, _)) =
        tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true).await
    else {
        stats.errors.fetch_add(1, Ordering::SeqCst);
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let Some(me_addr) = peers.get(me).copied() else {
        return;
    };
    // Handshake.
    let mut authed = false;
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Binary(b) = msg else { continue };
        match ServerFrame::decode(&b) {
            Ok(ServerFrame::Challenge { nonce, .. }) => {
                let signature = key
                    .sign(&auth_message(&nonce, &me_addr, true))
                    .to_bytes()
                    .to_vec();
                let f = ClientFrame::Authenticate {
                    version: PROTOCOL_VERSION,
                    nonce,
                    device: me_addr,
                    register: true,
                    signature,
                };
                let Ok(bytes) = f.encode() else { return };
                if sink.send(Message::Binary(bytes.into())).await.is_err() {
                    return;
                }
            }
            Ok(ServerFrame::BacklogDone) => {
                authed = true;
                break;
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
    if !authed {
        stats.errors.fetch_add(1, Ordering::SeqCst);
        return;
    }
    ready.add_permits(1);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(4096);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.feed(m).await.is_err() {
                return;
            }
            while let Ok(m) = rx.try_recv() {
                if sink.feed(m).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let window_sem = Arc::new(tokio::sync::Semaphore::new(window));
    // Sender.
    let sender = {
        let (stats, tx, peers, window_sem) =
            (stats.clone(), tx.clone(), peers.clone(), window_sem.clone());
        tokio::spawn(async move {
            let mut n: u32 = 0;
            let mut rng = me as u64 * 0x9E37_79B9_7F4A_7C15 + 1;
            let mut next_paced = tokio::time::Instant::now();
            loop {
                let phase = stats.phase.load(Ordering::SeqCst);
                match phase {
                    PHASE_SATURATE => {}
                    PHASE_PACED => {
                        let interval = stats.paced_interval_ns.load(Ordering::SeqCst);
                        let now = tokio::time::Instant::now();
                        if next_paced < now {
                            // Start each device at a random offset to spread the load.
                            next_paced = now + Duration::from_nanos(rng % interval.max(1));
                        }
                        tokio::time::sleep_until(next_paced).await;
                        next_paced += Duration::from_nanos(interval);
                    }
                    _ => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                }
                // Every send holds a window slot until its answer arrives.
                let Ok(permit) = window_sem.clone().acquire_owned().await else {
                    return;
                };
                permit.forget();
                if stats.phase.load(Ordering::SeqCst) != phase {
                    window_sem.add_permits(1);
                    continue;
                }
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let len = peers.len().max(2);
                let mut to = (rng as usize) % len;
                if to == me {
                    to = (to + 1) % len;
                }
                let Some(to) = peers.get(to).copied() else {
                    return;
                };
                let mut body = vec![0u8; body_bytes.max(9)];
                body[0] = phase;
                body[1..9].copy_from_slice(&now_ns().to_be_bytes());
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&(me as u32).to_be_bytes());
                id[4..8].copy_from_slice(&n.to_be_bytes());
                n = n.wrapping_add(1);
                let f = ClientFrame::Send {
                    req: n,
                    id: EnvelopeId(id),
                    to,
                    body,
                };
                let Ok(bytes) = f.encode() else { return };
                stats.in_flight.fetch_add(1, Ordering::SeqCst);
                if tx.send(Message::Binary(bytes.into())).await.is_err() {
                    return;
                }
            }
        })
    };
    // Receiver: deliveries (latency), acks by cursor, send confirmations.
    let mut unacked = 0u32;
    let mut last_seq = 0u64;
    let mut req = u32::MAX / 2;
    let mut local_lat = Vec::new();
    loop {
        let frame = match tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => ServerFrame::decode(&b).ok(),
            Ok(Some(Ok(_))) => continue,
            Ok(_) => break,
            Err(_) => None,
        };
        match frame {
            Some(ServerFrame::Envelope(e)) => {
                if stats.measuring.load(Ordering::SeqCst)
                    && e.body.first().copied() == Some(stats.phase.load(Ordering::SeqCst))
                    && let Some(ts) = e.body.get(1..9).and_then(|b| <[u8; 8]>::try_from(b).ok())
                {
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                    local_lat.push(now_ns().saturating_sub(u64::from_be_bytes(ts)));
                    if local_lat.len() >= 256 {
                        stats
                            .latencies_ns
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .append(&mut local_lat);
                    }
                }
                last_seq = e.seq;
                unacked += 1;
                if unacked >= 32 {
                    unacked = 0;
                    req = req.wrapping_add(1);
                    if let Ok(b) = (ClientFrame::AckThrough { req, seq: last_seq }).encode() {
                        let _ = tx.send(Message::Binary(b.into())).await;
                    }
                }
            }
            Some(ServerFrame::Response {
                body: Response::Sent { .. },
                ..
            }) => {
                stats.acked.fetch_add(1, Ordering::Relaxed);
                stats.in_flight.fetch_sub(1, Ordering::SeqCst);
                window_sem.add_permits(1);
            }
            Some(ServerFrame::Error { .. }) => {
                stats.errors.fetch_add(1, Ordering::SeqCst);
                stats.in_flight.fetch_sub(1, Ordering::SeqCst);
                window_sem.add_permits(1);
            }
            Some(_) => {}
            None => {
                // Idle tick: flush latencies and ack what is outstanding.
                if !local_lat.is_empty() {
                    stats
                        .latencies_ns
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .append(&mut local_lat);
                }
                if unacked > 0 {
                    unacked = 0;
                    req = req.wrapping_add(1);
                    if let Ok(b) = (ClientFrame::AckThrough { req, seq: last_seq }).encode() {
                        let _ = tx.send(Message::Binary(b.into())).await;
                    }
                }
            }
        }
    }
    sender.abort();
    writer.abort();
}

/// Raw WebSocket echo over loopback: the floor any WebSocket relay hop pays on this machine.
async fn echo_reference(args: &Args) -> (f64, f64, f64) {
    let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
        fail("cannot bind echo server");
    };
    let Ok(addr) = listener.local_addr() else {
        fail("echo server address")
    };
    let server = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let Ok(mut ws) =
                    tokio_tungstenite::accept_async_with_config(tcp, Some(ws_config())).await
                else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_binary() && ws.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let deadline = Instant::now() + Duration::from_secs(args.seconds.clamp(1, 5));
    let mut clients = Vec::new();
    for _ in 0..args.echo_connections {
        let body = vec![0u8; args.body_bytes];
        clients.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let Ok((mut ws, _)) = tokio_tungstenite::connect_async_with_config(
                format!("ws://{addr}/"),
                Some(ws_config()),
                true,
            )
            .await
            else {
                return lat;
            };
            while Instant::now() < deadline {
                let t = now_ns();
                if ws.send(Message::Binary(body.clone().into())).await.is_err() {
                    break;
                }
                match ws.next().await {
                    Some(Ok(_)) => lat.push(now_ns().saturating_sub(t)),
                    _ => break,
                }
            }
            lat
        }));
    }
    let start = Instant::now();
    let mut all = Vec::new();
    for c in clients {
        if let Ok(mut l) = c.await {
            all.append(&mut l);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    server.abort();
    all.sort_unstable();
    (
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.len() as f64 / elapsed,
    )
}
