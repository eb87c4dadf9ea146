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
        create_private_dir(dir)?;
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
            // SQLite would create the database 0644. Created here owner-only and empty (an
            // empty file is a new database to SQLite), it sets the mode that SQLite copies
            // to the `-wal` and `-shm` files it makes next to it. What an interrupted
            // creation left (an empty database, its side files) is replaced, so every mode
            // is ours.
            for suffix in ["", "-wal", "-shm", "-journal"] {
                remove_if_present(&dir.join(format!("{DATABASE_FILE}{suffix}")))?;
            }
            drop(create_private_file(&db_path)?);
        } else {
            if !database_exists(dir) {
                return Err(OpenError::NotFound(dir.to_owned()));
            }
            // Profiles made by builds that left them readable by other users are closed
            // before SQLite opens (and keeps the modes of) their files.
            restrict_existing(dir)?;
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

/// Mode of every directory a profile keeps: only its owner may list or enter it.
#[cfg(unix)]
const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of every file a profile keeps: only its owner may read it.
#[cfg(unix)]
const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) owner-only. The mode given at creation is narrowed
/// by the umask, so it is then set exactly: an odd umask can neither widen it nor lock
/// the owner out. An existing directory is narrowed too.
///
/// # Errors
/// An I/O error.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(PRIVATE_DIR_MODE);
    }
    builder.create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(PRIVATE_DIR_MODE))?;
    }
    Ok(())
}

/// Creates a new file owner-only, failing if it exists. It is created with that mode (never
/// wider, whatever the umask), then set exactly through the open handle, so there is no
/// moment in which another user could open it.
///
/// # Errors
/// An I/O error; `AlreadyExists` for an existing file.
pub fn create_private_file(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(PRIVATE_FILE_MODE);
    }
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(PRIVATE_FILE_MODE))?;
    }
    Ok(file)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Narrows the modes of an existing profile's directories and files to owner-only.
#[cfg(unix)]
fn restrict_existing(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // Whether the mode had to change.
    let narrow = |path: &Path, mode: u32| -> io::Result<bool> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.permissions().mode() & 0o777 != mode => {
                fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
                Ok(true)
            }
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(false),
        }
    };
    narrow(dir, PRIVATE_DIR_MODE)?;
    for file in [DATABASE_FILE, WRAPPED_KEY_FILE] {
        narrow(&dir.join(file), PRIVATE_FILE_MODE)?;
    }
    for suffix in ["-wal", "-shm", "-journal"] {
        narrow(
            &dir.join(format!("{DATABASE_FILE}{suffix}")),
            PRIVATE_FILE_MODE,
        )?;
    }
    // Attachments written into an open directory are narrowed once, with it; in an
    // owner-only directory every file is created owner-only, so nothing to walk.
    let attachments = dir.join(ATTACHMENTS_DIR);
    if narrow(&attachments, PRIVATE_DIR_MODE)? {
        for entry in fs::read_dir(&attachments)? {
            narrow(&entry?.path(), PRIVATE_FILE_MODE)?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_existing(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Replaces `path` with `data` through a temporary file that is owner-only from its creation.
fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    // A leftover of an interrupted write may have any mode: never reused.
    remove_if_present(&tmp)?;
    {
        let mut f = create_private_file(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}
