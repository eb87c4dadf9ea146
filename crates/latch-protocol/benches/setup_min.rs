//! Session setup, Latch's PQXDH against vodozemac's Olm, as the minimum and median of many
//! single runs taken alternately (Latch, Olm, Latch, ...). On the shared build machine other
//! processes inflate criterion's means by up to 2x in either direction; the minimum of many
//! interleaved runs is the figure least disturbed by them, and the median shows the typical run.
//!
//! Run: `cargo bench -p latch-protocol --bench setup_min` (prints a small table).
//! The measured operation is the one of `protocol`'s `setup` group: initiator key agreement +
//! first encrypt + responder key agreement + first decrypt, through in-memory stores.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latch_protocol::session::{decrypt, encrypt, process_prekey_bundle};
use latch_protocol::store::{KemPreKeyStore, PreKeyStore, SignedPreKeyStore};
use latch_protocol::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::hint::black_box;
use std::time::{Duration, Instant};
use vodozemac::olm::{Account, OlmMessage, SessionConfig};

const RUNS: usize = 400;
const PLAINTEXT: &[u8; 100] = &[0x42; 100];

fn main() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let bob_id = IdentityKeyPair::generate(&mut rng);
    let mut bob = InMemoryStore::new(bob_id.clone());
    let spk = SignedPreKeyRecord::generate(1, 0, &bob_id, &mut rng);
    let opk = OneTimePreKeyRecord::generate(1, &mut rng);
    let kem = KemPreKeyRecord::generate(1, 0, false, &bob_id, &mut rng);
    bob.save_signed_pre_key(&spk).unwrap();
    bob.save_pre_key(&opk).unwrap();
    bob.save_kem_pre_key(&kem).unwrap();
    let bundle = PreKeyBundle::new(bob_id.public(), &spk, Some(&opk), &kem);
    let alice = InMemoryStore::new(IdentityKeyPair::generate(&mut rng));
    let (a, b) = (
        ProtocolAddress::new("alice", 1),
        ProtocolAddress::new("bob", 1),
    );

    let mut latch = Vec::with_capacity(RUNS);
    let mut olm = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let (mut al, mut bo, mut r) = (alice.clone(), bob.clone(), ChaCha20Rng::seed_from_u64(3));
        let t = Instant::now();
        process_prekey_bundle(&mut al, &b, &bundle, &mut r).unwrap();
        let m = encrypt(&mut al, &b, PLAINTEXT).unwrap();
        black_box(decrypt(&mut bo, &a, &m, &mut r).unwrap());
        latch.push(t.elapsed());

        let oa = Account::new();
        let mut ob = Account::new();
        ob.generate_one_time_keys(1);
        let t = Instant::now();
        let otk = *ob.one_time_keys().values().next().unwrap();
        let mut s =
            oa.create_outbound_session(SessionConfig::version_2(), ob.curve25519_key(), otk);
        let OlmMessage::PreKey(pm) = s.encrypt(PLAINTEXT) else {
            panic!()
        };
        black_box(ob.create_inbound_session(oa.curve25519_key(), &pm).unwrap());
        olm.push(t.elapsed());
    }
    let stats = |v: &mut Vec<Duration>| {
        v.sort();
        (v[0], v[v.len() / 2])
    };
    let (lmin, lmed) = stats(&mut latch);
    let (omin, omed) = stats(&mut olm);
    println!("setup, {RUNS} interleaved runs each");
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("             min (µs)   median (µs)");
    println!("latch_pqxdh  {:>9.1}  {:>9.1}", us(lmin), us(lmed));
    println!("olm          {:>9.1}  {:>9.1}", us(omin), us(omed));
    println!(
        "ratio        {:>9.2}  {:>9.2}",
        lmin.as_secs_f64() / omin.as_secs_f64(),
        lmed.as_secs_f64() / omed.as_secs_f64()
    );
}
