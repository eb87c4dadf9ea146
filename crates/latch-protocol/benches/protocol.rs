//! Latch's Double Ratchet and PQXDH against vodozemac's Olm, measured in the same run.
//!
//! Run: `cargo bench -p latch-protocol --bench protocol`
//! Groups:
//! - `message/one_way`: encrypt + decrypt of a 100-byte message on an established session,
//!   same direction (symmetric ratchet only).
//! - `message/round_trip`: A→B then B→A, so every message turns the DH ratchet.
//! - `setup`: from the peer's published keys to the responder holding a session: initiator
//!   key agreement + first encrypt + responder key agreement + first decrypt. Latch does
//!   PQXDH (X25519 + ML-KEM-1024 + signature checks), Olm does 3DH.
//!   `setup/latch_pqxdh_bundle_bytes` is the same starting from the bundle's encoding, as a
//!   client receives it from the relay (decoding verifies the signatures).
//! - `prim`: the primitives setup is made of, to see where its time goes.
//! - `setup_cpu`: the `setup` group measured in this thread's CPU time
//!   (`/proc/thread-self/schedstat`) instead of wall-clock time, so time the thread spends
//!   preempted by other processes on a shared machine does not count. Linux only.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use latch_protocol::session::{decrypt, encrypt, process_prekey_bundle};
use latch_protocol::store::{KemPreKeyStore, PreKeyStore, SessionStore, SignedPreKeyStore};
use latch_protocol::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::hint::black_box;
use vodozemac::olm::{Account, OlmMessage, Session, SessionConfig};

const PLAINTEXT: &[u8; 100] = &[0x42; 100];

struct Latch {
    alice: InMemoryStore,
    bob: InMemoryStore,
    bundle: PreKeyBundle,
    a: ProtocolAddress,
    b: ProtocolAddress,
}

fn latch_parties(rng: &mut ChaCha20Rng) -> Latch {
    let bob_id = IdentityKeyPair::generate(rng);
    let mut bob = InMemoryStore::new(bob_id.clone());
    let spk = SignedPreKeyRecord::generate(1, 0, &bob_id, rng);
    let opk = OneTimePreKeyRecord::generate(1, rng);
    let kem = KemPreKeyRecord::generate(1, 0, false, &bob_id, rng);
    bob.save_signed_pre_key(&spk).unwrap();
    bob.save_pre_key(&opk).unwrap();
    bob.save_kem_pre_key(&kem).unwrap();
    let bundle = PreKeyBundle::new(bob_id.public(), &spk, Some(&opk), &kem);
    let alice = InMemoryStore::new(IdentityKeyPair::generate(rng));
    Latch {
        alice,
        bob,
        bundle,
        a: ProtocolAddress::new("alice", 1),
        b: ProtocolAddress::new("bob", 1),
    }
}

fn latch_established(rng: &mut ChaCha20Rng) -> (SessionRecord, SessionRecord) {
    let mut p = latch_parties(rng);
    process_prekey_bundle(&mut p.alice, &p.b, &p.bundle, rng).unwrap();
    let m = encrypt(&mut p.alice, &p.b, b"hi").unwrap();
    decrypt(&mut p.bob, &p.a, &m, rng).unwrap();
    let m = encrypt(&mut p.bob, &p.a, b"hi").unwrap();
    decrypt(&mut p.alice, &p.b, &m, rng).unwrap();
    (
        p.alice.load_session(&p.b).unwrap().unwrap(),
        p.bob.load_session(&p.a).unwrap().unwrap(),
    )
}

fn olm_established() -> (Session, Session) {
    let alice = Account::new();
    let mut bob = Account::new();
    bob.generate_one_time_keys(1);
    let otk = *bob.one_time_keys().values().next().unwrap();
    let mut a =
        alice.create_outbound_session(SessionConfig::version_2(), bob.curve25519_key(), otk);
    let m = a.encrypt("hi");
    let OlmMessage::PreKey(pm) = m else { panic!() };
    let mut b = bob
        .create_inbound_session(alice.curve25519_key(), &pm)
        .unwrap()
        .session;
    let m = b.encrypt("hi");
    a.decrypt(&m).unwrap();
    (a, b)
}

fn message(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut g = c.benchmark_group("message");

    let (mut a, mut b) = latch_established(&mut rng);
    g.bench_function("one_way/latch", |bench| {
        bench.iter(|| {
            let CiphertextMessage::Ratchet(m) = a.encrypt(black_box(PLAINTEXT)).unwrap() else {
                panic!()
            };
            black_box(b.decrypt(&m, &mut rng).unwrap());
        })
    });
    let (mut oa, mut ob) = olm_established();
    g.bench_function("one_way/vodozemac", |bench| {
        bench.iter(|| {
            let m = oa.encrypt(black_box(PLAINTEXT));
            black_box(ob.decrypt(&m).unwrap());
        })
    });

    let (mut a, mut b) = latch_established(&mut rng);
    g.bench_function("round_trip/latch", |bench| {
        bench.iter(|| {
            let CiphertextMessage::Ratchet(m) = a.encrypt(PLAINTEXT).unwrap() else {
                panic!()
            };
            black_box(b.decrypt(&m, &mut rng).unwrap());
            let CiphertextMessage::Ratchet(m) = b.encrypt(PLAINTEXT).unwrap() else {
                panic!()
            };
            black_box(a.decrypt(&m, &mut rng).unwrap());
        })
    });
    let (mut oa, mut ob) = olm_established();
    g.bench_function("round_trip/vodozemac", |bench| {
        bench.iter(|| {
            let m = oa.encrypt(PLAINTEXT);
            black_box(ob.decrypt(&m).unwrap());
            let m = ob.encrypt(PLAINTEXT);
            black_box(oa.decrypt(&m).unwrap());
        })
    });
    g.finish();
}

fn setup(c: &mut Criterion) {
    setup_named(c, "setup");
}

fn setup_named<M: Measurement>(c: &mut Criterion<M>, group: &str) {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut g = c.benchmark_group(group);
    let template = latch_parties(&mut rng);
    g.bench_function("latch_pqxdh", |bench| {
        bench.iter_batched(
            || {
                (
                    template.alice.clone(),
                    template.bob.clone(),
                    ChaCha20Rng::seed_from_u64(3),
                )
            },
            |(mut alice, mut bob, mut r)| {
                process_prekey_bundle(&mut alice, &template.b, &template.bundle, &mut r).unwrap();
                let m = encrypt(&mut alice, &template.b, PLAINTEXT).unwrap();
                black_box(decrypt(&mut bob, &template.a, &m, &mut r).unwrap());
            },
            BatchSize::SmallInput,
        )
    });
    let bundle_bytes = template.bundle.to_bytes();
    g.bench_function("latch_pqxdh_bundle_bytes", |bench| {
        bench.iter_batched(
            || {
                (
                    template.alice.clone(),
                    template.bob.clone(),
                    ChaCha20Rng::seed_from_u64(3),
                )
            },
            |(mut alice, mut bob, mut r)| {
                let bundle = PreKeyBundle::from_bytes(&bundle_bytes).unwrap();
                process_prekey_bundle(&mut alice, &template.b, &bundle, &mut r).unwrap();
                let m = encrypt(&mut alice, &template.b, PLAINTEXT).unwrap();
                black_box(decrypt(&mut bob, &template.a, &m, &mut r).unwrap());
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("vodozemac_olm", |bench| {
        bench.iter_batched(
            || {
                let alice = Account::new();
                let mut bob = Account::new();
                bob.generate_one_time_keys(1);
                (alice, bob)
            },
            |(alice, mut bob)| {
                let otk = *bob.one_time_keys().values().next().unwrap();
                let mut a = alice.create_outbound_session(
                    SessionConfig::version_2(),
                    bob.curve25519_key(),
                    otk,
                );
                let OlmMessage::PreKey(pm) = a.encrypt(PLAINTEXT) else {
                    panic!()
                };
                black_box(
                    bob.create_inbound_session(alice.curve25519_key(), &pm)
                        .unwrap(),
                );
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn prim(c: &mut Criterion) {
    use latch_protocol::keys::*;
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let mut g = c.benchmark_group("prim");
    let a = KeyPair::generate(&mut rng);
    let b = KeyPair::generate(&mut rng);
    let sa = a.secret_bytes();
    let pb = b.public_bytes();
    g.bench_function("x25519_dh", |bn| {
        bn.iter(|| black_box(x25519_raw(sa.expose(), &pb).unwrap()))
    });
    g.bench_function("x25519_basemul", |bn| {
        bn.iter(|| black_box(KeyPair::from_secret(&sa).public_bytes()))
    });
    let id = IdentityKeyPair::generate(&mut rng);
    let sig = id.sign(b"hello");
    let pk = id.public().signing_key_bytes();
    g.bench_function("ed25519_verify", |bn| {
        bn.iter(|| black_box(ed25519_verify(&pk, b"hello", &sig)))
    });
    let rec = KemPreKeyRecord::generate(1, 0, false, &id, &mut rng);
    let seed = rec.key_pair.seed().clone();
    g.bench_function("kem_keygen", |bn| {
        bn.iter(|| black_box(KemKeyPair::from_seed(seed.clone()).public_bytes().len()))
    });
    let ek = rec.key_pair.public_bytes().to_vec();
    g.bench_function("kem_encap", |bn| {
        bn.iter(|| black_box(kem_encapsulate(&ek, &mut rng).unwrap()))
    });
    let (ct, _) = kem_encapsulate(&ek, &mut rng).unwrap();
    // As a responder does it: load the ML-KEM prekey record, then decapsulate.
    let stored = rec.to_secret_bytes();
    g.bench_function("kem_load_and_decap", |bn| {
        bn.iter(|| {
            let k = KemPreKeyRecord::from_secret_bytes(stored.expose()).unwrap();
            black_box(k.key_pair.decapsulate(&ct).unwrap())
        })
    });
    g.finish();
}

/// CPU time of the calling thread, in nanoseconds (first field of its schedstat).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("reading /proc/thread-self/schedstat")
}

struct ThreadCpuTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if ns < 1e3 {
            (1.0, "ns cpu")
        } else if ns < 1e6 {
            (1e-3, "µs cpu")
        } else {
            (1e-6, "ms cpu")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }
    fn scale_throughputs(&self, _: f64, _: &Throughput, _: &mut [f64]) -> &'static str {
        "n/a"
    }
    fn scale_for_machines(&self, _: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn setup_cpu(c: &mut Criterion<ThreadCpuTime>) {
    setup_named(c, "setup_cpu");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = message, setup, prim
}
criterion_group! {
    name = cpu_benches;
    config = Criterion::default()
        .with_measurement(ThreadCpuTime)
        .sample_size(30)
        .measurement_time(std::time::Duration::from_secs(4));
    targets = setup_cpu
}
criterion_main!(benches, cpu_benches);
