//! The WebSocket server: connection state machine, authentication, request handling, live
//! delivery, limits, health, metrics and graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use ed25519_dalek::{Signature, VerifyingKey};
use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{
    self, ClientFrame, DeliveredEnvelope, DeviceAddress, ErrorCode, IdentityKey, PROTOCOL_VERSION,
    Response, ServerFrame,
};
use crate::clock::Clock;
use crate::config::Config;
use crate::limits::{Rate, RateLimiter};
use crate::metrics::Metrics;
use crate::store::sqlite::SqliteStore;
use crate::store::{
    DirectoryStore, EnqueueOutcome, MailboxStore, NewEnvelope, Registration, StoreError,
    StoreLimits, Subscription,
};

/// Why the relay could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The listen socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The HTTP server failed.
    #[error("server: {0}")]
    Serve(std::io::Error),
}

/// Envelopes read per backlog query: big enough to amortise the query, small enough to start
/// delivering at once.
const BACKLOG_PAGE: usize = 256;

/// Bytes one socket read asks for. tungstenite zero-fills this much before *every* read
/// (also the ones that find nothing), so its 128 KiB default cost more CPU than everything
/// else the relay does per envelope; a frame larger than this is simply read in several calls.
const WS_READ_BUFFER_BYTES: usize = 8 * 1024;

/// Most frames queued for one connection's socket writer (bytes are bounded separately by
/// `Config::outbound_queue_bytes`).
const OUTBOUND_FRAMES: usize = 1024;

/// Close code sent with fatal errors (1008: policy violation; 1001: going away).
const CLOSE_POLICY: u16 = 1008;
const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code after `Unregistered` (1000: normal closure).
const CLOSE_NORMAL: u16 = 1000;
/// Close code for `DeliveryFailed` (1011: internal error).
const CLOSE_INTERNAL: u16 = 1011;

/// Record why a connection must close (the first reason wins) and cancel it; the connection
/// loop sends the matching fatal error and close frame.
fn close_fatally(fatal: &OnceLock<ErrorCode>, cancel: &CancellationToken, code: ErrorCode) {
    if !cancel.is_cancelled() {
        let _ = fatal.set(code);
        cancel.cancel();
    }
}

struct Challenge {
    nonce: [u8; 32],
    expires_at_ms: u64,
}

/// Everything the connections share.
struct Shared {
    config: Config,
    clock: Arc<dyn Clock>,
    mailboxes: Arc<dyn MailboxStore>,
    directory: Arc<dyn DirectoryStore>,
    device_limits: RateLimiter<DeviceAddress>,
    ip_limits: RateLimiter<IpAddr>,
    /// Prekey claims by claiming identity.
    claim_limits: RateLimiter<IdentityKey>,
    /// Prekey claims by claimed identity.
    claim_target_limits: RateLimiter<IdentityKey>,
    /// One token per notice interval per device: `PrekeysLow` notices collapse.
    prekey_notices: RateLimiter<DeviceAddress>,
    metrics: Metrics,
    /// Authenticated connections, for pushes that are not envelopes (prekeys running low).
    controls: Mutex<HashMap<DeviceAddress, (u64, Outbox)>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    next_conn: AtomicU64,
}

/// The metrics listener: its address, handle and server task.
struct MetricsServer {
    addr: SocketAddr,
    handle: axum_server::Handle,
    task: tokio::task::JoinHandle<Result<(), RelayError>>,
}

/// A running relay.
pub struct RunningRelay {
    addr: SocketAddr,
    metrics: Option<MetricsServer>,
    shared: Arc<Shared>,
    store: Arc<SqliteStore>,
    handle: axum_server::Handle,
    server: tokio::task::JoinHandle<Result<(), RelayError>>,
    purger: tokio::task::JoinHandle<()>,
}

impl RunningRelay {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound address of the metrics listener, if `metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.addr)
    }

    /// A token that starts a graceful shutdown when cancelled (wire it to signals).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }

    /// Wait until shutdown is requested, then shut down gracefully.
    pub async fn run_until_shutdown(self) -> Result<(), RelayError> {
        self.shared.shutdown.cancelled().await;
        self.shutdown().await
    }

    /// Graceful shutdown: stop accepting, let every connection finish the commits it has in
    /// flight and answer them, tell clients `ShuttingDown`, then flush and close the store.
    pub async fn shutdown(self) -> Result<(), RelayError> {
        let grace = Duration::from_millis(self.shared.config.shutdown_grace_ms);
        tracing::info!("shutting down");
        self.shared.shutdown.cancel();
        self.handle.graceful_shutdown(Some(grace));
        self.shared.tasks.close();
        if tokio::time::timeout(grace, self.shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the grace period");
        }
        self.purger.abort();
        if let Some(m) = self.metrics {
            m.handle.shutdown();
            let _ = m.task.await;
        }
        let served = match self.server.await {
            Ok(r) => r,
            Err(_) => Ok(()),
        };
        self.shared.mailboxes.close().await?;
        let store = self.store;
        let _ = tokio::task::spawn_blocking(move || store.shutdown()).await;
        tracing::info!("shutdown complete");
        served
    }
}

/// Open the store and serve on `config.listen` until shut down.
pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Result<RunningRelay, RelayError> {
    let store = {
        let (path, durability) = (config.database.clone(), config.durability);
        let limits = StoreLimits {
            queue_cap: config.queue_cap,
            max_devices_per_identity: config.max_devices_per_identity,
            max_one_time_prekeys: config.max_one_time_prekeys,
        };
        tokio::task::spawn_blocking(move || {
            SqliteStore::open_with_limits(&path, durability, limits)
        })
        .await
        .map_err(|_| RelayError::Store(StoreError::Closed))??
    };
    // At most one notice per interval: a bucket of one token refilling once per interval.
    let notice_rate = Rate {
        per_second: 1_000.0 / config.prekey_low_notice_interval_ms.max(1) as f64,
        burst: 1.0,
    };
    let store = Arc::new(store);
    let shared = Arc::new(Shared {
        device_limits: RateLimiter::new(config.device_rate, clock.clone()),
        ip_limits: RateLimiter::new(config.ip_rate, clock.clone()),
        claim_limits: RateLimiter::new(config.claim_rate, clock.clone()),
        claim_target_limits: RateLimiter::new(config.claim_target_rate, clock.clone()),
        prekey_notices: RateLimiter::new(notice_rate, clock.clone()),
        mailboxes: store.clone(),
        directory: store.clone(),
        clock,
        metrics: Metrics::default(),
        controls: Mutex::new(HashMap::new()),
        shutdown: CancellationToken::new(),
        tasks: TaskTracker::new(),
        next_conn: AtomicU64::new(1),
        config,
    });
    // `/metrics` tells traffic patterns: it is served only on its own listener.
    let app = Router::new()
        .route(api::WS_PATH, get(ws_upgrade))
        .route("/healthz", get(healthz))
        .with_state(shared.clone());
    let (listener, addr) = bind(shared.config.listen)?;
    let metrics = match shared.config.metrics_listen {
        Some(listen) => Some(serve_metrics(&shared, listen)?),
        None => None,
    };
    let handle = axum_server::Handle::new();
    let make = app.into_make_service_with_connect_info::<SocketAddr>();
    let server = match (&shared.config.tls_cert, &shared.config.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = tls_config(cert, key)?;
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
                .acceptor(axum_server::accept::NoDelayAcceptor);
            let server = axum_server::from_tcp(listener)
                .acceptor(acceptor)
                .handle(handle.clone());
            tokio::spawn(async move { server.serve(make).await.map_err(RelayError::Serve) })
        }
        _ => {
            let server = axum_server::from_tcp(listener)
                .acceptor(axum_server::accept::NoDelayAcceptor)
                .handle(handle.clone());
            tokio::spawn(async move { server.serve(make).await.map_err(RelayError::Serve) })
        }
    };
    let purger = tokio::spawn(purge_loop(shared.clone()));
    tracing::info!(%addr, tls = shared.config.tls_cert.is_some(), "relay listening");
    Ok(RunningRelay {
        addr,
        metrics,
        shared,
        store,
        handle,
        server,
        purger,
    })
}

/// Bind a non-blocking listener; returns it with its bound address.
fn bind(listen: SocketAddr) -> Result<(std::net::TcpListener, SocketAddr), RelayError> {
    let err = |source| RelayError::Bind {
        addr: listen,
        source,
    };
    let listener = std::net::TcpListener::bind(listen).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    let addr = listener.local_addr().map_err(err)?;
    Ok((listener, addr))
}

/// Serve `/metrics` and `/healthz` over plain HTTP on their own listener, for a scraper on
/// loopback or a private network.
fn serve_metrics(shared: &Arc<Shared>, listen: SocketAddr) -> Result<MetricsServer, RelayError> {
    let (listener, addr) = bind(listen)?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(shared.clone());
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp(listener).handle(handle.clone());
    let task = tokio::spawn(async move {
        server
            .serve(app.into_make_service())
            .await
            .map_err(RelayError::Serve)
    });
    tracing::info!(%addr, "metrics listening");
    Ok(MetricsServer { addr, handle, task })
}

fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<axum_server::tls_rustls::RustlsConfig, RelayError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| RelayError::Tls(format!("certificate {}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| RelayError::Tls(format!("private key {}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RelayError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| RelayError::Tls(e.to_string()))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(
        Arc::new(server),
    ))
}

async fn purge_loop(shared: Arc<Shared>) {
    let period = Duration::from_millis(shared.config.purge_interval_ms.max(1));
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match shared.mailboxes.purge_expired(shared.clock.now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired envelopes deleted"),
            Err(e) => tracing::warn!(error = %e, "purge failed"),
        }
    }
}

async fn healthz(State(shared): State<Arc<Shared>>) -> HttpResponse {
    if shared.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> HttpResponse {
    let depth = i64::try_from(shared.mailboxes.queued_total()).unwrap_or(i64::MAX);
    shared.metrics.queue_depth.set(depth);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.metrics.render(),
    )
        .into_response()
}

async fn ws_upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> HttpResponse {
    if shared.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let ip = peer.ip();
    if shared.ip_limits.check(&crate::limits::ip_key(ip)).is_err() {
        shared.metrics.error(ErrorCode::RateLimited);
        return (StatusCode::TOO_MANY_REQUESTS, "rate limited\n").into_response();
    }
    let max = shared
        .config
        .max_envelope_bytes
        .saturating_add(api::FRAME_OVERHEAD_BYTES);
    // The socket limit is twice the envelope cap, so an oversized envelope still decodes and
    // gets a typed `EnvelopeTooLarge` instead of a dropped connection; and never below what a
    // full prekey upload needs.
    let ws_limit = max.saturating_mul(2).max(api::MIN_MESSAGE_LIMIT_BYTES);
    let tasks = shared.tasks.clone();
    ws.max_message_size(ws_limit)
        .max_frame_size(ws_limit)
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            tasks.track_future(async move { Connection::run(shared, socket, ip).await })
        })
}

type Pending = Pin<Box<dyn Future<Output = ServerFrame> + Send>>;

/// One frame for the socket writer, holding its share of the connection's byte budget until
/// it has been handed to the socket.
type Outgoing = (Message, OwnedSemaphorePermit);

/// A connection's bounded outgoing queue (frames and bytes). Nothing ever blocks on it
/// without a deadline: a client that cannot keep up is disconnected with `TooSlow` instead of
/// stalling its connection loop or pinning memory.
#[derive(Clone)]
struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    bytes: Arc<Semaphore>,
    max_bytes: usize,
    wait: Duration,
    cancel: CancellationToken,
    /// Why the connection must close, set by whoever noticed first.
    fatal: Arc<OnceLock<ErrorCode>>,
}

impl Outbox {
    fn permits(&self, m: &Message) -> u32 {
        let len = match m {
            Message::Binary(b) => b.len(),
            Message::Text(t) => t.len(),
            _ => 0,
        };
        // A frame bigger than the whole budget takes the whole budget (and waits for an
        // empty queue) rather than never fitting.
        u32::try_from(len.clamp(1, self.max_bytes)).unwrap_or(u32::MAX)
    }

    /// The client cannot keep up: close its connection.
    fn overflow(&self) {
        close_fatally(&self.fatal, &self.cancel, ErrorCode::TooSlow);
    }

    /// Queue without waiting; a full queue closes the connection. For the connection loop,
    /// which must keep polling its cancel and deadline branches.
    fn push(&self, m: Message) -> bool {
        let Ok(permit) = self.bytes.clone().try_acquire_many_owned(self.permits(&m)) else {
            self.overflow();
            return false;
        };
        match self.tx.try_send((m, permit)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queue, waiting for room at most the write timeout and never past cancellation. For the
    /// delivery task, whose backlog legitimately outruns the socket for a while.
    async fn push_wait(&self, m: Message) -> bool {
        let n = self.permits(&m);
        let queued = async {
            let permit = self.bytes.clone().acquire_many_owned(n).await.ok()?;
            self.tx.send((m, permit)).await.ok()
        };
        tokio::select! {
            () = self.cancel.cancelled() => false,
            r = tokio::time::timeout(self.wait, queued) => match r {
                Ok(Some(())) => true,
                Ok(None) => false,
                Err(_) => {
                    self.overflow();
                    false
                }
            },
        }
    }
}

/// One WebSocket connection.
struct Connection {
    shared: Arc<Shared>,
    id: u64,
    ip: IpAddr,
    out: Outbox,
    device: Option<DeviceAddress>,
    challenge: Option<Challenge>,
    cancel: CancellationToken,
    /// The `req` of an `Unregister` in flight: reading stops until it is answered.
    unregistering: Option<u32>,
}

fn encode(frame: &ServerFrame) -> Option<Message> {
    match frame.encode() {
        Ok(b) => Some(Message::Binary(b.into())),
        Err(e) => {
            tracing::error!(error = %e, "frame encoding failed");
            None
        }
    }
}

fn error_frame(req: Option<u32>, code: ErrorCode) -> ServerFrame {
    ServerFrame::Error {
        req,
        code,
        retry_after_ms: 0,
    }
}

fn req_of(frame: &ClientFrame) -> Option<u32> {
    match frame {
        ClientFrame::Send { req, .. }
        | ClientFrame::AckIds { req, .. }
        | ClientFrame::AckThrough { req, .. }
        | ClientFrame::ClaimHandle { req, .. }
        | ClientFrame::LookupHandle { req, .. }
        | ClientFrame::PublishPrekeys { req, .. }
        | ClientFrame::ClaimPrekeys { req, .. }
        | ClientFrame::Ping { req }
        | ClientFrame::Unregister { req }
        | ClientFrame::AckEnvelopes { req, .. } => Some(*req),
        _ => None,
    }
}

fn random_nonce() -> Option<[u8; 32]> {
    let mut n = [0u8; 32];
    getrandom::fill(&mut n).ok()?;
    Some(n)
}

struct ConnectionGuard {
    shared: Arc<Shared>,
    device: Option<DeviceAddress>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.shared.metrics.connections.dec();
        if self.device.is_some() {
            self.shared.metrics.authenticated.dec();
        }
    }
}

impl Connection {
    async fn run(shared: Arc<Shared>, socket: WebSocket, ip: IpAddr) {
        let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        shared.metrics.connections.inc();
        let mut guard = ConnectionGuard {
            shared: shared.clone(),
            device: None,
        };
        let (sink, mut stream) = socket.split();
        let (tx, out_rx) = mpsc::channel(OUTBOUND_FRAMES);
        let cancel = shared.shutdown.child_token();
        let write_timeout = Duration::from_millis(shared.config.write_timeout_ms.max(1));
        let max_bytes = shared
            .config
            .outbound_queue_bytes
            .clamp(1, u32::MAX as usize);
        let out = Outbox {
            tx,
            bytes: Arc::new(Semaphore::new(max_bytes)),
            max_bytes,
            wait: write_timeout,
            cancel: cancel.clone(),
            fatal: Arc::new(OnceLock::new()),
        };
        let writer = tokio::spawn(write_loop(
            sink,
            out_rx,
            write_timeout,
            out.cancel.clone(),
            out.fatal.clone(),
        ));
        let mut conn = Connection {
            cancel,
            shared,
            id,
            ip,
            out,
            device: None,
            challenge: None,
            unregistering: None,
        };
        conn.send_challenge();

        let started = tokio::time::Instant::now();
        let handshake = Duration::from_millis(conn.shared.config.handshake_timeout_ms);
        let idle = Duration::from_millis(conn.shared.config.idle_timeout_ms);
        let deadline = tokio::time::sleep_until(started + handshake);
        tokio::pin!(deadline);
        let mut pending: FuturesUnordered<Pending> = FuturesUnordered::new();
        let max_inflight = conn.shared.config.max_inflight_per_connection;
        let mut fatal: Option<ErrorCode> = None;
        let mut unregistered = false;

        loop {
            tokio::select! {
                biased;
                () = conn.cancel.cancelled() => {
                    if let Some(code) = conn.out.fatal.get() {
                        fatal = Some(*code);
                    } else if conn.shared.shutdown.is_cancelled() {
                        fatal = Some(ErrorCode::ShuttingDown);
                    }
                    // Otherwise superseded or delivery failed: the delivery task already told
                    // the client.
                    break;
                }
                Some(frame) = pending.next(), if !pending.is_empty() => {
                    match (&frame, conn.unregistering) {
                        (ServerFrame::Response { body: Response::Unregistered, .. }, _) => {
                            unregistered = true;
                        }
                        // It failed: the device still exists, so the connection carries on.
                        (ServerFrame::Error { req: Some(r), .. }, Some(u)) if *r == u => {
                            conn.unregistering = None;
                        }
                        _ => {}
                    }
                    conn.send(&frame);
                    if unregistered {
                        break;
                    }
                }
                msg = stream.next(), if pending.len() < max_inflight && conn.unregistering.is_none() => {
                    let Some(Ok(msg)) = msg else { break };
                    if conn.device.is_some() {
                        deadline.as_mut().reset(tokio::time::Instant::now() + idle);
                    }
                    match msg {
                        Message::Binary(bytes) => {
                            let was_authed = conn.device.is_some();
                            if let Some(p) = conn.handle_bytes(&bytes).await {
                                pending.push(p);
                            }
                            if !was_authed && let Some(d) = conn.device {
                                guard.device = Some(d);
                                deadline.as_mut().reset(tokio::time::Instant::now() + idle);
                            }
                        }
                        Message::Text(_) => {
                            conn.reply_error(None, ErrorCode::Malformed, 0);
                        }
                        Message::Close(_) => break,
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
                () = &mut deadline => {
                    fatal = Some(if conn.device.is_some() {
                        ErrorCode::IdleTimeout
                    } else {
                        ErrorCode::HandshakeTimeout
                    });
                    break;
                }
            }
        }
        // Every accepted request gets its answer: in-flight commits finish even on shutdown.
        while let Some(frame) = pending.next().await {
            conn.send(&frame);
        }
        if fatal == Some(ErrorCode::TooSlow) {
            // Its queue is full: the client would not read a goodbye anyway.
            conn.shared.metrics.error(ErrorCode::TooSlow);
            tracing::info!(conn = conn.id, "closing a connection that does not keep up");
        } else if let Some(code) = fatal {
            if let Some(d) = conn.device {
                tracing::debug!(device = %d, ?code, "closing connection");
            }
            conn.reply_error(None, code, 0);
            let close_code = match code {
                ErrorCode::ShuttingDown => CLOSE_GOING_AWAY,
                ErrorCode::DeliveryFailed => CLOSE_INTERNAL,
                _ => CLOSE_POLICY,
            };
            conn.out.push(Message::Close(Some(CloseFrame {
                code: close_code,
                reason: format!("{code:?}").into(),
            })));
        } else if unregistered {
            conn.out.push(Message::Close(Some(CloseFrame {
                code: CLOSE_NORMAL,
                reason: "Unregistered".into(),
            })));
        }
        conn.cancel.cancel();
        if let Some(d) = conn.device {
            let mut controls = conn
                .shared
                .controls
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if controls.get(&d).is_some_and(|(id, _)| *id == conn.id) {
                controls.remove(&d);
            }
        }
        let Connection { out, .. } = conn;
        drop(out);
        // The writer ends once every sender (ours and the delivery task's) is gone, or at its
        // write timeout; it is aborted if it somehow outlives both.
        let mut writer = writer;
        if tokio::time::timeout(write_timeout.saturating_mul(2), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    }

    /// Queue a frame without waiting (a client that lets its queue fill is closed).
    fn send(&self, frame: &ServerFrame) {
        if let ServerFrame::Error { code, .. } = frame {
            self.shared.metrics.error(*code);
        }
        if let Some(m) = encode(frame) {
            self.out.push(m);
        }
    }

    fn reply_error(&self, req: Option<u32>, code: ErrorCode, retry_after_ms: u32) {
        self.send(&ServerFrame::Error {
            req,
            code,
            retry_after_ms,
        });
    }

    fn send_challenge(&mut self) {
        let Some(nonce) = random_nonce() else {
            self.reply_error(None, ErrorCode::Internal, 0);
            return;
        };
        let ttl = self.shared.config.challenge_ttl_ms;
        self.challenge = Some(Challenge {
            nonce,
            expires_at_ms: self.shared.clock.now_ms().saturating_add(ttl),
        });
        self.send(&ServerFrame::Challenge {
            version: PROTOCOL_VERSION,
            nonce,
            expires_in_ms: u32::try_from(ttl).unwrap_or(u32::MAX),
        });
    }

    /// Handle one binary frame. Quick answers are sent here; anything waiting on the store
    /// comes back as a future so the connection keeps reading (pipelining).
    async fn handle_bytes(&mut self, bytes: &[u8]) -> Option<Pending> {
        let frame = match ClientFrame::decode(bytes) {
            Ok(f) => f,
            Err(_) => {
                self.reply_error(None, ErrorCode::Malformed, 0);
                return None;
            }
        };
        let req = req_of(&frame);
        if let Err(wait) = self.shared.ip_limits.check(&crate::limits::ip_key(self.ip)) {
            self.reply_error(req, ErrorCode::RateLimited, wait);
            return None;
        }
        match (frame, self.device) {
            (ClientFrame::Ping { req }, _) => {
                self.send(&ServerFrame::Response {
                    req,
                    body: Response::Pong,
                });
                None
            }
            (ClientFrame::NewChallenge, None) => {
                self.send_challenge();
                None
            }
            (
                ClientFrame::Authenticate {
                    version,
                    nonce,
                    device,
                    register,
                    signature,
                },
                None,
            ) => {
                self.authenticate(version, nonce, device, register, &signature)
                    .await;
                None
            }
            (ClientFrame::Authenticate { .. } | ClientFrame::NewChallenge, Some(_)) => {
                self.reply_error(None, ErrorCode::AlreadyAuthenticated, 0);
                None
            }
            (_, None) => {
                self.reply_error(req, ErrorCode::NotAuthenticated, 0);
                None
            }
            (frame, Some(device)) => {
                if let Err(wait) = self.shared.device_limits.check(&device) {
                    self.reply_error(req, ErrorCode::RateLimited, wait);
                    return None;
                }
                self.request(frame, device).await
            }
        }
    }

    async fn authenticate(
        &mut self,
        version: u16,
        nonce: [u8; 32],
        device: DeviceAddress,
        register: bool,
        signature: &[u8],
    ) {
        // Single use: whatever happens next, this challenge is spent.
        let challenge = self.challenge.take();
        if version != PROTOCOL_VERSION {
            self.reply_error(None, ErrorCode::UnsupportedVersion, 0);
            return;
        }
        let now = self.shared.clock.now_ms();
        match challenge {
            Some(c) if c.nonce == nonce && now <= c.expires_at_ms => {}
            _ => {
                tracing::info!(device = %device, "authentication refused: challenge invalid");
                self.reply_error(None, ErrorCode::ChallengeInvalid, 0);
                return;
            }
        }
        let verified = VerifyingKey::from_bytes(&device.identity_key.0)
            .ok()
            .and_then(|vk| {
                let sig = Signature::from_slice(signature).ok()?;
                vk.verify_strict(&api::auth_message(&nonce, &device, register), &sig)
                    .ok()
            });
        if verified.is_none() {
            tracing::info!(device = %device, "authentication refused: bad signature");
            self.reply_error(None, ErrorCode::BadSignature, 0);
            return;
        }
        let known = if register {
            match self.shared.directory.register_device(device, now).await {
                Ok(Registration::TooManyDevices) => {
                    tracing::info!(device = %device, "registration refused: too many devices");
                    self.reply_error(None, ErrorCode::TooManyDevices, 0);
                    return;
                }
                Ok(_) => Ok(true),
                Err(e) => Err(e),
            }
        } else {
            self.shared.directory.device_exists(device).await
        };
        match known {
            Ok(true) => {}
            Ok(false) => {
                self.reply_error(None, ErrorCode::UnknownDevice, 0);
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "device lookup failed");
                self.reply_error(None, ErrorCode::Internal, 0);
                return;
            }
        }
        let remaining = self
            .shared
            .directory
            .one_time_prekey_count(device)
            .await
            .unwrap_or(0);
        // Subscribe before reading the backlog: nothing committed in between is missed.
        let subscription = self.shared.mailboxes.subscribe(device);
        self.device = Some(device);
        self.shared.metrics.authenticated.inc();
        self.shared
            .controls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(device, (self.id, self.out.clone()));
        tracing::info!(device = %device, register, "device authenticated");
        self.send(&ServerFrame::Authenticated {
            one_time_prekeys: remaining,
            replenish: remaining < self.shared.config.prekey_low_threshold,
        });
        let delivery = Delivery {
            shared: self.shared.clone(),
            device,
            out: self.out.clone(),
            cancel: self.cancel.clone(),
            last_seq: 0,
        };
        tokio::spawn(delivery.run(subscription));
    }

    async fn request(&mut self, frame: ClientFrame, me: DeviceAddress) -> Option<Pending> {
        let shared = self.shared.clone();
        match frame {
            ClientFrame::Send { req, id, to, body } => {
                if body.len() > shared.config.max_envelope_bytes {
                    self.reply_error(Some(req), ErrorCode::EnvelopeTooLarge, 0);
                    return None;
                }
                let now = shared.clock.now_ms();
                let received = Instant::now();
                // The enqueue call fixes this envelope's place in the order right here.
                let fut = shared.mailboxes.enqueue(NewEnvelope {
                    id,
                    from: me,
                    to,
                    received_at_ms: now,
                    expires_at_ms: now.saturating_add(shared.config.envelope_ttl_ms),
                    body,
                });
                Some(Box::pin(async move {
                    let outcome = fut.await;
                    shared
                        .metrics
                        .commit_latency
                        .observe(received.elapsed().as_secs_f64());
                    match outcome {
                        Ok(EnqueueOutcome::Stored) => {
                            shared.metrics.envelopes_in.inc();
                            ServerFrame::Response {
                                req,
                                body: Response::Sent { duplicate: false },
                            }
                        }
                        Ok(EnqueueOutcome::Duplicate) => ServerFrame::Response {
                            req,
                            body: Response::Sent { duplicate: true },
                        },
                        Ok(EnqueueOutcome::QueueFull) => {
                            error_frame(Some(req), ErrorCode::QueueFull)
                        }
                        Ok(EnqueueOutcome::UnknownRecipient) => {
                            error_frame(Some(req), ErrorCode::UnknownRecipient)
                        }
                        Err(e) => store_error(req, &e),
                    }
                }))
            }
            ClientFrame::AckIds { req, ids } => {
                if ids.len() > api::MAX_ACK_IDS {
                    self.reply_error(Some(req), ErrorCode::Malformed, 0);
                    return None;
                }
                let fut = shared.mailboxes.ack_ids(me, ids);
                Some(Box::pin(async move { acked(&shared, req, fut.await) }))
            }
            ClientFrame::AckEnvelopes { req, envelopes } => {
                if envelopes.len() > api::MAX_ACK_IDS {
                    self.reply_error(Some(req), ErrorCode::Malformed, 0);
                    return None;
                }
                let fut = shared.mailboxes.ack_envelopes(me, envelopes);
                Some(Box::pin(async move { acked(&shared, req, fut.await) }))
            }
            ClientFrame::Unregister { req } => {
                // Nothing more is read from this connection (a request after this one could
                // otherwise recreate state for the deleted device, e.g. prekeys).
                self.unregistering = Some(req);
                let fut = shared.directory.unregister_device(me);
                Some(Box::pin(async move {
                    match fut.await {
                        Ok(u) => {
                            tracing::info!(
                                device = %me,
                                envelopes = u.envelopes_deleted,
                                handle_released = u.handle_released,
                                "device unregistered"
                            );
                            ServerFrame::Response {
                                req,
                                body: Response::Unregistered,
                            }
                        }
                        Err(e) => store_error(req, &e),
                    }
                }))
            }
            ClientFrame::AckThrough { req, seq } => {
                let fut = shared.mailboxes.ack_through(me, seq);
                Some(Box::pin(async move { acked(&shared, req, fut.await) }))
            }
            ClientFrame::ClaimHandle { req, handle } => {
                let Some(handle) = api::normalize_handle(&handle) else {
                    self.reply_error(Some(req), ErrorCode::HandleInvalid, 0);
                    return None;
                };
                let fut = shared.directory.claim_handle(handle, me.identity_key);
                Some(Box::pin(async move {
                    match fut.await {
                        Ok(true) => ServerFrame::Response {
                            req,
                            body: Response::HandleClaimed,
                        },
                        Ok(false) => error_frame(Some(req), ErrorCode::HandleTaken),
                        Err(e) => store_error(req, &e),
                    }
                }))
            }
            ClientFrame::LookupHandle { req, handle } => {
                let Some(handle) = api::normalize_handle(&handle) else {
                    self.reply_error(Some(req), ErrorCode::HandleInvalid, 0);
                    return None;
                };
                Some(Box::pin(async move {
                    let owner = match shared.directory.lookup_handle(handle).await {
                        Ok(Some(k)) => k,
                        Ok(None) => return error_frame(Some(req), ErrorCode::NotFound),
                        Err(e) => return store_error(req, &e),
                    };
                    match shared.directory.devices(owner).await {
                        Ok(devices) => ServerFrame::Response {
                            req,
                            body: Response::Handle {
                                identity_key: owner,
                                devices,
                            },
                        },
                        Err(e) => store_error(req, &e),
                    }
                }))
            }
            ClientFrame::PublishPrekeys { req, upload } => {
                let too_big = upload
                    .signed
                    .iter()
                    .chain(&upload.last_resort)
                    .chain(&upload.one_time)
                    .any(|k| k.key.len() > api::MAX_PREKEY_BYTES);
                if too_big || upload.one_time.len() > api::MAX_PREKEYS_PER_UPLOAD {
                    self.reply_error(Some(req), ErrorCode::PrekeysInvalid, 0);
                    return None;
                }
                let fut = shared.directory.publish_prekeys(me, upload);
                Some(Box::pin(async move {
                    match fut.await {
                        Ok(n) => ServerFrame::Response {
                            req,
                            body: Response::PrekeysPublished {
                                one_time_remaining: n,
                            },
                        },
                        Err(e) => store_error(req, &e),
                    }
                }))
            }
            ClientFrame::ClaimPrekeys {
                req,
                identity_key,
                device_id,
            } => {
                // Each claim may consume one-time keys and ask their owner for new ones: it is
                // charged to the claimer and to the claimed identity before anything is read.
                let limited = shared
                    .claim_limits
                    .check(&me.identity_key)
                    .and_then(|()| shared.claim_target_limits.check(&identity_key));
                if let Err(wait) = limited {
                    self.reply_error(Some(req), ErrorCode::RateLimited, wait);
                    return None;
                }
                let fut = shared.directory.claim_prekeys(identity_key, device_id);
                Some(Box::pin(async move {
                    let claimed = match fut.await {
                        Ok(c) if c.is_empty() => {
                            return error_frame(Some(req), ErrorCode::NotFound);
                        }
                        Ok(c) => c,
                        Err(e) => return store_error(req, &e),
                    };
                    let mut bundles = Vec::with_capacity(claimed.len());
                    for (bundle, remaining) in claimed {
                        if remaining < shared.config.prekey_low_threshold {
                            let owner = DeviceAddress {
                                identity_key,
                                device_id: bundle.device_id,
                            };
                            // Claims in a row send one notice per interval, not one each.
                            if shared.prekey_notices.check(&owner).is_ok() {
                                notify_prekeys_low(&shared, owner, remaining);
                            }
                        }
                        bundles.push(bundle);
                    }
                    ServerFrame::Response {
                        req,
                        body: Response::Prekeys { bundles },
                    }
                }))
            }
            ClientFrame::Ping { .. }
            | ClientFrame::Authenticate { .. }
            | ClientFrame::NewChallenge => None,
        }
    }
}

fn acked(shared: &Shared, req: u32, r: Result<u64, StoreError>) -> ServerFrame {
    match r {
        Ok(n) => {
            shared.metrics.envelopes_acked.inc_by(n);
            ServerFrame::Response {
                req,
                body: Response::Acked {
                    deleted: u32::try_from(n).unwrap_or(u32::MAX),
                },
            }
        }
        Err(e) => store_error(req, &e),
    }
}

fn store_error(req: u32, e: &StoreError) -> ServerFrame {
    match e {
        StoreError::Closed => error_frame(Some(req), ErrorCode::ShuttingDown),
        other => {
            tracing::error!(error = %other, "store request failed");
            error_frame(Some(req), ErrorCode::Internal)
        }
    }
}

fn notify_prekeys_low(shared: &Shared, owner: DeviceAddress, remaining: u32) {
    let controls = shared.controls.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, out)) = controls.get(&owner)
        && let Some(m) = encode(&ServerFrame::PrekeysLow { remaining })
    {
        // Never waits; a device whose queue is full is closed as too slow and learns its count
        // on its next login.
        out.push(m);
    }
}

/// Copies the outgoing queue to the socket. Every feed and flush has a deadline: a peer that
/// stops reading fills its TCP window, the write times out, and the connection is closed as
/// `TooSlow` instead of holding the writer (and the queue's memory) forever.
async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Outgoing>,
    limit: Duration,
    cancel: CancellationToken,
    fatal: Arc<OnceLock<ErrorCode>>,
) {
    use tokio::time::timeout;
    let slow = || close_fatally(&fatal, &cancel, ErrorCode::TooSlow);
    while let Some((msg, permit)) = rx.recv().await {
        let closing = matches!(msg, Message::Close(_));
        match timeout(limit, sink.feed(msg)).await {
            Ok(Ok(())) => drop(permit),
            Ok(Err(_)) => return,
            Err(_) => return slow(),
        }
        // Batch whatever else is ready into one flush (one syscall under load).
        while !closing && let Ok((m, permit)) = rx.try_recv() {
            let close = matches!(m, Message::Close(_));
            match timeout(limit, sink.feed(m)).await {
                Ok(Ok(())) => drop(permit),
                Ok(Err(_)) => return,
                Err(_) => return slow(),
            }
            if close {
                let _ = timeout(limit, sink.flush()).await;
                return;
            }
        }
        match timeout(limit, sink.flush()).await {
            Ok(Ok(())) if !closing => {}
            Ok(_) => return,
            Err(_) => return slow(),
        }
    }
    let _ = timeout(limit, sink.close()).await;
}

/// Pushes one device's mailbox to its connection: the backlog in `seq` order, then live
/// envelopes as they commit.
struct Delivery {
    shared: Arc<Shared>,
    device: DeviceAddress,
    out: Outbox,
    cancel: CancellationToken,
    last_seq: u64,
}

impl Delivery {
    async fn run(mut self, mut sub: Subscription) {
        if !self.catch_up().await {
            return;
        }
        if let Some(m) = encode(&ServerFrame::BacklogDone)
            && !self.out.push_wait(m).await
        {
            return;
        }
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = sub.lag.wait() => {
                    if sub.lag.take() && !self.recover(&mut sub).await {
                        return;
                    }
                }
                env = sub.envelopes.recv() => {
                    let Some(env) = env else {
                        // A newer connection of this device took the subscription.
                        tracing::info!(device = %self.device, "connection superseded");
                        if let Some(m) = encode(&error_frame(None, ErrorCode::Superseded)) {
                            self.out.push(m);
                        }
                        self.cancel.cancel();
                        return;
                    };
                    // A raised lag flag means something before this envelope was dropped.
                    if sub.lag.take() {
                        if !self.recover(&mut sub).await {
                            return;
                        }
                    } else if env.seq > self.last_seq && !self.deliver(&env).await {
                        return;
                    }
                }
            }
        }
    }

    async fn recover(&mut self, sub: &mut Subscription) -> bool {
        self.shared.metrics.delivery_catchups.inc();
        while sub.envelopes.try_recv().is_ok() {}
        self.catch_up().await
    }

    /// Send everything after `last_seq` from the store. Returns false if the connection is gone.
    async fn catch_up(&mut self) -> bool {
        loop {
            let now = self.shared.clock.now_ms();
            match self
                .shared
                .mailboxes
                .backlog(self.device, self.last_seq, BACKLOG_PAGE, now)
                .await
            {
                Ok(page) if page.is_empty() => return true,
                Ok(page) => {
                    for env in &page {
                        if !self.deliver(env).await {
                            return false;
                        }
                    }
                }
                Err(e) => {
                    // Without a working mailbox read this connection would stay up and
                    // silently receive nothing more: close it so the client reconnects and
                    // resumes from its backlog (acks are by id/seq, nothing is lost).
                    tracing::error!(error = %e, device = %self.device, "backlog read failed");
                    close_fatally(&self.out.fatal, &self.cancel, ErrorCode::DeliveryFailed);
                    return false;
                }
            }
        }
    }

    async fn deliver(&mut self, env: &crate::store::StoredEnvelope) -> bool {
        self.last_seq = env.seq;
        let frame = ServerFrame::Envelope(DeliveredEnvelope {
            seq: env.seq,
            id: env.envelope.id,
            from: env.envelope.from,
            received_at_ms: env.envelope.received_at_ms,
            body: env.envelope.body.clone(),
        });
        let Some(m) = encode(&frame) else { return true };
        if !self.out.push_wait(m).await {
            return false;
        }
        self.shared.metrics.envelopes_out.inc();
        true
    }
}
