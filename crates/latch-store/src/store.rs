//! An open profile: the shared connection, transactions, attachments, expiry sweeps.
//!
//! A profile is a directory:
//!
//! ```text
//! <profile>/latch.db            SQLCipher database (+ -wal, -shm while open)
//! <profile>/db-key.wrapped      only for passphrase-protected profiles: ciphertext
//! <profile>/attachments/<rand>  attachment files, each encrypted under a key kept in its row
//! ```

use std::cell::{Cell, RefCell};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
#[cfg(feature = "test-support")]
use std::sync::atomic::AtomicU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use tokio::sync::{Notify, broadcast};
use zeroize::Zeroizing;

use crate::clock::{Clock, SystemClock};
use crate::migrations;
use crate::model::*;
use crate::tx::Tx;

/// File name of the database inside a profile directory.
pub const DATABASE_FILE: &str = "latch.db";
/// File name of the passphrase-wrapped key inside a profile directory.
pub const WRAPPED_KEY_FILE: &str = "db-key.wrapped";
/// Directory of attachment files inside a profile directory.
pub const ATTACHMENTS_DIR: &str = "attachments";

pub(crate) const EVENT_CAPACITY: usize = 256;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The disk is full; the transaction was rolled back and nothing was lost.
    #[error("the disk is full; free some space and try again")]
    DiskFull,
    /// A page failed authentication or the file is damaged.
    #[error("the profile's database is corrupt")]
    Corrupt,
    /// A row holds a value this build does not understand.
    #[error("unexpected value in column {0}")]
    BadValue(&'static str),
    /// The input breaks a rule of the store (what rule is in the text).
    #[error("invalid input: {0}")]
    Invalid(&'static str),
    /// The referenced row does not exist.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// An attachment file could not be read or authenticated.
    #[error("attachment file unreadable or altered")]
    AttachmentCorrupt,
    /// A file-system error other than a full disk.
    #[error("file system error: {0}")]
    Io(io::Error),
    /// Another SQLite error.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
}

pub(crate) fn sqlite_code(e: &rusqlite::Error) -> Option<ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match sqlite_code(&e) {
            Some(ErrorCode::DiskFull) => Self::DiskFull,
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => Self::Corrupt,
            _ => Self::Sqlite(e),
        }
    }
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::StorageFull {
            Self::DiskFull
        } else {
            Self::Io(e)
        }
    }
}

/// Options for opening a profile.
#[derive(Clone)]
pub struct StoreOptions {
    /// Time source for expiry; the real clock unless a test needs determinism.
    pub clock: Arc<dyn Clock>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions").finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) conn: Mutex<Connection>,
    pub(crate) dir: PathBuf,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) expiry_changed: Notify,
    pub(crate) events: broadcast::Sender<StoreEvent>,
    /// A sweep deleted rows but its checkpoint failed: old pages may linger in the WAL.
    pub(crate) checkpoint_pending: AtomicBool,
    /// Test hook: how many upcoming checkpoints fail.
    #[cfg(feature = "test-support")]
    pub(crate) failing_checkpoints: AtomicU32,
    /// Test hook: the sweeper's last wait.
    #[cfg(feature = "test-support")]
    pub(crate) sweeper_parks: tokio::sync::watch::Sender<crate::sweeper::SweeperPark>,
}

/// An open profile. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// The profile directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Makes the sweeper re-read the clock and recompute its deadline now.
    ///
    /// The sweeper sleeps on tokio's monotonic clock, which on Linux stops while the machine
    /// is suspended: call this when the system resumes or the wall clock is changed, so
    /// messages that expired meanwhile go at once instead of after the slept-through delay.
    pub fn wake_sweeper(&self) {
        self.inner.expiry_changed.notify_one();
    }

    /// Subscribes to store events (sweeper deletions).
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.events.subscribe()
    }

    /// The clock this store uses.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction open (it rolls back on
        // drop), so a poisoned connection is still consistent.
        self.inner.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one immediate transaction: all of it commits or none of it does.
    ///
    /// Attachment files written inside are removed if the transaction does not commit;
    /// files of deleted attachments are removed only after it commits.
    ///
    /// # Errors
    /// `f`'s error or the commit's; either way nothing was written.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let (committed, expiry_added, new_files, dead_files, text_removed) = {
            let mut conn = self.lock();
            let sql_tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let tx = Tx {
                conn: &sql_tx,
                attachments_dir: self.inner.dir.join(ATTACHMENTS_DIR),
                expiry_added: Cell::new(false),
                new_files: RefCell::new(Vec::new()),
                dead_files: RefCell::new(Vec::new()),
                text_removed: Cell::new(false),
            };
            let result = f(&tx);
            let Tx {
                expiry_added,
                new_files,
                dead_files,
                text_removed,
                ..
            } = tx;
            let committed = match result {
                Ok(v) => sql_tx.commit().map(|()| v).map_err(StoreError::from),
                // Dropping the transaction rolls it back.
                Err(e) => Err(e),
            };
            (committed, expiry_added, new_files, dead_files, text_removed)
        };
        match committed {
            Ok(v) => {
                for path in dead_files.into_inner() {
                    remove_file_tolerant(&path);
                }
                if text_removed.get() {
                    self.scrub_wal();
                }
                if expiry_added.get() {
                    self.inner.expiry_changed.notify_one();
                }
                Ok(v)
            }
            Err(e) => {
                for path in new_files.into_inner() {
                    remove_file_tolerant(&path);
                }
                Err(e)
            }
        }
    }

    /// Reads an attachment's bytes, decrypting and authenticating its file.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id, [`StoreError::AttachmentCorrupt`] if the
    /// file was altered.
    pub fn read_attachment(&self, id: AttachmentId) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let (file_name, file_key): (String, Zeroizing<Vec<u8>>) = {
            let conn = self.lock();
            conn.query_row(
                "SELECT file_name, file_key FROM attachments WHERE id = ?1",
                [id.0],
                |r| Ok((r.get(0)?, Zeroizing::new(r.get::<_, Vec<u8>>(1)?))),
            )
            .optional()?
            .ok_or(StoreError::NotFound("attachment"))?
        };
        let mut data = Vec::new();
        fs::File::open(self.inner.dir.join(ATTACHMENTS_DIR).join(&file_name))?
            .read_to_end(&mut data)?;
        if data.len() < 12 || file_key.len() != 32 {
            return Err(StoreError::AttachmentCorrupt);
        }
        let (nonce, ct) = data.split_at(12);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&file_key));
        cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map(Zeroizing::new)
            .map_err(|_| StoreError::AttachmentCorrupt)
    }

    /// The earliest pending expiry, if any message disappears.
    ///
    /// # Errors
    /// A database error.
    pub fn next_expiry(&self) -> Result<Option<UnixMillis>, StoreError> {
        let conn = self.lock();
        Ok(conn.query_row(
            "SELECT min(expires_at) FROM messages WHERE expires_at IS NOT NULL",
            [],
            |r| r.get(0),
        )?)
    }

    /// Deletes every message whose `expires_at` has passed (by the store's clock): rows,
    /// search entries and attachment rows in one transaction, then the attachment files,
    /// then a WAL checkpoint so no copy of the old pages stays in the log. Publishes a
    /// [`StoreEvent::MessagesExpired`] as soon as the deletion commits, before the
    /// checkpoint, so a failing checkpoint cannot hide the deletion from the UI.
    ///
    /// A checkpoint that fails is remembered and retried by the next sweep even when that
    /// sweep finds nothing to delete.
    ///
    /// # Errors
    /// A database error; nothing is half-deleted. If only the checkpoint failed, the
    /// deletion has committed and its event has gone out; the error reports the
    /// checkpoint, which the next sweep retries.
    pub fn sweep_expired(&self) -> Result<Vec<ExpiredMessage>, StoreError> {
        let now = self.inner.clock.now_ms();
        let removed = self.write(|tx| tx.delete_expired(now))?;
        if !removed.is_empty() {
            self.inner.checkpoint_pending.store(true, Ordering::SeqCst);
            // Nobody listening is fine.
            let _ = self.inner.events.send(StoreEvent::MessagesExpired {
                messages: removed.clone(),
                swept_at: now,
            });
        }
        if self.inner.checkpoint_pending.load(Ordering::SeqCst) {
            // On failure the flag stays set: the next sweep tries again.
            self.checkpoint()?;
            self.inner.checkpoint_pending.store(false, Ordering::SeqCst);
        }
        Ok(removed)
    }

    /// After a write that deleted or replaced message text (a deletion for everyone, an edit,
    /// either way), checkpoints the WAL so the old text leaves no trace, as a sweep does
    /// after an expiry. The write has committed whatever happens here, so a checkpoint that
    /// fails is not its error: it is owed, and the sweeper, woken now, retries it until it
    /// succeeds (every few seconds while it fails).
    fn scrub_wal(&self) {
        if self.checkpoint().is_err() {
            self.inner.checkpoint_pending.store(true, Ordering::SeqCst);
            self.inner.expiry_changed.notify_one();
        }
    }

    /// Copies the WAL into the database and truncates it, so deleted content lives on in
    /// neither file (`secure_delete` has already zeroed it in the new page versions).
    ///
    /// # Errors
    /// A database error.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        #[cfg(feature = "test-support")]
        if self
            .inner
            .failing_checkpoints
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Io(io::Error::other(
                "injected checkpoint failure",
            )));
        }
        let conn = self.lock();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Closes the connection, checkpointing the WAL first.
    ///
    /// # Errors
    /// A database error; the connection closes anyway once every clone is dropped.
    pub fn close(self) -> Result<(), StoreError> {
        self.checkpoint()?;
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => {
                let conn = inner.conn.into_inner().unwrap_or_else(|p| p.into_inner());
                conn.close().map_err(|(_, e)| StoreError::from(e))
            }
            // Other clones (e.g. a sweeper) keep it open; it closes when they drop.
            Err(_) => Ok(()),
        }
    }

    /// The schema as SQL text, for the schema-stability test and diagnostics.
    ///
    /// # Errors
    /// A database error.
    pub fn schema_snapshot(&self) -> Result<String, StoreError> {
        Ok(migrations::schema_snapshot(&self.lock())?)
    }

    /// The SQLCipher version linked in (empty when SQLCipher is absent: a build error).
    ///
    /// # Errors
    /// A database error.
    pub fn cipher_version(&self) -> Result<String, StoreError> {
        let conn = self.lock();
        Ok(conn
            .query_row("PRAGMA cipher_version", [], |r| r.get(0))
            .optional()?
            .unwrap_or_default())
    }

    /// Makes the next `n` checkpoints fail, so tests can see what a sweep does when the
    /// WAL cannot be checkpointed (a real failure needs an I/O error).
    #[cfg(feature = "test-support")]
    pub fn fail_next_checkpoints(&self, n: u32) {
        self.inner.failing_checkpoints.store(n, Ordering::SeqCst);
    }

    /// Follows the sweeper's waits: a test waits on this (with a timeout) until the sweeper
    /// has computed its deadline and is really waiting, then acts.
    #[cfg(feature = "test-support")]
    pub fn sweeper_parks(&self) -> tokio::sync::watch::Receiver<crate::sweeper::SweeperPark> {
        self.inner.sweeper_parks.subscribe()
    }

    /// Whether a checkpoint after a sweep failed and is still owed.
    #[cfg(feature = "test-support")]
    pub fn checkpoint_pending(&self) -> bool {
        self.inner.checkpoint_pending.load(Ordering::SeqCst)
    }

    /// Caps the database size in pages; lets tests provoke a real SQLITE_FULL.
    ///
    /// # Errors
    /// A database error.
    #[cfg(feature = "test-support")]
    pub fn set_max_page_count(&self, pages: u32) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        Ok(())
    }
}

fn remove_file_tolerant(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        // Already gone (a previous sweep crashed after commit): the goal is met.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        // The row and its key are gone, so the file is unreadable noise; nothing to report.
        Err(_) => {}
    }
}
