//! Safety numbers: Signal's NumericFingerprint algorithm, so Signal's published test vectors
//! apply unchanged.
//!
//! Each side's fingerprint is `SHA-512` iterated: `h0 = SHA512(0x0000 || key || id || key)`,
//! `h(i+1) = SHA512(h(i) || key)`. The 60 displayed digits are six 5-digit groups (each 5 bytes
//! of the hash as a big-endian integer mod 100000) per side, lower side first. The scannable
//! form is the `CombinedFingerprints` protobuf holding the first 32 bytes of each hash.
//! For Latch identities the hashed key is the 32-byte Ed25519 identity key.

use core::fmt;

use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use crate::identity::IdentityKey;

/// Iterations Signal uses; slows down brute-forcing a colliding key.
pub const DEFAULT_ITERATIONS: u32 = 5200;
/// Scannable payload version Signal currently uses (version 1 differs only in that field).
pub const CURRENT_VERSION: u32 = 2;
/// Upper bound on iterations, as libsignal enforces, so a caller cannot request unbounded work.
pub const MAX_ITERATIONS: u32 = 1_000_000;
/// Largest scannable payload accepted for comparison; the real one is 74 bytes.
pub const MAX_SCANNABLE_LEN: usize = 1024;

/// Why a fingerprint could not be computed or compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FingerprintError {
    /// Iterations must be between 2 and [`MAX_ITERATIONS`].
    #[error("iterations must be between 2 and {MAX_ITERATIONS}")]
    InvalidIterations,
    /// The scanned payload is not a valid `CombinedFingerprints` message.
    #[error("malformed scannable fingerprint")]
    Malformed,
    /// The scanned payload uses a different version.
    #[error("fingerprint version mismatch: theirs {theirs}, ours {ours}")]
    VersionMismatch {
        /// Version in the scanned payload.
        theirs: u32,
        /// Our version.
        ours: u32,
    },
}

fn hash_chain(iterations: u32, id: &[u8], key: &[u8]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update([0u8, 0u8]);
    h.update(key);
    h.update(id);
    h.update(key);
    let mut buf: [u8; 64] = h.finalize().into();
    for _ in 1..iterations {
        let mut h = Sha512::new();
        h.update(buf);
        h.update(key);
        buf = h.finalize().into();
    }
    buf
}

fn digits(hash: &[u8; 64]) -> String {
    let mut s = String::with_capacity(30);
    for chunk in hash.chunks_exact(5).take(6) {
        let n = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)) % 100_000;
        s.push_str(&format!("{n:05}"));
    }
    s
}

/// The 60 digits people compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayableFingerprint(String);

impl fmt::Display for DisplayableFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The QR-code payload and its comparison.
#[derive(Debug, Clone)]
pub struct ScannableFingerprint {
    version: u32,
    local: [u8; 32],
    remote: [u8; 32],
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One protobuf field: number, varint value (wire type 0), bytes value (wire type 2).
type Field<'a> = (u64, Option<u64>, Option<&'a [u8]>);

struct Pb<'a>(&'a [u8]);

impl<'a> Pb<'a> {
    fn varint(&mut self) -> Result<u64, FingerprintError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.0.split_first().ok_or(FingerprintError::Malformed)?;
            self.0 = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(FingerprintError::Malformed)
    }
    fn take(&mut self, n: u64) -> Result<&'a [u8], FingerprintError> {
        let n = usize::try_from(n).map_err(|_| FingerprintError::Malformed)?;
        if n > self.0.len() {
            return Err(FingerprintError::Malformed);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    /// Next field as (number, wire type, varint value, bytes value); unknown fields skipped by
    /// the caller ignoring them.
    fn field(&mut self) -> Result<Field<'a>, FingerprintError> {
        let tag = self.varint()?;
        match tag & 7 {
            0 => Ok((tag >> 3, Some(self.varint()?), None)),
            1 => self.take(8).map(|_| (tag >> 3, None, None)),
            2 => {
                let len = self.varint()?;
                Ok((tag >> 3, None, Some(self.take(len)?)))
            }
            5 => self.take(4).map(|_| (tag >> 3, None, None)),
            _ => Err(FingerprintError::Malformed),
        }
    }
}

fn logical_content(bytes: &[u8]) -> Result<Option<&[u8]>, FingerprintError> {
    let mut pb = Pb(bytes);
    let mut content = None;
    while !pb.0.is_empty() {
        if let (1, _, Some(b)) = pb.field()? {
            content = Some(b);
        }
    }
    Ok(content)
}

impl ScannableFingerprint {
    /// Builds the payload from its parts: our and their first 32 hash bytes.
    pub fn from_parts(version: u32, local: [u8; 32], remote: [u8; 32]) -> Self {
        Self {
            version,
            local,
            remote,
        }
    }

    /// The `CombinedFingerprints` protobuf: `version`, then our and their 32-byte hashes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        out.push(0x08);
        put_varint(&mut out, u64::from(self.version));
        for (tag, fp) in [(0x12u8, &self.local), (0x1a, &self.remote)] {
            out.extend_from_slice(&[tag, 34, 0x0a, 32]);
            out.extend_from_slice(fp);
        }
        out
    }

    /// Compares a payload scanned from the other device: it must hold our fingerprint as its
    /// remote and theirs as its local. The hash comparison is constant time.
    pub fn compare(&self, scanned: &[u8]) -> Result<bool, FingerprintError> {
        if scanned.len() > MAX_SCANNABLE_LEN {
            return Err(FingerprintError::Malformed);
        }
        let mut pb = Pb(scanned);
        let (mut version, mut local, mut remote) = (None, None, None);
        while !pb.0.is_empty() {
            match pb.field()? {
                (1, Some(v), _) => version = Some(v),
                (2, _, Some(b)) => local = logical_content(b)?,
                (3, _, Some(b)) => remote = logical_content(b)?,
                _ => {}
            }
        }
        let theirs =
            u32::try_from(version.unwrap_or(0)).map_err(|_| FingerprintError::Malformed)?;
        if theirs != self.version {
            return Err(FingerprintError::VersionMismatch {
                theirs,
                ours: self.version,
            });
        }
        let local = local.ok_or(FingerprintError::Malformed)?;
        let remote = remote.ok_or(FingerprintError::Malformed)?;
        let same = local.ct_eq(&self.remote[..]) & remote.ct_eq(&self.local[..]);
        Ok(same.into())
    }
}

/// A safety number: displayable digits and scannable payload.
#[derive(Debug, Clone)]
pub struct Fingerprint {
    /// The 60 digits.
    pub display: DisplayableFingerprint,
    /// The QR payload.
    pub scannable: ScannableFingerprint,
}

impl Fingerprint {
    /// Computes the safety number over raw key bytes (exactly the bytes hashed).
    pub fn new(
        version: u32,
        iterations: u32,
        local_id: &[u8],
        local_key: &[u8],
        remote_id: &[u8],
        remote_key: &[u8],
    ) -> Result<Self, FingerprintError> {
        if !(2..=MAX_ITERATIONS).contains(&iterations) {
            return Err(FingerprintError::InvalidIterations);
        }
        let l = hash_chain(iterations, local_id, local_key);
        let r = hash_chain(iterations, remote_id, remote_key);
        let (ld, rd) = (digits(&l), digits(&r));
        let display = if ld < rd {
            format!("{ld}{rd}")
        } else {
            format!("{rd}{ld}")
        };
        let mut local = [0u8; 32];
        let mut remote = [0u8; 32];
        local.copy_from_slice(&l[..32]);
        remote.copy_from_slice(&r[..32]);
        Ok(Self {
            display: DisplayableFingerprint(display),
            scannable: ScannableFingerprint {
                version,
                local,
                remote,
            },
        })
    }

    /// The safety number between two Latch identities (hashing their Ed25519 keys), with
    /// Signal's current version and iteration count.
    ///
    /// # Errors
    /// None with today's constants; an error rather than a fallback payload that `compare`
    /// could match if that ever changes.
    pub fn for_identities(
        local_id: &[u8],
        local: &IdentityKey,
        remote_id: &[u8],
        remote: &IdentityKey,
    ) -> Result<Self, FingerprintError> {
        Self::new(
            CURRENT_VERSION,
            DEFAULT_ITERATIONS,
            local_id,
            &local.signing_key_bytes(),
            remote_id,
            &remote.signing_key_bytes(),
        )
    }
}
