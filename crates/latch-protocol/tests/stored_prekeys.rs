//! Storage stability of prekey records: records written by an older format must keep working.
//!
//! `tests/fixtures/prekey_records_v1.json` was produced by `fixture()` below (fixed RNG seed)
//! when the prekey records were at version 1 (secrets only); later versions get their own file
//! next to it. Each fixture holds Bob's identity, his three prekey records as the store kept
//! them, and a prekey message Alice sent to the bundle built from them. Checks:
//! - `fixtures_still_decrypt`: every committed version decodes with the current code, goes
//!   through a store (so it is re-encoded in the current format) and the message decrypts.
//! - `record_format_is_unchanged`: the current encoding regenerates the newest fixture byte
//!   for byte, so an encoding change fails here and forces a new version and a new file.
//!
//! Regenerate (only when deliberately introducing a new version, into a new file):
//! `LATCH_WRITE_FIXTURES=1 cargo test -p latch-protocol --test stored_prekeys`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Device, rng, wire};
use latch_protocol::session::{decrypt, encrypt, process_prekey_bundle};
use latch_protocol::store::{KemPreKeyStore, PreKeyStore, SignedPreKeyStore};
use latch_protocol::*;
use serde::{Deserialize, Serialize};

/// The prekey record version the current code writes.
const CURRENT: u8 = prekey::PREKEY_STORE_VERSION;
/// Every version with a committed fixture.
const VERSIONS: &[u8] = &[1, 2];

fn path(version: u8) -> String {
    format!(
        "{}/tests/fixtures/prekey_records_v{version}.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Fixture {
    format_version: u8,
    description: String,
    bob_identity: String,
    signed_prekey: String,
    one_time_prekey: String,
    kem_prekey: String,
    message: String,
    plaintext: String,
}

fn fixture() -> Fixture {
    let mut r = rng(0x9e4b);
    let mut alice = Device::new("alice", &mut r);
    let mut bob = Device::new("bob", &mut r);
    let bundle = bob.bundle(&mut r);
    process_prekey_bundle(&mut alice.store, &bob.address(), &bundle, &mut r).unwrap();
    let msg = wire(&encrypt(&mut alice.store, &bob.address(), b"first").unwrap());
    let CiphertextMessage::PreKey(pm) = &msg else {
        panic!("first message must be a prekey message")
    };
    let spk = bob
        .store
        .get_signed_pre_key(pm.signed_prekey_id)
        .unwrap()
        .unwrap();
    let opk = bob
        .store
        .get_pre_key(pm.one_time_prekey_id.unwrap())
        .unwrap()
        .unwrap();
    let kem = bob
        .store
        .get_kem_pre_key(pm.kem_prekey_id)
        .unwrap()
        .unwrap();
    Fixture {
        format_version: CURRENT,
        description: "Bob's identity and prekey records; message: Alice's first prekey message"
            .into(),
        bob_identity: hex::encode(bob.identity.to_secret_bytes().expose()),
        signed_prekey: hex::encode(spk.to_secret_bytes().expose()),
        one_time_prekey: hex::encode(opk.to_secret_bytes().expose()),
        kem_prekey: hex::encode(kem.to_secret_bytes().expose()),
        message: hex::encode(pm.to_bytes()),
        plaintext: hex::encode(b"first"),
    }
}

fn load(version: u8) -> Fixture {
    serde_json::from_str(&std::fs::read_to_string(path(version)).unwrap()).unwrap()
}

fn write_if_asked() {
    if std::env::var_os("LATCH_WRITE_FIXTURES").is_some() {
        std::fs::write(
            path(CURRENT),
            serde_json::to_string_pretty(&fixture()).unwrap() + "\n",
        )
        .unwrap();
    }
}

#[test]
fn fixtures_still_decrypt() {
    write_if_asked();
    for &v in VERSIONS {
        let f = load(v);
        assert_eq!(f.format_version, v);
        let h = |s: &str| hex::decode(s).unwrap();
        let identity = IdentityKeyPair::from_secret_bytes(&h(&f.bob_identity)).unwrap();
        let spk = SignedPreKeyRecord::from_secret_bytes(&h(&f.signed_prekey)).unwrap();
        let opk = OneTimePreKeyRecord::from_secret_bytes(&h(&f.one_time_prekey)).unwrap();
        let kem = KemPreKeyRecord::from_secret_bytes(&h(&f.kem_prekey)).unwrap();
        // The decoded keys are the published ones: the signatures still verify.
        let bundle = PreKeyBundle::new(identity.public(), &spk, Some(&opk), &kem);
        assert!(bundle.verify_signatures(), "version {v}");
        let mut store = InMemoryStore::new(identity);
        store.save_signed_pre_key(&spk).unwrap();
        store.save_pre_key(&opk).unwrap();
        store.save_kem_pre_key(&kem).unwrap();
        let msg = CiphertextMessage::PreKey(PreKeyMessage::from_bytes(&h(&f.message)).unwrap());
        let plain = decrypt(
            &mut store,
            &ProtocolAddress::new("alice", 1),
            &msg,
            &mut rng(7),
        )
        .unwrap();
        assert_eq!(hex::encode(plain.expose()), f.plaintext, "version {v}");
    }
}

#[test]
fn record_format_is_unchanged() {
    assert_eq!(
        fixture(),
        load(CURRENT),
        "the prekey record encoding changed: bump PREKEY_STORE_VERSION, keep decoding the old \
         version, and commit a fixture for the new one"
    );
}

#[test]
fn corrupted_or_unknown_prekey_records_are_typed_errors() {
    let f = load(CURRENT);
    let kem = hex::decode(&f.kem_prekey).unwrap();
    // A flipped bit in the encapsulation key embedded in the expanded decapsulation key: its
    // hash no longer matches the embedded H(ek) (FIPS 203 decapsulation key check).
    let mut bad = kem.clone();
    bad[1 + 4 + 8 + 1 + 64 + 1536 + 10] ^= 1;
    assert_eq!(
        KemPreKeyRecord::from_secret_bytes(&bad).unwrap_err(),
        DecodeError::InvalidKey("ML-KEM decapsulation key")
    );
    let mut unknown = kem.clone();
    unknown[0] = 3;
    assert_eq!(
        KemPreKeyRecord::from_secret_bytes(&unknown).unwrap_err(),
        DecodeError::UnknownVersion(3)
    );
    // A version 2 record labelled version 1 is refused, not misread.
    let mut relabelled = kem.clone();
    relabelled[0] = 1;
    assert!(KemPreKeyRecord::from_secret_bytes(&relabelled).is_err());
    let spk = hex::decode(&f.signed_prekey).unwrap();
    assert_eq!(
        SignedPreKeyRecord::from_secret_bytes(&spk[..spk.len() - 1]).unwrap_err(),
        DecodeError::Truncated
    );
    let opk = hex::decode(&f.one_time_prekey).unwrap();
    let mut relabelled = opk.clone();
    relabelled[0] = 1;
    assert!(OneTimePreKeyRecord::from_secret_bytes(&relabelled).is_err());
}
