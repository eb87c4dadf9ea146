//! Session setup against its physical floor: the sum of the primitive operations setup
//! performs, each called straight on its library (x25519-dalek, ed25519-dalek, ml-kem, hkdf,
//! hmac, chacha20poly1305), measured in the same criterion run. Target: setup ≤ 1.15 × floor.
//!
//! Run: `cargo bench -p latch-protocol --bench setup_floor` (prints a ratio table at the end).
//!
//! What "setup" is (as in `protocol`'s `setup` group and `setup_min`):
//! - initiator: `process_prekey_bundle` on a `PreKeyBundle::new` bundle + the first `encrypt`;
//! - responder: the first `decrypt` of that prekey message (a `CiphertextMessage` in memory);
//!   both through `InMemoryStore`s, which serialize and parse records on every call.
//!
//! The floor counts what `pqxdh.rs`, `ratchet.rs`, `prekey.rs` and `keys.rs` actually do:
//!
//! | | initiator | responder |
//! |---|---|---|
//! | Ed25519 `verify_strict` | 2 (signed prekey, ML-KEM prekey) | 0 |
//! | X25519 key generation (random scalar + base multiplication) | 2 (base key, first ratchet key) | 1 (next ratchet key, in `dh_ratchet`) |
//! | X25519 DH | 5 (DH1–DH4, first ratchet DH) | 5 (DH1–DH4, receiving-chain DH) |
//! | ML-KEM-1024 | encapsulate (decode `ek`, FIPS 203 modulus check, encapsulate) | decapsulate (decode the stored expanded `dk`, FIPS 203 hash check, decapsulate) |
//! | HKDF-SHA256 | 3 (SK: 192-byte IKM → 32; root: → 64; message keys: → 44) | 3 (same) |
//! | HMAC-SHA256 | 2 (chain step) | 2 |
//! | ChaCha20-Poly1305 | seal 100 B, 299-byte AD | open |
//!
//! Groups:
//! - `setup_floor/interleaved`: every iteration runs the initiator's setup, the initiator's
//!   floor, the responder's setup and the responder's floor, each timed on its own, so a load
//!   change from other processes hits setup and floor alike. Criterion reports the setup time;
//!   the floors are recorded beside it. These are the reference ratios.
//! - `setup_floor/setup_both` and `setup_floor/floor_both`: the same two as separate criterion
//!   benchmarks, for criterion's own report; their ratio moves with the load between them.
//! - `setup_floor_prim/*`: each primitive alone, and the non-primitive work setup also does
//!   (record encodings, the remote identity's point decompression in `encrypt`), to see where
//!   time beyond the floor goes.
//!
//! The ratio table uses the samples criterion measured (the last `SAMPLES` calls of each
//! benchmark's routine; earlier calls are criterion's warm-up): median over samples of the
//! per-iteration time, and total time / total iterations.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use criterion::Criterion;
use ed25519_dalek::Signer;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use latch_protocol::session::{decrypt, encrypt, process_prekey_bundle};
use latch_protocol::store::{KemPreKeyStore, PreKeyStore, SessionStore, SignedPreKeyStore};
use latch_protocol::*;
use ml_kem::kem::{Decapsulate, Encapsulate};
use ml_kem::{EncodedSizeUser, KemCore, MlKem1024};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::Sha256;
use x25519_dalek::{PublicKey as XPublic, StaticSecret};

const PLAINTEXT: &[u8; 100] = &[0x42; 100];
const SAMPLES: usize = 30;
/// Both identities (129 bytes each) and the 41-byte ratchet header, as `ratchet.rs` builds it.
const AD_LEN: usize = 2 * 129 + 41;

type Ek = <MlKem1024 as KemCore>::EncapsulationKey;
type Dk = <MlKem1024 as KemCore>::DecapsulationKey;

// ---- setup, as the other benches measure it ----

struct Parties {
    alice: InMemoryStore,
    bob: InMemoryStore,
    bundle: PreKeyBundle,
    a: ProtocolAddress,
    b: ProtocolAddress,
}

fn parties() -> Parties {
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
    Parties {
        alice,
        bob,
        bundle,
        a,
        b,
    }
}

impl Parties {
    fn initiator(&self, alice: &mut InMemoryStore, r: &mut ChaCha20Rng) -> CiphertextMessage {
        process_prekey_bundle(alice, &self.b, &self.bundle, r).unwrap();
        encrypt(alice, &self.b, PLAINTEXT).unwrap()
    }

    fn responder(&self, bob: &mut InMemoryStore, m: &CiphertextMessage, r: &mut ChaCha20Rng) {
        black_box(decrypt(bob, &self.a, m, r).unwrap());
    }
}

// ---- the floor: the same primitive operations, straight on the libraries ----

struct Prims {
    x_secret: StaticSecret,
    x_public: XPublic,
    ed_key: ed25519_dalek::VerifyingKey,
    spk_msg: Vec<u8>,
    spk_sig: ed25519_dalek::Signature,
    kem_msg: Vec<u8>,
    kem_sig: ed25519_dalek::Signature,
    ek: Vec<u8>,
    dk: Vec<u8>,
    ct: Vec<u8>,
    ikm_sk: [u8; 32 * 6],
    k32: [u8; 32],
    ad: [u8; AD_LEN],
    sealed: Vec<u8>,
}

fn prims() -> Prims {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let x_secret = StaticSecret::random_from_rng(&mut rng);
    let x_public = XPublic::from(&StaticSecret::random_from_rng(&mut rng));
    let signer = ed25519_dalek::SigningKey::generate(&mut rng);
    let (dk, ek) = MlKem1024::generate(&mut rng);
    let ek = ek.as_bytes().to_vec();
    // Same lengths as the signed content: context string + key.
    let mut spk_msg = b"Latch signed prekey X25519 v1".to_vec();
    spk_msg.extend_from_slice(x_public.as_bytes());
    let mut kem_msg = b"Latch signed prekey ML-KEM-1024 v1".to_vec();
    kem_msg.extend_from_slice(&ek);
    let (ct, _) = Ek::from_bytes(&ek.as_slice().try_into().unwrap())
        .encapsulate(&mut rng)
        .unwrap();
    let k32 = [7u8; 32];
    let ad = [3u8; AD_LEN];
    let sealed = ChaCha20Poly1305::new(Key::from_slice(&k32))
        .encrypt(
            Nonce::from_slice(&[1; 12]),
            Payload {
                msg: PLAINTEXT,
                aad: &ad,
            },
        )
        .unwrap();
    Prims {
        x_secret,
        x_public,
        ed_key: signer.verifying_key(),
        spk_sig: signer.sign(&spk_msg),
        spk_msg,
        kem_sig: signer.sign(&kem_msg),
        kem_msg,
        ek,
        dk: dk.as_bytes().to_vec(),
        ct: ct.to_vec(),
        ikm_sk: [5u8; 32 * 6],
        k32,
        ad,
        sealed,
    }
}

impl Prims {
    fn x25519_dh(&self) {
        let s = self.x_secret.diffie_hellman(black_box(&self.x_public));
        assert!(s.was_contributory());
        black_box(s);
    }

    fn x25519_keygen(&self, rng: &mut ChaCha20Rng) {
        let s = StaticSecret::random_from_rng(rng);
        black_box(XPublic::from(&s));
    }

    fn ed25519_verify(&self, msg: &[u8], sig: &ed25519_dalek::Signature) {
        assert!(black_box(&self.ed_key).verify_strict(msg, sig).is_ok());
    }

    /// FIPS 203 encapsulation with its input check, from the published key bytes.
    fn mlkem_encaps(&self, rng: &mut ChaCha20Rng) {
        let enc = ml_kem::Encoded::<Ek>::try_from(black_box(self.ek.as_slice())).unwrap();
        let ek = Ek::from_bytes(&enc);
        assert!(ek.as_bytes().as_slice() == self.ek.as_slice());
        black_box(ek.encapsulate(rng).unwrap());
    }

    /// Decoding the stored expanded key with FIPS 203's hash check (`H(ek)` as stored).
    fn mlkem_dk_load(&self) -> Dk {
        let enc = ml_kem::Encoded::<Dk>::try_from(black_box(self.dk.as_slice())).unwrap();
        let dk = Dk::from_bytes(&enc);
        let h = <sha3::Sha3_256 as sha3::Digest>::digest(dk.encapsulation_key().as_bytes());
        assert!(h.as_slice() == &self.dk[3104..3136]);
        dk
    }

    fn mlkem_decaps_only(&self, dk: &Dk) {
        let ct = ml_kem::Ciphertext::<MlKem1024>::try_from(self.ct.as_slice()).unwrap();
        black_box(dk.decapsulate(&ct).unwrap());
    }

    fn mlkem_decaps(&self) {
        let dk = self.mlkem_dk_load();
        self.mlkem_decaps_only(&dk);
    }

    fn hkdf(&self, salt: Option<&[u8]>, ikm: &[u8], out: &mut [u8]) {
        let hk = Hkdf::<Sha256>::new(salt, black_box(ikm));
        hk.expand(b"Latch_DoubleRatchet_Root_v1", out).unwrap();
        black_box(out);
    }

    /// The three HKDF shapes one side runs: SK, root step, message keys.
    fn hkdf_side(&self) {
        self.hkdf(Some(&[0; 32]), &self.ikm_sk, &mut [0; 32]);
        self.hkdf(Some(&self.k32), &self.k32, &mut [0; 64]);
        self.hkdf(None, &self.k32, &mut [0; 44]);
    }

    fn hmac(&self, input: &[u8]) {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(black_box(&self.k32)).unwrap();
        mac.update(input);
        black_box(mac.finalize().into_bytes());
    }

    fn aead_seal(&self) {
        black_box(
            ChaCha20Poly1305::new(Key::from_slice(black_box(&self.k32)))
                .encrypt(
                    Nonce::from_slice(&[1; 12]),
                    Payload {
                        msg: PLAINTEXT,
                        aad: &self.ad,
                    },
                )
                .unwrap(),
        );
    }

    fn aead_open(&self) {
        black_box(
            ChaCha20Poly1305::new(Key::from_slice(black_box(&self.k32)))
                .decrypt(
                    Nonce::from_slice(&[1; 12]),
                    Payload {
                        msg: &self.sealed,
                        aad: &self.ad,
                    },
                )
                .unwrap(),
        );
    }

    fn initiator_floor(&self, rng: &mut ChaCha20Rng) {
        self.ed25519_verify(&self.spk_msg, &self.spk_sig);
        self.ed25519_verify(&self.kem_msg, &self.kem_sig);
        self.x25519_keygen(rng);
        self.x25519_keygen(rng);
        for _ in 0..5 {
            self.x25519_dh();
        }
        self.mlkem_encaps(rng);
        self.hkdf_side();
        self.hmac(&[1]);
        self.hmac(&[2]);
        self.aead_seal();
    }

    fn responder_floor(&self, rng: &mut ChaCha20Rng) {
        self.x25519_keygen(rng);
        for _ in 0..5 {
            self.x25519_dh();
        }
        self.mlkem_decaps();
        self.hkdf_side();
        self.hmac(&[1]);
        self.hmac(&[2]);
        self.aead_open();
    }
}

// ---- recording what criterion measured ----

/// Per benchmark name, `(iterations, duration)` of every call criterion made.
type Log = RefCell<BTreeMap<&'static str, Vec<(u64, Duration)>>>;

thread_local! {
    static LOG: Log = const { RefCell::new(BTreeMap::new()) };
}

fn record(name: &'static str, iters: u64, d: Duration) {
    LOG.with(|l| l.borrow_mut().entry(name).or_default().push((iters, d)));
}

/// Median per-iteration time and total/iterations over the measured samples, in µs.
fn estimate(name: &str) -> Option<(f64, f64)> {
    LOG.with(|l| {
        let l = l.borrow();
        let calls = l.get(name)?;
        let samples = &calls[calls.len().saturating_sub(SAMPLES)..];
        let mut per: Vec<f64> = samples
            .iter()
            .map(|(n, d)| d.as_secs_f64() * 1e6 / *n as f64)
            .collect();
        per.sort_by(f64::total_cmp);
        let iters: u64 = samples.iter().map(|s| s.0).sum();
        let total: f64 = samples.iter().map(|s| s.1.as_secs_f64() * 1e6).sum();
        Some((per[per.len() / 2], total / iters as f64))
    })
}

/// Times `routine` on a fresh input from `prepare` each iteration, preparation untimed.
fn timed<T>(
    name: &'static str,
    iters: u64,
    mut prepare: impl FnMut() -> T,
    mut routine: impl FnMut(T),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let input = prepare();
        let t = Instant::now();
        routine(input);
        total += t.elapsed();
    }
    record(name, iters, total);
    total
}

/// Times `iters` calls of `routine` in one stretch (no per-call preparation).
fn looped(name: &'static str, iters: u64, mut routine: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        routine();
    }
    let total = t.elapsed();
    record(name, iters, total);
    total
}

fn setup_vs_floor(c: &mut Criterion) {
    let p = parties();
    let f = prims();
    let rng = || ChaCha20Rng::seed_from_u64(3);
    let mut g = c.benchmark_group("setup_floor");

    g.bench_function("setup_both", |b| {
        b.iter_custom(|n| {
            timed(
                "setup_both",
                n,
                || (p.alice.clone(), p.bob.clone(), rng()),
                |(mut al, mut bo, mut r)| {
                    let m = p.initiator(&mut al, &mut r);
                    p.responder(&mut bo, &m, &mut r);
                },
            )
        })
    });
    g.bench_function("floor_both", |b| {
        let mut r = rng();
        b.iter_custom(|n| {
            looped("floor_both", n, || {
                f.initiator_floor(&mut r);
                f.responder_floor(&mut r);
            })
        })
    });
    // Each side's setup then its floor in every iteration, timed separately: the ratios least
    // disturbed by other processes, since a load change hits both halves of an iteration alike.
    g.bench_function("interleaved", |b| {
        let mut fr = rng();
        b.iter_custom(|n| {
            let mut t = [Duration::ZERO; 4];
            for _ in 0..n {
                let (mut al, mut bo, mut r) = (p.alice.clone(), p.bob.clone(), rng());
                let t0 = Instant::now();
                let m = p.initiator(&mut al, &mut r);
                let t1 = Instant::now();
                f.initiator_floor(&mut fr);
                let t2 = Instant::now();
                p.responder(&mut bo, &m, &mut r);
                let t3 = Instant::now();
                f.responder_floor(&mut fr);
                let t4 = Instant::now();
                for (acc, d) in t.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3]) {
                    *acc += d;
                }
            }
            record("interleaved_setup_initiator", n, t[0]);
            record("interleaved_floor_initiator", n, t[1]);
            record("interleaved_setup_responder", n, t[2]);
            record("interleaved_floor_responder", n, t[3]);
            record("interleaved_setup_both", n, t[0] + t[2]);
            record("interleaved_floor_both", n, t[1] + t[3]);
            t[0] + t[2]
        })
    });
    g.finish();
}

fn primitives(c: &mut Criterion) {
    let f = prims();
    let p = parties();
    let mut r = ChaCha20Rng::seed_from_u64(4);
    let mut g = c.benchmark_group("setup_floor_prim");
    macro_rules! prim {
        ($name:literal, $body:expr) => {
            g.bench_function($name, |b| b.iter_custom(|n| looped($name, n, || $body)));
        };
    }
    prim!("x25519_dh", f.x25519_dh());
    prim!("x25519_keygen", f.x25519_keygen(&mut r));
    prim!(
        "ed25519_verify_spk",
        f.ed25519_verify(&f.spk_msg, &f.spk_sig)
    );
    prim!(
        "ed25519_verify_kem",
        f.ed25519_verify(&f.kem_msg, &f.kem_sig)
    );
    prim!("mlkem_encaps_checked", f.mlkem_encaps(&mut r));
    prim!("mlkem_dk_load_checked", {
        black_box(f.mlkem_dk_load());
    });
    let dk = f.mlkem_dk_load();
    prim!("mlkem_decaps_only", f.mlkem_decaps_only(&dk));
    prim!("hkdf_side_x3", f.hkdf_side());
    prim!("hmac", f.hmac(&[1]));
    prim!("aead_seal_100", f.aead_seal());
    prim!("aead_open_100", f.aead_open());

    // Work setup does beyond the primitives: the records the stores encode and parse.
    let mut al = p.alice.clone();
    let mut rr = ChaCha20Rng::seed_from_u64(3);
    process_prekey_bundle(&mut al, &p.b, &p.bundle, &mut rr).unwrap();
    let rec = al.load_session(&p.b).unwrap().unwrap();
    let rec_bytes = rec.to_bytes();
    prim!("session_record_to_bytes", {
        black_box(rec.to_bytes());
    });
    prim!("session_record_from_bytes", {
        black_box(SessionRecord::from_bytes(rec_bytes.expose()).unwrap());
    });
    prim!("session_remote_identity", {
        black_box(rec.remote_identity());
    });
    let kem_bytes = p.bob.get_kem_pre_key(1).unwrap().unwrap().to_secret_bytes();
    prim!("kem_prekey_record_load", {
        black_box(KemPreKeyRecord::from_secret_bytes(kem_bytes.expose()).unwrap());
    });
    prim!("spk_opk_record_load", {
        black_box(p.bob.get_signed_pre_key(1).unwrap());
        black_box(p.bob.get_pre_key(1).unwrap());
    });
    g.finish();
}

fn summary() {
    let row = |label: &str, setup: &str, floor: &str| {
        let (Some((sm, sa)), Some((fm, fa))) = (estimate(setup), estimate(floor)) else {
            return;
        };
        println!(
            "{label:<12} {sm:>9.1} {fm:>9.1} {:>7.3}    {sa:>9.1} {fa:>9.1} {:>7.3}",
            sm / fm,
            sa / fa
        );
    };
    let interleaved = estimate("interleaved_setup_both").is_some();
    let separate = estimate("setup_both").is_some() && estimate("floor_both").is_some();
    println!();
    if interleaved || separate {
        println!("setup vs the sum of its primitives (target ratio <= 1.15), µs per setup");
        println!("             ---- median of samples ----    ---- total / iterations ----");
        println!(
            "             {:>9} {:>9} {:>7}    {:>9} {:>9} {:>7}",
            "setup", "floor", "ratio", "setup", "floor", "ratio"
        );
    }
    if interleaved {
        println!("interleaved (setup and floor alternate within each iteration):");
        row("both", "interleaved_setup_both", "interleaved_floor_both");
        row(
            "initiator",
            "interleaved_setup_initiator",
            "interleaved_floor_initiator",
        );
        row(
            "responder",
            "interleaved_setup_responder",
            "interleaved_floor_responder",
        );
    }
    if separate {
        println!("separate benchmarks (seconds apart, so load changes show in the ratio):");
        row("both", "setup_both", "floor_both");
    }
    let names: Vec<&'static str> = LOG.with(|l| l.borrow().keys().copied().collect());
    let prims: Vec<_> = names
        .iter()
        .filter(|n| !n.starts_with("setup") && !n.starts_with("floor") && !n.starts_with("inter"))
        .filter_map(|n| Some((n, estimate(n)?)))
        .collect();
    if !prims.is_empty() {
        println!("primitives and record work, µs (median of samples, total / iterations):");
        for (n, (m, a)) in prims {
            println!("  {n:<28} {m:>9.2} {a:>9.2}");
        }
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    setup_vs_floor(&mut c);
    primitives(&mut c);
    c.final_summary();
    summary();
}
