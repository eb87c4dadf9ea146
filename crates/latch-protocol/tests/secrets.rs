//! Secret hygiene: `Debug` output is redacted (snapshots) and errors carry no secret data.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Device, rng};
use latch_protocol::keys::{KemKeyPair, KeyPair};
use latch_protocol::session::{encrypt, process_prekey_bundle};
use latch_protocol::*;

#[test]
fn debug_snapshots_are_redacted() {
    let s = Secret::<32>::new([0xAB; 32]);
    assert_eq!(format!("{s:?}"), "Secret<32>(***)");
    assert_eq!(
        format!("{:?}", Secret::<64>::new([7; 64])),
        "Secret<64>(***)"
    );
    let v = SecretVec::new(b"attack at dawn".to_vec());
    assert_eq!(format!("{v:?}"), "SecretVec(14 bytes, ***)");
    assert_eq!(format!("{v:#?}"), "SecretVec(14 bytes, ***)");

    let mut r = rng(41);
    let kem = KemKeyPair::generate(&mut r);
    assert_eq!(format!("{kem:?}"), "KemKeyPair { seed: *** }");
    let kp = KeyPair::from_secret(&Secret::new([0x11; 32]));
    let dbg = format!("{kp:?}");
    assert!(dbg.ends_with("secret: *** }"), "{dbg}");
    assert!(!dbg.contains("11, 17"));

    let id = IdentityKeyPair::generate(&mut r);
    assert_eq!(
        format!("{:?}", SignedPreKeyRecord::generate(5, 6, &id, &mut r)),
        "SignedPreKeyRecord { id: 5, created_at_ms: 6, .. }"
    );
    assert_eq!(
        format!("{:?}", OneTimePreKeyRecord::generate(8, &mut r)),
        "OneTimePreKeyRecord { id: 8, .. }"
    );
    let dbg = format!("{id:?}");
    assert!(
        dbg.starts_with("IdentityKeyPair { public: IdentityKey("),
        "{dbg}"
    );
    assert!(dbg.ends_with(".. }"), "{dbg}");
}

/// No Debug output of a record or message contains any secret byte string.
#[test]
fn records_and_messages_never_print_key_material() {
    let mut r = rng(42);
    let mut alice = Device::new("alice", &mut r);
    let mut bob = Device::new("bob", &mut r);
    let bundle = bob.bundle(&mut r);
    process_prekey_bundle(&mut alice.store, &bob.address(), &bundle, &mut r).unwrap();
    let msg = encrypt(&mut alice.store, &bob.address(), b"secret plaintext").unwrap();
    let spk_secret = hex::encode(bob.signed.key_pair.secret_bytes().expose());
    let id_secret = hex::encode(alice.identity.to_secret_bytes().expose());
    assert_eq!(
        format!("{:?}", bob.store),
        format!(
            "InMemoryStore {{ identity: {:?}, sessions: 0, pre_keys: 1, signed_pre_keys: 1, kem_pre_keys: 2, .. }}",
            bob.identity
        )
    );
    let outputs = [
        format!("{:?}", bob.signed),
        format!("{:?}", bob.kem_last_resort),
        format!("{:?}", alice.store),
        format!("{:?}", bob.store),
        format!("{msg:?}"),
        format!("{:?}", alice.identity),
    ];
    for out in outputs {
        let lower = out.to_lowercase();
        assert!(!lower.contains(&spk_secret[..16]));
        assert!(!lower.contains(&id_secret[2..18]));
        assert!(!out.contains("secret plaintext"));
    }
}

#[test]
fn secrets_compare_in_constant_time_and_by_value() {
    assert_eq!(Secret::<4>::new([1, 2, 3, 4]), Secret::new([1, 2, 3, 4]));
    assert_ne!(Secret::<4>::new([1, 2, 3, 4]), Secret::new([1, 2, 3, 5]));
}
