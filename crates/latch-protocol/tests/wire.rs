//! Wire format: round trips, hard limits and typed errors for every decoder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Device, rng};
use latch_protocol::session::{encrypt, process_prekey_bundle};
use latch_protocol::wire::*;
use latch_protocol::*;

fn prekey_message() -> (PreKeyMessage, Device) {
    let mut r = rng(31);
    let mut alice = Device::new("alice", &mut r);
    let mut bob = Device::new("bob", &mut r);
    let bundle = bob.bundle(&mut r);
    process_prekey_bundle(&mut alice.store, &bob.address(), &bundle, &mut r).unwrap();
    let CiphertextMessage::PreKey(m) = encrypt(&mut alice.store, &bob.address(), b"hello").unwrap()
    else {
        panic!()
    };
    (m, bob)
}

/// Checks the four typed failures on any decoder given a valid encoding.
fn check_decoder<T: core::fmt::Debug>(
    good: &[u8],
    max: usize,
    decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
) {
    assert!(decode(good).is_ok());
    for cut in 0..good.len() {
        assert!(
            decode(&good[..cut]).is_err(),
            "prefix of {cut} bytes decoded"
        );
    }
    assert_eq!(decode(&[]).unwrap_err(), DecodeError::Truncated);
    let mut long = good.to_vec();
    long.push(0);
    // Fixed-size encodings hit the size limit first; variable ones report the trailing bytes.
    let expected = if good.len() == max {
        DecodeError::TooLarge { limit: max }
    } else {
        DecodeError::TrailingBytes
    };
    assert_eq!(decode(&long).unwrap_err(), expected);
    let mut v = good.to_vec();
    v[0] = 0x7f;
    assert_eq!(decode(&v).unwrap_err(), DecodeError::UnknownVersion(0x7f));
    let huge = vec![1u8; max + 1];
    assert_eq!(
        decode(&huge).unwrap_err(),
        DecodeError::TooLarge { limit: max }
    );
}

#[test]
fn ratchet_message_limits() {
    let (m, _) = prekey_message();
    let bytes = m.message.to_bytes();
    assert_eq!(RatchetMessage::from_bytes(&bytes).unwrap(), m.message);
    check_decoder(&bytes, MAX_RATCHET_MESSAGE_LEN, RatchetMessage::from_bytes);
    // A length field larger than the limit is refused before reading further.
    let mut lie = m.message.header_bytes().to_vec();
    lie.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        RatchetMessage::from_bytes(&lie).unwrap_err(),
        DecodeError::TooLarge {
            limit: MAX_CIPHERTEXT_LEN
        }
    );
}

#[test]
fn prekey_message_limits() {
    let (m, _) = prekey_message();
    let bytes = m.to_bytes();
    assert_eq!(PreKeyMessage::from_bytes(&bytes).unwrap(), m);
    check_decoder(&bytes, MAX_PREKEY_MESSAGE_LEN, PreKeyMessage::from_bytes);
}

#[test]
fn envelope_limits_and_layout() {
    let (m, bob) = prekey_message();
    let msg = CiphertextMessage::PreKey(m);
    let env = Envelope::new(bob.identity.public().signing_key_bytes(), [9; 32], &msg);
    let bytes = env.to_bytes();
    // The documented layout the relay relies on.
    assert_eq!(bytes[0], ENVELOPE_VERSION);
    assert_eq!(&bytes[1..33], &bob.identity.public().signing_key_bytes());
    assert_eq!(&bytes[33..65], &[9; 32]);
    assert_eq!(bytes[65], 1);
    assert_eq!(
        u32::from_be_bytes(bytes[66..70].try_into().unwrap()) as usize,
        bytes.len() - ENVELOPE_HEADER_LEN
    );
    let back = Envelope::from_bytes(&bytes).unwrap();
    assert_eq!(back, env);
    assert_eq!(back.message().unwrap(), msg);
    check_decoder(&bytes, MAX_ENVELOPE_LEN, Envelope::from_bytes);
    let mut kind = bytes.clone();
    kind[65] = 9;
    assert_eq!(
        Envelope::from_bytes(&kind).unwrap_err(),
        DecodeError::InvalidField("message kind")
    );
}

#[test]
fn bundle_and_record_decoders_limits() {
    let mut r = rng(32);
    let mut bob = Device::new("bob", &mut r);
    let bundle = bob.bundle(&mut r);
    check_decoder(
        &bundle.to_bytes(),
        prekey::PREKEY_BUNDLE_LEN,
        PreKeyBundle::from_bytes,
    );
    let id = bob.identity.public().to_bytes();
    check_decoder(&id, identity::IDENTITY_KEY_LEN, IdentityKey::from_bytes);
}

#[test]
fn plaintext_limit_is_enforced() {
    let (_, _) = prekey_message();
    let mut r = rng(33);
    let mut alice = Device::new("alice", &mut r);
    let mut bob = Device::new("bob", &mut r);
    let bundle = bob.bundle(&mut r);
    process_prekey_bundle(&mut alice.store, &bob.address(), &bundle, &mut r).unwrap();
    let err = encrypt(
        &mut alice.store,
        &bob.address(),
        &vec![0; MAX_PLAINTEXT_LEN + 1],
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Ratchet(RatchetError::PlaintextTooLarge { .. })
        ),
        "{err:?}"
    );
    let m = encrypt(
        &mut alice.store,
        &bob.address(),
        &vec![0; MAX_PLAINTEXT_LEN],
    )
    .unwrap();
    let env = Envelope::new([0; 32], [0; 32], &m).to_bytes();
    assert!(env.len() <= MAX_ENVELOPE_LEN);
    assert!(Envelope::from_bytes(&env).unwrap().message().is_ok());
}
