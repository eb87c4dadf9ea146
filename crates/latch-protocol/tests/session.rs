//! Session behaviour: the cases issue 3 lists, each asserting that failures change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Device, rng, wire};
use latch_protocol::pqxdh::PqxdhError;
use latch_protocol::ratchet::{MAX_FORWARD_JUMP, RatchetError};
use latch_protocol::session::{decrypt, encrypt, process_prekey_bundle};
use latch_protocol::store::{IdentityKeyStore, SessionStore};
use latch_protocol::*;

fn pair(seed: u64) -> (Device, Device, rand_chacha::ChaCha20Rng) {
    let mut r = rng(seed);
    let alice = Device::new("alice", &mut r);
    let bob = Device::new("bob", &mut r);
    (alice, bob, r)
}

/// Alice starts a session with Bob and Bob answers, so both sides use plain ratchet messages.
fn established(seed: u64) -> (Device, Device, rand_chacha::ChaCha20Rng) {
    let (mut alice, mut bob, mut r) = pair(seed);
    let bundle = bob.bundle(&mut r);
    process_prekey_bundle(&mut alice.store, &bob.address(), &bundle, &mut r).unwrap();
    let m = encrypt(&mut alice.store, &bob.address(), b"hello").unwrap();
    assert!(matches!(m, CiphertextMessage::PreKey(_)));
    assert_eq!(
        decrypt(&mut bob.store, &alice.address(), &wire(&m), &mut r)
            .unwrap()
            .expose(),
        b"hello"
    );
    let m = encrypt(&mut bob.store, &alice.address(), b"hi").unwrap();
    assert!(matches!(m, CiphertextMessage::Ratchet(_)));
    assert_eq!(
        decrypt(&mut alice.store, &bob.address(), &wire(&m), &mut r)
            .unwrap()
            .expose(),
        b"hi"
    );
    (alice, bob, r)
}

fn send(from: &mut Device, to: &Device, text: &[u8]) -> CiphertextMessage {
    wire(&encrypt(&mut from.store, &to.address(), text).unwrap())
}

fn recv(
    to: &mut Device,
    from: &Device,
    m: &CiphertextMessage,
    r: &mut rand_chacha::ChaCha20Rng,
) -> Vec<u8> {
    decrypt(&mut to.store, &from.address(), m, r)
        .unwrap()
        .expose()
        .to_vec()
}

#[test]
fn in_order_conversation() {
    let (mut alice, mut bob, mut r) = established(1);
    for i in 0..20u32 {
        let text = format!("message {i}");
        if i % 3 == 0 {
            let m = send(&mut bob, &alice, text.as_bytes());
            assert_eq!(recv(&mut alice, &bob, &m, &mut r), text.as_bytes());
        } else {
            let m = send(&mut alice, &bob, text.as_bytes());
            assert_eq!(recv(&mut bob, &alice, &m, &mut r), text.as_bytes());
        }
    }
}

#[test]
fn out_of_order_within_window() {
    let (mut alice, mut bob, mut r) = established(2);
    let msgs: Vec<_> = (0..6).map(|i| send(&mut alice, &bob, &[i])).collect();
    for i in [4usize, 1, 5, 0, 3, 2] {
        assert_eq!(recv(&mut bob, &alice, &msgs[i], &mut r), [i as u8]);
    }
    // Across a ratchet turn: Alice's old-chain message arrives after her new chain started.
    let late = send(&mut alice, &bob, b"late");
    let m = send(&mut bob, &alice, b"turn");
    recv(&mut alice, &bob, &m, &mut r);
    let fresh = send(&mut alice, &bob, b"fresh");
    assert_eq!(recv(&mut bob, &alice, &fresh, &mut r), b"fresh");
    assert_eq!(recv(&mut bob, &alice, &late, &mut r), b"late");
}

#[test]
fn jump_over_the_limit_is_rejected_without_changing_state() {
    let (mut alice, mut bob, mut r) = established(3);
    let mut msgs = Vec::new();
    for _ in 0..=MAX_FORWARD_JUMP + 1 {
        msgs.push(send(&mut alice, &bob, b"x"));
    }
    let before = bob.store.contents();
    let err = decrypt(
        &mut bob.store,
        &alice.address(),
        &msgs[MAX_FORWARD_JUMP as usize + 1],
        &mut r,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Ratchet(RatchetError::TooFarInFuture { .. })
        ),
        "{err:?}"
    );
    assert_eq!(bob.store.contents(), before);
    // Exactly at the limit is accepted.
    assert_eq!(
        recv(&mut bob, &alice, &msgs[MAX_FORWARD_JUMP as usize], &mut r),
        b"x"
    );
    assert_eq!(recv(&mut bob, &alice, &msgs[7], &mut r), b"x");
}

#[test]
fn duplicate_delivery_is_rejected_without_changing_state() {
    let (mut alice, mut bob, mut r) = established(4);
    let m0 = send(&mut alice, &bob, b"zero");
    let m1 = send(&mut alice, &bob, b"one");
    recv(&mut bob, &alice, &m1, &mut r);
    recv(&mut bob, &alice, &m0, &mut r); // from the skipped-key store
    let before = bob.store.contents();
    for m in [&m0, &m1] {
        let err = decrypt(&mut bob.store, &alice.address(), m, &mut r).unwrap_err();
        assert!(
            matches!(err, SessionError::Ratchet(RatchetError::DuplicateMessage)),
            "{err:?}"
        );
        assert_eq!(bob.store.contents(), before);
    }
}

#[test]
fn tampered_or_truncated_message_is_rejected_without_changing_state() {
    let (mut alice, mut bob, mut r) = established(5);
    let good = send(&mut alice, &bob, b"payload");
    let CiphertextMessage::Ratchet(rm) = &good else {
        panic!()
    };
    let before = bob.store.contents();

    let mut tampered = Vec::new();
    let mut t = rm.clone();
    t.ciphertext[0] ^= 1;
    tampered.push(t);
    let mut t = rm.clone();
    *t.ciphertext.last_mut().unwrap() ^= 0x80;
    tampered.push(t);
    let mut t = rm.clone();
    t.counter += 1; // header is bound as associated data
    tampered.push(t);
    let mut t = rm.clone();
    t.previous_counter += 1;
    tampered.push(t);
    let mut t = rm.clone();
    t.ratchet_key[3] ^= 4;
    tampered.push(t);
    for t in tampered {
        assert!(
            decrypt(
                &mut bob.store,
                &alice.address(),
                &CiphertextMessage::Ratchet(t),
                &mut r
            )
            .is_err()
        );
        assert_eq!(bob.store.contents(), before);
    }

    let bytes = rm.to_bytes();
    for cut in [0, 1, 40, bytes.len() - 1] {
        assert!(RatchetMessage::from_bytes(&bytes[..cut]).is_err());
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        RatchetMessage::from_bytes(&long),
        Err(DecodeError::TrailingBytes)
    );

    assert_eq!(recv(&mut bob, &alice, &good, &mut r), b"payload");
}

#[test]
fn failed_prekey_message_leaves_stores_unchanged() {
    let (mut alice, mut bob, mut r) = pair(6);
    let bundle = bob.bundle(&mut r);
    process_prekey_bundle(&mut alice.store, &bob.address(), &bundle, &mut r).unwrap();
    let good = send(&mut alice, &bob, b"first");
    let CiphertextMessage::PreKey(pm) = &good else {
        panic!()
    };
    let before = bob.store.contents();
    let (opks, kems) = (bob.store.pre_key_count(), bob.store.kem_pre_key_count());

    let mut variants = Vec::new();
    let mut t = pm.clone();
    t.message.ciphertext[2] ^= 1;
    variants.push(t);
    let mut t = pm.clone();
    t.kem_ciphertext[10] ^= 1;
    variants.push(t);
    let mut t = pm.clone();
    t.base_key[0] ^= 1;
    variants.push(t);
    let mut t = pm.clone();
    t.signed_prekey_id = 99;
    variants.push(t);
    for t in variants {
        assert!(
            decrypt(
                &mut bob.store,
                &alice.address(),
                &CiphertextMessage::PreKey(t),
                &mut r
            )
            .is_err()
        );
        assert_eq!(bob.store.contents(), before);
    }
    assert_eq!(
        (bob.store.pre_key_count(), bob.store.kem_pre_key_count()),
        (opks, kems)
    );

    assert_eq!(recv(&mut bob, &alice, &good, &mut r), b"first");
    assert_eq!(
        (bob.store.pre_key_count(), bob.store.kem_pre_key_count()),
        (opks - 1, kems - 1)
    );
    // The repeated prekey message (Alice has not heard back) is a duplicate now.
    let err = decrypt(&mut bob.store, &alice.address(), &good, &mut r).unwrap_err();
    assert!(
        matches!(err, SessionError::Ratchet(RatchetError::DuplicateMessage)),
        "{err:?}"
    );
}

#[test]
fn one_time_prekey_reuse_is_refused() {
    let (mut alice, mut bob, mut r) = pair(7);
    let mut carol = Device::new("carol", &mut r);
    let bundle = bob.bundle(&mut r);
    process_prekey_bundle(&mut alice.store, &bob.address(), &bundle, &mut r).unwrap();
    process_prekey_bundle(&mut carol.store, &bob.address(), &bundle, &mut r).unwrap();
    let m = send(&mut alice, &bob, b"a");
    recv(&mut bob, &alice, &m, &mut r);
    let m = send(&mut carol, &bob, b"c");
    let before = bob.store.contents();
    let err = decrypt(&mut bob.store, &carol.address(), &m, &mut r).unwrap_err();
    assert!(matches!(err, SessionError::PreKeyNotFound(_)), "{err:?}");
    assert_eq!(bob.store.contents(), before);
}

#[test]
fn last_resort_prekey_with_same_base_key_is_refused() {
    let (mut alice, mut bob, mut r) = pair(8);
    let bundle = bob.last_resort_bundle();
    process_prekey_bundle(&mut alice.store, &bob.address(), &bundle, &mut r).unwrap();
    let m = send(&mut alice, &bob, b"first");
    recv(&mut bob, &alice, &m, &mut r);
    assert_eq!(bob.store.last_resort_use_count(), 1);
    // Replayed under another address (no session holds that base key there).
    let replay_from = ProtocolAddress::new("mallory", 1);
    let before = bob.store.contents();
    let err = decrypt(&mut bob.store, &replay_from, &m, &mut r).unwrap_err();
    assert!(matches!(err, SessionError::LastResortReplay), "{err:?}");
    assert_eq!(bob.store.contents(), before);
    // A fresh base key with the same last-resort key is fine.
    let mut carol = Device::new("carol", &mut r);
    process_prekey_bundle(&mut carol.store, &bob.address(), &bundle, &mut r).unwrap();
    let m = send(&mut carol, &bob, b"c");
    assert_eq!(recv(&mut bob, &carol, &m, &mut r), b"c");
}

#[test]
fn bundles_with_bad_signatures_or_low_order_points_are_refused() {
    let (mut alice, mut bob, mut r) = pair(9);
    let good = bob.bundle(&mut r);
    let before = alice.store.contents();

    let mut b = good.clone();
    b.signed_prekey_signature[0] ^= 1;
    let err = process_prekey_bundle(&mut alice.store, &bob.address(), &b, &mut r).unwrap_err();
    assert!(
        matches!(err, SessionError::Pqxdh(PqxdhError::InvalidSignature)),
        "{err:?}"
    );
    assert!(PreKeyBundle::from_bytes(&b.to_bytes()).is_err());

    let mut b = good.clone();
    b.kem_prekey[5] ^= 1;
    let err = process_prekey_bundle(&mut alice.store, &bob.address(), &b, &mut r).unwrap_err();
    assert!(
        matches!(err, SessionError::Pqxdh(PqxdhError::InvalidSignature)),
        "{err:?}"
    );

    // The one-time prekey is unsigned, so a hostile relay could swap in a low-order point.
    let low_order: [[u8; 32]; 2] = [[0; 32], {
        let mut p = [0; 32];
        p[0] = 1;
        p
    }];
    for p in low_order {
        let mut b = good.clone();
        b.one_time_prekey = Some((5, p));
        let err = process_prekey_bundle(&mut alice.store, &bob.address(), &b, &mut r).unwrap_err();
        assert!(
            matches!(err, SessionError::Pqxdh(PqxdhError::Crypto(_))),
            "{err:?}"
        );
        // A validly signed low-order signed prekey (a hostile Bob) is refused too.
        let mut b = good.clone();
        b.signed_prekey = p;
        b.signed_prekey_signature = bob
            .identity
            .sign(&SignedPreKeyRecord::signature_message(&p));
        let err = process_prekey_bundle(&mut alice.store, &bob.address(), &b, &mut r).unwrap_err();
        assert!(
            matches!(err, SessionError::Pqxdh(PqxdhError::Crypto(_))),
            "{err:?}"
        );
    }
    assert_eq!(alice.store.contents(), before);

    let round = PreKeyBundle::from_bytes(&good.to_bytes()).unwrap();
    assert_eq!(round, good);
}

#[test]
fn simultaneous_initiation_converges() {
    let (mut alice, mut bob, mut r) = pair(10);
    let bb = bob.bundle(&mut r);
    let ab = alice.bundle(&mut r);
    process_prekey_bundle(&mut alice.store, &bob.address(), &bb, &mut r).unwrap();
    process_prekey_bundle(&mut bob.store, &alice.address(), &ab, &mut r).unwrap();
    let a1 = send(&mut alice, &bob, b"from alice");
    let b1 = send(&mut bob, &alice, b"from bob");
    assert_eq!(recv(&mut bob, &alice, &a1, &mut r), b"from alice");
    assert_eq!(recv(&mut alice, &bob, &b1, &mut r), b"from bob");
    for i in 0..4u8 {
        let m = send(&mut alice, &bob, &[i]);
        assert_eq!(recv(&mut bob, &alice, &m, &mut r), [i]);
        let m = send(&mut bob, &alice, &[i + 10]);
        assert_eq!(recv(&mut alice, &bob, &m, &mut r), [i + 10]);
    }
    let ra = alice.store.load_session(&bob.address()).unwrap().unwrap();
    let rb = bob.store.load_session(&alice.address()).unwrap().unwrap();
    assert_eq!(ra.current_base_key(), rb.current_base_key());
    assert!(!ra.has_unacknowledged_prekey() && !rb.has_unacknowledged_prekey());
    assert!(matches!(
        send(&mut alice, &bob, b"x"),
        CiphertextMessage::Ratchet(_)
    ));
}

#[test]
fn wrong_recipient_is_rejected() {
    let (mut alice, mut bob, mut r) = pair(11);
    let mut carol = Device::new("carol", &mut r);
    let bundle = bob.bundle(&mut r);
    carol.bundle(&mut r); // same prekey ids as Bob's
    process_prekey_bundle(&mut alice.store, &bob.address(), &bundle, &mut r).unwrap();
    let m = send(&mut alice, &bob, b"for bob");
    let before = carol.store.contents();
    assert!(decrypt(&mut carol.store, &alice.address(), &m, &mut r).is_err());
    assert_eq!(carol.store.contents(), before);
    recv(&mut bob, &alice, &m, &mut r);
    let reply = send(&mut bob, &alice, b"r");
    recv(&mut alice, &bob, &reply, &mut r);
    let m = send(&mut alice, &bob, b"ratchet for bob");
    let err = decrypt(&mut carol.store, &alice.address(), &m, &mut r).unwrap_err();
    assert!(matches!(err, SessionError::NoSession), "{err:?}");
    assert_eq!(carol.store.contents(), before);
}

#[test]
fn changed_identity_is_untrusted_until_accepted() {
    let (mut alice, mut bob, mut r) = established(12);
    let mut bob2 = Device::new("bob", &mut r); // reinstalled: new identity, same address
    let bundle = bob2.bundle(&mut r);
    let err = process_prekey_bundle(&mut alice.store, &bob.address(), &bundle, &mut r).unwrap_err();
    assert!(matches!(err, SessionError::UntrustedIdentity), "{err:?}");
    assert_eq!(
        alice
            .store
            .save_identity(&bob.address(), bob2.identity.public())
            .unwrap(),
        store::IdentityChange::ReplacedExisting
    );
    process_prekey_bundle(&mut alice.store, &bob.address(), &bundle, &mut r).unwrap();
    let m = send(&mut alice, &bob2, b"new key");
    assert_eq!(recv(&mut bob2, &alice, &m, &mut r), b"new key");
    let _ = &mut bob;
}

#[test]
fn prekey_records_round_trip() {
    let mut r = rng(13);
    let id = IdentityKeyPair::generate(&mut r);
    let back = IdentityKeyPair::from_secret_bytes(id.to_secret_bytes().expose()).unwrap();
    assert_eq!(back.public(), id.public());
    assert_eq!(
        IdentityKey::from_bytes(&id.public().to_bytes()).unwrap(),
        *id.public()
    );
    let mut bad = id.public().to_bytes();
    bad[40] ^= 1; // X25519 key no longer matches the certificate
    assert!(IdentityKey::from_bytes(&bad).is_err());
    let mut v = id.public().to_bytes();
    v[0] = 9;
    assert_eq!(
        IdentityKey::from_bytes(&v),
        Err(DecodeError::UnknownVersion(9))
    );

    let spk = SignedPreKeyRecord::generate(4, 5, &id, &mut r);
    let s2 = SignedPreKeyRecord::from_secret_bytes(spk.to_secret_bytes().expose()).unwrap();
    assert_eq!(
        (s2.id, s2.created_at_ms, s2.signature),
        (4, 5, spk.signature)
    );
    let kem = KemPreKeyRecord::generate(6, 7, true, &id, &mut r);
    let k2 = KemPreKeyRecord::from_secret_bytes(kem.to_secret_bytes().expose()).unwrap();
    assert_eq!(k2.key_pair.public_bytes(), kem.key_pair.public_bytes());
    assert!(k2.last_resort);
}

#[test]
fn relay_challenge_signatures() {
    let mut r = rng(14);
    let id = IdentityKeyPair::generate(&mut r);
    let key = id.public().signing_key_bytes();
    let sig = id.sign_relay_challenge(b"nonce-123");
    assert!(identity::verify_relay_challenge(&key, b"nonce-123", &sig));
    assert!(!identity::verify_relay_challenge(&key, b"nonce-124", &sig));
    // A plain signature over the challenge (no context) is not accepted.
    assert!(!identity::verify_relay_challenge(
        &key,
        b"nonce-123",
        &id.sign(b"nonce-123")
    ));
}

#[test]
fn skipped_key_store_is_capped_oldest_first() {
    use latch_protocol::ratchet::MAX_SKIPPED_MESSAGE_KEYS;
    let (mut alice, mut bob, mut r) = established(15);
    let msgs: Vec<_> = (0..=MAX_SKIPPED_MESSAGE_KEYS)
        .map(|_| send(&mut alice, &bob, b"old"))
        .collect();
    // Receiving the last one stores a key for each of the others: the store is full.
    recv(&mut bob, &alice, &msgs[MAX_SKIPPED_MESSAGE_KEYS], &mut r);
    let m = send(&mut bob, &alice, b"turn");
    recv(&mut alice, &bob, &m, &mut r);
    let first = send(&mut alice, &bob, b"n0");
    let second = send(&mut alice, &bob, b"n1");
    recv(&mut bob, &alice, &second, &mut r); // stores one more key, evicting the oldest (m0)
    let err = decrypt(&mut bob.store, &alice.address(), &msgs[0], &mut r).unwrap_err();
    assert!(
        matches!(err, SessionError::Ratchet(RatchetError::DuplicateMessage)),
        "{err:?}"
    );
    assert_eq!(recv(&mut bob, &alice, &msgs[1], &mut r), b"old");
    assert_eq!(recv(&mut bob, &alice, &first, &mut r), b"n0");
}

/// When a receiver chain is evicted (more than `MAX_RECEIVER_CHAINS` ratchet turns later),
/// the keys skipped on it go too: they were unreachable, and the stored record kept them.
#[test]
fn skipped_keys_leave_the_record_with_their_evicted_chain() {
    use latch_protocol::ratchet::MAX_RECEIVER_CHAINS;
    let (mut alice, mut bob, mut r) = established(16);
    let skipped = send(&mut alice, &bob, b"lost");
    let delivered = send(&mut alice, &bob, b"kept");
    recv(&mut bob, &alice, &delivered, &mut r);
    let CiphertextMessage::Ratchet(m) = &delivered else {
        panic!("a plain ratchet message");
    };
    let old_chain = m.ratchet_key;
    let alice_address = alice.address();
    let stored = |bob: &Device| {
        bob.store
            .load_session(&alice_address)
            .unwrap()
            .unwrap()
            .to_bytes()
    };
    let with_key = stored(&bob);
    assert!(
        with_key.expose().windows(32).any(|w| w == old_chain),
        "the chain and its skipped key are stored"
    );

    // Turns up to one short of eviction keep the chain and its skipped key.
    let mut late = Vec::new();
    for turn in 0..MAX_RECEIVER_CHAINS {
        let m = send(&mut bob, &alice, b"ping");
        recv(&mut alice, &bob, &m, &mut r);
        let m = send(&mut alice, &bob, b"pong");
        if turn + 1 < MAX_RECEIVER_CHAINS {
            recv(&mut bob, &alice, &m, &mut r);
        } else {
            late.push(m);
        }
    }
    assert!(stored(&bob).expose().windows(32).any(|w| w == old_chain));
    // This turn evicts the chain: neither it nor the key skipped on it stays in the record.
    recv(&mut bob, &alice, &late[0], &mut r);
    assert!(
        !stored(&bob).expose().windows(32).any(|w| w == old_chain),
        "the evicted chain's skipped key was kept"
    );
    // The message whose key was skipped no longer decrypts (its chain is unknown now, as it
    // was before this change), and trying changes nothing.
    let before = stored(&bob);
    assert!(decrypt(&mut bob.store, &alice.address(), &skipped, &mut r).is_err());
    assert_eq!(stored(&bob).expose(), before.expose());
}

#[test]
fn a_decoded_bundle_changed_after_decoding_is_verified_again() {
    let (mut alice, mut bob, mut r) = pair(23);
    let decoded = PreKeyBundle::from_bytes(&bob.bundle(&mut r).to_bytes()).unwrap();
    let before = alice.store.contents();
    let tampers: [fn(&mut PreKeyBundle, &IdentityKey); 4] = [
        |b, _| b.signed_prekey_signature[3] ^= 1,
        |b, _| b.kem_prekey[7] ^= 1,
        |b, _| b.kem_prekey_signature[60] ^= 1,
        |b, other| b.identity = other.clone(),
    ];
    for tamper in tampers {
        let mut b = decoded.clone();
        tamper(&mut b, alice.identity.public());
        assert!(!b.verify_signatures());
        let err = process_prekey_bundle(&mut alice.store, &bob.address(), &b, &mut r).unwrap_err();
        assert!(
            matches!(err, SessionError::Pqxdh(PqxdhError::InvalidSignature)),
            "{err:?}"
        );
        assert_eq!(alice.store.contents(), before);
    }
    // The untouched decoded bundle (and its clone) starts a session that Bob accepts.
    assert!(decoded.clone().verify_signatures());
    process_prekey_bundle(&mut alice.store, &bob.address(), &decoded, &mut r).unwrap();
    let m = wire(&encrypt(&mut alice.store, &bob.address(), b"hello").unwrap());
    let plain = decrypt(&mut bob.store, &alice.address(), &m, &mut r).unwrap();
    assert_eq!(plain.expose(), b"hello");
}
