//! The passphrase path: the database key wrapped under an Argon2id-derived key.
//!
//! For machines with no keyring, and for an app lock. The wrapped key file holds only
//! ciphertext and public parameters:
//!
//! ```text
//! "LATCHWK1" | m_cost u32le | t_cost u32le | p_cost u32le | salt[16] | nonce[12] | ct[32] | tag[16]
//! ```
//!
//! The header is the AEAD's associated data, so weakening the parameters in the file makes
//! unwrapping fail instead of silently using cheaper ones.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use zeroize::Zeroizing;

use crate::secret::{DATABASE_KEY_LEN, DatabaseKey};

const MAGIC: &[u8; 8] = b"LATCHWK1";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = MAGIC.len() + 12 + SALT_LEN;
const TAG_LEN: usize = 16;
/// Size of a wrapped key file.
pub const WRAPPED_KEY_LEN: usize = HEADER_LEN + NONCE_LEN + DATABASE_KEY_LEN + TAG_LEN;

/// Largest memory cost accepted from a file (1 GiB), so a tampered file cannot exhaust memory.
const MAX_M_COST_KIB: u32 = 1024 * 1024;
const MAX_T_COST: u32 = 64;
const MAX_P_COST: u32 = 16;

/// Errors of wrapping and unwrapping a database key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PassphraseError {
    /// The passphrase does not open this wrapped key (or the file was altered).
    #[error("wrong passphrase (or the wrapped key file was altered)")]
    WrongPassphrase,
    /// The file is not a wrapped key this build understands.
    #[error("the wrapped key file is malformed or from an unknown version")]
    Malformed,
    /// The Argon2id parameters are outside what this build accepts.
    #[error("unacceptable Argon2id parameters: {0}")]
    BadParams(String),
    /// The passphrase is empty.
    #[error("the passphrase must not be empty")]
    EmptyPassphrase,
    /// No randomness was available for the salt or nonce.
    #[error("the OS random source failed")]
    Random,
}

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: above OWASP's Argon2id minimum; runs once per unlock.
    fn default() -> Self {
        Self {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// The cheapest accepted parameters, for tests only: they protect nothing.
    pub fn insecure_for_tests() -> Self {
        Self {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        }
    }

    fn argon2(&self) -> Result<Argon2<'static>, PassphraseError> {
        if self.m_cost_kib > MAX_M_COST_KIB || self.t_cost > MAX_T_COST || self.p_cost > MAX_P_COST
        {
            return Err(PassphraseError::BadParams(
                "above this build's limits".into(),
            ));
        }
        let params = Params::new(
            self.m_cost_kib,
            self.t_cost,
            self.p_cost,
            Some(DATABASE_KEY_LEN),
        )
        .map_err(|e| PassphraseError::BadParams(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

fn derive(
    passphrase: &str,
    salt: &[u8],
    params: &KdfParams,
) -> Result<Zeroizing<[u8; 32]>, PassphraseError> {
    if passphrase.is_empty() {
        return Err(PassphraseError::EmptyPassphrase);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    params
        .argon2()?
        .hash_password_into(passphrase.as_bytes(), salt, out.as_mut_slice())
        .map_err(|e| PassphraseError::BadParams(e.to_string()))?;
    Ok(out)
}

/// Wraps `key` under `passphrase`, returning the bytes of a wrapped key file.
///
/// # Errors
/// Empty passphrase, bad parameters, or no randomness.
pub fn wrap_key(
    key: &DatabaseKey,
    passphrase: &str,
    params: KdfParams,
) -> Result<Vec<u8>, PassphraseError> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut salt).map_err(|_| PassphraseError::Random)?;
    getrandom::fill(&mut nonce).map_err(|_| PassphraseError::Random)?;
    let kek = derive(passphrase, &salt, &params)?;

    let mut out = Vec::with_capacity(WRAPPED_KEY_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&params.m_cost_kib.to_le_bytes());
    out.extend_from_slice(&params.t_cost.to_le_bytes());
    out.extend_from_slice(&params.p_cost.to_le_bytes());
    out.extend_from_slice(&salt);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(kek.as_slice()));
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: key.expose(),
                aad: &out,
            },
        )
        .map_err(|_| PassphraseError::Malformed)?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32, PassphraseError> {
    let b: [u8; 4] = bytes
        .get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .ok_or(PassphraseError::Malformed)?;
    Ok(u32::from_le_bytes(b))
}

/// Unwraps a database key from the bytes of a wrapped key file.
///
/// # Errors
/// [`PassphraseError::WrongPassphrase`] if the passphrase does not fit;
/// [`PassphraseError::Malformed`] / [`PassphraseError::BadParams`] for a damaged file.
pub fn unwrap_key(wrapped: &[u8], passphrase: &str) -> Result<DatabaseKey, PassphraseError> {
    if wrapped.len() != WRAPPED_KEY_LEN || !wrapped.starts_with(MAGIC) {
        return Err(PassphraseError::Malformed);
    }
    let params = KdfParams {
        m_cost_kib: read_u32(wrapped, 8)?,
        t_cost: read_u32(wrapped, 12)?,
        p_cost: read_u32(wrapped, 16)?,
    };
    let (header, rest) = wrapped.split_at(HEADER_LEN);
    let salt = header.get(20..).ok_or(PassphraseError::Malformed)?;
    let (nonce, ct) = rest.split_at(NONCE_LEN);
    let kek = derive(passphrase, salt, &params)?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(kek.as_slice()));
    let plain = Zeroizing::new(
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: header,
                },
            )
            .map_err(|_| PassphraseError::WrongPassphrase)?,
    );
    DatabaseKey::from_slice(&plain).ok_or(PassphraseError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_passphrase() {
        let key = DatabaseKey::generate().unwrap();
        let w = wrap_key(&key, "correct horse", KdfParams::insecure_for_tests()).unwrap();
        assert_eq!(w.len(), WRAPPED_KEY_LEN);
        assert!(
            !w.windows(8)
                .any(|x| key.expose().windows(8).any(|k| k == x)),
            "no run of key bytes in the file"
        );
        let back = unwrap_key(&w, "correct horse").unwrap();
        assert_eq!(back.expose(), key.expose());
        assert!(matches!(
            unwrap_key(&w, "wrong horse"),
            Err(PassphraseError::WrongPassphrase)
        ));
        assert!(matches!(
            unwrap_key(&w, ""),
            Err(PassphraseError::EmptyPassphrase)
        ));
    }

    #[test]
    fn tampering_is_detected() {
        let key = DatabaseKey::generate().unwrap();
        let w = wrap_key(&key, "pw", KdfParams::insecure_for_tests()).unwrap();
        // Raising the cost (still valid) breaks the AAD: no silent parameter change.
        let mut t = w.clone();
        t[12] = 2;
        assert!(matches!(
            unwrap_key(&t, "pw"),
            Err(PassphraseError::WrongPassphrase)
        ));
        // A huge memory cost is refused before any allocation.
        let mut t = w.clone();
        t[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            unwrap_key(&t, "pw"),
            Err(PassphraseError::BadParams(_))
        ));
        assert!(matches!(
            unwrap_key(&w[..50], "pw"),
            Err(PassphraseError::Malformed)
        ));
        let mut t = w;
        t[0] = b'X';
        assert!(matches!(
            unwrap_key(&t, "pw"),
            Err(PassphraseError::Malformed)
        ));
    }
}
