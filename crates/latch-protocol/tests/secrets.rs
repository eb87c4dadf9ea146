//! Secret hygiene: `Debug` output is redacted (snapshots) and errors carry no secret data.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Device, rng};
use latch_protocol::keys::{KemKeyPair, KeyPair};
use latch_protocol::session::{decrypt, encrypt, process_prekey_bundle};
use latch_protocol::store::SessionStore;
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

/// Shortest run of secret bytes looked for: long enough that no public prefix or counter
/// matches by chance, short enough that any printed key is caught.
const RUN: usize = 8;

/// The runs of bytes `out` spells as a list of numbers in `radix` (`[171, 12, ...]` in
/// decimal, `[ab, 0c, ...]` or `[0xab, 0xc, ...]` in hex), split wherever something else
/// stands between two numbers.
fn number_runs(out: &str, radix: u32) -> Vec<Vec<u8>> {
    let mut runs = vec![Vec::new()];
    for token in out.split(|c: char| !c.is_ascii_alphanumeric()) {
        if token.is_empty() {
            continue;
        }
        let digits = match radix {
            16 => token.strip_prefix("0x").unwrap_or(token),
            _ => token,
        };
        let max_digits = if radix == 16 { 2 } else { 3 };
        match u8::from_str_radix(digits, radix) {
            Ok(b) if digits.len() <= max_digits => runs.last_mut().unwrap().push(b),
            _ => runs.push(Vec::new()),
        }
    }
    runs
}

/// How `out` shows a run of [`RUN`] bytes of `secret`, if it does: as raw or escaped
/// text, as hex digits (either case), or as a decimal or hex list.
fn printed_form(out: &str, secret: &[u8]) -> Option<&'static str> {
    let lower = out.to_lowercase();
    let lists = [
        ("a decimal list", number_runs(out, 10)),
        ("a hex list", number_runs(out, 16)),
    ];
    for window in secret.windows(RUN) {
        // Counters and padding are not secret; key material has many distinct bytes.
        let mut distinct = window.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < RUN - 2 {
            continue;
        }
        let text = String::from_utf8_lossy(window);
        let debug_text = format!("{text:?}");
        let forms = [
            ("text", text.to_string()),
            ("escaped text", debug_text.trim_matches('"').to_owned()),
            ("a byte string", window.escape_ascii().to_string()),
            ("hex", hex::encode(window)),
        ];
        for (name, form) in &forms {
            if out.contains(form.as_str()) || lower.contains(&form.to_lowercase()) {
                return Some(name);
            }
        }
        for (name, runs) in &lists {
            if runs.iter().any(|run| run.windows(RUN).any(|w| w == window)) {
                return Some(name);
            }
        }
    }
    None
}

fn assert_not_printed(out: &str, secret: &[u8], what: &str) {
    if let Some(form) = printed_form(out, secret) {
        panic!("{what} printed as {form} in: {out}");
    }
}

#[test]
fn the_leak_check_sees_every_form_debug_prints_bytes_in() {
    let secret: Vec<u8> = (0u8..32)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    let leaks = [
        format!("{secret:?}"),
        format!("{secret:#?}"),
        format!("{secret:x?}"),
        format!("{secret:#x?}"),
        format!("{secret:X?}"),
        format!("{:?}", hex::encode(&secret)),
        format!("{:?}", hex::encode_upper(&secret)),
        // As `bytes::Bytes` and `bstr` print.
        format!("b\"{}\"", secret.escape_ascii()),
        format!("{:?}", String::from_utf8_lossy(&secret)),
        format!("Wrapper {{ key: {:?} }}", &secret[3..12]),
    ];
    for leak in leaks {
        assert!(printed_form(&leak, &secret).is_some(), "not caught: {leak}");
    }
    // Fewer than RUN bytes, or other bytes, are not a leak.
    assert_eq!(
        printed_form(&format!("{:?}", &secret[..RUN - 1]), &secret),
        None
    );
    let other: Vec<u8> = secret.iter().map(|b| b ^ 0x5a).collect();
    assert_eq!(
        printed_form(&format!("{other:?} {other:x?}"), &secret),
        None
    );
}

/// No Debug output of a secret, record, store or message shows any run of secret bytes, in
/// any form Debug could print them.
#[test]
fn records_and_messages_never_print_key_material() {
    let mut r = rng(42);
    let mut alice = Device::new("alice", &mut r);
    let mut bob = Device::new("bob", &mut r);
    let bundle = bob.bundle(&mut r);
    process_prekey_bundle(&mut alice.store, &bob.address(), &bundle, &mut r).unwrap();
    let msg = encrypt(&mut alice.store, &bob.address(), b"secret plaintext").unwrap();
    let plaintext = decrypt(&mut bob.store, &alice.address(), &msg, &mut r).unwrap();
    assert_eq!(
        format!("{:?}", bob.store),
        format!(
            "InMemoryStore {{ identity: {:?}, sessions: 1, pre_keys: 0, signed_pre_keys: 1, kem_pre_keys: 1, .. }}",
            bob.identity
        )
    );
    let alice_session = alice.store.load_session(&bob.address()).unwrap().unwrap();
    let bob_session = bob.store.load_session(&alice.address()).unwrap().unwrap();
    // Every secret either side holds: both stores (prekeys and sessions, serialized),
    // both identities, the plaintext.
    let secrets = [
        ("alice's store", alice.store.contents()),
        ("bob's store", bob.store.contents()),
        (
            "alice's identity",
            alice.identity.to_secret_bytes().expose().to_vec(),
        ),
        (
            "bob's identity",
            bob.identity.to_secret_bytes().expose().to_vec(),
        ),
        ("the plaintext", plaintext.expose().to_vec()),
    ];
    let spk = bob.signed.key_pair.secret_bytes();
    let kem_seed = bob.kem_last_resort.key_pair.seed().clone();
    let kem_expanded = bob.kem_last_resort.key_pair.expanded_bytes();
    let session_bytes = alice_session.to_bytes();
    let debugs: [&dyn std::fmt::Debug; 14] = [
        &bob.signed,
        &bob.kem_last_resort,
        &bob.signed.key_pair,
        &bob.kem_last_resort.key_pair,
        &alice.store,
        &bob.store,
        &msg,
        &alice.identity,
        &alice_session,
        &bob_session,
        &spk,
        &kem_seed,
        &kem_expanded,
        &session_bytes,
    ];
    for debug in debugs {
        for out in [format!("{debug:?}"), format!("{debug:#?}")] {
            for (what, secret) in &secrets {
                assert_not_printed(&out, secret, what);
            }
        }
    }
}

#[test]
fn secrets_compare_in_constant_time_and_by_value() {
    assert_eq!(Secret::<4>::new([1, 2, 3, 4]), Secret::new([1, 2, 3, 4]));
    assert_ne!(Secret::<4>::new([1, 2, 3, 4]), Secret::new([1, 2, 3, 5]));
}
