//! Thin wrappers over the primitives exactly as Latch uses them, so that known-answer tests
//! exercise the same code paths as sessions do.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use hmac::digest::FixedOutput;
use hmac::digest::generic_array::GenericArray;
use hmac::{Hmac, Mac};
use ml_kem::kem::{Decapsulate, Encapsulate};
use ml_kem::{EncodedSizeUser, KemCore, MlKem1024};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use x25519_dalek::{PublicKey as XPublic, StaticSecret};
use zeroize::Zeroize;

use crate::secret::{Secret, SecretVec};

/// Length of an encoded ML-KEM-1024 encapsulation (public) key.
pub const KEM_PUBLIC_KEY_LEN: usize = 1568;
/// Length of an ML-KEM-1024 ciphertext.
pub const KEM_CIPHERTEXT_LEN: usize = 1568;
/// Length of a ChaCha20-Poly1305 tag.
pub const AEAD_TAG_LEN: usize = 16;

/// Why a primitive refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// X25519 produced the all-zero secret: the peer sent a low-order point, which would let
    /// it force a known key.
    #[error("non-contributory X25519 key agreement")]
    NonContributory,
    /// An AEAD tag did not verify: the ciphertext, header or key is wrong.
    #[error("authentication failed")]
    AuthenticationFailed,
    /// An ML-KEM key or ciphertext is malformed (wrong length or coefficients out of range).
    #[error("malformed ML-KEM input")]
    InvalidKem,
    /// HKDF was asked for more output than it can produce.
    #[error("invalid HKDF output length")]
    InvalidLength,
}

/// An X25519 key pair (prekeys, ratchet keys, ephemeral base keys).
#[derive(Clone)]
pub struct KeyPair {
    pub(crate) secret: StaticSecret,
    pub(crate) public: XPublic,
}

impl KeyPair {
    /// Fresh key pair from the caller's CSPRNG.
    pub fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> Self {
        let secret = StaticSecret::random_from_rng(rng);
        let public = XPublic::from(&secret);
        Self { secret, public }
    }

    /// Rebuilds a key pair from its secret scalar bytes.
    pub fn from_secret(secret: &Secret<32>) -> Self {
        let secret = StaticSecret::from(*secret.expose());
        let public = XPublic::from(&secret);
        Self { secret, public }
    }

    /// Rebuilds a key pair from its stored secret and public halves without recomputing the
    /// public key (a scalar multiplication). Only for our own records, written by
    /// [`Self::secret_bytes`] and [`Self::public_bytes`] together.
    pub(crate) fn from_parts_unchecked(secret: &Secret<32>, public: [u8; 32]) -> Self {
        Self {
            secret: StaticSecret::from(*secret.expose()),
            public: XPublic::from(public),
        }
    }

    /// The public key bytes.
    pub fn public_bytes(&self) -> [u8; 32] {
        self.public.to_bytes()
    }

    /// The secret scalar, for serialization into a store.
    pub fn secret_bytes(&self) -> Secret<32> {
        Secret::copy_from(self.secret.as_bytes())
    }
}

impl core::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "KeyPair {{ public: {:02x?}, secret: *** }}",
            &self.public.as_bytes()[..4]
        )
    }
}

/// X25519 that refuses low-order points: the shared secret must not be all zeros.
pub fn x25519(secret: &StaticSecret, public: &[u8; 32]) -> Result<Secret<32>, CryptoError> {
    let shared = secret.diffie_hellman(&XPublic::from(*public));
    if !shared.was_contributory() {
        return Err(CryptoError::NonContributory);
    }
    Ok(Secret::copy_from(shared.as_bytes()))
}

/// X25519 on raw scalar bytes (used by the known-answer tests).
pub fn x25519_raw(scalar: &[u8; 32], public: &[u8; 32]) -> Result<Secret<32>, CryptoError> {
    x25519(&StaticSecret::from(*scalar), public)
}

/// The Ed25519 public key of a 32-byte secret seed.
pub fn ed25519_public(seed: &Secret<32>) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(seed.expose())
        .verifying_key()
        .to_bytes()
}

/// Ed25519 signature (RFC 8032, deterministic) with a 32-byte secret seed.
pub fn ed25519_sign(seed: &Secret<32>, message: &[u8]) -> [u8; 64] {
    use ed25519_dalek::Signer;
    ed25519_dalek::SigningKey::from_bytes(seed.expose())
        .sign(message)
        .to_bytes()
}

/// Ed25519 verification as Latch applies it everywhere (identity certificates, prekeys, relay
/// challenges): strict, so non-canonical encodings and small-order keys are refused and a
/// signature has exactly one valid form.
pub fn ed25519_verify(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public) else {
        return false;
    };
    ed25519_verify_key(&key, message, signature)
}

/// [`ed25519_verify`] with the key already decoded, so a caller holding a decompressed key
/// (an [`crate::IdentityKey`]) does not pay for decompressing it again on every check.
pub(crate) fn ed25519_verify_key(
    key: &ed25519_dalek::VerifyingKey,
    message: &[u8],
    signature: &[u8; 64],
) -> bool {
    if key.is_weak() {
        return false;
    }
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
        .is_ok()
}

/// HKDF-SHA256 into a caller-sized secret buffer.
pub fn hkdf_sha256(
    salt: Option<&[u8]>,
    ikm: &[u8],
    info: &[u8],
    len: usize,
) -> Result<SecretVec, CryptoError> {
    let hk = Hkdf::<Sha256>::new(salt, ikm);
    let mut out = vec![0u8; len];
    if hk.expand(info, &mut out).is_err() {
        out.zeroize();
        return Err(CryptoError::InvalidLength);
    }
    Ok(SecretVec::new(out))
}

/// HKDF-SHA256 into a fixed-size pair of keys.
///
/// 64 bytes is far below HKDF-SHA256's 8160-byte limit, so this cannot fail today; if it ever
/// did, the caller gets an error rather than a pair of all-zero keys.
pub(crate) fn hkdf_pair(
    salt: Option<&[u8]>,
    ikm: &[u8],
    info: &[u8],
) -> Result<(Secret<32>, Secret<32>), CryptoError> {
    let hk = Hkdf::<Sha256>::new(salt, ikm);
    let out =
        Secret::<64>::try_fill(|out| hk.expand(info, out).map_err(|_| CryptoError::InvalidLength))?;
    let (a, b) = out.expose().split_at(32);
    let half = |h| Secret::copy_from_slice(h).ok_or(CryptoError::InvalidLength);
    Ok((half(a)?, half(b)?))
}

/// HMAC-SHA256 of a one-byte constant, as the symmetric-key ratchet uses it.
///
/// HMAC accepts keys of any length, so this cannot fail today; if it ever did, the caller gets
/// an error rather than a known all-zero chain key.
pub(crate) fn hmac_sha256(key: &[u8; 32], input: &[u8]) -> Result<Secret<32>, CryptoError> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| CryptoError::InvalidLength)?;
    mac.update(input);
    // Straight into the secret's storage: the usual `finalize()` returns the tag by value.
    Secret::try_fill(|out| {
        FixedOutput::finalize_into(mac, GenericArray::from_mut_slice(out));
        Ok(())
    })
}

/// ChaCha20-Poly1305 seal.
pub fn aead_seal(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    ChaCha20Poly1305::new(Key::from_slice(key))
        .encrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::AuthenticationFailed)
}

/// ChaCha20-Poly1305 open; the plaintext is returned in a zeroizing buffer.
pub fn aead_open(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<SecretVec, CryptoError> {
    ChaCha20Poly1305::new(Key::from_slice(key))
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map(SecretVec::new)
        .map_err(|_| CryptoError::AuthenticationFailed)
}

type Ek = <MlKem1024 as KemCore>::EncapsulationKey;
type Dk = <MlKem1024 as KemCore>::DecapsulationKey;

/// Length of an encoded (expanded) ML-KEM-1024 decapsulation key.
pub const KEM_DECAPSULATION_KEY_LEN: usize = 3168;
/// Offset of `H(ek)` in the expanded decapsulation key: `dk_pke(1536) || ek(1568) || h || z`.
const KEM_DK_HASH_OFFSET: usize = 1536 + KEM_PUBLIC_KEY_LEN;

/// An ML-KEM-1024 key pair: its 64-byte FIPS 203 seed `(d, z)` and, once derived or loaded, the
/// expanded decapsulation key.
///
/// The seed is the canonical secret. Expanding it is a full key generation (about as costly as
/// a decapsulation), so the expanded key is cached here and stored next to the seed in prekey
/// records: a responder then decapsulates without regenerating the key pair.
#[derive(Clone)]
pub struct KemKeyPair {
    seed: Secret<64>,
    /// Derived on first use, or loaded from a record. `DecapsulationKey` zeroizes on drop.
    expanded: std::sync::OnceLock<Box<Dk>>,
    /// The encoded encapsulation key, taken from `expanded` on first use.
    public: std::sync::OnceLock<Vec<u8>>,
}

impl KemKeyPair {
    /// Fresh key pair from the caller's CSPRNG.
    pub fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> Self {
        Self::from_seed(Secret::random(rng))
    }

    /// Rebuilds the key pair from its seed (expanded lazily, on first use).
    pub fn from_seed(seed: Secret<64>) -> Self {
        Self {
            seed,
            expanded: std::sync::OnceLock::new(),
            public: std::sync::OnceLock::new(),
        }
    }

    /// Rebuilds the key pair from its seed and its stored expanded decapsulation key, without
    /// a key generation. Only for our own records, written by [`Self::seed`] and
    /// [`Self::expanded_bytes`] together: the expanded key is not re-derived from the seed
    /// (that would cost the key generation this avoids), but it gets FIPS 203's decapsulation
    /// key check (the embedded `H(ek)` must match the embedded `ek`), which catches corruption.
    pub(crate) fn from_seed_and_expanded(
        seed: Secret<64>,
        expanded: &[u8],
    ) -> Result<Self, CryptoError> {
        let enc = ml_kem::Encoded::<Dk>::try_from(expanded).map_err(|_| CryptoError::InvalidKem)?;
        let dk = Box::new(Dk::from_bytes(&enc));
        let mut enc = enc;
        enc.as_mut_slice().zeroize();
        let ek = dk.encapsulation_key().as_bytes();
        let h = <sha3::Sha3_256 as sha3::Digest>::digest(ek.as_slice());
        let stored_h = expanded
            .get(KEM_DK_HASH_OFFSET..KEM_DK_HASH_OFFSET + 32)
            .ok_or(CryptoError::InvalidKem)?;
        if h.as_slice() != stored_h {
            return Err(CryptoError::InvalidKem);
        }
        Ok(Self {
            seed,
            expanded: dk.into(),
            public: ek.to_vec().into(),
        })
    }

    fn expand(seed: &Secret<64>) -> Dk {
        let s = seed.expose();
        let mut d = [0u8; 32];
        let mut z = [0u8; 32];
        d.copy_from_slice(&s[..32]);
        z.copy_from_slice(&s[32..]);
        let (dk, _) = MlKem1024::generate_deterministic(&d.into(), &z.into());
        d.zeroize();
        z.zeroize();
        dk
    }

    fn expanded(&self) -> &Dk {
        self.expanded
            .get_or_init(|| Box::new(Self::expand(&self.seed)))
    }

    /// The encoded encapsulation key to publish.
    pub fn public_bytes(&self) -> &[u8] {
        self.public
            .get_or_init(|| self.expanded().encapsulation_key().as_bytes().to_vec())
    }

    /// The seed, for serialization into a store.
    pub fn seed(&self) -> &Secret<64> {
        &self.seed
    }

    /// The expanded decapsulation key ([`KEM_DECAPSULATION_KEY_LEN`] bytes), for serialization
    /// into a store next to the seed.
    pub fn expanded_bytes(&self) -> SecretVec {
        let mut enc = self.expanded().as_bytes();
        let out = SecretVec::new(enc.to_vec());
        enc.as_mut_slice().zeroize();
        out
    }

    /// Decapsulates a ciphertext addressed to this key pair.
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<Secret<32>, CryptoError> {
        let ct = ml_kem::Ciphertext::<MlKem1024>::try_from(ciphertext)
            .map_err(|_| CryptoError::InvalidKem)?;
        let mut ss = self
            .expanded()
            .decapsulate(&ct)
            .map_err(|_| CryptoError::InvalidKem)?;
        shared_key(ss.as_mut_slice())
    }
}

impl core::fmt::Debug for KemKeyPair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("KemKeyPair { seed: *** }")
    }
}

/// Encapsulates to an encoded ML-KEM-1024 public key, refusing keys that are not canonical
/// (FIPS 203 section 7.2 modulus check: decode then re-encode must give the same bytes).
pub fn kem_encapsulate<R: CryptoRng + RngCore>(
    public: &[u8],
    rng: &mut R,
) -> Result<(Vec<u8>, Secret<32>), CryptoError> {
    let enc = ml_kem::Encoded::<Ek>::try_from(public).map_err(|_| CryptoError::InvalidKem)?;
    let ek = Ek::from_bytes(&enc);
    if ek.as_bytes().as_slice() != public {
        return Err(CryptoError::InvalidKem);
    }
    let (ct, mut ss) = ek.encapsulate(rng).map_err(|_| CryptoError::InvalidKem)?;
    Ok((ct.to_vec(), shared_key(ss.as_mut_slice())?))
}

/// Copies an ML-KEM shared key into a secret, then wipes the KEM's copy.
fn shared_key(ss: &mut [u8]) -> Result<Secret<32>, CryptoError> {
    let out = Secret::copy_from_slice(ss).ok_or(CryptoError::InvalidKem);
    ss.zeroize();
    out
}
