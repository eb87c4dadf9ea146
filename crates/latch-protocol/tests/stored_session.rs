//! Storage stability: a session record written by an older format version must keep decrypting.
//!
//! `tests/fixtures/session_record_v{N}.json` were produced by `fixture()` below with a fixed
//! RNG seed, each by the code of its version, and are committed (v1: eager DH ratchet steps; v2:
//! same layout, the sending half of a step taken on receipt may be pending). Two checks:
//! - `fixtures_still_decrypt` reads every committed version with the current code and decrypts
//!   the two messages saved with it (one through a stored skipped key, one further on the
//!   chain). This must keep passing forever: when the format changes, add a decoder for the new
//!   version and keep these fixtures.
//! - `record_format_is_unchanged` regenerates the record and compares bytes with the newest
//!   fixture, so any change to the encoding or to what is stored fails here first and forces a
//!   new version number plus a migration path.
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

/// Every version with a committed fixture.
const VERSIONS: &[u8] = &[1, 2];

fn path(version: u8) -> String {
    format!(
        "{}/tests/fixtures/session_record_v{version}.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Fixture {
    format_version: u8,
    description: String,
    bob_record: String,
    pending: Vec<(String, String)>,
}

fn fixture() -> Fixture {
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

fn load(version: u8) -> Fixture {
    serde_json::from_str(&std::fs::read_to_string(path(version)).unwrap()).unwrap()
}

#[test]
fn fixtures_still_decrypt() {
    if std::env::var_os("LATCH_WRITE_FIXTURES").is_some() {
        std::fs::write(
            path(SESSION_RECORD_VERSION),
            serde_json::to_string_pretty(&fixture()).unwrap() + "\n",
        )
        .unwrap();
    }
    for &v in VERSIONS {
        let f = load(v);
        assert_eq!(f.format_version, v);
        let mut record = SessionRecord::from_bytes(&hex::decode(&f.bob_record).unwrap()).unwrap();
        let mut r = rng(99);
        for (msg, plain) in &f.pending {
            let m = RatchetMessage::from_bytes(&hex::decode(msg).unwrap()).unwrap();
            assert_eq!(
                hex::encode(record.decrypt(&m, &mut r).unwrap().expose()),
                *plain,
                "version {v}"
            );
        }
        // And the session keeps working in both directions after loading.
        assert!(matches!(
            record.encrypt(b"still alive").unwrap(),
            CiphertextMessage::Ratchet(_)
        ));
    }
}

#[test]
fn record_format_is_unchanged() {
    let regenerated = fixture();
    assert_eq!(
        regenerated,
        load(SESSION_RECORD_VERSION),
        "the session record encoding changed: bump SESSION_RECORD_VERSION, add a decoder for the new \
         version, and keep the older fixtures decrypting"
    );
}

#[test]
fn unknown_record_version_and_corruption_are_typed_errors() {
    let f = load(SESSION_RECORD_VERSION);
    let bytes = hex::decode(&f.bob_record).unwrap();
    let mut v = bytes.clone();
    v[0] = 3;
    assert_eq!(
        SessionRecord::from_bytes(&v).unwrap_err(),
        DecodeError::UnknownVersion(3)
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

/// Found by the fuzz smoke run: an empty version-1 record decodes, and writing it produces the
/// current version. The upgraded bytes must be a fixed point (decode, encode, same bytes), or a
/// store would rewrite the record on every load.
#[test]
fn an_upgraded_record_reencodes_to_the_same_bytes() {
    let v1_empty = [1u8, 0, 0, 0, 0, 0];
    let record = SessionRecord::from_bytes(&v1_empty).unwrap();
    let upgraded = record.to_bytes();
    assert_eq!(upgraded.expose().first(), Some(&SESSION_RECORD_VERSION));
    let again = SessionRecord::from_bytes(upgraded.expose()).unwrap();
    assert_eq!(again.to_bytes().expose(), upgraded.expose());
}
