//! A small real WebSocket client for the relay's integration tests.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use latch_relay::api::{
    ClientFrame, DeliveredEnvelope, DeviceAddress, EnvelopeId, ErrorCode, IdentityKey,
    PROTOCOL_VERSION, Response, ServerFrame, auth_message,
};
use latch_relay::clock::ManualClock;
use latch_relay::config::Config;
use latch_relay::server::RunningRelay;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Every wait in these tests is for a real event, bounded by this.
pub const WAIT: Duration = Duration::from_secs(20);

pub const T0: u64 = 1_800_000_000_000;

pub struct TestRelay {
    pub relay: RunningRelay,
    pub clock: ManualClock,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    /// The metrics listener (tests turn it on; it is off by default).
    pub metrics_addr: SocketAddr,
}

pub fn test_config(dir: &std::path::Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        database: dir.join("relay.db"),
        durability: latch_relay::store::sqlite::Durability::Normal,
        ..Config::default()
    }
}

pub async fn start(tweak: impl FnOnce(&mut Config)) -> TestRelay {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    tweak(&mut config);
    let clock = ManualClock::new(T0);
    let relay = latch_relay::server::start(config, Arc::new(clock.clone()))
        .await
        .unwrap();
    let addr = relay.local_addr();
    let metrics_addr = relay.metrics_addr().expect("tests serve metrics");
    TestRelay {
        relay,
        clock,
        dir,
        addr,
        metrics_addr,
    }
}

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub fn address(key: &SigningKey, device_id: u32) -> DeviceAddress {
    DeviceAddress {
        identity_key: IdentityKey(key.verifying_key().to_bytes()),
        device_id,
    }
}

pub fn random_id() -> EnvelopeId {
    EnvelopeId(rand::random())
}

pub struct Client<S = MaybeTlsStream<tokio::net::TcpStream>> {
    pub ws: WebSocketStream<S>,
    pub challenge: [u8; 32],
    pub device: Option<DeviceAddress>,
    next_req: u32,
    buffered: VecDeque<ServerFrame>,
}

impl Client {
    /// Connect and read the challenge.
    pub async fn connect(addr: SocketAddr) -> Self {
        let url = format!("ws://{addr}/v1/ws");
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect timed out")
            .expect("connect failed");
        Self::from_ws(ws).await
    }

    /// Connect, register or log in, and wait for `Authenticated`.
    pub async fn login(addr: SocketAddr, key: &SigningKey, device_id: u32, register: bool) -> Self {
        let mut c = Self::connect(addr).await;
        c.authenticate(key, device_id, register).await;
        match c.recv().await {
            ServerFrame::Authenticated { .. } => {}
            other => panic!("expected Authenticated, got {other:?}"),
        }
        c.device = Some(address(key, device_id));
        c
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub async fn from_ws(ws: WebSocketStream<S>) -> Self {
        let mut c = Self {
            ws,
            challenge: [0; 32],
            device: None,
            next_req: 1,
            buffered: VecDeque::new(),
        };
        match c.recv().await {
            ServerFrame::Challenge { version, nonce, .. } => {
                assert_eq!(version, PROTOCOL_VERSION);
                c.challenge = nonce;
            }
            other => panic!("expected Challenge, got {other:?}"),
        }
        c
    }

    pub fn auth_frame(&self, key: &SigningKey, device_id: u32, register: bool) -> ClientFrame {
        let device = address(key, device_id);
        let signature = key
            .sign(&auth_message(&self.challenge, &device, register))
            .to_bytes()
            .to_vec();
        ClientFrame::Authenticate {
            version: PROTOCOL_VERSION,
            nonce: self.challenge,
            device,
            register,
            signature,
        }
    }

    pub async fn authenticate(&mut self, key: &SigningKey, device_id: u32, register: bool) {
        let f = self.auth_frame(key, device_id, register);
        self.send(&f).await;
    }

    pub async fn send(&mut self, f: &ClientFrame) {
        self.send_raw(Message::Binary(f.encode().unwrap().into()))
            .await;
    }

    pub async fn send_raw(&mut self, m: Message) {
        tokio::time::timeout(WAIT, self.ws.send(m))
            .await
            .expect("send timed out")
            .expect("send failed");
    }

    pub fn req(&mut self) -> u32 {
        self.next_req += 1;
        self.next_req
    }

    /// The next frame (buffered first).
    pub async fn recv(&mut self) -> ServerFrame {
        if let Some(f) = self.buffered.pop_front() {
            return f;
        }
        self.recv_wire().await.expect("connection closed")
    }

    /// The next frame off the socket, or `None` once it is closed.
    pub async fn recv_wire(&mut self) -> Option<ServerFrame> {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("no frame within the wait");
            match m {
                Some(Ok(Message::Binary(b))) => {
                    return Some(ServerFrame::decode(&b).expect("relay sent a bad frame"));
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Send a request and wait for its answer, keeping other frames for later.
    pub async fn call(&mut self, f: ClientFrame) -> Result<Response, ErrorCode> {
        let req = match &f {
            ClientFrame::Send { req, .. }
            | ClientFrame::AckIds { req, .. }
            | ClientFrame::AckThrough { req, .. }
            | ClientFrame::ClaimHandle { req, .. }
            | ClientFrame::LookupHandle { req, .. }
            | ClientFrame::PublishPrekeys { req, .. }
            | ClientFrame::ClaimPrekeys { req, .. }
            | ClientFrame::Ping { req }
            | ClientFrame::Unregister { req }
            | ClientFrame::AckEnvelopes { req, .. } => *req,
            _ => panic!("not a request"),
        };
        self.send(&f).await;
        loop {
            let frame = self
                .recv_wire()
                .await
                .expect("closed while waiting for an answer");
            match frame {
                ServerFrame::Response { req: r, body } if r == req => return Ok(body),
                ServerFrame::Error {
                    req: Some(r), code, ..
                } if r == req => return Err(code),
                other => self.buffered.push_back(other),
            }
        }
    }

    /// Frames that arrived while waiting for answers and were kept for later.
    pub fn take_buffered(&mut self) -> Vec<ServerFrame> {
        self.buffered.drain(..).collect()
    }

    pub async fn ping(&mut self) {
        let req = self.req();
        assert_eq!(
            self.call(ClientFrame::Ping { req }).await,
            Ok(Response::Pong)
        );
    }

    pub async fn send_to(
        &mut self,
        to: DeviceAddress,
        id: EnvelopeId,
        body: &[u8],
    ) -> Result<Response, ErrorCode> {
        let req = self.req();
        self.call(ClientFrame::Send {
            req,
            id,
            to,
            body: body.to_vec(),
        })
        .await
    }

    /// Next delivered envelope (skipping nothing else: other frames are an error here).
    pub async fn envelope(&mut self) -> DeliveredEnvelope {
        match self.recv().await {
            ServerFrame::Envelope(e) => e,
            other => panic!("expected an envelope, got {other:?}"),
        }
    }

    /// Envelopes until `BacklogDone`.
    pub async fn backlog(&mut self) -> Vec<DeliveredEnvelope> {
        let mut out = Vec::new();
        loop {
            match self.recv().await {
                ServerFrame::Envelope(e) => out.push(e),
                ServerFrame::BacklogDone => return out,
                other => panic!("unexpected {other:?} in backlog"),
            }
        }
    }

    /// The next unsolicited error (fatal ones come with `req: None`).
    pub async fn error(&mut self) -> (Option<u32>, ErrorCode, u32) {
        loop {
            match self.recv().await {
                ServerFrame::Error {
                    req,
                    code,
                    retry_after_ms,
                } => return (req, code, retry_after_ms),
                ServerFrame::Envelope(_)
                | ServerFrame::BacklogDone
                | ServerFrame::PrekeysLow { .. } => continue,
                other => panic!("expected an error, got {other:?}"),
            }
        }
    }
}

/// Minimal HTTP/1.1 GET over loopback, for /healthz and /metrics.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
