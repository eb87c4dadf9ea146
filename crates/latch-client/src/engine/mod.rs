//! The engine: one open profile, its relay connection, its outbox, its sweeper, and the
//! event stream a UI subscribes to.
//!
//! Send: the message row and its encrypted outbox entries commit in one transaction, then the
//! outbox pump hands entries to the relay one at a time, in order, and drops each only after
//! the relay acknowledged it (retrying with back-off). Receive: each envelope is decrypted,
//! stored, and its id recorded as seen in one transaction, and acknowledged to the relay
//! only after that commit; a redelivery after a crash is recognised by its id and dropped.
//!
//! One concern per file, each an `impl Engine` block over the shared state kept here:
//! `registration` (the relay account and this device's prekeys), `connection` (the relay
//! link and what it pushes), `receive` (envelope → decrypt → store), `send` (encrypting into
//! the outbox, held messages, edits and deletes), `outbox` (the pump), `contacts`, `requests` (message requests and blocking), `calls` (call signalling
//! and call keys), `threads`
//! (standard and secret chats, drafts, timers, read state) and `trust` (safety numbers and
//! key changes).

mod calls;
mod connection;
mod contacts;
mod outbox;
mod receive;
mod registration;
mod requests;
mod send;
mod threads;
mod trust;

pub use calls::{CallMedia, LocalTransport};
pub use connection::KEEPALIVE_INTERVAL;
pub use trust::SafetyNumber;

use std::sync::Arc;
use std::time::Duration;

use latch_protocol::session;
use latch_store::{
    Contact, ContactId, Conversation, ConversationId, ConversationKind, Store, StoreError,
    StoreEvent, Sweeper, Tx, UnixMillis,
};
use tokio::sync::{Notify, RwLock, broadcast, watch};

use crate::events::{ConnectionState, Event};
use crate::prekeys::BundleError;
use crate::profile::{OpenProfile, PRIMARY_DEVICE_ID, ProfileInfo, SETTING_RELAY_URL};
use crate::relay::{Relay, RelayError};
use crate::wire::{STANDARD_THREAD, ThreadTag, WireError};

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
    /// A first message for an existing secret chat came from a key the user has not
    /// accepted: a secret chat stays with the key it started with.
    #[error("a secret chat message came from the contact's new, unaccepted key")]
    SecretChatRekeyed,
    /// The sender is blocked: dropped unread, and reported nowhere.
    #[error("envelope from a blocked contact")]
    Blocked,
    /// The store failed; the envelope is not acknowledged and will come again.
    #[error("store failed: {0}")]
    Store(#[from] StoreError),
}

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
    /// How often an idle connection pings the relay, in milliseconds.
    keepalive_ms: std::sync::atomic::AtomicU64,
    /// Collapses the relay's "prekeys low" notices (see `registration`).
    replenish_gate: registration::ReplenishGate,
    /// The call in progress and its switchboard (see `calls`).
    calls: std::sync::Mutex<calls::CallDesk>,
    /// Wakes the call timer task when the switchboard changed.
    calls_changed: Notify,
    /// Media tasks report here; the call timer task reads it.
    media_reports_tx: tokio::sync::mpsc::UnboundedSender<(u64, crate::call_media::MediaReport)>,
    media_reports: tokio::sync::Mutex<
        tokio::sync::mpsc::UnboundedReceiver<(u64, crate::call_media::MediaReport)>,
    >,
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

/// How a contact's identity key is named to the user and the UI: the hex of its signing key,
/// as in invite codes. A key change is accepted only for the key it names.
fn key_name(identity_key: &[u8]) -> Result<String, StoreError> {
    latch_protocol::identity::signing_key_of(identity_key)
        .map(hex::encode)
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
        let (media_reports_tx, media_reports) = tokio::sync::mpsc::unbounded_channel();
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
            replenish_gate: registration::ReplenishGate::default(),
            keepalive_ms: std::sync::atomic::AtomicU64::new(
                u64::try_from(KEEPALIVE_INTERVAL.as_millis()).unwrap_or(30_000),
            ),
            calls: std::sync::Mutex::new(calls::CallDesk::default()),
            calls_changed: Notify::new(),
            media_reports_tx,
            media_reports: tokio::sync::Mutex::new(media_reports),
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

    /// Starts the relay connection (reconnecting with back-off) and the outbox pump.
    pub fn start(&self) {
        let engine = self.clone();
        self.spawn(async move { engine.connection_loop().await });
        let engine = self.clone();
        self.spawn(async move { engine.outbox_loop().await });
        let engine = self.clone();
        self.spawn(async move { engine.calls_loop().await });
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
}

/// Creates a secret chat on `thread`: bound to this device, always with a timer.
fn create_secret_conversation(
    tx: &Tx<'_>,
    contact: ContactId,
    thread: ThreadTag,
    timer_secs: u32,
    now: UnixMillis,
) -> Result<ConversationId, StoreError> {
    let kind = ConversationKind::Secret {
        bound_device_id: PRIMARY_DEVICE_ID,
    };
    let id = tx.create_conversation(contact, kind, Some(timer_secs), now)?;
    tx.set_secret_thread(id, &thread.0)?;
    Ok(id)
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
