//! A start-up check that the linked SQLite really is SQLCipher and really encrypts.
//!
//! A build that silently linked plain SQLite would write every message in the clear, so the app
//! proves encryption on the machine it runs on instead of trusting the build: it creates a
//! throw-away database under a fresh random key, writes a marker row, and reads the raw file
//! back to check that neither the SQLite header nor the marker is visible.

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::Serialize;
use zeroize::Zeroizing;

/// The plaintext marker written to the scratch database; it must never appear in the file.
const MARKER: &str = "latch-selftest-plaintext-marker";

/// Every SQLite database that is not encrypted starts with this header.
const PLAIN_SQLITE_HEADER: &[u8] = b"SQLite format 3\0";

/// What the check found: the versions of the linked libraries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StorageReport {
    /// `PRAGMA cipher_version`, e.g. `4.6.1 community`.
    pub cipher_version: String,
    /// `sqlite_version()` of the SQLite core inside SQLCipher.
    pub sqlite_version: String,
}

/// Why the storage check failed. None of these carry key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelfTestError {
    /// The linked library answered no cipher version: it is plain SQLite, not SQLCipher.
    #[error("the linked SQLite is not SQLCipher; refusing to store anything")]
    NotSqlCipher,
    /// The scratch file held plaintext after writing under a key.
    #[error("the database file was written in the clear; refusing to store anything")]
    WroteCleartext,
    /// The operating system's random number generator failed; no key could be made.
    #[error("the system random number generator failed")]
    NoRandomness,
    /// SQLite refused an operation.
    #[error("database error during the storage check: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The scratch file could not be created, read or removed.
    #[error("file error during the storage check: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the check in `dir`, leaving nothing behind.
///
/// # Errors
/// See [`SelfTestError`]; every failure means the app must not store messages.
pub fn run(dir: &Path) -> Result<StorageReport, SelfTestError> {
    fs::create_dir_all(dir)?;
    let scratch = ScratchFile::new(dir)?;
    let report = write_encrypted(&scratch.path)?;
    let raw = fs::read(&scratch.path)?;
    if raw.starts_with(PLAIN_SQLITE_HEADER) || contains(&raw, MARKER.as_bytes()) {
        return Err(SelfTestError::WroteCleartext);
    }
    Ok(report)
}

fn write_encrypted(path: &Path) -> Result<StorageReport, SelfTestError> {
    let conn = Connection::open(path)?;
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::fill(key.as_mut()).map_err(|_| SelfTestError::NoRandomness)?;
    conn.execute_batch(&key_pragma(&key))?;
    let cipher_version: Option<String> = conn
        .query_row("PRAGMA cipher_version", [], |row| row.get(0))
        .ok();
    let cipher_version = cipher_version
        .filter(|v| !v.is_empty())
        .ok_or(SelfTestError::NotSqlCipher)?;
    conn.execute_batch("CREATE TABLE marker (text TEXT NOT NULL)")?;
    conn.execute("INSERT INTO marker (text) VALUES (?1)", [MARKER])?;
    let sqlite_version = conn.query_row("SELECT sqlite_version()", [], |row| row.get(0))?;
    conn.close().map_err(|(_, e)| e)?;
    Ok(StorageReport {
        cipher_version,
        sqlite_version,
    })
}

/// A scratch path removed on drop, whatever happened in between.
struct ScratchFile {
    path: PathBuf,
}

impl ScratchFile {
    fn new(dir: &Path) -> Result<Self, SelfTestError> {
        let mut tag = [0u8; 8];
        getrandom::fill(&mut tag).map_err(|_| SelfTestError::NoRandomness)?;
        Ok(Self {
            path: dir.join(format!("selftest-{}.db", hex(&tag))),
        })
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            // Best effort: a missing file is the expected case for the suffixes.
            let _ = fs::remove_file(p);
        }
    }
}

/// `PRAGMA key = "x'<hex>'";`: a raw key skips SQLCipher's passphrase KDF. The hex is written
/// straight into a buffer sized up front, so no reallocation leaves an unwiped copy behind.
fn key_pragma(key: &[u8; 32]) -> Zeroizing<String> {
    const PREFIX: &str = "PRAGMA key = \"x'";
    const SUFFIX: &str = "'\";";
    let mut pragma = Zeroizing::new(String::with_capacity(PREFIX.len() + 64 + SUFFIX.len()));
    pragma.push_str(PREFIX);
    for b in key {
        for nibble in [b >> 4, b & 0x0f] {
            pragma.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    pragma.push_str(SUFFIX);
    pragma
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_pragma_is_raw_hex_without_reallocating() {
        let mut key = [0u8; 32];
        key[0] = 0xab;
        key[31] = 0x01;
        let pragma = key_pragma(&key);
        assert_eq!(
            pragma.as_str(),
            format!("PRAGMA key = \"x'ab{}01'\";", "00".repeat(30))
        );
        assert_eq!(
            pragma.len(),
            pragma.capacity(),
            "the buffer grew and left a copy"
        );
    }

    #[test]
    fn reports_sqlcipher_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let report = run(dir.path()).unwrap();
        assert!(
            report.cipher_version.starts_with('4'),
            "unexpected cipher version {:?}",
            report.cipher_version
        );
        assert!(report.sqlite_version.starts_with("3."));
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "scratch files left behind"
        );
    }

    #[test]
    fn scratch_file_is_not_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = ScratchFile::new(dir.path()).unwrap();
        write_encrypted(&scratch.path).unwrap();
        let raw = fs::read(&scratch.path).unwrap();
        assert!(!raw.starts_with(PLAIN_SQLITE_HEADER));
        assert!(!contains(&raw, MARKER.as_bytes()));
        // The same bytes through a keyless connection must not open as a database.
        let conn = Connection::open(&scratch.path).unwrap();
        assert!(
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r
                .get::<_, i64>(0))
                .is_err()
        );
    }

    #[test]
    fn missing_directory_is_created_and_unwritable_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        run(&dir.path().join("a/b")).unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, b"x").unwrap();
        assert!(matches!(run(&file.join("sub")), Err(SelfTestError::Io(_))));
    }
}
