//! The engine: one open profile, its relay connection, its outbox, its sweeper, and the
//! event stream a UI subscribes to.
//!
//! Send: the message row and its encrypted outbox entries commit in one transaction, then the
//! outbox pump hands entries to the relay one at a time, in order, and drops each only after
//! the relay acknowledged it (retrying with back-off). Receive: each envelope is decrypted,
//! stored, and its id recorded as seen in one transaction, and acknowledged to the relay
//! only after that commit; a redelivery after a crash is recognised by its id and dropped.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use latch_protocol::fingerprint::Fingerprint;
use latch_protocol::{CiphertextMessage, IdentityKey, ProtocolAddress, session};
use latch_relay::api::{self, ClientFrame, DeliveredEnvelope, ErrorCode, PrekeyUpload, Response};
use latch_store::{
    Contact, ContactId, Conversation, ConversationId, ConversationKind, Direction, Message,
    MessageId, MessageStatus, NewMessage, PageCursor, PreKeyKind, Store, StoreError, StoreEvent,
    Sweeper, Tx, UnixMillis,
};
use rand_core::OsRng;
use tokio::sync::{Notify, RwLock, broadcast, watch};

use crate::events::{ConnectionState, ConversationView, Event, MessageView, kind_name};
use crate::prekeys::{self, BundleError};
use crate::profile::{
    self, OpenProfile, PRIMARY_DEVICE_ID, ProfileInfo, SETTING_RELAY_URL, now_ms,
};
use crate::protocol_store::TxProtocolStore;
use crate::relay::{Inbound, Relay, RelayError};
use crate::wire::{
    Content, MAX_TEXT_BYTES, ReceiptKind, STANDARD_THREAD, Sealed, ThreadTag, WireError,
};

/// Shortest and longest disappearing timer.
pub const TIMER_RANGE: std::ops::RangeInclusive<u32> = 5..=86_400;

/// The timer presets a UI offers.
pub const TIMER_PRESETS: [u32; 7] = [5, 30, 60, 300, 3_600, 28_800, 86_400];

/// How long an unread disappearing message waits for its reader before it goes anyway: the
/// store requires an expiry on every secret-chat message, and the clock starts at reading.
pub const UNREAD_DISAPPEARING_LIMIT_MS: i64 = 7 * 24 * 3_600 * 1_000;

/// How long processed envelope ids are remembered (the relay keeps envelopes 30 days).
const SEEN_ENVELOPE_RETENTION_MS: i64 = 31 * 24 * 3_600 * 1_000;

/// Back-off between reconnects and between send retries.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Outbox entries looked at per pass of the pump.
const OUTBOX_BATCH: u32 = 256;

/// Envelopes the pump has in flight at once.
const SEND_WINDOW: usize = 64;

/// The longest draft kept, in bytes (a message may be at most [`MAX_TEXT_BYTES`], but the
/// composer keeps whatever was typed or pasted, up to this).
pub const MAX_DRAFT_BYTES: usize = 1024 * 1024;

/// Envelopes acknowledged in one `AckThrough` at most.
const ACK_BATCH: u32 = 64;

/// What an engine call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A database operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The relay failed or refused.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// A protocol operation failed.
    #[error("protocol error: {0}")]
    Session(#[from] session::SessionError),
    /// A contact's published prekeys are unusable.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// There is no connection to the relay and the operation needs one.
    #[error("not connected to the relay")]
    Offline,
    /// This profile has not registered a handle yet.
    #[error("this profile is not registered with a relay yet")]
    NotRegistered,
    /// No contact, conversation or message with that id or handle.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The input breaks a rule (the message says which).
    #[error("{0}")]
    Invalid(&'static str),
    /// An invite code is malformed.
    #[error("the invite code is malformed")]
    BadInvite,
    /// The safety number could not be computed, or a scanned code is not a safety number.
    #[error("not a safety number code, or it could not be computed")]
    Fingerprint,
    /// A QR code could not be drawn or read.
    #[error(transparent)]
    Qr(#[from] crate::qr::QrError),
}

/// Why one envelope was dropped (reported as [`Event::ReceiveFailed`], never fatal).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The body is not a Latch envelope.
    #[error("malformed envelope: {0}")]
    Malformed(#[from] WireError),
    /// No contact matches the sender and it did not introduce itself verifiably.
    #[error("envelope from an unknown sender")]
    UnknownSender,
    /// The sender's claimed handle belongs to another key in the directory.
    #[error("sender's claimed handle does not match the directory")]
    HandleMismatch,
    /// Decryption failed (wrong recipient, replay, tampering, missing session).
    #[error("could not decrypt: {0}")]
    Decrypt(session::SessionError),
    /// The sender could not be checked right now (the directory did not answer); the
    /// envelope is not acknowledged and comes again after reconnecting.
    #[error("the sender could not be checked now; will retry")]
    Retry,
    /// The store failed; the envelope is not acknowledged and will come again.
    #[error("store failed: {0}")]
    Store(#[from] StoreError),
}

/// Outcome of processing one envelope.
enum Received {
    /// Stored; the events to send after the commit.
    Stored(Vec<Event>),
    /// Processed before (a redelivery): dropped.
    Duplicate,
    /// Unusable: acknowledged and dropped (undecryptable ones also have their id
    /// remembered, so a replay is not tried again).
    Dropped(ReceiveError),
}

/// The reason a receiving transaction is rolled back on purpose: the message decrypted but
/// must not count (altered thread tag, undecodable content), so the ratchet must not move.
const REJECTED: &str = "envelope rejected after decryption";

/// A running engine over one profile. Clone to share; [`Engine::shutdown`] stops its tasks.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

struct Inner {
    profile: OpenProfile,
    events: broadcast::Sender<Event>,
    relay: RwLock<Option<Relay>>,
    connection: watch::Sender<ConnectionState>,
    outbox_changed: Notify,
    /// Notified (all waiters) whenever the pump removed an outbox entry.
    outbox_progress: Notify,
    shutdown: watch::Sender<bool>,
    sweeper: tokio::sync::Mutex<Option<Sweeper>>,
    /// One release of held messages at a time (each claims prekeys and encrypts).
    releasing: tokio::sync::Mutex<()>,
    /// The engine's tasks, awaited by [`Engine::shutdown`]: each holds the engine (and so the
    /// profile's lock) until it ends.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The protocol session address of a contact's thread: the contact address for the standard
/// chat, `address#tag` for a secret one.
fn session_address(contact_address: &str, thread: ThreadTag) -> String {
    if thread.is_standard() {
        contact_address.to_owned()
    } else {
        format!("{contact_address}#{}", hex::encode(thread.0))
    }
}

/// The relay key (Ed25519) of a contact. The stored identity was verified when it arrived, so
/// its certificate is not checked again: this runs for every contact on every envelope.
fn relay_key(contact: &Contact) -> Result<[u8; 32], StoreError> {
    latch_protocol::identity::signing_key_of(&contact.identity_key)
        .map_err(|_| StoreError::BadValue("contacts.identity_key"))
}

fn random_id() -> Result<[u8; 16], ClientError> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|_| ClientError::Invalid("the OS random source failed"))?;
    Ok(id)
}

fn backoff(attempts: u32) -> Duration {
    let exp = BACKOFF_MIN.saturating_mul(1u32 << attempts.min(8));
    exp.min(BACKOFF_MAX)
}

/// Checks a timer value from a user.
///
/// # Errors
/// [`ClientError::Invalid`] outside 5 seconds to 24 hours.
pub fn validate_timer(secs: Option<u32>) -> Result<(), ClientError> {
    match secs {
        Some(s) if !TIMER_RANGE.contains(&s) => Err(ClientError::Invalid(
            "the disappearing timer must be off or between 5 seconds and 24 hours",
        )),
        _ => Ok(()),
    }
}

impl Engine {
    /// Starts an engine over an opened profile: the sweeper runs at once (expired messages
    /// were already removed when the profile opened); the relay connection starts with
    /// [`Engine::start`].
    ///
    /// # Errors
    /// The sweeper could not start.
    pub fn new(profile: OpenProfile) -> Result<Self, ClientError> {
        let (events, _) = broadcast::channel(4096);
        let sweeper = Sweeper::spawn(profile.store.clone())
            .map_err(|_| ClientError::Invalid("the sweeper could not start"))?;
        let inner = Arc::new(Inner {
            profile,
            events,
            relay: RwLock::new(None),
            connection: watch::channel(ConnectionState::Offline).0,
            outbox_changed: Notify::new(),
            outbox_progress: Notify::new(),
            shutdown: watch::channel(false).0,
            sweeper: tokio::sync::Mutex::new(Some(sweeper)),
            releasing: tokio::sync::Mutex::new(()),
            tasks: std::sync::Mutex::new(Vec::new()),
        });
        let engine = Self { inner };
        engine.forward_store_events();
        Ok(engine)
    }

    /// The profile's description.
    pub fn info(&self) -> &ProfileInfo {
        &self.inner.profile.info
    }

    /// The profile's store (for views and tests).
    pub fn store(&self) -> &Store {
        &self.inner.profile.store
    }

    /// Subscribes to events. Subscribe before acting to see every event the action causes.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The connection state, as a watch.
    pub fn connection(&self) -> watch::Receiver<ConnectionState> {
        self.inner.connection.subscribe()
    }

    fn emit(&self, event: Event) {
        let _ = self.inner.events.send(event);
    }

    fn forward_store_events(&self) {
        let mut rx = self.inner.profile.store.subscribe();
        let engine = self.clone();
        let mut stop = self.inner.shutdown.subscribe();
        self.spawn(async move {
            loop {
                tokio::select! {
                    ev = rx.recv() => match ev {
                        Ok(StoreEvent::MessagesExpired { messages, .. }) => {
                            let mut by_conv: std::collections::BTreeMap<i64, Vec<i64>> =
                                std::collections::BTreeMap::new();
                            for m in messages {
                                by_conv.entry(m.conversation_id.0).or_default().push(m.message_id.0);
                            }
                            for (conversation_id, message_ids) in by_conv {
                                engine.emit(Event::MessagesExpired { conversation_id, message_ids });
                            }
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    _ = stop.changed() => break,
                }
            }
        });
    }

    fn write<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.inner.profile.store.write(f)
    }

    fn relay_url(&self) -> Result<String, ClientError> {
        Ok(self
            .write(|tx| tx.setting(SETTING_RELAY_URL))?
            .unwrap_or_else(|| self.inner.profile.info.relay_url.clone()))
    }

    /// Our handle, once registered.
    ///
    /// # Errors
    /// A database error.
    pub fn handle(&self) -> Result<Option<String>, ClientError> {
        Ok(self.write(|tx| tx.profile())?.and_then(|p| p.handle))
    }

    async fn current_relay(&self) -> Result<Relay, ClientError> {
        self.inner
            .relay
            .read()
            .await
            .clone()
            .filter(Relay::is_open)
            .ok_or(ClientError::Offline)
    }

    // ---- registration --------------------------------------------------------------

    /// Registers this device with the relay, publishes its prekeys and claims `handle`.
    /// Safe to repeat (e.g. to change the handle). Call it before [`Engine::start`]: it uses
    /// its own connection, and the relay keeps one connection per device.
    ///
    /// # Errors
    /// [`RelayError::Refused`] with `HandleTaken`/`HandleInvalid`, or a connection error.
    pub async fn register(&self, handle: &str) -> Result<String, ClientError> {
        let handle = api::normalize_handle(handle).ok_or(ClientError::Invalid(
            "a handle is 3-32 characters of a-z, 0-9, '_' or '.'",
        ))?;
        let url = self.relay_url()?;
        let (relay, _inbound) =
            Relay::connect(&url, &self.inner.profile.identity, PRIMARY_DEVICE_ID, true).await?;
        // A first registration publishes every one-time prekey this device holds; a repeated
        // one only a fresh batch, since an earlier key may be claimed and not yet used.
        let identity = self.inner.profile.identity.clone();
        let one_time = self.write(|tx| {
            if tx.profile()?.and_then(|p| p.handle).is_some() {
                profile::generate_one_time_prekeys(tx, &identity, now_ms())
            } else {
                tx.prekey_ids(PreKeyKind::OneTime)
            }
        })?;
        self.publish_prekeys(&relay, true, &one_time).await?;
        let h = handle.clone();
        relay
            .request(|req| ClientFrame::ClaimHandle { req, handle: h })
            .await?;
        self.write(|tx| {
            let mut p = tx.profile()?.ok_or(StoreError::NotFound("profile"))?;
            p.handle = Some(handle.clone());
            tx.set_profile(&p)
        })?;
        Ok(handle)
    }

    /// Uploads the signed and last-resort prekeys (with `full`) and the one-time prekeys
    /// `one_time` (at most one upload's worth).
    async fn publish_prekeys(
        &self,
        relay: &Relay,
        full: bool,
        one_time: &[u32],
    ) -> Result<(), ClientError> {
        let identity = &self.inner.profile.identity;
        let upload = self.write(|tx| {
            let load = |kind, id| tx.prekey(kind, id);
            let mut upload = PrekeyUpload::default();
            if full {
                if let Some(b) = load(PreKeyKind::Signed, 1)? {
                    let r = latch_protocol::SignedPreKeyRecord::from_secret_bytes(&b)
                        .map_err(|_| StoreError::BadValue("prekeys.record"))?;
                    upload.signed = Some(prekeys::signed_blob(identity.public(), &r));
                }
                if let Some(b) = load(PreKeyKind::PostQuantum, 1)? {
                    let r = latch_protocol::KemPreKeyRecord::from_secret_bytes(&b)
                        .map_err(|_| StoreError::BadValue("prekeys.record"))?;
                    upload.last_resort = Some(prekeys::last_resort_blob(&r));
                }
            }
            for &id in one_time {
                let (Some(x), Some(k)) = (
                    load(PreKeyKind::OneTime, id)?,
                    load(PreKeyKind::PostQuantum, id)?,
                ) else {
                    continue;
                };
                let x = latch_protocol::OneTimePreKeyRecord::from_secret_bytes(&x)
                    .map_err(|_| StoreError::BadValue("prekeys.record"))?;
                let k = latch_protocol::KemPreKeyRecord::from_secret_bytes(&k)
                    .map_err(|_| StoreError::BadValue("prekeys.record"))?;
                upload.one_time.push(prekeys::one_time_blob(&x, &k));
                if upload.one_time.len() >= api::MAX_PREKEYS_PER_UPLOAD {
                    break;
                }
            }
            Ok(upload)
        })?;
        relay
            .request(|req| ClientFrame::PublishPrekeys { req, upload })
            .await?;
        Ok(())
    }

    /// Makes a fresh batch of one-time prekeys and publishes them (the relay said few are
    /// left).
    /// Only the new batch goes up: keys published before may be claimed and not yet used,
    /// and offering one again could hand it to two initiators.
    async fn replenish_prekeys(&self, relay: &Relay) -> Result<(), ClientError> {
        let identity = self.inner.profile.identity.clone();
        let fresh = self.write(|tx| profile::generate_one_time_prekeys(tx, &identity, now_ms()))?;
        self.publish_prekeys(relay, false, &fresh).await?;
        self.emit(Event::PrekeysReplenished { count: fresh.len() });
        Ok(())
    }

    /// Removes this device from the relay (mailbox, prekeys, and the handle when no device
    /// is left). Used before deleting a profile.
    ///
    /// # Errors
    /// A connection error.
    pub async fn unregister(&self) -> Result<(), ClientError> {
        let relay = self.current_relay().await?;
        relay.request(|req| ClientFrame::Unregister { req }).await?;
        Ok(())
    }

    // ---- connection ----------------------------------------------------------------

    /// Starts the relay connection (reconnecting with back-off) and the outbox pump.
    pub fn start(&self) {
        let engine = self.clone();
        self.spawn(async move { engine.connection_loop().await });
        let engine = self.clone();
        self.spawn(async move { engine.outbox_loop().await });
    }

    /// Spawns one of the engine's tasks; [`Engine::shutdown`] waits for it.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.retain(|t| !t.is_finished());
            tasks.push(handle);
        }
    }

    /// Stops the engine's tasks and the sweeper and waits for them, so that once the caller
    /// drops its last `Engine` the profile is closed (and its lock free). Committed work stays
    /// committed; the outbox resumes on the next start.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        if let Some(relay) = self.inner.relay.write().await.take() {
            relay.close().await;
        }
        if let Some(s) = self.inner.sweeper.lock().await.take() {
            s.stop().await;
        }
        let tasks = match self.inner.tasks.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => Vec::new(),
        };
        for task in tasks {
            let _ = task.await;
        }
    }

    fn set_connection(&self, state: ConnectionState) {
        let changed = self.inner.connection.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
        if changed {
            self.emit(Event::Connection { state });
        }
    }

    async fn connection_loop(&self) {
        let mut stop = self.inner.shutdown.subscribe();
        let mut failures = 0u32;
        while !*stop.borrow() {
            self.set_connection(ConnectionState::Connecting);
            match self.connect_and_serve(&mut stop).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    tracing::info!(error = %e, "relay connection ended");
                    failures = failures.saturating_add(1);
                }
            }
            *self.inner.relay.write().await = None;
            if *stop.borrow() {
                break;
            }
            self.set_connection(ConnectionState::Offline);
            tokio::select! {
                () = tokio::time::sleep(backoff(failures)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn connect_and_serve(&self, stop: &mut watch::Receiver<bool>) -> Result<(), ClientError> {
        if self.handle()?.is_none() {
            return Err(ClientError::NotRegistered);
        }
        let url = self.relay_url()?;
        let (relay, mut inbound) =
            Relay::connect(&url, &self.inner.profile.identity, PRIMARY_DEVICE_ID, false).await?;
        *self.inner.relay.write().await = Some(relay.clone());
        self.set_connection(ConnectionState::Online);
        self.write(|tx| tx.prune_seen_envelopes(now_ms() - SEEN_ENVELOPE_RETENTION_MS))?;
        if relay.replenish {
            self.replenish_prekeys(&relay).await?;
        }
        self.release_all_held().await;
        self.inner.outbox_changed.notify_one();
        let mut unacked: Option<u64> = None;
        let mut pending_acks = 0u32;
        loop {
            let item = tokio::select! {
                item = inbound.recv() => item,
                _ = stop.changed() => {
                    relay.close().await;
                    return Ok(());
                }
            };
            match item {
                Some(Inbound::Envelope(env)) => {
                    let seq = env.seq;
                    if self.receive(&relay, env).await {
                        unacked = Some(seq);
                        pending_acks += 1;
                    } else {
                        // Not processed (store failure, sender not checkable now): acknowledge
                        // what came before, then reconnect so the relay delivers it again.
                        self.ack(&relay, &mut unacked, &mut pending_acks).await?;
                        relay.close().await;
                        return Err(ClientError::Invalid(
                            "an envelope could not be processed yet",
                        ));
                    }
                }
                Some(Inbound::BacklogDone) => {
                    self.ack(&relay, &mut unacked, &mut pending_acks).await?;
                    self.emit(Event::Synced);
                }
                Some(Inbound::PrekeysLow) => self.replenish_prekeys(&relay).await?,
                None => return Err(ClientError::Relay(RelayError::Unreachable)),
            }
            if inbound.is_empty() || pending_acks >= ACK_BATCH {
                self.ack(&relay, &mut unacked, &mut pending_acks).await?;
            }
        }
    }

    async fn ack(
        &self,
        relay: &Relay,
        unacked: &mut Option<u64>,
        pending: &mut u32,
    ) -> Result<(), ClientError> {
        if let Some(seq) = unacked.take() {
            relay
                .send_only(|req| ClientFrame::AckThrough { req, seq })
                .await?;
        }
        *pending = 0;
        Ok(())
    }

    // ---- receiving -----------------------------------------------------------------

    /// Processes one envelope. Returns `false` when it must not be acknowledged (the store
    /// failed, or the sender cannot be checked right now); every other problem is reported
    /// and the envelope dropped.
    async fn receive(&self, relay: &Relay, env: DeliveredEnvelope) -> bool {
        let outcome = match self.receive_inner(relay, &env).await {
            Ok(o) => o,
            Err(e) => Received::Dropped(e),
        };
        match outcome {
            Received::Stored(events) => {
                crate::fault::point("after-receive-commit");
                for e in events {
                    self.emit(e);
                }
                self.inner.outbox_changed.notify_one();
                true
            }
            Received::Duplicate => true,
            Received::Dropped(ReceiveError::Store(e)) => {
                tracing::warn!(error = %e, "store failed while receiving");
                false
            }
            Received::Dropped(ReceiveError::Retry) => false,
            Received::Dropped(e) => {
                tracing::warn!(error = %e, "dropped an envelope");
                self.emit(Event::ReceiveFailed {
                    reason: e.to_string(),
                });
                true
            }
        }
    }

    /// Finds the contact an envelope comes from, introducing a new one (or a changed key)
    /// when a prekey message names a handle the directory confirms.
    async fn resolve_sender(
        &self,
        relay: &Relay,
        from: &[u8; 32],
        sealed: &Sealed,
    ) -> Result<String, ReceiveError> {
        let known = self.write(|tx| {
            Ok(tx
                .contacts()?
                .into_iter()
                .find(|c| relay_key(c).is_ok_and(|k| k == *from)))
        })?;
        // A prekey message carries the sender's whole identity: it must be the relay-checked
        // sender's, whoever the sender is.
        if let CiphertextMessage::PreKey(m) = &sealed.message
            && m.identity.signing_key_bytes() != *from
        {
            return Err(ReceiveError::UnknownSender);
        }
        if let Some(c) = known {
            return Ok(c.address);
        }
        if !matches!(sealed.message, CiphertextMessage::PreKey(_)) {
            return Err(ReceiveError::UnknownSender);
        }
        let handle = sealed
            .sender_handle
            .as_deref()
            .and_then(api::normalize_handle)
            .ok_or(ReceiveError::UnknownSender)?;
        let h = handle.clone();
        match relay
            .request(|req| ClientFrame::LookupHandle { req, handle: h })
            .await
        {
            Ok(Response::Handle { identity_key, .. }) if identity_key.0 == *from => Ok(handle),
            // A clear answer: the handle is someone else's, or nobody's.
            Ok(Response::Handle { .. }) | Err(RelayError::Refused(ErrorCode::NotFound)) => {
                Err(ReceiveError::HandleMismatch)
            }
            // Anything else (rate limit, timeout, lost connection) says nothing yet.
            Ok(_) | Err(_) => Err(ReceiveError::Retry),
        }
    }

    async fn receive_inner(
        &self,
        relay: &Relay,
        env: &DeliveredEnvelope,
    ) -> Result<Received, ReceiveError> {
        let from = env.from.identity_key.0;
        let sealed = Sealed::from_bytes(&env.body)?;
        let address = self.resolve_sender(relay, &from, &sealed).await?;
        let identity = self.inner.profile.identity.clone();
        let now = now_ms();
        let received = self.write(|tx| {
            if !tx.mark_envelope_seen(&from, &env.id.0, now)? {
                return Ok(Received::Duplicate);
            }
            let protocol_address =
                ProtocolAddress::new(session_address(&address, sealed.thread), env.from.device_id);
            let mut store = TxProtocolStore::new(tx, &identity, now);
            // A failed decrypt writes nothing; only the seen id commits.
            let plaintext = match session::decrypt(
                &mut store,
                &protocol_address,
                &sealed.message,
                &mut OsRng,
            ) {
                Ok(p) => p,
                Err(session::SessionError::Store(e)) => {
                    return Err(StoreError::Io(std::io::Error::other(e.to_string())));
                }
                Err(e) => return Ok(Received::Dropped(ReceiveError::Decrypt(e))),
            };
            let key_changes = std::mem::take(&mut store.key_changes);
            let content = match Content::from_plaintext(plaintext.expose()) {
                Ok((thread, c)) if thread == sealed.thread => c,
                // Roll back: the ratchet must not move for a message that does not count.
                Ok(_) | Err(_) => return Err(StoreError::Invalid(REJECTED)),
            };
            let contact = tx
                .contact_by_address(&address)?
                .ok_or(StoreError::NotFound("contact"))?;
            let mut events = Vec::new();
            for k in key_changes {
                forget_secret_sessions(tx, &contact)?;
                events.push(Event::KeyChanged {
                    contact_id: k.contact.0,
                    contact: contact.address.clone(),
                    was_verified: k.was_verified,
                });
            }
            self.apply(tx, &contact, sealed.thread, content, now, &mut events)?;
            Ok(Received::Stored(events))
        });
        match received {
            Ok(r) => Ok(r),
            Err(StoreError::Invalid(REJECTED)) => Ok(Received::Dropped(ReceiveError::Malformed(
                WireError::ThreadMismatch,
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The conversation a received message belongs to, created when the contact opened it.
    fn conversation_for(
        &self,
        tx: &Tx<'_>,
        contact: &Contact,
        thread: ThreadTag,
        content: &Content,
        now: UnixMillis,
        events: &mut Vec<Event>,
    ) -> Result<Conversation, StoreError> {
        let existing = if thread.is_standard() {
            tx.standard_conversation(contact.id)?
        } else {
            tx.conversation_by_thread(contact.id, &thread.0)?
        };
        let id = match existing {
            Some(id) => id,
            None if thread.is_standard() => {
                tx.create_conversation(contact.id, ConversationKind::Standard, None, now)?
            }
            None => {
                // A secret chat the contact started: it always has a timer.
                let timer = match content {
                    Content::Timer { secs }
                    | Content::Text {
                        expire_after_secs: secs,
                        ..
                    } => secs.filter(|s| TIMER_RANGE.contains(s)),
                    _ => None,
                }
                .unwrap_or(TIMER_PRESETS[1]);
                let kind = ConversationKind::Secret {
                    bound_device_id: PRIMARY_DEVICE_ID,
                };
                let id = tx.create_conversation(contact.id, kind, Some(timer), now)?;
                tx.set_secret_thread(id, &thread.0)?;
                id
            }
        };
        let conv = tx
            .conversation(id)?
            .ok_or(StoreError::NotFound("conversation"))?;
        if existing.is_none() {
            events.push(Event::ConversationStarted {
                conversation_id: id.0,
                kind: kind_name(&conv),
            });
        }
        Ok(conv)
    }

    /// Applies one decrypted content inside the receiving transaction.
    fn apply(
        &self,
        tx: &Tx<'_>,
        contact: &Contact,
        thread: ThreadTag,
        content: Content,
        now: UnixMillis,
        events: &mut Vec<Event>,
    ) -> Result<(), StoreError> {
        let conv = self.conversation_for(tx, contact, thread, &content, now, events)?;
        match content {
            Content::Text {
                id,
                sent_at,
                body,
                expire_after_secs,
            } => {
                if tx.message_by_remote_id(conv.id, &id)?.is_some() {
                    return Ok(());
                }
                let timer =
                    expire_after_secs
                        .filter(|s| TIMER_RANGE.contains(s))
                        .or(match conv.kind {
                            ConversationKind::Secret { .. } => conv.disappear_after_secs,
                            ConversationKind::Standard => None,
                        });
                let mid = tx.insert_message(&NewMessage {
                    conversation_id: conv.id,
                    direction: Direction::Incoming,
                    status: MessageStatus::Received,
                    body: &body,
                    sent_at,
                    received_at: Some(now),
                    expires_at: timer.map(|_| now + UNREAD_DISAPPEARING_LIMIT_MS),
                    remote_id: Some(id),
                    expire_after_secs: timer,
                })?;
                let receipt = Content::Receipt {
                    kind: ReceiptKind::Delivered,
                    ids: vec![id],
                };
                self.queue_content(tx, contact, &conv, &receipt, None, now)?;
                if let Some(m) = tx.message(mid)? {
                    events.push(Event::Message {
                        message: MessageView::from(&m),
                    });
                }
            }
            Content::Receipt { kind, ids } => {
                let status = match kind {
                    ReceiptKind::Delivered => MessageStatus::Delivered,
                    ReceiptKind::Read => MessageStatus::Read,
                };
                for id in ids.iter().take(api::MAX_ACK_IDS) {
                    let Some(m) = tx.message_by_remote_id(conv.id, id)? else {
                        continue;
                    };
                    if m.direction == Direction::Outgoing
                        && status_rank(status) > status_rank(m.status)
                    {
                        tx.set_message_status(m.id, status)?;
                        push_updated(tx, m.id, events)?;
                    }
                }
            }
            Content::Edit {
                id,
                body,
                edited_at,
            } => {
                if let Some(m) = tx.message_by_remote_id(conv.id, &id)?
                    && m.direction == Direction::Incoming
                {
                    tx.edit_message(m.id, &body, edited_at)?;
                    push_updated(tx, m.id, events)?;
                }
            }
            Content::Delete { id } => {
                if let Some(m) = tx.message_by_remote_id(conv.id, &id)?
                    && m.direction == Direction::Incoming
                {
                    tx.delete_message(m.id)?;
                    events.push(Event::MessageUpdated {
                        message: MessageView::deleted(&m),
                    });
                }
            }
            Content::Timer { secs } => {
                let valid = secs.is_none_or(|s| TIMER_RANGE.contains(&s))
                    && (secs.is_some() || conv.kind.is_searchable());
                if valid && conv.disappear_after_secs != secs {
                    tx.set_disappearing_timer(conv.id, secs)?;
                    tx.set_setting(&timer_setter_key(conv.id), TIMER_SET_BY_CONTACT)?;
                    events.push(Event::TimerChanged {
                        conversation_id: conv.id.0,
                        seconds: secs,
                        by_me: false,
                    });
                }
            }
        }
        Ok(())
    }

    /// Encrypts `content` to every device of the conversation's session and queues it.
    /// Returns `false` when there is no session yet: a text message stays held (stored, not
    /// queued) until one starts; control messages use [`Self::queue_control`].
    fn queue_content(
        &self,
        tx: &Tx<'_>,
        contact: &Contact,
        conv: &Conversation,
        content: &Content,
        message: Option<MessageId>,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let thread = thread_of(tx, conv)?;
        let address = session_address(&contact.address, thread);
        let devices = tx.session_devices(&address)?;
        if devices.is_empty() {
            return Ok(false);
        }
        let plaintext = content
            .to_plaintext(thread)
            .map_err(|_| StoreError::Invalid("message could not be encoded"))?;
        let handle = tx.profile()?.and_then(|p| p.handle);
        let to = hex::encode(relay_key(contact)?);
        let identity = &self.inner.profile.identity;
        for device in devices {
            let mut store = TxProtocolStore::new(tx, identity, now);
            let addr = ProtocolAddress::new(address.clone(), device);
            let ciphertext = match session::encrypt(&mut store, &addr, &plaintext) {
                Ok(m) => m,
                Err(session::SessionError::Store(e)) => {
                    return Err(StoreError::Io(std::io::Error::other(e.to_string())));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot encrypt to a device; holding");
                    return Ok(false);
                }
            };
            let sender_handle = match ciphertext {
                CiphertextMessage::PreKey(_) => handle.clone(),
                _ => None,
            };
            let sealed = Sealed {
                thread,
                sender_handle,
                message: ciphertext,
            };
            let body = sealed
                .to_bytes()
                .map_err(|_| StoreError::Invalid("message could not be encoded"))?;
            let envelope_id =
                random_id().map_err(|_| StoreError::Invalid("the OS random source failed"))?;
            tx.enqueue_outbox(message, &to, device, &envelope_id, &body, now)?;
        }
        Ok(true)
    }

    /// Queues a control message the user asked for (timer, edit, delete), refusing when it
    /// cannot go now, so the transaction that changed local state rolls back with it.
    fn queue_control(
        &self,
        tx: &Tx<'_>,
        contact: &Contact,
        conv: &Conversation,
        content: &Content,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        if Self::is_held(tx, conv)? {
            return Err(StoreError::Invalid(
                "the contact's safety number changed: accept the new key first",
            ));
        }
        if !self.queue_content(tx, contact, conv, content, None, now)? {
            return Err(StoreError::Invalid(
                "no session with the contact in this chat yet: send a message first",
            ));
        }
        Ok(())
    }

    // ---- contacts ------------------------------------------------------------------

    /// This profile's invite code: handle, identity key and relay, so someone can add us
    /// without trusting the directory.
    ///
    /// # Errors
    /// [`ClientError::NotRegistered`] before registration.
    pub fn invite_code(&self) -> Result<String, ClientError> {
        let handle = self.handle()?.ok_or(ClientError::NotRegistered)?;
        let key = hex::encode(self.inner.profile.identity.public().signing_key_bytes());
        Ok(format!(
            "latch-invite:1:{handle}:{key}:{}",
            self.relay_url()?
        ))
    }

    /// Adds a contact by handle (the relay's directory says which key it has).
    ///
    /// # Errors
    /// `NotFound` from the relay for an unknown handle, or a connection error.
    pub async fn add_contact(&self, handle: &str) -> Result<ContactId, ClientError> {
        let handle = api::normalize_handle(handle).ok_or(ClientError::Invalid("invalid handle"))?;
        let relay = self.current_relay().await?;
        let h = handle.clone();
        let Response::Handle { identity_key, .. } = relay
            .request(|req| ClientFrame::LookupHandle { req, handle: h })
            .await?
        else {
            return Err(RelayError::Protocol.into());
        };
        self.add_contact_with_key(&relay, &handle, identity_key.0)
            .await
    }

    /// Adds a contact from an invite code; the key comes from the code, not the directory.
    ///
    /// # Errors
    /// [`ClientError::BadInvite`], or as [`Engine::add_contact`].
    pub async fn add_contact_by_invite(&self, code: &str) -> Result<ContactId, ClientError> {
        let mut parts = code.trim().splitn(5, ':');
        let (Some("latch-invite"), Some("1"), Some(handle), Some(key), Some(relay_url)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(ClientError::BadInvite);
        };
        let handle = api::normalize_handle(handle).ok_or(ClientError::BadInvite)?;
        let key: [u8; 32] = hex::decode(key)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or(ClientError::BadInvite)?;
        if relay_url.trim_end_matches('/') != self.relay_url()?.trim_end_matches('/') {
            return Err(ClientError::Invalid("the invite is for another relay"));
        }
        let relay = self.current_relay().await?;
        self.add_contact_with_key(&relay, &handle, key).await
    }

    async fn claim_bundles(
        &self,
        relay: &Relay,
        key: [u8; 32],
    ) -> Result<Vec<api::PrekeyBundle>, ClientError> {
        match relay
            .request(|req| ClientFrame::ClaimPrekeys {
                req,
                identity_key: api::IdentityKey(key),
                device_id: None,
            })
            .await?
        {
            Response::Prekeys { bundles } if !bundles.is_empty() => Ok(bundles),
            Response::Prekeys { .. } => Err(ClientError::NotFound("device of the contact")),
            _ => Err(RelayError::Protocol.into()),
        }
    }

    async fn add_contact_with_key(
        &self,
        relay: &Relay,
        handle: &str,
        key: [u8; 32],
    ) -> Result<ContactId, ClientError> {
        if key == self.inner.profile.identity.public().signing_key_bytes() {
            return Err(ClientError::Invalid("that is this profile's own handle"));
        }
        let bundles = self.claim_bundles(relay, key).await?;
        let now = now_ms();
        let (contact, events) = self.write(|tx| {
            let mut events = Vec::new();
            let contact =
                self.start_sessions(tx, handle, STANDARD_THREAD, &bundles, key, now, &mut events)?;
            if tx.standard_conversation(contact.id)?.is_none() {
                tx.create_conversation(contact.id, ConversationKind::Standard, None, now)?;
            }
            Ok((contact.id, events))
        })?;
        for e in events {
            self.emit(e);
        }
        self.release_all_held().await;
        Ok(contact)
    }

    /// Starts a session with every device whose bundle verifies and carries `key`; records
    /// the identity (a changed key is noted and announced).
    #[allow(clippy::too_many_arguments)]
    fn start_sessions(
        &self,
        tx: &Tx<'_>,
        handle: &str,
        thread: ThreadTag,
        bundles: &[api::PrekeyBundle],
        key: [u8; 32],
        now: UnixMillis,
        events: &mut Vec<Event>,
    ) -> Result<Contact, StoreError> {
        let identity = &self.inner.profile.identity;
        let mut contact = None;
        for b in bundles {
            let bundle = match prekeys::bundle_from_relay(b) {
                Ok(bundle) if bundle.identity.signing_key_bytes() == key => bundle,
                Ok(_) | Err(_) => {
                    tracing::warn!("skipped a device whose prekeys did not verify");
                    continue;
                }
            };
            let (id, change) = tx.observe_identity(handle, &bundle.identity.to_bytes(), now)?;
            if let latch_store::IdentityChange::Changed { was_verified } = change {
                tx.set_key_change_pending(id, true)?;
                if let Some(c) = tx.contact(id)? {
                    forget_secret_sessions(tx, &c)?;
                }
                events.push(Event::KeyChanged {
                    contact_id: id.0,
                    contact: handle.to_owned(),
                    was_verified,
                });
            }
            let c = tx.contact(id)?.ok_or(StoreError::NotFound("contact"))?;
            let address = ProtocolAddress::new(session_address(&c.address, thread), b.device_id);
            let mut store = TxProtocolStore::new(tx, identity, now);
            if let Err(e) =
                session::process_prekey_bundle(&mut store, &address, &bundle, &mut OsRng)
            {
                tracing::warn!(error = %e, "could not start a session with a device");
                continue;
            }
            contact = Some(c);
        }
        contact.ok_or(StoreError::NotFound("usable device of the contact"))
    }

    /// Every contact.
    ///
    /// # Errors
    /// A database error.
    pub fn contacts(&self) -> Result<Vec<Contact>, ClientError> {
        Ok(self.write(|tx| tx.contacts())?)
    }

    /// A contact by handle.
    ///
    /// # Errors
    /// [`ClientError::NotFound`].
    pub fn contact_by_handle(&self, handle: &str) -> Result<Contact, ClientError> {
        let handle = api::normalize_handle(handle).ok_or(ClientError::NotFound("contact"))?;
        self.write(|tx| tx.contact_by_address(&handle))?
            .ok_or(ClientError::NotFound("contact"))
    }

    // ---- conversations ---------------------------------------------------------------

    /// Opens the standard chat with a contact (existing or new).
    ///
    /// # Errors
    /// [`ClientError::NotFound`] for an unknown contact.
    pub fn open_standard_chat(&self, contact: ContactId) -> Result<ConversationId, ClientError> {
        let now = now_ms();
        Ok(self.write(|tx| match tx.standard_conversation(contact)? {
            Some(id) => Ok(id),
            None => tx.create_conversation(contact, ConversationKind::Standard, None, now),
        })?)
    }

    /// Starts a secret chat (the lock toggle): a new thread beside the standard chat, with its
    /// own session, bound to this device, never indexed, with a disappearing timer. Needs the
    /// relay (fresh prekeys start the separate session).
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for a bad timer, [`ClientError::Offline`], relay errors.
    pub async fn start_secret_chat(
        &self,
        contact: ContactId,
        timer_secs: u32,
    ) -> Result<ConversationId, ClientError> {
        validate_timer(Some(timer_secs))?;
        let c = self
            .write(|tx| tx.contact(contact))?
            .ok_or(ClientError::NotFound("contact"))?;
        let relay = self.current_relay().await?;
        let key = relay_key(&c)?;
        let bundles = self.claim_bundles(&relay, key).await?;
        let thread =
            ThreadTag::random().map_err(|_| ClientError::Invalid("the OS random source failed"))?;
        let now = now_ms();
        let (conv, events) = self.write(|tx| {
            let mut events = Vec::new();
            let c = self.start_sessions(tx, &c.address, thread, &bundles, key, now, &mut events)?;
            let kind = ConversationKind::Secret {
                bound_device_id: PRIMARY_DEVICE_ID,
            };
            let id = tx.create_conversation(c.id, kind, Some(timer_secs), now)?;
            tx.set_secret_thread(id, &thread.0)?;
            let conv = tx
                .conversation(id)?
                .ok_or(StoreError::NotFound("conversation"))?;
            // Tells the contact's device the thread exists and what its timer is.
            self.queue_content(
                tx,
                &c,
                &conv,
                &Content::Timer {
                    secs: Some(timer_secs),
                },
                None,
                now,
            )?;
            Ok((id, events))
        })?;
        for e in events {
            self.emit(e);
        }
        self.inner.outbox_changed.notify_one();
        Ok(conv)
    }

    /// Every conversation with its contact, unread count and newest message.
    ///
    /// # Errors
    /// A database error.
    pub fn conversations(&self) -> Result<Vec<ConversationView>, ClientError> {
        Ok(self.write(|tx| {
            let mut out = Vec::new();
            for conv in tx.conversations()? {
                if let Some(view) = conversation_view(tx, &conv)? {
                    out.push(view);
                }
            }
            Ok(out)
        })?)
    }

    /// One page of a conversation, oldest first: the newest `limit` messages, or with
    /// `before`, the `limit` messages older than that message (for scrolling back).
    ///
    /// # Errors
    /// A database error; `NotFound` for an unknown `before` message.
    pub fn messages(
        &self,
        conversation: ConversationId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<MessageView>, ClientError> {
        let mut page = self.write(|tx| {
            let cursor = match before {
                Some(id) => Some(PageCursor::from(
                    &tx.message(id)?.ok_or(StoreError::NotFound("message"))?,
                )),
                None => None,
            };
            tx.conversation_page(conversation, cursor, limit)
        })?;
        page.reverse();
        Ok(page.iter().map(MessageView::from).collect())
    }

    /// Full-text search over standard chats (secret chats are never indexed).
    ///
    /// # Errors
    /// A database error.
    pub fn search(&self, query: &str, limit: u32) -> Result<Vec<MessageView>, ClientError> {
        Ok(self.write(|tx| {
            let mut out = Vec::new();
            for id in tx.search(query, limit)? {
                if let Some(m) = tx.message(id)? {
                    out.push(MessageView::from(&m));
                }
            }
            Ok(out)
        })?)
    }

    // ---- sending ---------------------------------------------------------------------

    /// Whether outgoing messages of this conversation must wait: a secret chat whose
    /// contact's new key the user has not accepted yet.
    fn is_held(tx: &Tx<'_>, conv: &Conversation) -> Result<bool, StoreError> {
        Ok(!conv.kind.is_searchable() && tx.key_change_pending(conv.contact_id)?)
    }

    fn conversation_and_contact(
        tx: &Tx<'_>,
        id: ConversationId,
    ) -> Result<(Conversation, Contact), StoreError> {
        let conv = tx
            .conversation(id)?
            .ok_or(StoreError::NotFound("conversation"))?;
        let contact = tx
            .contact(conv.contact_id)?
            .ok_or(StoreError::NotFound("contact"))?;
        Ok((conv, contact))
    }

    /// Sends a text message. It is stored and queued at once (offline too) and goes out when
    /// the relay is reachable.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for empty or oversized text; `NotFound`.
    pub fn send_text(
        &self,
        conversation: ConversationId,
        body: &str,
    ) -> Result<MessageView, ClientError> {
        if body.trim().is_empty() {
            return Err(ClientError::Invalid("the message is empty"));
        }
        if body.len() > MAX_TEXT_BYTES {
            return Err(ClientError::Invalid(
                "the message is too long (60 KiB at most)",
            ));
        }
        let remote_id = random_id()?;
        let now = now_ms();
        let view = self.write(|tx| {
            let (conv, contact) = Self::conversation_and_contact(tx, conversation)?;
            let timer = conv.disappear_after_secs;
            let mid = tx.insert_message(&NewMessage {
                conversation_id: conv.id,
                direction: Direction::Outgoing,
                status: MessageStatus::Pending,
                body,
                sent_at: now,
                received_at: None,
                // Until the relay has it, a disappearing message may wait; its clock starts
                // when the relay acknowledges it (see the outbox pump).
                expires_at: timer.map(|_| now + UNREAD_DISAPPEARING_LIMIT_MS),
                remote_id: Some(remote_id),
                expire_after_secs: timer,
            })?;
            let mut needs_session = false;
            if !Self::is_held(tx, &conv)? {
                let content = Content::Text {
                    id: remote_id,
                    sent_at: now,
                    body: body.to_owned(),
                    expire_after_secs: timer,
                };
                needs_session =
                    !self.queue_content(tx, &contact, &conv, &content, Some(mid), now)?;
            }
            let m = tx.message(mid)?.ok_or(StoreError::NotFound("message"))?;
            Ok((m, needs_session))
        })?;
        let (view, needs_session) = view;
        if needs_session {
            // No session with the contact's (new) key yet: start one when the relay answers.
            let engine = self.clone();
            self.spawn(async move { engine.release_all_held().await });
        }
        let view = MessageView::from(&view);
        self.inner.outbox_changed.notify_one();
        self.emit(Event::Message {
            message: view.clone(),
        });
        Ok(view)
    }

    /// Queues held messages of every conversation that may send now (a session exists or
    /// can be started, and no key change waits for acceptance).
    async fn release_all_held(&self) {
        let _one_at_a_time = self.inner.releasing.lock().await;
        let convs = match self.write(|tx| tx.conversations()) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not list conversations");
                return;
            }
        };
        for conv in convs {
            if let Err(e) = self.release_held(&conv).await {
                tracing::info!(error = %e, "held messages stay held");
            }
        }
    }

    async fn release_held(&self, conv: &Conversation) -> Result<(), ClientError> {
        let (held, contact, blocked) = self.write(|tx| {
            let (conv, contact) = Self::conversation_and_contact(tx, conv.id)?;
            Ok((
                tx.held_messages(conv.id)?,
                contact,
                Self::is_held(tx, &conv)?,
            ))
        })?;
        if held.is_empty() || blocked {
            return Ok(());
        }
        let thread = self.write(|tx| thread_of(tx, conv))?;
        let address = session_address(&contact.address, thread);
        if self.write(|tx| tx.session_devices(&address))?.is_empty() {
            let relay = self.current_relay().await?;
            let key = relay_key(&contact)?;
            let bundles = self.claim_bundles(&relay, key).await?;
            let now = now_ms();
            let events = self.write(|tx| {
                let mut events = Vec::new();
                self.start_sessions(
                    tx,
                    &contact.address,
                    thread,
                    &bundles,
                    key,
                    now,
                    &mut events,
                )?;
                Ok(events)
            })?;
            for e in events {
                self.emit(e);
            }
        }
        let now = now_ms();
        self.write(|tx| {
            // Look again: a key change may have arrived while prekeys were claimed.
            let (conv, contact) = Self::conversation_and_contact(tx, conv.id)?;
            if Self::is_held(tx, &conv)? {
                return Ok(());
            }
            for m in &tx.held_messages(conv.id)? {
                let content = Content::Text {
                    id: m.remote_id.unwrap_or_default(),
                    sent_at: m.sent_at,
                    body: m.body.clone(),
                    expire_after_secs: m.expire_after_secs,
                };
                if !self.queue_content(tx, &contact, &conv, &content, Some(m.id), now)? {
                    break;
                }
            }
            Ok(())
        })?;
        self.inner.outbox_changed.notify_one();
        Ok(())
    }

    /// Keeps the unsent text of a standard chat in the encrypted profile, so it survives a
    /// restart (empty text clears it). A secret chat's draft is never written to disk: it
    /// lives in the window only. Returns whether the draft was stored.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for a draft over [`MAX_DRAFT_BYTES`]; a database error.
    pub fn save_draft(
        &self,
        conversation: ConversationId,
        text: &str,
    ) -> Result<bool, ClientError> {
        if text.len() > MAX_DRAFT_BYTES {
            return Err(ClientError::Invalid(
                "the draft is too long (1 MiB at most)",
            ));
        }
        Ok(self.write(|tx| {
            let conv = tx
                .conversation(conversation)?
                .ok_or(StoreError::NotFound("conversation"))?;
            if matches!(conv.kind, ConversationKind::Secret { .. }) {
                return Ok(false);
            }
            let key = draft_key(conv.id);
            if text.is_empty() {
                tx.delete_setting(&key)?;
            } else {
                tx.set_setting(&key, text)?;
            }
            Ok(true)
        })?)
    }

    /// Sets the disappearing timer (applies to messages sent from now on) and tells the
    /// contact, so both sides agree and both see who changed it.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for a bad value (secret chats cannot turn it off).
    pub fn set_timer(
        &self,
        conversation: ConversationId,
        secs: Option<u32>,
    ) -> Result<(), ClientError> {
        validate_timer(secs)?;
        let now = now_ms();
        self.write(|tx| {
            let (conv, contact) = Self::conversation_and_contact(tx, conversation)?;
            tx.set_disappearing_timer(conv.id, secs)?;
            tx.set_setting(&timer_setter_key(conv.id), TIMER_SET_BY_ME)?;
            self.queue_control(tx, &contact, &conv, &Content::Timer { secs }, now)?;
            Ok(())
        })?;
        self.inner.outbox_changed.notify_one();
        self.emit(Event::TimerChanged {
            conversation_id: conversation.0,
            seconds: secs,
            by_me: true,
        });
        Ok(())
    }

    /// Marks a conversation read: starts the disappearing clock of its unread messages and
    /// sends read receipts.
    ///
    /// # Errors
    /// A database error.
    pub fn mark_read(&self, conversation: ConversationId) -> Result<usize, ClientError> {
        let now = now_ms();
        let updated = self.write(|tx| {
            let (conv, contact) = Self::conversation_and_contact(tx, conversation)?;
            let unread = tx.unread_messages(conv.id)?;
            let mut ids = Vec::new();
            for m in &unread {
                tx.set_message_status(m.id, MessageStatus::Read)?;
                if let Some(secs) = m.expire_after_secs {
                    let at = now + i64::from(secs) * 1_000;
                    tx.set_message_expiry(m.id, m.expires_at.map_or(at, |e| e.min(at)))?;
                }
                ids.extend(m.remote_id);
            }
            for chunk in ids.chunks(api::MAX_ACK_IDS) {
                let receipt = Content::Receipt {
                    kind: ReceiptKind::Read,
                    ids: chunk.to_vec(),
                };
                self.queue_content(tx, &contact, &conv, &receipt, None, now)?;
            }
            let mut views = Vec::new();
            for m in &unread {
                if let Some(m) = tx.message(m.id)? {
                    views.push(MessageView::from(&m));
                }
            }
            Ok(views)
        })?;
        self.inner.outbox_changed.notify_one();
        let n = updated.len();
        for message in updated {
            self.emit(Event::MessageUpdated { message });
        }
        Ok(n)
    }

    fn own_message(
        tx: &Tx<'_>,
        id: MessageId,
    ) -> Result<(Message, Conversation, Contact), StoreError> {
        let m = tx.message(id)?.ok_or(StoreError::NotFound("message"))?;
        if m.direction != Direction::Outgoing {
            return Err(StoreError::Invalid("only your own messages can be changed"));
        }
        let (conv, contact) = Self::conversation_and_contact(tx, m.conversation_id)?;
        Ok((m, conv, contact))
    }

    /// Edits one of our messages, here and (by an encrypted control message) there.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for someone else's message or bad text.
    pub fn edit_message(&self, id: MessageId, body: &str) -> Result<MessageView, ClientError> {
        if body.trim().is_empty() || body.len() > MAX_TEXT_BYTES {
            return Err(ClientError::Invalid("the new text is empty or too long"));
        }
        let now = now_ms();
        let view = self.write(|tx| {
            let (m, conv, contact) = Self::own_message(tx, id)?;
            tx.edit_message(m.id, body, now)?;
            if let Some(remote) = m.remote_id {
                let content = Content::Edit {
                    id: remote,
                    body: body.to_owned(),
                    edited_at: now,
                };
                self.queue_control(tx, &contact, &conv, &content, now)?;
            }
            tx.message(m.id)?.ok_or(StoreError::NotFound("message"))
        })?;
        let view = MessageView::from(&view);
        self.inner.outbox_changed.notify_one();
        self.emit(Event::MessageUpdated {
            message: view.clone(),
        });
        Ok(view)
    }

    /// Deletes one of our messages for everyone.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for someone else's message.
    pub fn delete_for_everyone(&self, id: MessageId) -> Result<(), ClientError> {
        let now = now_ms();
        let view = self.write(|tx| {
            let (m, conv, contact) = Self::own_message(tx, id)?;
            if let Some(remote) = m.remote_id {
                self.queue_control(tx, &contact, &conv, &Content::Delete { id: remote }, now)?;
            }
            tx.delete_message(m.id)?;
            Ok(m)
        })?;
        self.inner.outbox_changed.notify_one();
        self.emit(Event::MessageUpdated {
            message: MessageView::deleted(&view),
        });
        Ok(())
    }

    // ---- safety numbers --------------------------------------------------------------

    /// The safety number with a contact: 60 digits and the QR payload.
    ///
    /// # Errors
    /// [`ClientError::NotRegistered`] (the number covers both handles), `NotFound`.
    pub fn safety_number(&self, contact: ContactId) -> Result<SafetyNumber, ClientError> {
        let handle = self.handle()?.ok_or(ClientError::NotRegistered)?;
        let c = self
            .write(|tx| tx.contact(contact))?
            .ok_or(ClientError::NotFound("contact"))?;
        let theirs = IdentityKey::from_bytes(&c.identity_key)
            .map_err(|_| ClientError::Store(StoreError::BadValue("contacts.identity_key")))?;
        let fp = Fingerprint::for_identities(
            handle.as_bytes(),
            self.inner.profile.identity.public(),
            c.address.as_bytes(),
            &theirs,
        )
        .map_err(|_| ClientError::Fingerprint)?;
        Ok(SafetyNumber {
            digits: fp.display.to_string(),
            qr_payload: fp.scannable.to_bytes(),
            verified: c.verified,
            fingerprint: fp,
            remote_key: c.identity_key,
        })
    }

    /// Compares a scanned QR payload with the contact's safety number and marks the contact
    /// verified when it matches. Returns whether it matched.
    ///
    /// # Errors
    /// [`ClientError::Fingerprint`] for a payload that is not a safety-number code.
    pub fn verify_scanned(&self, contact: ContactId, scanned: &[u8]) -> Result<bool, ClientError> {
        let sn = self.safety_number(contact)?;
        let matches = sn
            .fingerprint
            .scannable
            .compare(scanned)
            .map_err(|_| ClientError::Fingerprint)?;
        if matches {
            // Refused by the store if the key changed since the number was computed.
            self.write(|tx| tx.set_verified(contact, &sn.remote_key, true))?;
        }
        Ok(matches)
    }

    /// Marks a contact verified after the user compared the 60 digits (or clears it). Like a
    /// scan, it binds to the key the number was computed for.
    ///
    /// # Errors
    /// `NotFound`, or a store error if the key changed in between.
    /// To mark verified, `compared` must be the 60 digits the user compared: if the key
    /// changed after they were shown, the digits no longer match and nothing is marked.
    pub fn set_verified(
        &self,
        contact: ContactId,
        verified: bool,
        compared: &str,
    ) -> Result<(), ClientError> {
        let sn = self.safety_number(contact)?;
        if verified && sn.digits != compared {
            return Err(ClientError::Invalid(
                "The safety number changed while you were comparing it. Compare the new one.",
            ));
        }
        self.write(|tx| tx.set_verified(contact, &sn.remote_key, verified))?;
        Ok(())
    }

    /// Whether the contact's identity key changed and the user has not accepted it yet.
    ///
    /// # Errors
    /// A database error.
    pub fn key_change_pending(&self, contact: ContactId) -> Result<bool, ClientError> {
        Ok(self.write(|tx| tx.key_change_pending(contact))?)
    }

    /// One conversation as the list shows it.
    ///
    /// # Errors
    /// `NotFound`, or a database error.
    pub fn conversation(&self, id: ConversationId) -> Result<ConversationView, ClientError> {
        self.write(|tx| match tx.conversation(id)? {
            Some(conv) => conversation_view(tx, &conv),
            None => Ok(None),
        })?
        .ok_or(ClientError::NotFound("conversation"))
    }

    /// Reads the QR codes in an image (screenshot, photo, pasted file) and verifies the
    /// contact with the first one that is their safety number. Returns whether one matched.
    ///
    /// # Errors
    /// [`ClientError::Qr`] when the image holds no readable code.
    /// A code that is some other QR code (a link, a Wi-Fi password) is not a mismatch: when
    /// no code in the image is a safety-number code the result is
    /// [`ClientError::Fingerprint`].
    pub fn verify_image(&self, contact: ContactId, image: &[u8]) -> Result<bool, ClientError> {
        let mut saw_safety_number = false;
        for payload in crate::qr::decode_image(image)? {
            match self.verify_scanned(contact, &payload) {
                Ok(true) => return Ok(true),
                Ok(false) => saw_safety_number = true,
                Err(ClientError::Fingerprint) => {}
                Err(e) => return Err(e),
            }
        }
        if saw_safety_number {
            Ok(false)
        } else {
            Err(ClientError::Fingerprint)
        }
    }

    /// Accepts a contact's new identity key: secret chats release their held messages.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn accept_key_change(&self, contact: ContactId) -> Result<(), ClientError> {
        self.write(|tx| tx.set_key_change_pending(contact, false))?;
        self.release_all_held().await;
        Ok(())
    }

    // ---- the outbox ------------------------------------------------------------------

    /// Waits until the outbox is empty (everything acknowledged by the relay) or `timeout`
    /// passes. Returns whether it emptied.
    ///
    /// # Errors
    /// A database error.
    pub async fn flush(&self, timeout: Duration) -> Result<bool, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the check, so progress between the two is not missed.
            let progress = self.inner.outbox_progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            if self.write(|tx| tx.outbox_len())? == 0 {
                return Ok(true);
            }
            tokio::select! {
                () = progress => {}
                () = tokio::time::sleep_until(deadline) => return Ok(false),
            }
        }
    }

    async fn outbox_loop(&self) {
        let mut stop = self.inner.shutdown.subscribe();
        let mut connection = self.connection();
        loop {
            if *stop.borrow() {
                return;
            }
            let next = match self.pump_once().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::info!(error = %e, "outbox paused");
                    Some(now_ms() + BACKOFF_MAX.as_millis() as i64)
                }
            };
            let wait = next.map(|at| {
                tokio::time::Instant::now()
                    + Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))
            });
            tokio::select! {
                () = self.inner.outbox_changed.notified() => {}
                _ = connection.changed() => {}
                _ = stop.changed() => return,
                () = async {
                    match wait {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
    }

    /// Sends due outbox entries in queue order, keeping each recipient device's order: once
    /// one of its entries is not due, its later entries wait too. Up to [`SEND_WINDOW`]
    /// envelopes are in flight at once (the relay commits one connection's envelopes in the
    /// order it reads them); their outcomes are recorded in one transaction. Returns when the
    /// next waiting entry falls due.
    async fn pump_once(&self) -> Result<Option<UnixMillis>, ClientError> {
        let Ok(relay) = self.current_relay().await else {
            // Offline: the connection watch wakes the loop.
            return Ok(None);
        };
        loop {
            let queue = self.write(|tx| tx.outbox_queue(OUTBOX_BATCH))?;
            let now = now_ms();
            let mut waiting: HashSet<(String, u32)> = HashSet::new();
            let mut next_due: Option<UnixMillis> = None;
            let mut sendable = Vec::new();
            for item in queue {
                let device = (item.recipient.clone(), item.device_id);
                if waiting.contains(&device) {
                    continue;
                }
                if item.next_attempt_at > now {
                    next_due = Some(
                        next_due.map_or(item.next_attempt_at, |d| d.min(item.next_attempt_at)),
                    );
                    waiting.insert(device);
                    continue;
                }
                sendable.push(item);
                if sendable.len() >= SEND_WINDOW {
                    break;
                }
            }
            if sendable.is_empty() {
                return Ok(next_due);
            }
            let sends = sendable.iter().map(|item| {
                let relay = relay.clone();
                let item = item.clone();
                async move {
                    let to = hex::decode(&item.recipient)
                        .ok()
                        .and_then(|k| <[u8; 32]>::try_from(k).ok())
                        .ok_or(StoreError::BadValue("outbox.recipient"))?;
                    Ok::<_, StoreError>(
                        relay
                            .request(move |req| ClientFrame::Send {
                                req,
                                id: api::EnvelopeId(item.envelope_id),
                                to: api::DeviceAddress {
                                    identity_key: api::IdentityKey(to),
                                    device_id: item.device_id,
                                },
                                body: item.envelope,
                            })
                            .await,
                    )
                }
            });
            let results = futures_util::future::join_all(sends).await;
            crate::fault::point("after-relay-ack");
            let (updated, lost) = self.write(|tx| {
                let mut updated = Vec::new();
                let mut lost = None;
                for (item, result) in sendable.iter().zip(results) {
                    match result? {
                        Ok(_) => {
                            tx.outbox_acked(item.id)?;
                            let Some(mid) = item.message_id else { continue };
                            if let Some(m) = tx.message(mid)?
                                && m.status == MessageStatus::Pending
                            {
                                tx.set_message_status(mid, MessageStatus::Sent)?;
                                if let Some(secs) = m.expire_after_secs {
                                    // The sender's clock starts now that the relay has it.
                                    tx.set_message_expiry(mid, now_ms() + i64::from(secs) * 1_000)?;
                                }
                                updated.extend(tx.message(mid)?);
                            }
                        }
                        Err(RelayError::Refused(
                            code @ (ErrorCode::UnknownRecipient | ErrorCode::EnvelopeTooLarge),
                        )) => {
                            tracing::warn!(?code, "the relay refused an envelope for good");
                            tx.outbox_acked(item.id)?;
                            let Some(mid) = item.message_id else { continue };
                            tx.drop_outbox_of(mid)?;
                            tx.set_message_status(mid, MessageStatus::Failed)?;
                            updated.extend(tx.message(mid)?);
                        }
                        Err(e) => {
                            // Deferred (rate limit, full queue) or the connection is gone:
                            // try again later; later entries may overtake it, which the
                            // ratchet and the display order (by sending time) absorb.
                            let at = now_ms() + backoff(item.attempts).as_millis() as i64;
                            tx.outbox_retry_at(item.id, at)?;
                            if !matches!(e, RelayError::Refused(_)) {
                                lost = Some(e);
                            }
                        }
                    }
                }
                Ok((updated, lost))
            })?;
            self.inner.outbox_progress.notify_waiters();
            for m in &updated {
                self.emit(Event::MessageUpdated {
                    message: MessageView::from(m),
                });
            }
            if let Some(e) = lost {
                return Err(e.into());
            }
        }
    }
}

/// A safety number as the UI shows it.
#[derive(Clone, Debug)]
pub struct SafetyNumber {
    /// 60 digits.
    pub digits: String,
    /// What the QR code encodes.
    pub qr_payload: Vec<u8>,
    /// Whether the contact is verified.
    pub verified: bool,
    fingerprint: Fingerprint,
    /// The contact key this number was computed for: verification applies to it only.
    remote_key: Vec<u8>,
}

impl SafetyNumber {
    /// The QR code's modules (`true` = dark), for the UI to draw.
    ///
    /// # Errors
    /// [`crate::qr::QrError::TooLong`] (cannot happen for a safety number).
    pub fn qr_modules(&self) -> Result<Vec<Vec<bool>>, crate::qr::QrError> {
        crate::qr::modules(&self.qr_payload)
    }

    /// The digits in the 12 groups of 5 that both people read out.
    pub fn groups(&self) -> Vec<&str> {
        (0..self.digits.len())
            .step_by(5)
            .filter_map(|i| self.digits.get(i..i + 5))
            .collect()
    }
}

/// A conversation as the list shows it (`None` if its contact is gone).
fn conversation_view(
    tx: &Tx<'_>,
    conv: &Conversation,
) -> Result<Option<ConversationView>, StoreError> {
    let Some(contact) = tx.contact(conv.contact_id)? else {
        return Ok(None);
    };
    Ok(Some(ConversationView {
        id: conv.id.0,
        kind: kind_name(conv),
        contact_id: contact.id.0,
        verified: contact.verified,
        disappear_after_secs: conv.disappear_after_secs,
        timer_set_by_me: tx
            .setting(&timer_setter_key(conv.id))?
            .map(|who| who == TIMER_SET_BY_ME),
        unread: tx.unread_messages(conv.id)?.len(),
        key_change_pending: tx.key_change_pending(contact.id)?,
        draft: match conv.kind {
            ConversationKind::Standard => tx.setting(&draft_key(conv.id))?,
            ConversationKind::Secret { .. } => None,
        },
        last_message: tx
            .conversation_page(conv.id, None, 1)?
            .first()
            .map(MessageView::from),
        contact_name: contact.address,
    }))
}

/// Drops the sessions of a contact's secret chats (after a key change they belong to the old
/// key); the next message starts a new session with the new key.
fn forget_secret_sessions(tx: &Tx<'_>, contact: &Contact) -> Result<(), StoreError> {
    for conv in tx.conversations()? {
        if conv.contact_id == contact.id
            && let Some(tag) = tx.secret_thread(conv.id)?
        {
            tx.delete_sessions(&session_address(&contact.address, ThreadTag(tag)), None)?;
        }
    }
    Ok(())
}

/// Who last set a conversation's timer, kept so both sides can always show it.
const TIMER_SET_BY_ME: &str = "me";
const TIMER_SET_BY_CONTACT: &str = "contact";

/// Where a standard chat's draft is kept (settings live in the encrypted profile).
fn draft_key(conv: ConversationId) -> String {
    format!("draft/{}", conv.0)
}

fn timer_setter_key(conv: ConversationId) -> String {
    format!("timer_set_by/{}", conv.0)
}

fn thread_of(tx: &Tx<'_>, conv: &Conversation) -> Result<ThreadTag, StoreError> {
    Ok(tx
        .secret_thread(conv.id)?
        .map_or(STANDARD_THREAD, ThreadTag))
}

fn status_rank(s: MessageStatus) -> u8 {
    match s {
        MessageStatus::Failed => 0,
        MessageStatus::Pending => 1,
        MessageStatus::Sent => 2,
        MessageStatus::Delivered => 3,
        MessageStatus::Read | MessageStatus::Received => 4,
    }
}

fn push_updated(tx: &Tx<'_>, id: MessageId, events: &mut Vec<Event>) -> Result<(), StoreError> {
    if let Some(m) = tx.message(id)? {
        events.push(Event::MessageUpdated {
            message: MessageView::from(&m),
        });
    }
    Ok(())
}
