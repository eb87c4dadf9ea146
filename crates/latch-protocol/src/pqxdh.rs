//! PQXDH key agreement (Signal's PQXDH specification, revision 3) with X25519 and ML-KEM-1024.
//!
//! `SK = HKDF-SHA256(salt = 0^32, ikm = 0xFF^32 || DH1 || DH2 || DH3 [|| DH4] || SS,
//! info = PQXDH_INFO)` where `DH1 = DH(IK_A, SPK_B)`, `DH2 = DH(EK_A, IK_B)`,
//! `DH3 = DH(EK_A, SPK_B)`, `DH4 = DH(EK_A, OPK_B)` and `SS` is the ML-KEM shared secret. The
//! associated data, both encoded identities (initiator first), is bound into every message by
//! the ratchet. Every DH output is checked to be non-zero, refusing low-order points.

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use crate::identity::IdentityKeyPair;
use crate::keys::{self, CryptoError, KeyPair};
use crate::prekey::{KemPreKeyRecord, OneTimePreKeyRecord, PreKeyBundle, SignedPreKeyRecord};
use crate::ratchet::{PendingPreKey, RatchetError, SessionState};
use crate::secret::Secret;
use crate::wire::PreKeyMessage;

/// HKDF info string naming the protocol, curve, hash and KEM (the spec's `info`).
pub const PQXDH_INFO: &[u8] = b"Latch_PQXDH_X25519_SHA-256_ML-KEM-1024_v1";

/// Why PQXDH refused to run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PqxdhError {
    /// A prekey signature in the bundle does not verify against the bundle's identity.
    #[error("prekey bundle signature invalid")]
    InvalidSignature,
    /// A key agreement or KEM step failed (low-order point, malformed ML-KEM key).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// Setting up the first ratchet step failed.
    #[error(transparent)]
    Ratchet(#[from] RatchetError),
}

fn derive_sk(dhs: &[&Secret<32>], ss: &Secret<32>) -> Result<Secret<32>, CryptoError> {
    let mut ikm = Vec::with_capacity(32 * (dhs.len() + 2));
    ikm.extend_from_slice(&[0xFF; 32]);
    for dh in dhs {
        ikm.extend_from_slice(dh.expose());
    }
    ikm.extend_from_slice(ss.expose());
    let okm = keys::hkdf_sha256(Some(&[0u8; 32]), &ikm, PQXDH_INFO, 32);
    ikm.zeroize();
    let okm = okm?;
    Secret::copy_from_slice(okm.expose()).ok_or(CryptoError::InvalidLength)
}

/// Initiator side: verifies the bundle and derives the first session state.
pub(crate) fn initiate<R: CryptoRng + RngCore>(
    local: &IdentityKeyPair,
    bundle: &PreKeyBundle,
    rng: &mut R,
) -> Result<SessionState, PqxdhError> {
    if !bundle.verify_signatures() {
        return Err(PqxdhError::InvalidSignature);
    }
    let ek = KeyPair::generate(rng);
    let dh1 = keys::x25519(local.dh_secret(), &bundle.signed_prekey)?;
    let dh2 = keys::x25519(&ek.secret, &bundle.identity.dh_key_bytes())?;
    let dh3 = keys::x25519(&ek.secret, &bundle.signed_prekey)?;
    let dh4 = match &bundle.one_time_prekey {
        Some((_, key)) => Some(keys::x25519(&ek.secret, key)?),
        None => None,
    };
    let (kem_ciphertext, ss) = keys::kem_encapsulate(&bundle.kem_prekey, rng)?;
    let mut dhs = vec![&dh1, &dh2, &dh3];
    if let Some(dh4) = &dh4 {
        dhs.push(dh4);
    }
    let sk = derive_sk(&dhs, &ss)?;
    let pending = PendingPreKey {
        signed_prekey_id: bundle.signed_prekey_id,
        one_time_prekey_id: bundle.one_time_prekey.map(|(id, _)| id),
        kem_prekey_id: bundle.kem_prekey_id,
        kem_ciphertext,
    };
    Ok(SessionState::new_initiator(
        local.public().clone(),
        bundle.identity.clone(),
        ek.public_bytes(),
        &sk,
        &bundle.signed_prekey,
        pending,
        rng,
    )?)
}

/// Responder side: derives the session state from the prekeys the message names. The caller
/// looked the prekeys up and commits their consumption only after the first message decrypts.
pub(crate) fn respond(
    local: &IdentityKeyPair,
    signed: &SignedPreKeyRecord,
    one_time: Option<&OneTimePreKeyRecord>,
    kem: &KemPreKeyRecord,
    msg: &PreKeyMessage,
) -> Result<SessionState, PqxdhError> {
    let their_identity = msg.identity.dh_key_bytes();
    let dh1 = keys::x25519(&signed.key_pair.secret, &their_identity)?;
    let dh2 = keys::x25519(local.dh_secret(), &msg.base_key)?;
    let dh3 = keys::x25519(&signed.key_pair.secret, &msg.base_key)?;
    let dh4 = match one_time {
        Some(o) => Some(keys::x25519(&o.key_pair.secret, &msg.base_key)?),
        None => None,
    };
    let ss = kem.key_pair.decapsulate(&msg.kem_ciphertext)?;
    let mut dhs = vec![&dh1, &dh2, &dh3];
    if let Some(dh4) = &dh4 {
        dhs.push(dh4);
    }
    let sk = derive_sk(&dhs, &ss)?;
    Ok(SessionState::new_responder(
        local.public().clone(),
        msg.identity.clone(),
        msg.base_key,
        sk,
        signed.key_pair.clone(),
    ))
}
