//! How this device's prekeys travel through the relay, which treats them as opaque bytes.
//!
//! - signed: `identity key (129) || X25519 signed prekey (32) || signature (64)`: the
//!   identity rides along so a bundle claimed by key alone can be checked and used.
//! - one-time: `X25519 one-time prekey (32) || ML-KEM-1024 key (1568) || signature (64)`, both
//!   halves under one id, consumed together.
//! - last resort: `ML-KEM-1024 key (1568) || signature (64)`, handed out when no one-time
//!   key is left.

use latch_protocol::identity::IDENTITY_KEY_LEN;
use latch_protocol::keys::KEM_PUBLIC_KEY_LEN;
use latch_protocol::{
    IdentityKey, KemPreKeyRecord, OneTimePreKeyRecord, PreKeyBundle, SignedPreKeyRecord,
};
use latch_relay::api::{Prekey, PrekeyBundle as RelayBundle};

/// Why a claimed bundle cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The device published no signed prekey.
    #[error("the contact's device published no signed prekey")]
    NoSignedPrekey,
    /// Neither a one-time nor a last-resort post-quantum key came back.
    #[error("the contact's device has no post-quantum prekey left")]
    NoKemPrekey,
    /// A blob has the wrong length.
    #[error("a published prekey has the wrong length")]
    Malformed,
    /// Decoding or a signature check failed.
    #[error("the contact's prekeys failed verification")]
    Invalid,
}

/// The signed-prekey blob.
pub fn signed_blob(identity: &IdentityKey, record: &SignedPreKeyRecord) -> Prekey {
    let mut key = Vec::with_capacity(IDENTITY_KEY_LEN + 32 + 64);
    key.extend_from_slice(&identity.to_bytes());
    key.extend_from_slice(&record.key_pair.public_bytes());
    key.extend_from_slice(&record.signature);
    Prekey { id: record.id, key }
}

/// A one-time blob (X25519 and ML-KEM under one id).
pub fn one_time_blob(x: &OneTimePreKeyRecord, kem: &KemPreKeyRecord) -> Prekey {
    let mut key = Vec::with_capacity(32 + KEM_PUBLIC_KEY_LEN + 64);
    key.extend_from_slice(&x.key_pair.public_bytes());
    key.extend_from_slice(kem.key_pair.public_bytes());
    key.extend_from_slice(&kem.signature);
    Prekey { id: x.id, key }
}

/// The last-resort blob.
pub fn last_resort_blob(kem: &KemPreKeyRecord) -> Prekey {
    let mut key = Vec::with_capacity(KEM_PUBLIC_KEY_LEN + 64);
    key.extend_from_slice(kem.key_pair.public_bytes());
    key.extend_from_slice(&kem.signature);
    Prekey { id: kem.id, key }
}

fn kem_part(id: u32, bytes: &[u8]) -> Result<(u32, Vec<u8>, [u8; 64]), BundleError> {
    if bytes.len() != KEM_PUBLIC_KEY_LEN + 64 {
        return Err(BundleError::Malformed);
    }
    let (key, sig) = bytes.split_at(KEM_PUBLIC_KEY_LEN);
    let sig = <[u8; 64]>::try_from(sig).map_err(|_| BundleError::Malformed)?;
    Ok((id, key.to_vec(), sig))
}

/// Turns a bundle claimed from the relay into a verified protocol bundle.
///
/// # Errors
/// [`BundleError`] for anything missing, malformed or wrongly signed.
pub fn bundle_from_relay(b: &RelayBundle) -> Result<PreKeyBundle, BundleError> {
    let signed = b.signed.as_ref().ok_or(BundleError::NoSignedPrekey)?;
    if signed.key.len() != IDENTITY_KEY_LEN + 32 + 64 {
        return Err(BundleError::Malformed);
    }
    let (identity, rest) = signed.key.split_at(IDENTITY_KEY_LEN);
    let identity = IdentityKey::from_bytes(identity).map_err(|_| BundleError::Invalid)?;
    let (spk, sig) = rest.split_at(32);
    let spk = <[u8; 32]>::try_from(spk).map_err(|_| BundleError::Malformed)?;
    let sig = <[u8; 64]>::try_from(sig).map_err(|_| BundleError::Malformed)?;
    let (one_time, kem) = match (&b.one_time, &b.last_resort) {
        (Some(ot), _) => {
            let (x, kem) = ot.key.split_at_checked(32).ok_or(BundleError::Malformed)?;
            let x = <[u8; 32]>::try_from(x).map_err(|_| BundleError::Malformed)?;
            (Some((ot.id, x)), kem_part(ot.id, kem)?)
        }
        (None, Some(lr)) => (None, kem_part(lr.id, &lr.key)?),
        (None, None) => return Err(BundleError::NoKemPrekey),
    };
    PreKeyBundle::from_published(identity, (signed.id, spk, sig), one_time, kem)
        .map_err(|_| BundleError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use latch_protocol::IdentityKeyPair;
    use rand_core::OsRng;

    fn published() -> (IdentityKeyPair, RelayBundle) {
        let id = IdentityKeyPair::generate(&mut OsRng);
        let spk = SignedPreKeyRecord::generate(1, 0, &id, &mut OsRng);
        let x = OneTimePreKeyRecord::generate(7, &mut OsRng);
        let kem = KemPreKeyRecord::generate(7, 0, false, &id, &mut OsRng);
        let lr = KemPreKeyRecord::generate(1, 0, true, &id, &mut OsRng);
        let bundle = RelayBundle {
            device_id: 1,
            signed: Some(signed_blob(id.public(), &spk)),
            one_time: Some(one_time_blob(&x, &kem)),
            last_resort: Some(last_resort_blob(&lr)),
        };
        (id, bundle)
    }

    #[test]
    fn published_keys_make_a_verified_bundle() {
        let (id, b) = published();
        let bundle = bundle_from_relay(&b).unwrap();
        assert_eq!(bundle.identity, *id.public());
        assert_eq!(bundle.one_time_prekey.map(|(i, _)| i), Some(7));
        assert_eq!(bundle.kem_prekey_id, 7);
        let without_one_time = RelayBundle {
            one_time: None,
            ..b
        };
        let bundle = bundle_from_relay(&without_one_time).unwrap();
        assert_eq!(bundle.one_time_prekey, None);
        assert_eq!(bundle.kem_prekey_id, 1);
    }

    #[test]
    fn tampered_or_short_blobs_are_refused() {
        let (_, mut b) = published();
        if let Some(ot) = b.one_time.as_mut() {
            let last = ot.key.len() - 1;
            ot.key[last] ^= 1;
        }
        assert_eq!(bundle_from_relay(&b).unwrap_err(), BundleError::Invalid);
        let (_, mut b) = published();
        if let Some(s) = b.signed.as_mut() {
            s.key.truncate(10);
        }
        assert_eq!(bundle_from_relay(&b).unwrap_err(), BundleError::Malformed);
        let (_, b) = published();
        let none = RelayBundle {
            one_time: None,
            last_resort: None,
            ..b
        };
        assert_eq!(
            bundle_from_relay(&none).unwrap_err(),
            BundleError::NoKemPrekey
        );
    }
}
