//! The embedded default store: one SQLite file in WAL mode.
//!
//! All writes go through one dedicated writer thread that commits in groups: it takes every
//! command waiting in its queue (up to [`MAX_BATCH`]), applies them in one transaction, commits
//! once, and only then answers each caller. Under load one fsync covers hundreds of envelopes;
//! idle, a lone envelope commits at once. A separate thread checkpoints the WAL, so copying
//! pages back into the database file is rarely part of a commit. Reads use a small
//! pool of read-only connections, which WAL lets run beside the writer. The database is
//! unkeyed: it only ever holds ciphertext and public keys.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::{
    DirectoryStore, EnqueueOutcome, MailboxStore, NewEnvelope, Registration, StoreError,
    StoreFuture, StoreLimits, StoredEnvelope, SubscriberRegistry, Subscription, Unregistered,
};
use crate::api::{DeviceAddress, EnvelopeId, IdentityKey, Prekey, PrekeyBundle, PrekeyUpload};

/// Most commands per transaction: bounds how long one commit holds callers waiting.
pub const MAX_BATCH: usize = 2048;

/// Read-only connections: two is enough for backlog reads on a 2-core host.
const READERS: usize = 2;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
/// Never edit a migration that may have shipped: add the next numbered file.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_dedup_by_sender.sql"),
];

/// How hard commits are flushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fsync the WAL on every commit: an acked envelope survives power loss.
    #[default]
    Full,
    /// fsync only at checkpoints: survives a crash of the relay process, not of the machine.
    Normal,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

enum Command {
    Enqueue(
        NewEnvelope,
        oneshot::Sender<Result<EnqueueOutcome, StoreError>>,
    ),
    AckIds(
        DeviceAddress,
        Vec<EnvelopeId>,
        oneshot::Sender<Result<u64, StoreError>>,
    ),
    AckEnvelopes(
        DeviceAddress,
        Vec<(DeviceAddress, EnvelopeId)>,
        oneshot::Sender<Result<u64, StoreError>>,
    ),
    AckThrough(DeviceAddress, u64, oneshot::Sender<Result<u64, StoreError>>),
    Unregister(
        DeviceAddress,
        oneshot::Sender<Result<Unregistered, StoreError>>,
    ),
    Purge(u64, oneshot::Sender<Result<u64, StoreError>>),
    Register(
        DeviceAddress,
        u64,
        oneshot::Sender<Result<Registration, StoreError>>,
    ),
    ClaimHandle(
        String,
        IdentityKey,
        oneshot::Sender<Result<bool, StoreError>>,
    ),
    Publish(
        DeviceAddress,
        PrekeyUpload,
        oneshot::Sender<Result<u32, StoreError>>,
    ),
    Claim(
        IdentityKey,
        Option<u32>,
        oneshot::Sender<Result<Vec<(PrekeyBundle, u32)>, StoreError>>,
    ),
    Flush(oneshot::Sender<Result<(), StoreError>>),
}

struct Shared {
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    registry: SubscriberRegistry,
    queued_total: AtomicU64,
    closed: AtomicBool,
}

/// The SQLite implementation of [`MailboxStore`] and [`DirectoryStore`].
pub struct SqliteStore {
    tx: Mutex<Option<mpsc::Sender<Command>>>,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// Page cache of the writer connection, in KiB. SQLite's 2 MiB default is smaller than the
/// hot part of the mailbox indexes, so every commit re-read pages from the OS and spilled
/// dirty pages to the WAL in mid-transaction.
const WRITER_CACHE_KIB: u32 = 64 * 1024;

/// WAL size (pages) at which the writer checkpoints by itself. The checkpoint thread normally
/// copies the WAL back long before, but under continuous writes the WAL is only reset by a
/// checkpoint that catches up completely, which this one does (no commit runs during it), and
/// a long WAL slows every page lookup (one more hash block to search per 4,096 frames).
const WRITER_AUTOCHECKPOINT_PAGES: u32 = 4096;

/// Least time between two background checkpoints.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Page cache of each read-only connection, in KiB (backlog reads touch fewer pages).
const READER_CACHE_KIB: u32 = 16 * 1024;

fn open(path: &Path, durability: Durability, read_only: bool) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(db_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(db_err)?;
    let cache_kib = if read_only {
        READER_CACHE_KIB
    } else {
        WRITER_CACHE_KIB
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={}; PRAGMA temp_store=MEMORY; \
         PRAGMA cache_size=-{cache_kib};",
        durability.pragma()
    ))
    .map_err(db_err)?;
    // Every statement the writer runs stays prepared (transaction control included).
    conn.set_prepared_statement_cache_capacity(64);
    if read_only {
        conn.execute_batch("PRAGMA query_only=1;").map_err(db_err)?;
    }
    Ok(conn)
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let target = i64::try_from(i + 1).unwrap_or(i64::MAX);
        if version < target {
            conn.execute_batch(&format!(
                "BEGIN; {sql}; PRAGMA user_version={target}; COMMIT;"
            ))
            .map_err(db_err)?;
        }
    }
    Ok(())
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn key_array<const N: usize>(v: Vec<u8>) -> Result<[u8; N], rusqlite::Error> {
    <[u8; N]>::try_from(v).map_err(|_| rusqlite::Error::InvalidQuery)
}

impl SqliteStore {
    /// Open (creating and migrating if needed) the database at `path`. `queue_cap` is the most
    /// envelopes one mailbox may hold; the other limits keep their defaults.
    pub fn open(path: &Path, durability: Durability, queue_cap: u64) -> Result<Self, StoreError> {
        Self::open_with_limits(
            path,
            durability,
            StoreLimits {
                queue_cap,
                ..StoreLimits::default()
            },
        )
    }

    /// Open (creating and migrating if needed) the database at `path`, enforcing `limits`.
    pub fn open_with_limits(
        path: &Path,
        durability: Durability,
        limits: StoreLimits,
    ) -> Result<Self, StoreError> {
        let writer_conn = open(path, durability, false)?;
        migrate(&writer_conn)?;
        let total: i64 = writer_conn
            .query_row("SELECT COUNT(*) FROM envelopes", [], |r| r.get(0))
            .map_err(db_err)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(Mutex::new(open(path, durability, true)?));
        }
        let shared = Arc::new(Shared {
            readers,
            next_reader: AtomicUsize::new(0),
            registry: SubscriberRegistry::default(),
            queued_total: AtomicU64::new(to_u64(total)),
            closed: AtomicBool::new(false),
        });
        // Checkpoints (copying the WAL back into the database file, with its fsync) run on
        // their own thread and connection, beside the writer instead of inside its commits;
        // the writer's own auto-checkpoint stays as a backstop that bounds the WAL.
        writer_conn
            .execute_batch(&format!(
                "PRAGMA wal_autocheckpoint={WRITER_AUTOCHECKPOINT_PAGES};"
            ))
            .map_err(db_err)?;
        let checkpoint_conn = open(path, durability, false)?;
        checkpoint_conn
            .execute_batch("PRAGMA wal_autocheckpoint=0;")
            .map_err(db_err)?;
        let (ckpt_tx, ckpt_rx) = mpsc::sync_channel(1);
        let checkpointer = std::thread::Builder::new()
            .name("latch-relay-ckpt".into())
            .spawn(move || checkpoint_loop(&checkpoint_conn, &ckpt_rx))
            .map_err(|e| StoreError::Database(format!("cannot start checkpoint thread: {e}")))?;
        let (tx, rx) = mpsc::channel();
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("latch-relay-sqlite-writer".into())
            .spawn(move || {
                Writer {
                    conn: writer_conn,
                    shared: writer_shared,
                    depth: HashMap::new(),
                    known: HashSet::new(),
                    limits,
                    checkpoint: Some((ckpt_tx, checkpointer)),
                }
                .run(rx)
            })
            .map_err(|e| StoreError::Database(format!("cannot start writer thread: {e}")))?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            shared,
            writer: Mutex::new(Some(writer)),
        })
    }

    fn submit<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> StoreFuture<T> {
        let (reply, rx) = oneshot::channel();
        let sent = if self.shared.closed.load(Ordering::SeqCst) {
            false
        } else {
            let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
            guard
                .as_ref()
                .is_some_and(|tx| tx.send(make(reply)).is_ok())
        };
        Box::pin(async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            rx.await.unwrap_or(Err(StoreError::Closed))
        })
    }

    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> StoreFuture<T> {
        let shared = self.shared.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let n = shared.readers.len().max(1);
                let start = shared.next_reader.fetch_add(1, Ordering::Relaxed) % n;
                // Prefer an idle reader; otherwise wait for the one round-robin picked.
                for i in 0..n {
                    if let Some(m) = shared.readers.get((start + i) % n)
                        && let Ok(conn) = m.try_lock()
                    {
                        return f(&conn).map_err(db_err);
                    }
                }
                let m = shared.readers.get(start).ok_or(StoreError::Closed)?;
                let conn = m.lock().unwrap_or_else(|p| p.into_inner());
                f(&conn).map_err(db_err)
            })
            .await
            .map_err(|_| StoreError::Closed)?
        })
    }

    /// Stop the writer thread after it has committed everything queued. Called on drop too.
    pub fn shutdown(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    depth: HashMap<DeviceAddress, u64>,
    /// Devices seen registered; an unregistered device is removed from it in the same
    /// command that deletes its row (both run on this thread).
    known: HashSet<DeviceAddress>,
    limits: StoreLimits,
    /// Wakes the checkpoint thread after commits; dropping the sender stops it.
    checkpoint: Option<(mpsc::SyncSender<()>, JoinHandle<()>)>,
}

/// Copy committed WAL frames into the database file, at most once per
/// [`CHECKPOINT_INTERVAL`], whenever the writer has committed since the last time. `PASSIVE`
/// never blocks the writer or readers; it stops when the writer's sender is dropped.
fn checkpoint_loop(conn: &Connection, wake: &mpsc::Receiver<()>) {
    let mut committed_since = false;
    loop {
        if !committed_since && wake.recv().is_err() {
            return;
        }
        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
            tracing::warn!(error = %e, "background checkpoint failed");
        }
        // Let commits accumulate: one checkpoint (and fsync) covers many of them.
        committed_since = false;
        let until = std::time::Instant::now() + CHECKPOINT_INTERVAL;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match wake.recv_timeout(left) {
                Ok(()) => committed_since = true,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Command>) {
        while let Ok(first) = rx.recv() {
            let mut batch = Vec::with_capacity(64);
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
            if let Some((tx, _)) = &self.checkpoint {
                // Full means a checkpoint is already requested: nothing to add.
                let _ = tx.try_send(());
            }
        }
        if let Some((tx, thread)) = self.checkpoint.take() {
            drop(tx);
            let _ = thread.join();
        }
        let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
    }

    fn commit_batch(&mut self, batch: Vec<Command>) {
        // Fast path: the whole group in one plain transaction. A savepoint per command would
        // cost two statements and a statement journal copy of every page each command
        // touches; failures are rare, so only a group in which some command fails pays for
        // isolation: it is rolled back and run again with one savepoint per command, so the
        // failing command is undone alone and the rest still commits.
        let mut attempt = self.run_group(&batch, false);
        if matches!(attempt, Err(GroupError::CommandFailed)) {
            let _ = self.exec("ROLLBACK");
            self.reset_caches();
            attempt = self.run_group(&batch, true);
        }
        let attempt = match attempt {
            Ok(done) => self.exec("COMMIT").map(|()| done),
            Err(GroupError::Fatal(e)) => Err(e),
            Err(GroupError::CommandFailed) => Err(rusqlite::Error::InvalidQuery),
        };
        match attempt {
            Ok((results, committed)) => {
                self.shared.registry.publish(&committed);
                for (cmd, r) in batch.into_iter().zip(results) {
                    answer(cmd, r.map_err(StoreError::Database));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "mailbox batch failed; rolled back");
                let _ = self.exec("ROLLBACK");
                // The caches may hold rolled-back state (depth of undone rows; devices
                // registered in this batch): drop them, they refill from the database.
                self.reset_caches();
                let msg = e.to_string();
                for cmd in batch {
                    answer(cmd, Err(StoreError::Database(msg.clone())));
                }
            }
        }
    }

    /// Run one prepared statement without parameters (transaction control), cached.
    fn exec(&self, sql: &str) -> Result<(), rusqlite::Error> {
        self.conn.prepare_cached(sql)?.execute([]).map(|_| ())
    }

    /// Apply every command of a group inside one open transaction (left open for the caller
    /// to commit). Without `isolate`, the first failing command aborts the attempt with
    /// [`GroupError::CommandFailed`]; with it, each command runs under its own savepoint and
    /// a failure is recorded as that command's result.
    fn run_group(&mut self, batch: &[Command], isolate: bool) -> Result<GroupDone, GroupError> {
        let mut results = Vec::with_capacity(batch.len());
        let mut committed: Vec<Arc<StoredEnvelope>> = Vec::new();
        self.exec("BEGIN IMMEDIATE").map_err(GroupError::Fatal)?;
        for cmd in batch {
            if isolate {
                self.exec("SAVEPOINT cmd").map_err(GroupError::Fatal)?;
            }
            let published = committed.len();
            match self.apply(cmd, &mut committed) {
                Ok(out) => {
                    if isolate {
                        self.exec("RELEASE cmd").map_err(GroupError::Fatal)?;
                    }
                    results.push(Ok(out));
                }
                Err(_) if !isolate => return Err(GroupError::CommandFailed),
                Err(e) => {
                    tracing::warn!(error = %e, "store command failed; undone alone");
                    committed.truncate(published);
                    self.exec("ROLLBACK TO cmd").map_err(GroupError::Fatal)?;
                    self.exec("RELEASE cmd").map_err(GroupError::Fatal)?;
                    // The caches may have seen the undone command's effects.
                    self.forget_counts();
                    results.push(Err(e.to_string()));
                }
            }
        }
        Ok((results, committed))
    }

    /// Forget everything cached from the database (after a rollback).
    fn reset_caches(&mut self) {
        self.known.clear();
        self.forget_counts();
    }

    /// Drop cached mailbox depths and recount the total from the database.
    fn forget_counts(&mut self) {
        self.depth.clear();
        if let Ok(total) = self
            .conn
            .query_row("SELECT COUNT(*) FROM envelopes", [], |r| r.get::<_, i64>(0))
        {
            self.shared
                .queued_total
                .store(to_u64(total), Ordering::Relaxed);
        }
    }

    fn depth_of(&mut self, d: DeviceAddress) -> Result<u64, rusqlite::Error> {
        if let Some(n) = self.depth.get(&d) {
            return Ok(*n);
        }
        let n: i64 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM envelopes WHERE recipient_key = ?1 AND recipient_device = ?2",
            )?
            .query_row(params![&d.identity_key.0[..], d.device_id], |r| r.get(0))?;
        let n = to_u64(n);
        self.depth.insert(d, n);
        Ok(n)
    }

    fn adjust_depth(&mut self, d: DeviceAddress, removed: u64) {
        if let Some(n) = self.depth.get_mut(&d) {
            *n = n.saturating_sub(removed);
        }
        let _ = self
            .shared
            .queued_total
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(removed))
            });
    }

    fn apply(
        &mut self,
        cmd: &Command,
        committed: &mut Vec<Arc<StoredEnvelope>>,
    ) -> Result<Output, rusqlite::Error> {
        match cmd {
            Command::Enqueue(env, _) => self.enqueue(env, committed).map(Output::Enqueued),
            Command::AckIds(d, ids, _) => {
                let d = *d;
                let mut deleted = 0u64;
                let r = (|| -> Result<u64, rusqlite::Error> {
                    let mut stmt = self.conn.prepare_cached(
                        "DELETE FROM envelopes WHERE recipient_key = ?1 AND recipient_device = ?2 AND id = ?3",
                    )?;
                    for id in ids {
                        deleted +=
                            stmt.execute(params![&d.identity_key.0[..], d.device_id, &id.0[..]])?
                                as u64;
                    }
                    Ok(deleted)
                })();
                if let Ok(n) = r {
                    self.adjust_depth(d, n);
                }
                r.map(Output::Count)
            }
            Command::AckEnvelopes(d, envelopes, _) => {
                let d = *d;
                let mut deleted = 0u64;
                let r = (|| -> Result<u64, rusqlite::Error> {
                    let mut stmt = self.conn.prepare_cached(
                        "DELETE FROM envelopes WHERE recipient_key = ?1 AND recipient_device = ?2 AND sender_key = ?3 AND sender_device = ?4 AND id = ?5",
                    )?;
                    for (from, id) in envelopes {
                        deleted += stmt.execute(params![
                            &d.identity_key.0[..],
                            d.device_id,
                            &from.identity_key.0[..],
                            from.device_id,
                            &id.0[..]
                        ])? as u64;
                    }
                    Ok(deleted)
                })();
                if let Ok(n) = r {
                    self.adjust_depth(d, n);
                }
                r.map(Output::Count)
            }
            Command::Unregister(d, _) => self.unregister(*d).map(Output::Unregistered),
            Command::AckThrough(d, through, _) => {
                let d = *d;
                let r = self
                    .conn
                    .prepare_cached(
                        "DELETE FROM envelopes WHERE recipient_key = ?1 AND recipient_device = ?2 AND seq <= ?3",
                    )
                    .and_then(|mut s| s.execute(params![&d.identity_key.0[..], d.device_id, to_i64(*through)]))
                    .map(|n| n as u64);
                if let Ok(n) = r {
                    self.adjust_depth(d, n);
                }
                r.map(Output::Count)
            }
            Command::Purge(now, _) => {
                let r = (|| -> Result<Vec<DeviceAddress>, rusqlite::Error> {
                    let mut stmt = self.conn.prepare_cached(
                        "DELETE FROM envelopes WHERE expires_at <= ?1 RETURNING recipient_key, recipient_device",
                    )?;
                    let rows = stmt.query_map(params![to_i64(*now)], |r| {
                        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, u32>(1)?))
                    })?;
                    let mut gone: Vec<DeviceAddress> = Vec::new();
                    for row in rows {
                        let (k, device_id) = row?;
                        gone.push(DeviceAddress {
                            identity_key: IdentityKey(key_array(k)?),
                            device_id,
                        });
                    }
                    Ok(gone)
                })();
                let r = r.map(|gone| {
                    for d in &gone {
                        self.adjust_depth(*d, 1);
                    }
                    gone.len() as u64
                });
                r.map(Output::Count)
            }
            Command::Register(d, now, _) => self.register(*d, *now).map(Output::Registered),
            Command::ClaimHandle(handle, owner, _) => {
                let r = (|| -> Result<bool, rusqlite::Error> {
                    let current: Option<Vec<u8>> = self
                        .conn
                        .prepare_cached("SELECT identity_key FROM handles WHERE handle = ?1")?
                        .query_row(params![handle], |r| r.get(0))
                        .optional()?;
                    match current {
                        Some(k) if k != owner.0 => Ok(false),
                        Some(_) => Ok(true),
                        None => {
                            self.conn
                                .prepare_cached("DELETE FROM handles WHERE identity_key = ?1")?
                                .execute(params![&owner.0[..]])?;
                            self.conn
                                .prepare_cached(
                                    "INSERT INTO handles (handle, identity_key) VALUES (?1, ?2)",
                                )?
                                .execute(params![handle, &owner.0[..]])?;
                            Ok(true)
                        }
                    }
                })();
                r.map(Output::Flag)
            }
            Command::Publish(d, upload, _) => self.publish(*d, upload).map(Output::Count32),
            Command::Claim(identity, device_id, _) => {
                self.claim(*identity, *device_id).map(Output::Claimed)
            }
            Command::Flush(_) => Ok(Output::Done),
        }
    }

    fn enqueue(
        &mut self,
        env: &NewEnvelope,
        committed: &mut Vec<Arc<StoredEnvelope>>,
    ) -> Result<EnqueueOutcome, rusqlite::Error> {
        let to = env.to;
        if !self.known.contains(&to) {
            if !device_exists(&self.conn, to)? {
                return Ok(EnqueueOutcome::UnknownRecipient);
            }
            self.known.insert(to);
        }
        let depth = self.depth_of(to)?;
        if depth >= self.limits.queue_cap {
            let exists = self
                .conn
                .prepare_cached(
                    "SELECT 1 FROM envelopes WHERE recipient_key = ?1 AND recipient_device = ?2 AND sender_key = ?3 AND sender_device = ?4 AND id = ?5",
                )?
                .query_row(
                    params![
                        &to.identity_key.0[..],
                        to.device_id,
                        &env.from.identity_key.0[..],
                        env.from.device_id,
                        &env.id.0[..]
                    ],
                    |_| Ok(()),
                )
                .optional()?;
            return Ok(if exists.is_some() {
                EnqueueOutcome::Duplicate
            } else {
                EnqueueOutcome::QueueFull
            });
        }
        let changed = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO envelopes (recipient_key, recipient_device, id, sender_key, sender_device, received_at, expires_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                &to.identity_key.0[..],
                to.device_id,
                &env.id.0[..],
                &env.from.identity_key.0[..],
                env.from.device_id,
                to_i64(env.received_at_ms),
                to_i64(env.expires_at_ms),
                &env.body[..],
            ])?;
        if changed == 0 {
            return Ok(EnqueueOutcome::Duplicate);
        }
        let seq = to_u64(self.conn.last_insert_rowid());
        self.depth.insert(to, depth + 1);
        self.shared.queued_total.fetch_add(1, Ordering::Relaxed);
        committed.push(Arc::new(StoredEnvelope {
            seq,
            envelope: env.clone(),
        }));
        Ok(EnqueueOutcome::Stored)
    }

    fn unregister(&mut self, d: DeviceAddress) -> Result<Unregistered, rusqlite::Error> {
        let k = &d.identity_key.0[..];
        let device_existed = self
            .conn
            .prepare_cached("DELETE FROM devices WHERE identity_key = ?1 AND device_id = ?2")?
            .execute(params![k, d.device_id])?
            == 1;
        let envelopes_deleted = self
            .conn
            .prepare_cached(
                "DELETE FROM envelopes WHERE recipient_key = ?1 AND recipient_device = ?2",
            )?
            .execute(params![k, d.device_id])? as u64;
        for table in ["signed_prekeys", "one_time_prekeys"] {
            self.conn
                .prepare_cached(&format!(
                    "DELETE FROM {table} WHERE identity_key = ?1 AND device_id = ?2"
                ))?
                .execute(params![k, d.device_id])?;
        }
        let handle_released = if devices(&self.conn, d.identity_key)?.is_empty() {
            self.conn
                .prepare_cached("DELETE FROM handles WHERE identity_key = ?1")?
                .execute(params![k])?
                > 0
        } else {
            false
        };
        // Caches: a failing later statement rolls back this command and clears `depth` (see
        // `commit_batch`), and `known` only ever lets the writer skip a lookup.
        self.known.remove(&d);
        self.adjust_depth(d, envelopes_deleted);
        self.depth.insert(d, 0);
        Ok(Unregistered {
            device_existed,
            envelopes_deleted,
            handle_released,
        })
    }

    fn register(&mut self, d: DeviceAddress, now: u64) -> Result<Registration, rusqlite::Error> {
        if device_exists(&self.conn, d)? {
            return Ok(Registration::Existing);
        }
        let count: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM devices WHERE identity_key = ?1")?
            .query_row(params![&d.identity_key.0[..]], |r| r.get(0))?;
        if to_u64(count) >= u64::from(self.limits.max_devices_per_identity) {
            return Ok(Registration::TooManyDevices);
        }
        self.conn
            .prepare_cached(
                "INSERT INTO devices (identity_key, device_id, registered_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![&d.identity_key.0[..], d.device_id, to_i64(now)])?;
        Ok(Registration::Created)
    }

    fn publish(&mut self, d: DeviceAddress, upload: &PrekeyUpload) -> Result<u32, rusqlite::Error> {
        let k = &d.identity_key.0[..];
        for (kind, key) in [(0u8, &upload.signed), (1u8, &upload.last_resort)] {
            if let Some(p) = key {
                self.conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO signed_prekeys (identity_key, device_id, kind, key_id, key) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![k, d.device_id, kind, p.id, &p.key[..]])?;
            }
        }
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO one_time_prekeys (identity_key, device_id, key_id, key) VALUES (?1, ?2, ?3, ?4)",
        )?;
        // Past the cap the rest of the upload is dropped: the answer's count tells the owner
        // how many are stored, and nothing an owner sends grows its rows without bound.
        let cap = self.limits.max_one_time_prekeys;
        let mut stored = one_time_count(&self.conn, d)?;
        for p in &upload.one_time {
            if stored >= cap {
                break;
            }
            let added = stmt.execute(params![k, d.device_id, p.id, &p.key[..]])?;
            stored = stored.saturating_add(u32::try_from(added).unwrap_or(u32::MAX));
        }
        drop(stmt);
        one_time_count(&self.conn, d)
    }

    fn claim(
        &mut self,
        identity: IdentityKey,
        device_id: Option<u32>,
    ) -> Result<Vec<(PrekeyBundle, u32)>, rusqlite::Error> {
        let ids = match device_id {
            Some(id) => {
                let d = DeviceAddress {
                    identity_key: identity,
                    device_id: id,
                };
                if device_exists(&self.conn, d)? {
                    vec![id]
                } else {
                    vec![]
                }
            }
            // Only a database from before the cap can hold more; answer for the first ones.
            None => first_devices(&self.conn, identity, self.limits.max_devices_per_identity)?,
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let d = DeviceAddress {
                identity_key: identity,
                device_id: id,
            };
            let k = &identity.0[..];
            let signed = signed_prekey(&self.conn, d, 0)?;
            // One statement picks and removes the key: no other claim can see it in between
            // (and all writes are serialised on this thread anyway).
            let one_time = self
                .conn
                .prepare_cached(
                    "DELETE FROM one_time_prekeys WHERE identity_key = ?1 AND device_id = ?2 AND key_id = (SELECT MIN(key_id) FROM one_time_prekeys WHERE identity_key = ?1 AND device_id = ?2) RETURNING key_id, key",
                )?
                .query_row(params![k, id], |r| Ok(Prekey { id: r.get(0)?, key: r.get(1)? }))
                .optional()?;
            let last_resort = if one_time.is_none() {
                signed_prekey(&self.conn, d, 1)?
            } else {
                None
            };
            let remaining = one_time_count(&self.conn, d)?;
            out.push((
                PrekeyBundle {
                    device_id: id,
                    signed,
                    one_time,
                    last_resort,
                },
                remaining,
            ));
        }
        Ok(out)
    }
}

/// What one command produced, held until its group commits.
enum Output {
    Enqueued(EnqueueOutcome),
    Count(u64),
    Count32(u32),
    Flag(bool),
    Registered(Registration),
    Claimed(Vec<(PrekeyBundle, u32)>),
    Unregistered(Unregistered),
    Done,
}

/// Answer a command's caller once its group has committed (or failed).
fn answer(cmd: Command, result: Result<Output, StoreError>) {
    /// The output of the expected kind; anything else is a bug reported as a store error.
    fn take<T>(
        result: Result<Output, StoreError>,
        pick: impl FnOnce(Output) -> Option<T>,
    ) -> Result<T, StoreError> {
        result.and_then(|o| {
            pick(o).ok_or_else(|| StoreError::Database("internal: mismatched result".into()))
        })
    }
    let r = result;
    match cmd {
        Command::Enqueue(_, tx) => {
            let _ = tx.send(take(r, |o| match o {
                Output::Enqueued(v) => Some(v),
                _ => None,
            }));
        }
        Command::AckIds(_, _, tx)
        | Command::AckEnvelopes(_, _, tx)
        | Command::AckThrough(_, _, tx)
        | Command::Purge(_, tx) => {
            let _ = tx.send(take(r, |o| match o {
                Output::Count(v) => Some(v),
                _ => None,
            }));
        }
        Command::Register(_, _, tx) => {
            let _ = tx.send(take(r, |o| match o {
                Output::Registered(v) => Some(v),
                _ => None,
            }));
        }
        Command::ClaimHandle(_, _, tx) => {
            let _ = tx.send(take(r, |o| match o {
                Output::Flag(v) => Some(v),
                _ => None,
            }));
        }
        Command::Publish(_, _, tx) => {
            let _ = tx.send(take(r, |o| match o {
                Output::Count32(v) => Some(v),
                _ => None,
            }));
        }
        Command::Claim(_, _, tx) => {
            let _ = tx.send(take(r, |o| match o {
                Output::Claimed(v) => Some(v),
                _ => None,
            }));
        }
        Command::Unregister(_, tx) => {
            let _ = tx.send(take(r, |o| match o {
                Output::Unregistered(v) => Some(v),
                _ => None,
            }));
        }
        Command::Flush(tx) => {
            let _ = tx.send(take(r, |o| match o {
                Output::Done => Some(()),
                _ => None,
            }));
        }
    }
}

/// Per-command results of a group, and the envelopes it stored (published after commit).
type GroupDone = (Vec<Result<Output, String>>, Vec<Arc<StoredEnvelope>>);

/// Why a group attempt stopped.
enum GroupError {
    /// A command failed in a fast (unisolated) attempt: redo the group with savepoints.
    CommandFailed,
    /// The transaction itself failed: every caller gets the error.
    Fatal(rusqlite::Error),
}

fn one_time_count(conn: &Connection, d: DeviceAddress) -> Result<u32, rusqlite::Error> {
    conn.prepare_cached(
        "SELECT COUNT(*) FROM one_time_prekeys WHERE identity_key = ?1 AND device_id = ?2",
    )?
    .query_row(params![&d.identity_key.0[..], d.device_id], |r| r.get(0))
}

fn signed_prekey(
    conn: &Connection,
    d: DeviceAddress,
    kind: u8,
) -> Result<Option<Prekey>, rusqlite::Error> {
    conn.prepare_cached(
        "SELECT key_id, key FROM signed_prekeys WHERE identity_key = ?1 AND device_id = ?2 AND kind = ?3",
    )?
    .query_row(params![&d.identity_key.0[..], d.device_id, kind], |r| {
        Ok(Prekey { id: r.get(0)?, key: r.get(1)? })
    })
    .optional()
}

fn device_exists(conn: &Connection, d: DeviceAddress) -> Result<bool, rusqlite::Error> {
    conn.prepare_cached("SELECT 1 FROM devices WHERE identity_key = ?1 AND device_id = ?2")?
        .query_row(params![&d.identity_key.0[..], d.device_id], |_| Ok(()))
        .optional()
        .map(|o| o.is_some())
}

fn devices(conn: &Connection, identity: IdentityKey) -> Result<Vec<u32>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT device_id FROM devices WHERE identity_key = ?1 ORDER BY device_id",
    )?;
    let rows = stmt.query_map(params![&identity.0[..]], |r| r.get(0))?;
    rows.collect()
}

/// The `limit` lowest device numbers of an identity, ascending.
fn first_devices(
    conn: &Connection,
    identity: IdentityKey,
    limit: u32,
) -> Result<Vec<u32>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT device_id FROM devices WHERE identity_key = ?1 ORDER BY device_id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![&identity.0[..], limit], |r| r.get(0))?;
    rows.collect()
}

impl MailboxStore for SqliteStore {
    fn enqueue(&self, envelope: NewEnvelope) -> StoreFuture<EnqueueOutcome> {
        self.submit(|r| Command::Enqueue(envelope, r))
    }

    fn backlog(
        &self,
        device: DeviceAddress,
        after_seq: u64,
        limit: usize,
        now_ms: u64,
    ) -> StoreFuture<Vec<StoredEnvelope>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, id, sender_key, sender_device, received_at, expires_at, body FROM envelopes WHERE recipient_key = ?1 AND recipient_device = ?2 AND seq > ?3 AND expires_at > ?4 ORDER BY seq LIMIT ?5",
            )?;
            let rows = stmt.query_map(
                params![
                    &device.identity_key.0[..],
                    device.device_id,
                    to_i64(after_seq),
                    to_i64(now_ms),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok(StoredEnvelope {
                        seq: to_u64(r.get(0)?),
                        envelope: NewEnvelope {
                            id: EnvelopeId(key_array(r.get(1)?)?),
                            from: DeviceAddress {
                                identity_key: IdentityKey(key_array(r.get(2)?)?),
                                device_id: r.get(3)?,
                            },
                            to: device,
                            received_at_ms: to_u64(r.get(4)?),
                            expires_at_ms: to_u64(r.get(5)?),
                            body: r.get(6)?,
                        },
                    })
                },
            )?;
            rows.collect()
        })
    }

    fn ack_ids(&self, device: DeviceAddress, ids: Vec<EnvelopeId>) -> StoreFuture<u64> {
        self.submit(|r| Command::AckIds(device, ids, r))
    }

    fn ack_envelopes(
        &self,
        device: DeviceAddress,
        envelopes: Vec<(DeviceAddress, EnvelopeId)>,
    ) -> StoreFuture<u64> {
        self.submit(|r| Command::AckEnvelopes(device, envelopes, r))
    }

    fn ack_through(&self, device: DeviceAddress, through: u64) -> StoreFuture<u64> {
        self.submit(|r| Command::AckThrough(device, through, r))
    }

    fn purge_expired(&self, now_ms: u64) -> StoreFuture<u64> {
        self.submit(|r| Command::Purge(now_ms, r))
    }

    fn subscribe(&self, device: DeviceAddress) -> Subscription {
        self.shared.registry.subscribe(device)
    }

    fn queued_total(&self) -> u64 {
        self.shared.queued_total.load(Ordering::Relaxed)
    }

    fn close(&self) -> StoreFuture<()> {
        // The flush is queued behind every write accepted so far; later writes are refused.
        let flushed = self.submit(Command::Flush);
        self.shared.closed.store(true, Ordering::SeqCst);
        Box::pin(async move {
            match flushed.await {
                Ok(()) | Err(StoreError::Closed) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }
}

impl DirectoryStore for SqliteStore {
    fn register_device(&self, device: DeviceAddress, now_ms: u64) -> StoreFuture<Registration> {
        self.submit(|r| Command::Register(device, now_ms, r))
    }

    fn device_exists(&self, device: DeviceAddress) -> StoreFuture<bool> {
        self.read(move |c| device_exists(c, device))
    }

    fn devices(&self, identity_key: IdentityKey) -> StoreFuture<Vec<u32>> {
        self.read(move |c| devices(c, identity_key))
    }

    fn claim_handle(&self, handle: String, owner: IdentityKey) -> StoreFuture<bool> {
        self.submit(|r| Command::ClaimHandle(handle, owner, r))
    }

    fn lookup_handle(&self, handle: String) -> StoreFuture<Option<IdentityKey>> {
        self.read(move |c| {
            let k: Option<Vec<u8>> = c
                .prepare_cached("SELECT identity_key FROM handles WHERE handle = ?1")?
                .query_row(params![handle], |r| r.get(0))
                .optional()?;
            k.map(|k| key_array(k).map(IdentityKey)).transpose()
        })
    }

    fn publish_prekeys(&self, device: DeviceAddress, upload: PrekeyUpload) -> StoreFuture<u32> {
        self.submit(|r| Command::Publish(device, upload, r))
    }

    fn claim_prekeys(
        &self,
        identity_key: IdentityKey,
        device_id: Option<u32>,
    ) -> StoreFuture<Vec<(PrekeyBundle, u32)>> {
        self.submit(|r| Command::Claim(identity_key, device_id, r))
    }

    fn one_time_prekey_count(&self, device: DeviceAddress) -> StoreFuture<u32> {
        self.read(move |c| one_time_count(c, device))
    }

    fn unregister_device(&self, device: DeviceAddress) -> StoreFuture<Unregistered> {
        self.submit(|r| Command::Unregister(device, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(b: u8, id: u32) -> DeviceAddress {
        DeviceAddress {
            identity_key: IdentityKey([b; 32]),
            device_id: id,
        }
    }

    fn env(n: u8, to: DeviceAddress) -> NewEnvelope {
        NewEnvelope {
            id: EnvelopeId([n; 16]),
            from: dev(9, 1),
            to,
            received_at_ms: 10,
            expires_at_ms: 100,
            body: vec![n; 4],
        }
    }

    #[tokio::test]
    async fn one_failing_command_fails_alone_in_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let s = SqliteStore::open(&path, Durability::Normal, 100).unwrap();
        let to = dev(1, 1);
        assert_eq!(
            s.register_device(to, 1).await.unwrap(),
            Registration::Created
        );
        // A real database-level failure for one body only.
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch(
                "CREATE TRIGGER boom BEFORE INSERT ON envelopes WHEN NEW.body = x'05050505' \
                 BEGIN SELECT RAISE(ABORT, 'boom'); END;",
            )
            .unwrap();
        // Hold the write lock so the writer queues all four commands into one group.
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let futs: Vec<_> = [4u8, 5, 6, 7].map(|n| s.enqueue(env(n, to))).into();
        let register_later = s.register_device(dev(2, 1), 1);
        other.execute_batch("COMMIT").unwrap();
        let mut outcomes = Vec::new();
        for f in futs {
            outcomes.push(f.await);
        }
        assert!(
            matches!(outcomes[1], Err(StoreError::Database(_))),
            "{outcomes:?}"
        );
        for i in [0, 2, 3] {
            assert_eq!(outcomes[i].as_ref().unwrap(), &EnqueueOutcome::Stored);
        }
        assert_eq!(register_later.await.unwrap(), Registration::Created);
        let got: Vec<u8> = s
            .backlog(to, 0, 10, 0)
            .await
            .unwrap()
            .iter()
            .map(|e| e.envelope.id.0[0])
            .collect();
        assert_eq!(got, vec![4, 6, 7]);
        assert_eq!(s.queued_total(), 3);
        s.shutdown();
    }

    #[tokio::test]
    async fn committed_envelopes_reach_the_database_file_without_a_writer_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let s = SqliteStore::open(&path, Durability::Full, 10_000).unwrap();
        let to = dev(1, 1);
        assert_eq!(
            s.register_device(to, 1).await.unwrap(),
            Registration::Created
        );
        let before = std::fs::metadata(&path).unwrap().len();
        // Far below the writer's own auto-checkpoint threshold: only the checkpoint thread
        // can copy these pages from the WAL into the database file.
        for n in 0..200u8 {
            let mut e = env(n, to);
            e.body = vec![n; 2048];
            assert_eq!(s.enqueue(e).await.unwrap(), EnqueueOutcome::Stored);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::fs::metadata(&path).unwrap().len() < before + 200 * 2048 {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL was never checkpointed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        s.shutdown();
    }

    #[tokio::test]
    async fn the_same_id_from_two_senders_is_two_envelopes() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("r.db"), Durability::Normal, 2).unwrap();
        let to = dev(1, 1);
        assert_eq!(
            s.register_device(to, 1).await.unwrap(),
            Registration::Created
        );
        let first = env(1, to);
        let mut other_sender = env(1, to);
        other_sender.from = dev(8, 1);
        let mut other_device = env(1, to);
        other_device.from = dev(9, 2);
        assert_eq!(
            s.enqueue(first.clone()).await.unwrap(),
            EnqueueOutcome::Stored
        );
        assert_eq!(
            s.enqueue(other_sender.clone()).await.unwrap(),
            EnqueueOutcome::Stored
        );
        // Full mailbox: a retry is still recognised per sender, a new sender is refused.
        assert_eq!(s.enqueue(first).await.unwrap(), EnqueueOutcome::Duplicate);
        assert_eq!(
            s.enqueue(other_sender).await.unwrap(),
            EnqueueOutcome::Duplicate
        );
        assert_eq!(
            s.enqueue(other_device).await.unwrap(),
            EnqueueOutcome::QueueFull
        );
        let senders: Vec<_> = s
            .backlog(to, 0, 10, 0)
            .await
            .unwrap()
            .iter()
            .map(|e| e.envelope.from)
            .collect();
        assert_eq!(senders, vec![dev(9, 1), dev(8, 1)]);
        s.shutdown();
    }

    #[tokio::test]
    async fn migrating_a_v1_database_keeps_rows_and_never_reuses_a_seq() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let to = dev(1, 1);
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.execute_batch("PRAGMA user_version = 1").unwrap();
            c.execute(
                "INSERT INTO devices VALUES (?1, 1, 0)",
                params![&to.identity_key.0[..]],
            )
            .unwrap();
            for seq in [5i64, 9] {
                c.execute(
                    "INSERT INTO envelopes VALUES (?1, ?2, 1, ?3, ?4, 1, 10, 100, x'00')",
                    params![
                        seq,
                        &to.identity_key.0[..],
                        &[seq as u8; 16][..],
                        &[9u8; 32][..]
                    ],
                )
                .unwrap();
            }
            // Seq 9 was acked: the high-water mark stays at 9.
            c.execute("DELETE FROM envelopes WHERE seq = 9", [])
                .unwrap();
        }
        let s = SqliteStore::open(&path, Durability::Normal, 100).unwrap();
        assert_eq!(s.queued_total(), 1);
        // Same id and sender as the kept row: still a duplicate after migration.
        let mut again = env(5, to);
        again.id = EnvelopeId([5; 16]);
        assert_eq!(s.enqueue(again).await.unwrap(), EnqueueOutcome::Duplicate);
        let mut other = env(5, to);
        other.from = dev(8, 1);
        assert_eq!(s.enqueue(other).await.unwrap(), EnqueueOutcome::Stored);
        let seqs: Vec<u64> = s
            .backlog(to, 0, 10, 0)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        // Above the old high-water mark 9, not the highest surviving seq 5 (an ignored
        // duplicate insert may also consume a number).
        assert_eq!(seqs.len(), 2);
        assert_eq!(seqs[0], 5);
        assert!(seqs[1] > 9, "seq reused: {seqs:?}");
        s.shutdown();
        let c = Connection::open(&path).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }

    #[tokio::test]
    async fn enqueue_dedups_caps_acks_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("r.db"), Durability::Normal, 2).unwrap();
        let to = dev(1, 1);
        assert_eq!(
            s.enqueue(env(1, to)).await.unwrap(),
            EnqueueOutcome::UnknownRecipient
        );
        assert_eq!(
            s.register_device(to, 1).await.unwrap(),
            Registration::Created
        );
        assert_eq!(s.enqueue(env(1, to)).await.unwrap(), EnqueueOutcome::Stored);
        assert_eq!(
            s.enqueue(env(1, to)).await.unwrap(),
            EnqueueOutcome::Duplicate
        );
        assert_eq!(s.enqueue(env(2, to)).await.unwrap(), EnqueueOutcome::Stored);
        assert_eq!(
            s.enqueue(env(3, to)).await.unwrap(),
            EnqueueOutcome::QueueFull
        );
        assert_eq!(
            s.enqueue(env(2, to)).await.unwrap(),
            EnqueueOutcome::Duplicate
        );
        let b = s.backlog(to, 0, 10, 50).await.unwrap();
        assert_eq!(
            b.iter().map(|e| e.envelope.id.0[0]).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(b[0].seq < b[1].seq);
        assert_eq!(s.queued_total(), 2);
        // Another device's ack deletes nothing.
        assert_eq!(
            s.ack_ids(dev(2, 1), vec![EnvelopeId([1; 16])])
                .await
                .unwrap(),
            0
        );
        assert_eq!(s.ack_ids(to, vec![EnvelopeId([1; 16])]).await.unwrap(), 1);
        assert_eq!(s.enqueue(env(3, to)).await.unwrap(), EnqueueOutcome::Stored);
        assert!(
            s.backlog(to, 0, 10, 100).await.unwrap().is_empty(),
            "expired are hidden"
        );
        assert_eq!(s.purge_expired(100).await.unwrap(), 2);
        assert_eq!(s.queued_total(), 0);
    }

    #[tokio::test]
    async fn concurrent_claims_never_share_a_one_time_prekey() {
        let dir = tempfile::tempdir().unwrap();
        let s =
            Arc::new(SqliteStore::open(&dir.path().join("r.db"), Durability::Normal, 10).unwrap());
        let d = dev(1, 1);
        s.register_device(d, 1).await.unwrap();
        let upload = PrekeyUpload {
            signed: Some(Prekey {
                id: 1,
                key: vec![1],
            }),
            last_resort: Some(Prekey {
                id: 99,
                key: vec![99],
            }),
            one_time: (0..50)
                .map(|i| Prekey {
                    id: i,
                    key: vec![i as u8],
                })
                .collect(),
        };
        assert_eq!(s.publish_prekeys(d, upload).await.unwrap(), 50);
        let mut tasks = Vec::new();
        for _ in 0..60 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.claim_prekeys(d.identity_key, None).await
            }));
        }
        let mut seen = HashSet::new();
        let mut last_resort = 0;
        for t in tasks {
            let (b, _) = t.await.unwrap().unwrap().pop().unwrap();
            match b.one_time {
                Some(k) => assert!(seen.insert(k.id), "key {} handed out twice", k.id),
                None => {
                    assert_eq!(b.last_resort.unwrap().id, 99);
                    last_resort += 1;
                }
            }
        }
        assert_eq!((seen.len(), last_resort), (50, 10));
    }
}
