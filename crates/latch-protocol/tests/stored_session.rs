//! Storage stability: a session record written by format version 1 must keep decrypting.
//!
//! `tests/fixtures/session_record_v1.json` was produced by `fixture_v1()` below with a fixed RNG
//! seed and is committed. Two checks:
//! - `v1_fixture_still_decrypts` reads the committed bytes with the current code and decrypts
//!   the two messages saved with it (one through a stored skipped key, one further on the
//!   chain). This must keep passing forever: when the format changes, add a decoder for the new
//!   version and keep this fixture.
//! - `record_format_is_unchanged` regenerates the record and compares bytes, so any change to
//!   the encoding fails here first and forces a new version number plus a migration path.
//!
//! Regenerate (only when deliberately introducing a new version, into a new file):
//! `LATCH_WRITE_FIXTURES=1 cargo test -p latch-protocol --test stored_session`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Device, rng, wire};
use latch_protocol::ratchet::SESSION_RECORD_VERSION;
use latch_protocol::session::{decrypt, encrypt, process_prekey_bundle};
use latch_protocol::store::SessionStore;
use latch_protocol::*;
use serde::{Deserialize, Serialize};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/session_record_v1.json"
);

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Fixture {
    format_version: u8,
    description: String,
    bob_record: String,
    pending: Vec<(String, String)>,
}

fn fixture_v1() -> Fixture {
    let mut r = rng(0x1a7c4);
    let mut alice = Device::new("alice", &mut r);
    let mut bob = Device::new("bob", &mut r);
    let bundle = bob.bundle(&mut r);
    process_prekey_bundle(&mut alice.store, &bob.address(), &bundle, &mut r).unwrap();
    let m0 = wire(&encrypt(&mut alice.store, &bob.address(), b"m0").unwrap());
    decrypt(&mut bob.store, &alice.address(), &m0, &mut r).unwrap();
    let reply = wire(&encrypt(&mut bob.store, &alice.address(), b"reply").unwrap());
    decrypt(&mut alice.store, &bob.address(), &reply, &mut r).unwrap();
    let m: Vec<_> = (1..=4)
        .map(|i| {
            wire(&encrypt(&mut alice.store, &bob.address(), format!("m{i}").as_bytes()).unwrap())
        })
        .collect();
    // Bob sees m1 and m3, so m2 sits in the skipped-key store; m4 is still ahead on the chain.
    decrypt(&mut bob.store, &alice.address(), &m[0], &mut r).unwrap();
    decrypt(&mut bob.store, &alice.address(), &m[2], &mut r).unwrap();
    let record = bob.store.load_session(&alice.address()).unwrap().unwrap();
    Fixture {
        format_version: SESSION_RECORD_VERSION,
        description:
            "Bob's SessionRecord after m0..m3 minus m2; pending: m2 (skipped key), m4 (chain)"
                .into(),
        bob_record: hex::encode(record.to_bytes().expose()),
        pending: [(1usize, "m2"), (3, "m4")]
            .iter()
            .map(|(i, p)| (hex::encode(m[*i].to_bytes()), hex::encode(p)))
            .collect(),
    }
}

fn load() -> Fixture {
    serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap()
}

#[test]
fn v1_fixture_still_decrypts() {
    if std::env::var_os("LATCH_WRITE_FIXTURES").is_some() {
        std::fs::write(
            FIXTURE,
            serde_json::to_string_pretty(&fixture_v1()).unwrap() + "\n",
        )
        .unwrap();
    }
    let f = load();
    assert_eq!(f.format_version, 1);
    let mut record = SessionRecord::from_bytes(&hex::decode(&f.bob_record).unwrap()).unwrap();
    let mut r = rng(99);
    for (msg, plain) in &f.pending {
        let m = RatchetMessage::from_bytes(&hex::decode(msg).unwrap()).unwrap();
        assert_eq!(
            hex::encode(record.decrypt(&m, &mut r).unwrap().expose()),
            *plain
        );
    }
    // And the session keeps working in both directions after loading.
    assert!(matches!(
        record.encrypt(b"still alive").unwrap(),
        CiphertextMessage::Ratchet(_)
    ));
}

#[test]
fn record_format_is_unchanged() {
    let regenerated = fixture_v1();
    assert_eq!(
        regenerated,
        load(),
        "the session record encoding changed: bump SESSION_RECORD_VERSION, add a decoder for the new \
         version, and keep the v1 fixture decrypting"
    );
}

#[test]
fn unknown_record_version_and_corruption_are_typed_errors() {
    let f = load();
    let bytes = hex::decode(&f.bob_record).unwrap();
    let mut v = bytes.clone();
    v[0] = 2;
    assert_eq!(
        SessionRecord::from_bytes(&v).unwrap_err(),
        DecodeError::UnknownVersion(2)
    );
    assert_eq!(
        SessionRecord::from_bytes(&bytes[..bytes.len() - 1]).unwrap_err(),
        DecodeError::Truncated
    );
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        SessionRecord::from_bytes(&long).unwrap_err(),
        DecodeError::TrailingBytes
    );
    assert_eq!(
        SessionRecord::from_bytes(&[]).unwrap_err(),
        DecodeError::Truncated
    );
}
