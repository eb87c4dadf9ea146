//! One authenticated WebSocket connection to the relay: requests with numbered answers, and a
//! channel of what the relay pushes (envelopes, backlog end, prekey warnings).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use latch_protocol::IdentityKeyPair;
use latch_relay::api::{
    self, ClientFrame, DeliveredEnvelope, DeviceAddress, IdentityKey, Response, ServerFrame,
};
use tokio::sync::{Mutex, mpsc, oneshot};

/// Why the relay refused a request, as the relay's wire types name it.
pub use latch_relay::api::ErrorCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// How long a connection attempt, the handshake, or one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest frame accepted from the relay: an envelope at the relay's cap plus framing, or a
/// prekey answer (several devices' bundles).
const MAX_SERVER_FRAME: usize = api::MIN_MESSAGE_LIMIT_BYTES + api::FRAME_OVERHEAD_BYTES;

/// Envelope bytes received but not yet taken by the engine. The reader never waits for the
/// engine (answers to requests must keep flowing while the engine works through a backlog);
/// past this much it closes the connection instead, and the relay delivers the rest again
/// after reconnecting, since nothing beyond what was processed is acknowledged.
const MAX_BUFFERED_BYTES: usize = 64 * 1024 * 1024;

/// What went wrong talking to the relay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The URL is not a `ws://` or `wss://` URL.
    #[error("relay URL must start with ws:// or wss://")]
    BadUrl,
    /// The relay could not be reached or the connection dropped.
    #[error("relay unreachable or connection lost")]
    Unreachable,
    /// The relay did not answer in time.
    #[error("relay did not answer in time")]
    Timeout,
    /// The relay refused the request.
    #[error("relay refused the request: {0:?}")]
    Refused(ErrorCode),
    /// The relay sent a frame that does not fit the protocol.
    #[error("relay sent an unexpected or malformed frame")]
    Protocol,
}

/// Something the relay pushed.
#[derive(Debug)]
pub enum Inbound {
    /// An envelope for this device.
    Envelope(DeliveredEnvelope),
    /// The backlog queued while offline has been delivered.
    BacklogDone,
    /// Few one-time prekeys are left on the relay.
    PrekeysLow {
        /// How many the relay says it still holds (a hint: a hostile relay can lie).
        remaining: u32,
    },
}

type Pending = Arc<Mutex<HashMap<u32, oneshot::Sender<Result<Response, ErrorCode>>>>>;

/// What the relay pushed, in order, as the engine takes it.
#[derive(Debug)]
pub struct InboundQueue {
    rx: mpsc::UnboundedReceiver<(Inbound, usize)>,
    buffered: Arc<AtomicUsize>,
}

impl InboundQueue {
    /// The next pushed item; `None` once the connection is gone and everything was taken.
    pub async fn recv(&mut self) -> Option<Inbound> {
        let (item, size) = self.rx.recv().await?;
        self.buffered.fetch_sub(size, Ordering::Relaxed);
        Some(item)
    }

    /// Whether nothing is waiting right now.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

/// A live, authenticated connection. Cheap to clone; [`Relay::close`] ends it (the relay
/// ending it, or a fatal error, ends it too, and [`InboundQueue::recv`] then returns `None`).
#[derive(Clone)]
pub struct Relay {
    out: mpsc::Sender<WsMessage>,
    pending: Pending,
    next_req: Arc<AtomicU32>,
    /// Whether the relay asked for more one-time prekeys when we signed in.
    pub replenish: bool,
    /// How many one-time prekeys of ours the relay said it holds when we signed in.
    pub one_time_prekeys: u32,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").finish_non_exhaustive()
    }
}

/// This device's address on the relay.
pub fn device_address(identity: &IdentityKeyPair, device_id: u32) -> DeviceAddress {
    DeviceAddress {
        identity_key: IdentityKey(identity.public().signing_key_bytes()),
        device_id,
    }
}

fn decode(msg: WsMessage) -> Result<Option<ServerFrame>, RelayError> {
    match msg {
        WsMessage::Binary(b) => ServerFrame::decode(&b)
            .map(Some)
            .map_err(|_| RelayError::Protocol),
        WsMessage::Close(_) => Err(RelayError::Unreachable),
        _ => Ok(None),
    }
}

impl Relay {
    /// Connects to `url`, answers the challenge with the identity key, and starts the reader.
    /// With `register`, an unknown device is created; without, it is refused.
    ///
    /// # Errors
    /// [`RelayError`]: unreachable, timed out, or refused (bad signature, unknown device...).
    pub async fn connect(
        url: &str,
        identity: &IdentityKeyPair,
        device_id: u32,
        register: bool,
    ) -> Result<(Self, InboundQueue), RelayError> {
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(RelayError::BadUrl);
        }
        let endpoint = format!("{}{}", url.trim_end_matches('/'), api::WS_PATH);
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_SERVER_FRAME))
            .max_frame_size(Some(MAX_SERVER_FRAME));
        let (mut ws, _) = tokio::time::timeout(
            REQUEST_TIMEOUT,
            tokio_tungstenite::connect_async_with_config(endpoint, Some(config), false),
        )
        .await
        .map_err(|_| RelayError::Timeout)?
        .map_err(|_| RelayError::Unreachable)?;

        let device = device_address(identity, device_id);
        let handshake = async {
            let mut authenticated = None;
            while authenticated.is_none() {
                let msg = ws.next().await.ok_or(RelayError::Unreachable)?;
                let msg = msg.map_err(|_| RelayError::Unreachable)?;
                match decode(msg)? {
                    Some(ServerFrame::Challenge { nonce, .. }) => {
                        let signature =
                            identity.sign(&api::auth_message(&nonce, &device, register));
                        let frame = ClientFrame::Authenticate {
                            version: api::PROTOCOL_VERSION,
                            nonce,
                            device,
                            register,
                            signature: signature.to_vec(),
                        };
                        let bytes = frame.encode().map_err(|_| RelayError::Protocol)?;
                        ws.send(WsMessage::Binary(bytes.into()))
                            .await
                            .map_err(|_| RelayError::Unreachable)?;
                    }
                    Some(ServerFrame::Authenticated {
                        replenish,
                        one_time_prekeys,
                    }) => {
                        authenticated = Some((replenish, one_time_prekeys));
                    }
                    Some(ServerFrame::Error { code, .. }) => return Err(RelayError::Refused(code)),
                    Some(_) => return Err(RelayError::Protocol),
                    None => {}
                }
            }
            Ok(authenticated.unwrap_or((false, 0)))
        };
        let (replenish, one_time_prekeys) = tokio::time::timeout(REQUEST_TIMEOUT, handshake)
            .await
            .map_err(|_| RelayError::Timeout)??;

        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::channel::<WsMessage>(256);
        let (inbound_tx, inbound_rx) = mpsc::unbounded_channel::<(Inbound, usize)>();
        let buffered = Arc::new(AtomicUsize::new(0));
        let reader_buffered = buffered.clone();
        let pending: Pending = Arc::default();

        tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                let closing = matches!(msg, WsMessage::Close(_));
                if sink.send(msg).await.is_err() || closing {
                    break;
                }
            }
            // Dropping the receiver marks every `Relay` clone closed.
            drop(out_rx);
            let _ = sink.close().await;
        });

        let reader_pending = pending.clone();
        let closer = out.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let frame = match decode(msg) {
                    Ok(Some(f)) => f,
                    Ok(None) => continue,
                    Err(RelayError::Protocol) => {
                        tracing::warn!("relay sent a malformed frame; ignored");
                        continue;
                    }
                    Err(_) => break,
                };
                let push = match frame {
                    ServerFrame::Envelope(e) => {
                        let size = e.body.len();
                        let total = reader_buffered.fetch_add(size, Ordering::Relaxed) + size;
                        if total > MAX_BUFFERED_BYTES {
                            tracing::warn!("too many envelopes waiting; reconnecting to resume");
                            break;
                        }
                        Some((Inbound::Envelope(e), size))
                    }
                    ServerFrame::BacklogDone => Some((Inbound::BacklogDone, 0)),
                    ServerFrame::PrekeysLow { remaining } => {
                        Some((Inbound::PrekeysLow { remaining }, 0))
                    }
                    ServerFrame::Response { req, body } => {
                        if let Some(tx) = reader_pending.lock().await.remove(&req) {
                            let _ = tx.send(Ok(body));
                        }
                        None
                    }
                    ServerFrame::Error {
                        req: Some(req),
                        code,
                        ..
                    } => {
                        if let Some(tx) = reader_pending.lock().await.remove(&req) {
                            let _ = tx.send(Err(code));
                        }
                        None
                    }
                    ServerFrame::Error { code, .. } => {
                        tracing::warn!(?code, "relay reported an error");
                        if code.is_fatal() {
                            break;
                        }
                        None
                    }
                    _ => None,
                };
                if let Some(p) = push
                    && inbound_tx.send(p).is_err()
                {
                    break;
                }
            }
            // Dropping the senders fails every request still waiting.
            reader_pending.lock().await.clear();
            let _ = closer.send(WsMessage::Close(None)).await;
        });

        Ok((
            Self {
                out,
                pending,
                next_req: Arc::new(AtomicU32::new(1)),
                replenish,
                one_time_prekeys,
            },
            InboundQueue {
                rx: inbound_rx,
                buffered,
            },
        ))
    }

    /// Sends one request and waits for its answer.
    ///
    /// # Errors
    /// [`RelayError::Refused`] with the relay's code, or a connection error.
    pub async fn request(
        &self,
        make: impl FnOnce(u32) -> ClientFrame,
    ) -> Result<Response, RelayError> {
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        let bytes = make(req).encode().map_err(|_| RelayError::Protocol)?;
        let (tx, rx) = oneshot::channel();
        self.pending.lock().await.insert(req, tx);
        if self
            .out
            .send(WsMessage::Binary(bytes.into()))
            .await
            .is_err()
        {
            self.pending.lock().await.remove(&req);
            return Err(RelayError::Unreachable);
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(Ok(body))) => Ok(body),
            Ok(Ok(Err(code))) => Err(RelayError::Refused(code)),
            Ok(Err(_)) => Err(RelayError::Unreachable),
            Err(_) => {
                self.pending.lock().await.remove(&req);
                Err(RelayError::Timeout)
            }
        }
    }

    /// Sends a request without waiting for its answer (acknowledgements: waiting would hold
    /// up the envelopes behind them; a lost one only means a redelivery, which is dropped).
    ///
    /// # Errors
    /// [`RelayError::Unreachable`] when the connection is gone.
    pub async fn send_only(&self, make: impl FnOnce(u32) -> ClientFrame) -> Result<(), RelayError> {
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        let bytes = make(req).encode().map_err(|_| RelayError::Protocol)?;
        self.out
            .send(WsMessage::Binary(bytes.into()))
            .await
            .map_err(|_| RelayError::Unreachable)
    }

    /// Closes the connection (the reader and writer tasks end with it).
    pub async fn close(&self) {
        let _ = self.out.send(WsMessage::Close(None)).await;
    }

    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        !self.out.is_closed()
    }
}
