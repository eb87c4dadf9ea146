//! Storage behind traits, so the protocol handling never sees SQL.
//!
//! [`MailboxStore`] is shaped after a per-device durable queue with an ordered push consumer:
//! `enqueue` returns once the envelope is durable, `subscribe` streams newly committed
//! envelopes of one device in order, `backlog` replays from a cursor, acks delete. That maps
//! one-to-one onto NATS JetStream (a stream per device subject, `publish` + ack, an ordered
//! consumer, `DeliverByStartSequence`, message delete), so a JetStream implementation can be
//! added next to [`sqlite::SqliteStore`] without touching [`crate::server`].
//! [`DirectoryStore`] holds the small, strongly consistent data (devices, handles, prekeys).

pub mod sqlite;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc};

use crate::api::{DeviceAddress, EnvelopeId, IdentityKey, PrekeyBundle, PrekeyUpload};

/// Why a storage operation failed. Messages never include keys or bodies.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database reported an error (I/O, corruption, full disk).
    #[error("database error: {0}")]
    Database(String),
    /// The store is shutting down and takes no more work.
    #[error("store is closed")]
    Closed,
}

/// An envelope to store.
#[derive(Debug, Clone)]
pub struct NewEnvelope {
    /// Sender-chosen id, unique per recipient.
    pub id: EnvelopeId,
    /// The authenticated sender.
    pub from: DeviceAddress,
    /// Whose mailbox.
    pub to: DeviceAddress,
    /// Commit time (Unix ms).
    pub received_at_ms: u64,
    /// When the envelope is dropped undelivered (Unix ms).
    pub expires_at_ms: u64,
    /// Ciphertext.
    pub body: Vec<u8>,
}

/// An envelope in a mailbox.
#[derive(Debug, Clone)]
pub struct StoredEnvelope {
    /// Position in commit order (global, increasing, never reused).
    pub seq: u64,
    /// The envelope.
    pub envelope: NewEnvelope,
}

/// What happened to an enqueued envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// Durably stored.
    Stored,
    /// An envelope with this id is already queued for the recipient; nothing changed.
    Duplicate,
    /// The recipient's mailbox is at the cap; nothing stored.
    QueueFull,
    /// The recipient device is not registered; nothing stored.
    UnknownRecipient,
}

/// A boxed future, so both traits stay object-safe (`Arc<dyn MailboxStore>`).
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>>;

/// Per-device durable queues.
pub trait MailboxStore: Send + Sync + 'static {
    /// Queue an envelope; the future resolves once it is durable (or refused). The envelope's
    /// place in the order is fixed when this method *returns*, before the future is polled, so
    /// a connection can pipeline sends and keep their order.
    fn enqueue(&self, envelope: NewEnvelope) -> StoreFuture<EnqueueOutcome>;

    /// Up to `limit` unexpired envelopes of `device` with `seq > after_seq`, in `seq` order.
    fn backlog(
        &self,
        device: DeviceAddress,
        after_seq: u64,
        limit: usize,
        now_ms: u64,
    ) -> StoreFuture<Vec<StoredEnvelope>>;

    /// Delete these ids from `device`'s mailbox only; returns how many were deleted.
    fn ack_ids(&self, device: DeviceAddress, ids: Vec<EnvelopeId>) -> StoreFuture<u64>;

    /// Delete these (sender, id) envelopes from `device`'s mailbox only; returns how many were
    /// deleted. The pair is what is unique in a mailbox, so another sender's envelope that
    /// reused an id is never touched.
    fn ack_envelopes(
        &self,
        device: DeviceAddress,
        envelopes: Vec<(DeviceAddress, EnvelopeId)>,
    ) -> StoreFuture<u64>;

    /// Delete `device`'s envelopes with `seq <= through`; returns how many were deleted.
    fn ack_through(&self, device: DeviceAddress, through: u64) -> StoreFuture<u64>;

    /// Delete every envelope expired at `now_ms`; returns how many.
    fn purge_expired(&self, now_ms: u64) -> StoreFuture<u64>;

    /// Stream `device`'s envelopes as they commit, in order. A newer subscription for the same
    /// device ends the older one (its channel closes).
    fn subscribe(&self, device: DeviceAddress) -> Subscription;

    /// Envelopes queued across all mailboxes (for the queue-depth gauge; may lag slightly).
    fn queued_total(&self) -> u64;

    /// Wait until every accepted write is committed and stop taking new ones.
    fn close(&self) -> StoreFuture<()>;
}

/// Devices, handles and prekeys.
pub trait DirectoryStore: Send + Sync + 'static {
    /// Create the device if new, unless its identity already has the most devices allowed.
    fn register_device(&self, device: DeviceAddress, now_ms: u64) -> StoreFuture<Registration>;

    /// Whether the device is registered.
    fn device_exists(&self, device: DeviceAddress) -> StoreFuture<bool>;

    /// Registered device numbers of an identity, ascending.
    fn devices(&self, identity_key: IdentityKey) -> StoreFuture<Vec<u32>>;

    /// Point `handle` (already normalised) at `owner`, dropping any handle `owner` had.
    /// Returns `false` if another identity owns it.
    fn claim_handle(&self, handle: String, owner: IdentityKey) -> StoreFuture<bool>;

    /// The identity owning `handle`.
    fn lookup_handle(&self, handle: String) -> StoreFuture<Option<IdentityKey>>;

    /// Store `device`'s prekeys; returns its one-time prekey count afterwards. One-time keys
    /// past the store's per-device cap are not stored.
    fn publish_prekeys(&self, device: DeviceAddress, upload: PrekeyUpload) -> StoreFuture<u32>;

    /// One bundle per device (or for `device_id` only), each one-time key removed atomically
    /// as it is handed out. Each bundle comes with the device's one-time keys left. A claim
    /// over all devices answers for at most the store's devices-per-identity cap (the lowest
    /// device numbers), so its work and its answer stay bounded.
    fn claim_prekeys(
        &self,
        identity_key: IdentityKey,
        device_id: Option<u32>,
    ) -> StoreFuture<Vec<(PrekeyBundle, u32)>>;

    /// One-time prekeys stored for `device`.
    fn one_time_prekey_count(&self, device: DeviceAddress) -> StoreFuture<u32>;

    /// Delete `device` everywhere, atomically: its registration, its mailbox (envelopes are
    /// dropped undelivered) and its prekeys; when its identity has no device left, its handle
    /// is released too. Later sends to it get [`EnqueueOutcome::UnknownRecipient`].
    fn unregister_device(&self, device: DeviceAddress) -> StoreFuture<Unregistered>;
}

/// What [`DirectoryStore::register_device`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Registration {
    /// The device is new and now registered.
    Created,
    /// The device was registered already; nothing changed.
    Existing,
    /// The identity already has the most devices allowed; nothing stored.
    TooManyDevices,
}

/// Caps a store enforces per identity and per device (see [`crate::config::Config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Most envelopes one mailbox holds.
    pub queue_cap: u64,
    /// Most devices one identity may register.
    pub max_devices_per_identity: u32,
    /// Most one-time prekeys stored for one device.
    pub max_one_time_prekeys: u32,
}

impl Default for StoreLimits {
    fn default() -> Self {
        let c = crate::config::Config::default();
        Self {
            queue_cap: c.queue_cap,
            max_devices_per_identity: c.max_devices_per_identity,
            max_one_time_prekeys: c.max_one_time_prekeys,
        }
    }
}

/// What [`DirectoryStore::unregister_device`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unregistered {
    /// Whether the device was registered at all.
    pub device_existed: bool,
    /// Envelopes dropped from its mailbox.
    pub envelopes_deleted: u64,
    /// Whether the identity's handle was released (it had no device left).
    pub handle_released: bool,
}

/// A live feed of one device's newly committed envelopes.
///
/// If the consumer falls behind (its buffer is full) the producer drops envelopes and raises
/// the lag signal; the consumer then re-reads from its cursor with
/// [`MailboxStore::backlog`], so nothing is skipped and order is kept.
pub struct Subscription {
    /// Newly committed envelopes, in `seq` order.
    pub envelopes: mpsc::Receiver<Arc<StoredEnvelope>>,
    /// Raised when envelopes were dropped for this subscriber.
    pub lag: Arc<LagSignal>,
}

/// Lag flag plus wake-up for a [`Subscription`].
#[derive(Debug, Default)]
pub struct LagSignal {
    lagged: AtomicBool,
    notify: Notify,
}

impl LagSignal {
    /// Mark lag and wake the consumer.
    pub fn raise(&self) {
        self.lagged.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// Clear the flag; returns whether it was set.
    pub fn take(&self) -> bool {
        self.lagged.swap(false, Ordering::SeqCst)
    }

    /// Wait for the next [`LagSignal::raise`].
    pub async fn wait(&self) {
        self.notify.notified().await;
    }
}

/// Envelopes buffered per subscriber before it counts as lagging.
const SUBSCRIPTION_BUFFER: usize = 1024;

struct Subscriber {
    tx: mpsc::Sender<Arc<StoredEnvelope>>,
    lag: Arc<LagSignal>,
}

/// Fan-out of committed envelopes to subscribers, for store implementations to reuse.
#[derive(Default)]
pub struct SubscriberRegistry {
    subs: Mutex<HashMap<DeviceAddress, Subscriber>>,
}

impl SubscriberRegistry {
    /// Register (or replace) the subscriber for `device`.
    pub fn subscribe(&self, device: DeviceAddress) -> Subscription {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let lag = Arc::new(LagSignal::default());
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        subs.insert(
            device,
            Subscriber {
                tx,
                lag: lag.clone(),
            },
        );
        Subscription { envelopes: rx, lag }
    }

    /// Hand committed envelopes (in commit order) to their recipients' subscribers.
    pub fn publish(&self, committed: &[Arc<StoredEnvelope>]) {
        if committed.is_empty() {
            return;
        }
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        for env in committed {
            let to = env.envelope.to;
            let Some(sub) = subs.get(&to) else { continue };
            match sub.tx.try_send(env.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => sub.lag.raise(),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    subs.remove(&to);
                }
            }
        }
    }
}
