//! Prekeys and prekey bundles.
//!
//! A device publishes a bundle so that others can start sessions while it is offline: a signed
//! X25519 prekey (rotated), optionally a one-time X25519 prekey (used once, then deleted), and
//! an ML-KEM-1024 prekey that is either one-time or the signed last-resort key kept for when
//! one-time keys run out. Every record has a versioned encoding so stores can keep opaque blobs.

use rand_core::{CryptoRng, RngCore};

use crate::codec::{self, Writer};
use crate::error::DecodeError;
use crate::identity::{IDENTITY_KEY_LEN, IdentityKey, IdentityKeyPair};
use crate::keys::{KEM_DECAPSULATION_KEY_LEN, KEM_PUBLIC_KEY_LEN, KemKeyPair, KeyPair};
use crate::secret::SecretVec;

/// Version byte of [`PreKeyBundle`] and of the first (secrets-only) prekey record format.
pub const PREKEY_RECORD_VERSION: u8 = 1;
/// Version of the stored prekey records the current code writes. Version 2 stores the public
/// halves next to the secrets (X25519 public key, expanded ML-KEM decapsulation key) so that
/// loading a record for a session needs no key derivation; version 1 records still decode.
pub const PREKEY_STORE_VERSION: u8 = 2;

const ONE_TIME_V1_LEN: usize = 1 + 4 + 32;
const ONE_TIME_V2_LEN: usize = ONE_TIME_V1_LEN + 32;
const SIGNED_V1_LEN: usize = 1 + 4 + 8 + 32 + 64;
const SIGNED_V2_LEN: usize = SIGNED_V1_LEN + 32;
const KEM_V1_LEN: usize = 1 + 4 + 8 + 1 + 64 + 64;
const KEM_V2_LEN: usize = KEM_V1_LEN + KEM_DECAPSULATION_KEY_LEN;

/// Reads a stored X25519 key pair: v1 kept the secret only (the public key is recomputed),
/// v2 keeps both halves.
fn read_key_pair(r: &mut codec::Reader<'_>, version: u8) -> Result<KeyPair, DecodeError> {
    let secret = r.secret()?;
    Ok(if version == 1 {
        KeyPair::from_secret(&secret)
    } else {
        KeyPair::from_parts_unchecked(&secret, r.array()?)
    })
}

/// Opens a stored prekey record of either supported version, checking its exact length.
fn open_record(
    bytes: &[u8],
    v1_len: usize,
    v2_len: usize,
) -> Result<(codec::Reader<'_>, u8), DecodeError> {
    let (version, len) = match bytes.first() {
        Some(&PREKEY_RECORD_VERSION) => (PREKEY_RECORD_VERSION, v1_len),
        Some(&PREKEY_STORE_VERSION) => (PREKEY_STORE_VERSION, v2_len),
        Some(&v) => return Err(DecodeError::UnknownVersion(v)),
        None => return Err(DecodeError::Truncated),
    };
    Ok((codec::open(bytes, len, version)?, version))
}

/// Domain separator for signatures over X25519 signed prekeys.
const SIGNED_PREKEY_CONTEXT: &[u8] = b"Latch signed prekey X25519 v1";
/// Domain separator for signatures over ML-KEM prekeys.
const KEM_PREKEY_CONTEXT: &[u8] = b"Latch signed prekey ML-KEM-1024 v1";

fn signed_message(context: &[u8], key: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(context.len() + key.len());
    m.extend_from_slice(context);
    m.extend_from_slice(key);
    m
}

/// A one-time X25519 prekey: consumed by the first session that uses it.
#[derive(Clone)]
pub struct OneTimePreKeyRecord {
    /// Identifier published in the bundle.
    pub id: u32,
    /// The key pair.
    pub key_pair: KeyPair,
}

impl OneTimePreKeyRecord {
    /// Generates a new one-time prekey.
    pub fn generate<R: CryptoRng + RngCore>(id: u32, rng: &mut R) -> Self {
        Self {
            id,
            key_pair: KeyPair::generate(rng),
        }
    }

    /// `version(2) || id || secret || public`.
    pub fn to_secret_bytes(&self) -> SecretVec {
        let mut w = Writer::with_capacity(ONE_TIME_V2_LEN);
        w.u8(PREKEY_STORE_VERSION);
        w.u32(self.id);
        w.bytes(self.key_pair.secret_bytes().expose());
        w.bytes(&self.key_pair.public_bytes());
        SecretVec::new(w.finish())
    }

    /// Decodes [`Self::to_secret_bytes`], and version 1 (`version || id || secret`).
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (mut r, version) = open_record(bytes, ONE_TIME_V1_LEN, ONE_TIME_V2_LEN)?;
        let id = r.u32()?;
        let key_pair = read_key_pair(&mut r, version)?;
        r.finish()?;
        Ok(Self { id, key_pair })
    }
}

/// A signed X25519 prekey, rotated periodically by the owner.
#[derive(Clone)]
pub struct SignedPreKeyRecord {
    /// Identifier published in the bundle.
    pub id: u32,
    /// Creation time in milliseconds since the Unix epoch, supplied by the caller (no clocks
    /// here); the owner uses it to decide rotation.
    pub created_at_ms: u64,
    /// The key pair.
    pub key_pair: KeyPair,
    /// Identity signature over the public key.
    pub signature: [u8; 64],
}

impl SignedPreKeyRecord {
    /// The exact bytes an identity signs to certify the X25519 prekey `public`.
    pub fn signature_message(public: &[u8; 32]) -> Vec<u8> {
        signed_message(SIGNED_PREKEY_CONTEXT, public)
    }

    /// Generates and signs a new signed prekey.
    pub fn generate<R: CryptoRng + RngCore>(
        id: u32,
        created_at_ms: u64,
        identity: &IdentityKeyPair,
        rng: &mut R,
    ) -> Self {
        let key_pair = KeyPair::generate(rng);
        let signature = identity.sign(&signed_message(
            SIGNED_PREKEY_CONTEXT,
            &key_pair.public_bytes(),
        ));
        Self {
            id,
            created_at_ms,
            key_pair,
            signature,
        }
    }

    /// `version(2) || id || created_at || secret || public || signature`.
    pub fn to_secret_bytes(&self) -> SecretVec {
        let mut w = Writer::with_capacity(SIGNED_V2_LEN);
        w.u8(PREKEY_STORE_VERSION);
        w.u32(self.id);
        w.u64(self.created_at_ms);
        w.bytes(self.key_pair.secret_bytes().expose());
        w.bytes(&self.key_pair.public_bytes());
        w.bytes(&self.signature);
        SecretVec::new(w.finish())
    }

    /// Decodes [`Self::to_secret_bytes`], and version 1
    /// (`version || id || created_at || secret || signature`).
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (mut r, version) = open_record(bytes, SIGNED_V1_LEN, SIGNED_V2_LEN)?;
        let id = r.u32()?;
        let created_at_ms = r.u64()?;
        let key_pair = read_key_pair(&mut r, version)?;
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            id,
            created_at_ms,
            key_pair,
            signature,
        })
    }
}

/// A signed ML-KEM-1024 prekey, one-time or last-resort.
#[derive(Clone)]
pub struct KemPreKeyRecord {
    /// Identifier published in the bundle.
    pub id: u32,
    /// Creation time in milliseconds since the Unix epoch, supplied by the caller.
    pub created_at_ms: u64,
    /// Whether this is the last-resort key: it is never deleted after use, so each
    /// (id, base key) use is recorded instead to refuse replays.
    pub last_resort: bool,
    /// The key pair.
    pub key_pair: KemKeyPair,
    /// Identity signature over the encapsulation key.
    pub signature: [u8; 64],
}

impl KemPreKeyRecord {
    /// The exact bytes an identity signs to certify the ML-KEM prekey `public`.
    pub fn signature_message(public: &[u8]) -> Vec<u8> {
        signed_message(KEM_PREKEY_CONTEXT, public)
    }

    /// Generates and signs a new ML-KEM prekey.
    pub fn generate<R: CryptoRng + RngCore>(
        id: u32,
        created_at_ms: u64,
        last_resort: bool,
        identity: &IdentityKeyPair,
        rng: &mut R,
    ) -> Self {
        let key_pair = KemKeyPair::generate(rng);
        let signature = identity.sign(&signed_message(KEM_PREKEY_CONTEXT, key_pair.public_bytes()));
        Self {
            id,
            created_at_ms,
            last_resort,
            key_pair,
            signature,
        }
    }

    /// `version(2) || id || created_at || last_resort || seed(64) || expanded
    /// decapsulation key(3168) || signature`.
    pub fn to_secret_bytes(&self) -> SecretVec {
        let mut w = Writer::with_capacity(KEM_V2_LEN);
        w.u8(PREKEY_STORE_VERSION);
        w.u32(self.id);
        w.u64(self.created_at_ms);
        w.u8(u8::from(self.last_resort));
        w.bytes(self.key_pair.seed().expose());
        w.bytes(self.key_pair.expanded_bytes().expose());
        w.bytes(&self.signature);
        SecretVec::new(w.finish())
    }

    /// Decodes [`Self::to_secret_bytes`], and version 1
    /// (`version || id || created_at || last_resort || seed(64) || signature`), whose key is
    /// expanded from the seed on first use.
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (mut r, version) = open_record(bytes, KEM_V1_LEN, KEM_V2_LEN)?;
        let id = r.u32()?;
        let created_at_ms = r.u64()?;
        let last_resort = r.bool()?;
        let seed = r.secret()?;
        let key_pair = if version == PREKEY_RECORD_VERSION {
            KemKeyPair::from_seed(seed)
        } else {
            KemKeyPair::from_seed_and_expanded(seed, r.take(KEM_DECAPSULATION_KEY_LEN)?)
                .map_err(|_| DecodeError::InvalidKey("ML-KEM decapsulation key"))?
        };
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            id,
            created_at_ms,
            last_resort,
            key_pair,
            signature,
        })
    }
}

/// What a device publishes (through the relay) so others can start sessions with it.
#[derive(Clone)]
pub struct PreKeyBundle {
    /// The owner's identity.
    pub identity: IdentityKey,
    /// Id of the signed X25519 prekey.
    pub signed_prekey_id: u32,
    /// The signed X25519 prekey.
    pub signed_prekey: [u8; 32],
    /// Identity signature over `signed_prekey`.
    pub signed_prekey_signature: [u8; 64],
    /// An optional one-time X25519 prekey `(id, key)`.
    pub one_time_prekey: Option<(u32, [u8; 32])>,
    /// Id of the ML-KEM prekey.
    pub kem_prekey_id: u32,
    /// The ML-KEM-1024 encapsulation key.
    pub kem_prekey: Vec<u8>,
    /// Identity signature over `kem_prekey`.
    pub kem_prekey_signature: [u8; 64],
    /// The signed content [`Self::from_bytes`] verified. Starting a session from a decoded
    /// bundle checks the signatures again ([`Self::verify_signatures`]); when the fields still
    /// equal what was verified, that second check of the same two signatures is skipped. Any
    /// change to a field makes the comparison fail and the signatures are verified in full.
    verified: Option<Box<[u8]>>,
}

impl PartialEq for PreKeyBundle {
    fn eq(&self, other: &Self) -> bool {
        self.identity == other.identity
            && self.signed_prekey_id == other.signed_prekey_id
            && self.signed_prekey == other.signed_prekey
            && self.signed_prekey_signature == other.signed_prekey_signature
            && self.one_time_prekey == other.one_time_prekey
            && self.kem_prekey_id == other.kem_prekey_id
            && self.kem_prekey == other.kem_prekey
            && self.kem_prekey_signature == other.kem_prekey_signature
    }
}

impl Eq for PreKeyBundle {}

impl core::fmt::Debug for PreKeyBundle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PreKeyBundle")
            .field("identity", &self.identity)
            .field("signed_prekey_id", &self.signed_prekey_id)
            .field("signed_prekey", &self.signed_prekey)
            .field("signed_prekey_signature", &self.signed_prekey_signature)
            .field("one_time_prekey", &self.one_time_prekey)
            .field("kem_prekey_id", &self.kem_prekey_id)
            .field("kem_prekey", &self.kem_prekey)
            .field("kem_prekey_signature", &self.kem_prekey_signature)
            .finish()
    }
}

/// Encoded length of a [`PreKeyBundle`] (fixed: the one-time prekey slot is always present).
pub const PREKEY_BUNDLE_LEN: usize =
    1 + IDENTITY_KEY_LEN + 4 + 32 + 64 + 1 + 4 + 32 + 4 + KEM_PUBLIC_KEY_LEN + 64;

impl PreKeyBundle {
    /// Assembles a bundle from the owner's records.
    pub fn new(
        identity: &IdentityKey,
        signed: &SignedPreKeyRecord,
        one_time: Option<&OneTimePreKeyRecord>,
        kem: &KemPreKeyRecord,
    ) -> Self {
        Self {
            identity: identity.clone(),
            signed_prekey_id: signed.id,
            signed_prekey: signed.key_pair.public_bytes(),
            signed_prekey_signature: signed.signature,
            one_time_prekey: one_time.map(|o| (o.id, o.key_pair.public_bytes())),
            kem_prekey_id: kem.id,
            kem_prekey: kem.key_pair.public_bytes().to_vec(),
            kem_prekey_signature: kem.signature,
            verified: None,
        }
    }

    /// Assembles a bundle from the public parts a directory (the relay) handed out, and
    /// verifies both signatures: a bundle with a bad signature is refused here, before any
    /// key agreement. `signed` and `kem` are `(id, public key, signature)`.
    ///
    /// # Errors
    /// [`DecodeError::InvalidKey`] for a wrong-length ML-KEM key or a bad signature.
    pub fn from_published(
        identity: IdentityKey,
        signed: (u32, [u8; 32], [u8; 64]),
        one_time: Option<(u32, [u8; 32])>,
        kem: (u32, Vec<u8>, [u8; 64]),
    ) -> Result<Self, DecodeError> {
        if kem.1.len() != KEM_PUBLIC_KEY_LEN {
            return Err(DecodeError::InvalidKey("ML-KEM prekey length"));
        }
        let mut bundle = Self {
            identity,
            signed_prekey_id: signed.0,
            signed_prekey: signed.1,
            signed_prekey_signature: signed.2,
            one_time_prekey: one_time,
            kem_prekey_id: kem.0,
            kem_prekey: kem.1,
            kem_prekey_signature: kem.2,
            verified: None,
        };
        if !bundle.verify_signatures_in_full() {
            return Err(DecodeError::InvalidKey("prekey bundle signature"));
        }
        bundle.verified = Some(bundle.signed_content().into_boxed_slice());
        Ok(bundle)
    }

    /// Everything the two signatures cover, with the key that must have made them.
    fn signed_content(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(IDENTITY_KEY_LEN + 32 + 64 + KEM_PUBLIC_KEY_LEN + 64);
        w.bytes(&self.identity.to_bytes());
        w.bytes(&self.signed_prekey);
        w.bytes(&self.signed_prekey_signature);
        w.bytes(&self.kem_prekey);
        w.bytes(&self.kem_prekey_signature);
        w.finish()
    }

    /// Checks both prekey signatures against the bundle's identity.
    pub fn verify_signatures(&self) -> bool {
        if let Some(verified) = &self.verified
            && **verified == *self.signed_content()
        {
            return true;
        }
        self.verify_signatures_in_full()
    }

    fn verify_signatures_in_full(&self) -> bool {
        let spk = self.identity.verify(
            &signed_message(SIGNED_PREKEY_CONTEXT, &self.signed_prekey),
            &self.signed_prekey_signature,
        );
        let kem = self.identity.verify(
            &signed_message(KEM_PREKEY_CONTEXT, &self.kem_prekey),
            &self.kem_prekey_signature,
        );
        spk & kem
    }

    /// Encodes the bundle (fixed length [`PREKEY_BUNDLE_LEN`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(PREKEY_BUNDLE_LEN);
        w.u8(PREKEY_RECORD_VERSION);
        w.bytes(&self.identity.to_bytes());
        w.u32(self.signed_prekey_id);
        w.bytes(&self.signed_prekey);
        w.bytes(&self.signed_prekey_signature);
        let (has, id, key) = match self.one_time_prekey {
            Some((id, key)) => (1, id, key),
            None => (0, 0, [0u8; 32]),
        };
        w.u8(has);
        w.u32(id);
        w.bytes(&key);
        w.u32(self.kem_prekey_id);
        w.bytes(&self.kem_prekey);
        w.bytes(&self.kem_prekey_signature);
        w.finish()
    }

    /// Decodes a bundle and verifies its signatures; a bundle with a bad signature is refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = codec::open(bytes, PREKEY_BUNDLE_LEN, PREKEY_RECORD_VERSION)?;
        let identity = IdentityKey::from_bytes(r.take(IDENTITY_KEY_LEN)?)?;
        let signed_prekey_id = r.u32()?;
        let signed_prekey = r.array()?;
        let signed_prekey_signature = r.array()?;
        let has = r.bool()?;
        let otpk_id = r.u32()?;
        let otpk: [u8; 32] = r.array()?;
        if !has && (otpk_id != 0 || otpk != [0u8; 32]) {
            return Err(DecodeError::InvalidField("one-time prekey"));
        }
        let kem_prekey_id = r.u32()?;
        let kem_prekey = r.take(KEM_PUBLIC_KEY_LEN)?.to_vec();
        let kem_prekey_signature = r.array()?;
        r.finish()?;
        Self::from_published(
            identity,
            (signed_prekey_id, signed_prekey, signed_prekey_signature),
            has.then_some((otpk_id, otpk)),
            (kem_prekey_id, kem_prekey, kem_prekey_signature),
        )
    }
}

impl core::fmt::Debug for OneTimePreKeyRecord {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OneTimePreKeyRecord")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl core::fmt::Debug for SignedPreKeyRecord {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SignedPreKeyRecord")
            .field("id", &self.id)
            .field("created_at_ms", &self.created_at_ms)
            .finish_non_exhaustive()
    }
}

impl core::fmt::Debug for KemPreKeyRecord {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KemPreKeyRecord")
            .field("id", &self.id)
            .field("created_at_ms", &self.created_at_ms)
            .field("last_resort", &self.last_resort)
            .finish_non_exhaustive()
    }
}
