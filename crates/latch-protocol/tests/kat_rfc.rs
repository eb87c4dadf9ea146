//! RFC known-answer tests, one test per vector file under `tests/vectors/`, run through the
//! wrappers in `latch_protocol::keys` that sessions use.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latch_protocol::Secret;
use latch_protocol::keys::*;
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hx(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn h32(v: &Value) -> [u8; 32] {
    hx(v).try_into().unwrap()
}

#[test]
fn rfc7748_x25519() {
    let v = load("rfc7748_x25519.json");
    for t in v["scalar_mult"].as_array().unwrap() {
        let out = x25519_raw(&h32(&t["scalar"]), &h32(&t["u"])).unwrap();
        assert_eq!(out.expose(), &h32(&t["out"]));
    }
    let (mut k, mut u) = ([0u8; 32], [0u8; 32]);
    k[0] = 9;
    u[0] = 9;
    let mut done = 0;
    for t in v["iterated"].as_array().unwrap() {
        let target = t["iterations"].as_u64().unwrap();
        while done < target {
            let next = *x25519_raw(&k, &u).unwrap().expose();
            u = k;
            k = next;
            done += 1;
        }
        assert_eq!(k, h32(&t["out"]), "after {target} iterations");
    }
    let dh = &v["diffie_hellman"];
    let a = KeyPair::from_secret(&Secret::new(h32(&dh["alice_private"])));
    let b = KeyPair::from_secret(&Secret::new(h32(&dh["bob_private"])));
    assert_eq!(a.public_bytes(), h32(&dh["alice_public"]));
    assert_eq!(b.public_bytes(), h32(&dh["bob_public"]));
    let s1 = x25519_raw(a.secret_bytes().expose(), &b.public_bytes()).unwrap();
    let s2 = x25519_raw(b.secret_bytes().expose(), &a.public_bytes()).unwrap();
    assert_eq!(s1.expose(), &h32(&dh["shared"]));
    assert_eq!(s1, s2);
}

#[test]
fn rfc8439_chacha20poly1305() {
    let v = load("rfc8439_chacha20poly1305.json");
    for t in v["tests"].as_array().unwrap() {
        let key = h32(&t["key"]);
        let nonce: [u8; 12] = hx(&t["nonce"]).try_into().unwrap();
        let (aad, pt) = (hx(&t["aad"]), hx(&t["plaintext"]));
        let mut expected = hx(&t["ciphertext"]);
        expected.extend_from_slice(&hx(&t["tag"]));
        assert_eq!(aead_seal(&key, &nonce, &aad, &pt).unwrap(), expected);
        assert_eq!(
            aead_open(&key, &nonce, &aad, &expected).unwrap().expose(),
            &pt[..]
        );
        let mut bad = expected.clone();
        bad[0] ^= 1;
        assert_eq!(
            aead_open(&key, &nonce, &aad, &bad).unwrap_err(),
            CryptoError::AuthenticationFailed
        );
    }
}

#[test]
fn rfc5869_hkdf_sha256() {
    let v = load("rfc5869_hkdf_sha256.json");
    for t in v["tests"].as_array().unwrap() {
        let salt = hx(&t["salt"]);
        let len = t["length"].as_u64().unwrap() as usize;
        let okm = hkdf_sha256(Some(&salt), &hx(&t["ikm"]), &hx(&t["info"]), len).unwrap();
        assert_eq!(okm.expose(), &hx(&t["okm"])[..]);
    }
}

#[test]
fn rfc8032_ed25519() {
    let v = load("rfc8032_ed25519.json");
    for t in v["tests"].as_array().unwrap() {
        let seed = Secret::new(h32(&t["secret"]));
        let public = h32(&t["public"]);
        let msg = hx(&t["message"]);
        let sig: [u8; 64] = hx(&t["signature"]).try_into().unwrap();
        assert_eq!(ed25519_public(&seed), public, "{}", t["name"]);
        assert_eq!(ed25519_sign(&seed, &msg), sig, "{}", t["name"]);
        assert!(ed25519_verify(&public, &msg, &sig));
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(!ed25519_verify(&public, &msg, &bad));
    }
}
