//! Long-term identity keys.
//!
//! An identity is an Ed25519 signing key that certifies an X25519 key. The Ed25519 key is the
//! root of trust: it signs prekeys, authenticates the device to the relay, and is what safety
//! numbers are computed over. The X25519 key takes part in PQXDH. Binding them with a signature
//! lets one 32-byte Ed25519 key stand for the whole identity.

use core::fmt;

use ed25519_dalek::Signer;
use rand_core::{CryptoRng, RngCore};
use x25519_dalek::{PublicKey as XPublic, StaticSecret};
use zeroize::Zeroize;

use crate::codec::{self, Writer};
use crate::error::DecodeError;
use crate::secret::{Secret, SecretVec};

/// Version byte of [`IdentityKey::to_bytes`].
pub const IDENTITY_KEY_VERSION: u8 = 1;
/// Version byte of [`IdentityKeyPair::to_secret_bytes`].
pub const IDENTITY_KEY_PAIR_VERSION: u8 = 1;
/// Encoded length of a public identity: version, Ed25519 key, X25519 key, certificate.
pub const IDENTITY_KEY_LEN: usize = 1 + 32 + 32 + 64;
const IDENTITY_KEY_PAIR_LEN: usize = 1 + 32 + 32;

/// Domain separator for the certificate over the X25519 key, so the signature can never be
/// confused with a prekey signature or a relay challenge response.
const DH_CERT_CONTEXT: &[u8] = b"Latch identity X25519 key v1";

/// Domain separator for relay authentication: a device proves it holds its identity by signing
/// `RELAY_AUTH_CONTEXT || challenge` with its Ed25519 key, so a relay can never obtain a
/// signature usable as a prekey signature or identity certificate.
pub const RELAY_AUTH_CONTEXT: &[u8] = b"Latch relay auth v1";

/// Relay side: checks a device's answer to `challenge` against its 32-byte Ed25519 key (the
/// device id the [`crate::Envelope`] routes by).
pub fn verify_relay_challenge(
    device_key: &[u8; 32],
    challenge: &[u8],
    signature: &[u8; 64],
) -> bool {
    let mut msg = Vec::with_capacity(RELAY_AUTH_CONTEXT.len() + challenge.len());
    msg.extend_from_slice(RELAY_AUTH_CONTEXT);
    msg.extend_from_slice(challenge);
    crate::keys::ed25519_verify(device_key, &msg, signature)
}

/// The public half of an identity, as sent to peers and the relay.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityKey {
    signing: ed25519_dalek::VerifyingKey,
    dh: XPublic,
    certificate: ed25519_dalek::Signature,
}

impl IdentityKey {
    /// The 32-byte Ed25519 key: the relay's device id and the bytes safety numbers hash.
    pub fn signing_key_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The certified X25519 key used in PQXDH.
    pub fn dh_key_bytes(&self) -> [u8; 32] {
        self.dh.to_bytes()
    }

    /// Verifies an Ed25519 signature made by this identity (strict: rejects malleable forms).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        crate::keys::ed25519_verify_key(&self.signing, message, signature)
    }

    /// Canonical encoding: `version(1) || ed25519(32) || x25519(32) || certificate(64)`.
    pub fn to_bytes(&self) -> [u8; IDENTITY_KEY_LEN] {
        let mut out = [0u8; IDENTITY_KEY_LEN];
        out[0] = IDENTITY_KEY_VERSION;
        out[1..33].copy_from_slice(self.signing.as_bytes());
        out[33..65].copy_from_slice(self.dh.as_bytes());
        out[65..].copy_from_slice(&self.certificate.to_bytes());
        out
    }

    /// Decodes and verifies the certificate; an identity whose X25519 key is not signed by its
    /// Ed25519 key is refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let key = Self::decode_unverified(bytes)?;
        let mut msg = Vec::with_capacity(DH_CERT_CONTEXT.len() + 32);
        msg.extend_from_slice(DH_CERT_CONTEXT);
        msg.extend_from_slice(key.dh.as_bytes());
        key.signing
            .verify_strict(&msg, &key.certificate)
            .map_err(|_| DecodeError::InvalidKey("identity certificate"))?;
        Ok(key)
    }

    /// Decodes without checking the certificate: only for our own session records, whose
    /// identities were verified when they first arrived and which the store keeps encrypted.
    /// Skipping the signature check keeps loading a record cheap on every message.
    pub(crate) fn decode_unverified(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = codec::open(bytes, IDENTITY_KEY_LEN, IDENTITY_KEY_VERSION)?;
        let signing = ed25519_dalek::VerifyingKey::from_bytes(&r.array()?)
            .map_err(|_| DecodeError::InvalidKey("identity signing key"))?;
        let dh = XPublic::from(r.array::<32>()?);
        let certificate = ed25519_dalek::Signature::from_bytes(&r.array()?);
        r.finish()?;
        if signing.is_weak() {
            return Err(DecodeError::InvalidKey("identity signing key"));
        }
        Ok(Self {
            signing,
            dh,
            certificate,
        })
    }
}

/// The Ed25519 key (the relay address) inside an encoded identity key, without checking the
/// certificate: only for identities verified when they were first stored (an app's contacts),
/// where matching a sender against every contact must not cost a signature check each.
///
/// # Errors
/// [`DecodeError`] if the bytes are not an encoded identity key.
pub fn signing_key_of(encoded: &[u8]) -> Result<[u8; 32], DecodeError> {
    Ok(IdentityKey::decode_unverified(encoded)?.signing_key_bytes())
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.signing.as_bytes();
        write!(
            f,
            "IdentityKey({:02x}{:02x}{:02x}{:02x}…)",
            b[0], b[1], b[2], b[3]
        )
    }
}

/// The private identity: both secret keys plus the public certificate.
#[derive(Clone)]
pub struct IdentityKeyPair {
    signing: ed25519_dalek::SigningKey,
    dh: StaticSecret,
    public: IdentityKey,
}

impl IdentityKeyPair {
    /// Generates a new identity from the caller's CSPRNG.
    pub fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> Self {
        let signing_seed = Secret::<32>::random(rng);
        let dh_seed = Secret::<32>::random(rng);
        Self::from_parts(&signing_seed, &dh_seed)
    }

    fn from_parts(signing_seed: &Secret<32>, dh_seed: &Secret<32>) -> Self {
        let signing = ed25519_dalek::SigningKey::from_bytes(signing_seed.expose());
        let dh = StaticSecret::from(*dh_seed.expose());
        let dh_pub = XPublic::from(&dh);
        let mut msg = Vec::with_capacity(DH_CERT_CONTEXT.len() + 32);
        msg.extend_from_slice(DH_CERT_CONTEXT);
        msg.extend_from_slice(dh_pub.as_bytes());
        let certificate = signing.sign(&msg);
        let public = IdentityKey {
            signing: signing.verifying_key(),
            dh: dh_pub,
            certificate,
        };
        Self {
            signing,
            dh,
            public,
        }
    }

    /// The public identity to publish.
    pub fn public(&self) -> &IdentityKey {
        &self.public
    }

    /// Signs with the Ed25519 identity key, e.g. a relay challenge or a prekey.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// Device side of relay authentication: signs `RELAY_AUTH_CONTEXT || challenge`.
    pub fn sign_relay_challenge(&self, challenge: &[u8]) -> [u8; 64] {
        let mut msg = Vec::with_capacity(RELAY_AUTH_CONTEXT.len() + challenge.len());
        msg.extend_from_slice(RELAY_AUTH_CONTEXT);
        msg.extend_from_slice(challenge);
        self.sign(&msg)
    }

    pub(crate) fn dh_secret(&self) -> &StaticSecret {
        &self.dh
    }

    /// Secret encoding `version(1) || ed25519 seed(32) || x25519 secret(32)` for the keyring.
    /// The certificate is recomputed on load (Ed25519 signing is deterministic).
    pub fn to_secret_bytes(&self) -> SecretVec {
        let mut w = Writer::with_capacity(IDENTITY_KEY_PAIR_LEN);
        w.u8(IDENTITY_KEY_PAIR_VERSION);
        w.bytes(self.signing.as_bytes());
        let mut dh = self.dh.to_bytes();
        w.bytes(&dh);
        dh.zeroize();
        SecretVec::new(w.finish())
    }

    /// Decodes [`Self::to_secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = codec::open(bytes, IDENTITY_KEY_PAIR_LEN, IDENTITY_KEY_PAIR_VERSION)?;
        let signing = r.secret()?;
        let dh = r.secret()?;
        r.finish()?;
        Ok(Self::from_parts(&signing, &dh))
    }
}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}
