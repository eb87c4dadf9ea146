//! Safety numbers against Signal's published vectors, plus equality and mismatch cases.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use latch_protocol::fingerprint::{DEFAULT_ITERATIONS, FingerprintError};
use latch_protocol::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Version {
    version: u32,
    alice_scannable: String,
    bob_scannable: String,
}

#[derive(Deserialize)]
struct Encoding {
    version: u32,
    local_fill: String,
    remote_fill: String,
    expected: String,
}

#[derive(Deserialize)]
struct Vectors {
    iterations: u32,
    alice_stable_id: String,
    bob_stable_id: String,
    alice_identity: String,
    bob_identity: String,
    displayable: String,
    versions: Vec<Version>,
    encoding: Encoding,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("vectors/signal_fingerprint.json")).unwrap()
}

#[test]
fn signal_vectors_v1_and_v2() {
    let v = vectors();
    let (a, b) = (
        hex::decode(&v.alice_identity).unwrap(),
        hex::decode(&v.bob_identity).unwrap(),
    );
    assert_eq!(v.iterations, DEFAULT_ITERATIONS);
    for ver in &v.versions {
        let fa = Fingerprint::new(
            ver.version,
            v.iterations,
            v.alice_stable_id.as_bytes(),
            &a,
            v.bob_stable_id.as_bytes(),
            &b,
        )
        .unwrap();
        let fb = Fingerprint::new(
            ver.version,
            v.iterations,
            v.bob_stable_id.as_bytes(),
            &b,
            v.alice_stable_id.as_bytes(),
            &a,
        )
        .unwrap();
        assert_eq!(fa.display.to_string(), v.displayable);
        assert_eq!(fb.display.to_string(), v.displayable);
        assert_eq!(hex::encode(fa.scannable.to_bytes()), ver.alice_scannable);
        assert_eq!(hex::encode(fb.scannable.to_bytes()), ver.bob_scannable);
        assert!(fa.scannable.compare(&fb.scannable.to_bytes()).unwrap());
        assert!(fb.scannable.compare(&fa.scannable.to_bytes()).unwrap());
        assert!(!fa.scannable.compare(&fa.scannable.to_bytes()).unwrap());
    }
}

#[test]
fn scannable_encoding() {
    let e = vectors().encoding;
    let l = hex::decode(e.local_fill.repeat(32)).unwrap();
    let r = hex::decode(e.remote_fill.repeat(32)).unwrap();
    let s = fingerprint::ScannableFingerprint::from_parts(
        e.version,
        l.try_into().unwrap(),
        r.try_into().unwrap(),
    );
    assert_eq!(hex::encode(s.to_bytes()), e.expected);
}

#[test]
fn matching_and_mismatching_identities() {
    let mut rng = common::rng(21);
    let a = IdentityKeyPair::generate(&mut rng);
    let b = IdentityKeyPair::generate(&mut rng);
    let m = IdentityKeyPair::generate(&mut rng);
    let fa = Fingerprint::for_identities(b"alice", a.public(), b"bob", b.public()).unwrap();
    let fb = Fingerprint::for_identities(b"bob", b.public(), b"alice", a.public()).unwrap();
    assert_eq!(fa.display, fb.display);
    assert_eq!(fa.display.to_string().len(), 60);
    assert!(fa.display.to_string().bytes().all(|c| c.is_ascii_digit()));
    assert!(fa.scannable.compare(&fb.scannable.to_bytes()).unwrap());
    assert!(fb.scannable.compare(&fa.scannable.to_bytes()).unwrap());

    // A man in the middle: Alice sees Mallory's key for Bob.
    let fam = Fingerprint::for_identities(b"alice", a.public(), b"bob", m.public()).unwrap();
    assert_ne!(fam.display, fb.display);
    assert!(!fam.scannable.compare(&fb.scannable.to_bytes()).unwrap());
    assert!(!fb.scannable.compare(&fam.scannable.to_bytes()).unwrap());

    // Mismatched stable ids.
    let fx = Fingerprint::for_identities(b"alice2", a.public(), b"bob", b.public()).unwrap();
    assert_ne!(fx.display, fb.display);
    assert!(!fx.scannable.compare(&fb.scannable.to_bytes()).unwrap());
}

#[test]
fn version_mismatch_and_malformed_payloads() {
    let v = vectors();
    let (a, b) = (
        hex::decode(&v.alice_identity).unwrap(),
        hex::decode(&v.bob_identity).unwrap(),
    );
    let f1 = Fingerprint::new(
        1,
        5200,
        v.alice_stable_id.as_bytes(),
        &a,
        v.bob_stable_id.as_bytes(),
        &b,
    )
    .unwrap();
    let f2 = Fingerprint::new(
        2,
        5200,
        v.bob_stable_id.as_bytes(),
        &b,
        v.alice_stable_id.as_bytes(),
        &a,
    )
    .unwrap();
    assert_eq!(f1.display, f2.display);
    assert_eq!(
        f1.scannable.compare(&f2.scannable.to_bytes()),
        Err(FingerprintError::VersionMismatch { theirs: 2, ours: 1 })
    );
    let good = f2.scannable.to_bytes();
    for cut in 1..good.len() {
        assert!(
            f1.scannable.compare(&good[..cut]).is_err()
                || !f1.scannable.compare(&good[..cut]).unwrap()
        );
    }
    assert_eq!(
        f1.scannable.compare(&[0xff; 11]),
        Err(FingerprintError::Malformed)
    );
    assert_eq!(
        f1.scannable.compare(&vec![0; 5000]),
        Err(FingerprintError::Malformed)
    );
    assert_eq!(
        Fingerprint::new(2, 1, b"a", &a, b"b", &b).unwrap_err(),
        FingerprintError::InvalidIterations
    );
}
