//! Opening and creating a profile: keys, SQLCipher keying, typed failures, migrations.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
#[cfg(feature = "test-support")]
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::{Notify, broadcast};

use crate::keystore::{self, KeyStore, KeyStoreError, ProfileId};
use crate::migrations::{self, MigrateOutcome, SCHEMA_VERSION};
use crate::passphrase::{self, KdfParams, PassphraseError};
use crate::secret::DatabaseKey;
use crate::store::{
    ATTACHMENTS_DIR, DATABASE_FILE, EVENT_CAPACITY, Inner, Store, StoreError, StoreOptions,
    WRAPPED_KEY_FILE, sqlite_code,
};

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Why a profile could not be opened or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// There is no database in this directory.
    #[error("no Latch profile at {0}")]
    NotFound(PathBuf),
    /// Creating a profile where one already exists would destroy it.
    #[error("a Latch profile already exists at {0}")]
    AlreadyExists(PathBuf),
    /// The key does not open this database (every page fails authentication).
    #[error("the key does not open this profile's database (wrong key or wrong keyring entry)")]
    WrongKey,
    /// The file is damaged: some pages authenticate and others do not, or it is truncated.
    #[error("the profile's database is corrupt; restore it from a backup")]
    Corrupt,
    /// The file is a plain, unencrypted SQLite database: refused, never used.
    #[error("the profile's database is not encrypted; refusing to use it")]
    Unencrypted,
    /// The database was written by a newer Latch with a schema this build does not know.
    #[error(
        "the profile was written by a newer Latch (schema {found}, this build knows up to {supported}); update Latch"
    )]
    NewerSchema {
        /// Version found in the file.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
    /// The disk is full (SQLITE_FULL or ENOSPC).
    #[error("the disk is full; free some space and try again")]
    DiskFull,
    /// The key could not be read from or written to the keyring.
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    /// The passphrase path failed.
    #[error(transparent)]
    Passphrase(#[from] PassphraseError),
    /// No randomness for a new key.
    #[error("the OS random source failed")]
    Random,
    /// A file-system error other than a full disk.
    #[error("file system error: {0}")]
    Io(io::Error),
    /// The profile has no passphrase-wrapped key: it is keyed through the keyring.
    #[error("this profile is not protected by a passphrase; open it through the keyring")]
    NoWrappedKey,
    /// The sweep of messages that expired while the profile was closed failed; the profile
    /// is not handed out, so nothing expired can be shown.
    #[error("sweeping expired messages at open failed: {0}")]
    Sweep(StoreError),
    /// Another SQLite error.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::StorageFull {
            Self::DiskFull
        } else {
            Self::Io(e)
        }
    }
}

impl From<StoreError> for OpenError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DiskFull => Self::DiskFull,
            StoreError::Corrupt => Self::Corrupt,
            other => Self::Sweep(other),
        }
    }
}

fn open_error(e: rusqlite::Error) -> OpenError {
    match sqlite_code(&e) {
        Some(ErrorCode::DiskFull) => OpenError::DiskFull,
        Some(ErrorCode::DatabaseCorrupt) => OpenError::Corrupt,
        _ => OpenError::Sqlite(e),
    }
}

enum Mode {
    Create,
    Open,
}

impl Store {
    /// Creates a profile keyed by a fresh random key kept in `keys` (the OS keyring).
    ///
    /// The key is stored in the keyring *before* the database exists, so a keyring failure
    /// leaves nothing behind; if creating the database then fails, the entry is removed.
    ///
    /// # Errors
    /// [`OpenError::KeyStore`] when the keyring is missing, locked or refuses (the caller
    /// can offer [`Store::create_with_passphrase`]), or any creation error.
    pub fn create_with_keyring(
        dir: &Path,
        profile: &ProfileId,
        keys: &dyn KeyStore,
        options: &StoreOptions,
    ) -> Result<Self, OpenError> {
        if database_exists(dir) {
            return Err(OpenError::AlreadyExists(dir.to_owned()));
        }
        let key = DatabaseKey::generate().map_err(|_| OpenError::Random)?;
        keystore::store_database_key(keys, profile, &key)?;
        match Self::create(dir, &key, options) {
            Ok(store) => Ok(store),
            Err(e) => {
                // Best effort: the entry is useless without the database.
                let _ = keys.delete(&keystore::KeyName::database_key(profile));
                Err(e)
            }
        }
    }

    /// Opens a profile whose key is in `keys`.
    ///
    /// # Errors
    /// [`OpenError::KeyStore`] names a missing, locked or refusing keyring; the others name
    /// a wrong key, a corrupt or newer database, or a full disk.
    pub fn open_with_keyring(
        dir: &Path,
        profile: &ProfileId,
        keys: &dyn KeyStore,
        options: &StoreOptions,
    ) -> Result<Self, OpenError> {
        if !database_exists(dir) {
            return Err(OpenError::NotFound(dir.to_owned()));
        }
        let key = keystore::load_database_key(keys, profile)?;
        Self::open(dir, &key, options)
    }

    /// Creates a profile whose key is wrapped under a passphrase (no keyring needed).
    ///
    /// # Errors
    /// As [`Store::create`], plus [`OpenError::Passphrase`].
    pub fn create_with_passphrase(
        dir: &Path,
        passphrase: &str,
        params: KdfParams,
        options: &StoreOptions,
    ) -> Result<Self, OpenError> {
        if database_exists(dir) {
            return Err(OpenError::AlreadyExists(dir.to_owned()));
        }
        let key = DatabaseKey::generate().map_err(|_| OpenError::Random)?;
        let wrapped = passphrase::wrap_key(&key, passphrase, params)?;
        fs::create_dir_all(dir)?;
        write_atomically(&dir.join(WRAPPED_KEY_FILE), &wrapped)?;
        Self::create(dir, &key, options)
    }

    /// Opens a passphrase-protected profile.
    ///
    /// # Errors
    /// [`PassphraseError::WrongPassphrase`] (inside [`OpenError::Passphrase`]) for a wrong
    /// passphrase; otherwise as [`Store::open`].
    pub fn open_with_passphrase(
        dir: &Path,
        passphrase: &str,
        options: &StoreOptions,
    ) -> Result<Self, OpenError> {
        if !database_exists(dir) {
            return Err(OpenError::NotFound(dir.to_owned()));
        }
        let wrapped = match fs::read(dir.join(WRAPPED_KEY_FILE)) {
            Ok(w) => w,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(OpenError::NoWrappedKey),
            Err(e) => return Err(e.into()),
        };
        let key = passphrase::unwrap_key(&wrapped, passphrase)?;
        Self::open(dir, &key, options)
    }

    /// Re-wraps the database key of an open profile under a new passphrase, or wraps it for
    /// the first time (app lock). The key itself does not change.
    ///
    /// # Errors
    /// [`OpenError::Passphrase`] or a file-system error.
    pub fn set_passphrase(
        dir: &Path,
        key: &DatabaseKey,
        passphrase: &str,
        params: KdfParams,
    ) -> Result<(), OpenError> {
        let wrapped = passphrase::wrap_key(key, passphrase, params)?;
        write_atomically(&dir.join(WRAPPED_KEY_FILE), &wrapped)?;
        Ok(())
    }

    /// Creates a new profile database under `key`.
    ///
    /// # Errors
    /// [`OpenError::AlreadyExists`] if there is one, or a creation error.
    pub fn create(
        dir: &Path,
        key: &DatabaseKey,
        options: &StoreOptions,
    ) -> Result<Self, OpenError> {
        Self::open_inner(dir, Some(key), Mode::Create, options)
    }

    /// Opens an existing profile database with its raw key, then deletes every message that
    /// expired while it was closed, before returning.
    ///
    /// # Errors
    /// [`OpenError::WrongKey`], [`OpenError::Corrupt`], [`OpenError::Unencrypted`],
    /// [`OpenError::NewerSchema`], [`OpenError::DiskFull`], [`OpenError::NotFound`].
    pub fn open(dir: &Path, key: &DatabaseKey, options: &StoreOptions) -> Result<Self, OpenError> {
        Self::open_inner(dir, Some(key), Mode::Open, options)
    }

    /// Creates a profile **without encryption**, only so benchmarks and tests can compare
    /// with plain SQLite through the same code. Not available in normal builds.
    ///
    /// # Errors
    /// As [`Store::create`].
    #[cfg(feature = "test-support")]
    pub fn create_unencrypted(dir: &Path, options: &StoreOptions) -> Result<Self, OpenError> {
        Self::open_inner(dir, None, Mode::Create, options)
    }

    /// Opens a profile created by [`Store::create_unencrypted`].
    ///
    /// # Errors
    /// As [`Store::open`].
    #[cfg(feature = "test-support")]
    pub fn open_unencrypted(dir: &Path, options: &StoreOptions) -> Result<Self, OpenError> {
        Self::open_inner(dir, None, Mode::Open, options)
    }

    fn open_inner(
        dir: &Path,
        key: Option<&DatabaseKey>,
        mode: Mode,
        options: &StoreOptions,
    ) -> Result<Self, OpenError> {
        let db_path = dir.join(DATABASE_FILE);
        let create = matches!(mode, Mode::Create);
        if create {
            if database_exists(dir) {
                return Err(OpenError::AlreadyExists(dir.to_owned()));
            }
            create_private_dir(dir)?;
            create_private_dir(&dir.join(ATTACHMENTS_DIR))?;
        } else {
            if !database_exists(dir) {
                return Err(OpenError::NotFound(dir.to_owned()));
            }
            if key.is_some() && has_plain_sqlite_header(&db_path)? {
                return Err(OpenError::Unencrypted);
            }
        }
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let mut conn = Connection::open_with_flags(&db_path, flags).map_err(open_error)?;
        if let Some(key) = key {
            // SQLite keeps its own copy of this statement's text and frees it unwiped. We
            // measured `PRAGMA cipher_memory_security = ON` (set before keying, SQLCipher's
            // allocator then wipes every freed allocation) and left it off: it is
            // process-wide, cannot be turned off again once active, and cost 9-13x on
            // inserts and warm page reads and 7x on open (BENCHMARKS.md, "Memory
            // security"). Our copy of the text is `Zeroizing`; SQLCipher wipes its own key
            // buffers regardless of that setting.
            let pragma = key.pragma_statement();
            conn.execute_batch(&pragma).map_err(open_error)?;
        }
        // The first read decrypts page 1: this is where a wrong key shows.
        if let Err(e) = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        }) {
            return Err(match sqlite_code(&e) {
                Some(ErrorCode::NotADatabase) if key.is_some() => {
                    classify_unreadable(&conn, &db_path)
                }
                Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => OpenError::Corrupt,
                _ => open_error(e),
            });
        }
        configure(&conn).map_err(open_error)?;
        match migrations::migrate(&mut conn).map_err(open_error)? {
            MigrateOutcome::UpToDate => {}
            MigrateOutcome::Newer(found) => {
                return Err(OpenError::NewerSchema {
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
        }
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let store = Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                dir: dir.to_owned(),
                clock: options.clock.clone(),
                expiry_changed: Notify::new(),
                events,
                checkpoint_pending: AtomicBool::new(false),
                #[cfg(feature = "test-support")]
                failing_checkpoints: AtomicU32::new(0),
                #[cfg(feature = "test-support")]
                sweeper_parks: tokio::sync::watch::Sender::new(Default::default()),
            }),
        };
        // What expired while the profile was closed is gone before anyone can read it.
        store.sweep_expired()?;
        Ok(store)
    }
}

fn database_exists(dir: &Path) -> bool {
    fs::metadata(dir.join(DATABASE_FILE))
        .map(|m| m.len() > 0)
        .unwrap_or(false)
}

fn has_plain_sqlite_header(path: &Path) -> Result<bool, OpenError> {
    let mut header = [0u8; 16];
    let mut f = fs::File::open(path)?;
    match f.read_exact(&mut header) {
        Ok(()) => Ok(&header == SQLITE_HEADER),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(OpenError::Corrupt),
        Err(e) => Err(e.into()),
    }
}

/// Tells a wrong key from a damaged file after page 1 failed to decrypt: with a wrong key
/// *every* page fails its HMAC; in a damaged file some still pass.
fn classify_unreadable(conn: &Connection, db_path: &Path) -> OpenError {
    const PAGE_SIZE: u64 = 4096; // SQLCipher 4 default
    let pages = fs::metadata(db_path).map_or(0, |m| m.len() / PAGE_SIZE);
    let Ok(mut stmt) = conn.prepare("PRAGMA cipher_integrity_check") else {
        return OpenError::WrongKey;
    };
    let Ok(rows) = stmt.query_map([], |r| r.get::<_, String>(0)) else {
        return OpenError::WrongKey;
    };
    let failures = rows
        .filter_map(Result::ok)
        .filter(|s| s.contains("HMAC"))
        .count() as u64;
    if pages > 1 && failures < pages {
        OpenError::Corrupt
    } else {
        OpenError::WrongKey
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode is {mode}, expected wal"
        )));
    }
    conn.execute_batch(
        "PRAGMA secure_delete = ON;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA synchronous = FULL;",
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}
