//! Property test: two parties exchange messages through a hostile network that drops,
//! reorders and duplicates, while one side crashes mid-operation (its store is snapshotted
//! before an operation and restored after it, as if the commit never happened). Every
//! delivery must either return exactly the sent plaintext (at most once) or be refused, and
//! afterwards both sides must still talk in both directions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Device, rng};
use latch_protocol::session::{decrypt, encrypt, process_prekey_bundle};
use latch_protocol::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

#[derive(Debug, Clone)]
enum Op {
    /// Alice (true) or Bob (false) sends a new message.
    Send(bool),
    /// Deliver the in-flight message at this (wrapped) index and remove it.
    Deliver(usize),
    /// Deliver it but keep a copy in flight (a duplicate will follow).
    Duplicate(usize),
    /// Lose it.
    Drop(usize),
    /// Bob snapshots his store, delivers the message, then restores: a crash before commit.
    /// The relay never got an ack, so the message stays in flight.
    CrashDuringReceive(usize),
    /// Bob snapshots, encrypts, restores: the message never left the device.
    CrashDuringSend,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<bool>().prop_map(Op::Send),
        4 => any::<usize>().prop_map(Op::Deliver),
        1 => any::<usize>().prop_map(Op::Duplicate),
        1 => any::<usize>().prop_map(Op::Drop),
        1 => any::<usize>().prop_map(Op::CrashDuringReceive),
        1 => Just(Op::CrashDuringSend),
    ]
}

struct InFlight {
    to_bob: bool,
    id: u32,
    msg: CiphertextMessage,
}

fn run(seed: u64, ops: Vec<Op>) {
    let mut r = rng(seed);
    let mut alice = Device::new("alice", &mut r);
    let mut bob = Device::new("bob", &mut r);
    let bundle = bob.bundle(&mut r);
    process_prekey_bundle(&mut alice.store, &bob.address(), &bundle, &mut r).unwrap();

    let mut flight: Vec<InFlight> = Vec::new();
    let mut received: BTreeSet<u32> = BTreeSet::new();
    let mut next_id = 0u32;
    let mut dropped: BTreeSet<u32> = BTreeSet::new();

    let deliver = |m: &InFlight,
                   alice: &mut Device,
                   bob: &mut Device,
                   r: &mut _,
                   received: &mut BTreeSet<u32>| {
        let (to, from) = if m.to_bob {
            (bob, &*alice)
        } else {
            (alice, &*bob)
        };
        let before = to.store.contents();
        match decrypt(&mut to.store, &from.address(), &m.msg, r) {
            Ok(pt) => {
                assert_eq!(pt.expose(), m.id.to_be_bytes(), "wrong plaintext");
                assert!(received.insert(m.id), "message {} decrypted twice", m.id);
            }
            Err(_) => assert_eq!(
                to.store.contents(),
                before,
                "failed decrypt changed the store"
            ),
        }
    };

    for op in ops {
        match op {
            Op::Send(from_alice) => {
                let (from, to) = if from_alice {
                    (&mut alice, &bob)
                } else {
                    (&mut bob, &alice)
                };
                if let Ok(msg) = encrypt(&mut from.store, &to.address(), &next_id.to_be_bytes()) {
                    flight.push(InFlight {
                        to_bob: from_alice,
                        id: next_id,
                        msg: common::wire(&msg),
                    });
                    next_id += 1;
                }
            }
            Op::Deliver(i) | Op::Duplicate(i) | Op::Drop(i) | Op::CrashDuringReceive(i)
                if !flight.is_empty() =>
            {
                let i = i % flight.len();
                match op {
                    Op::Deliver(_) => {
                        let m = flight.remove(i);
                        deliver(&m, &mut alice, &mut bob, &mut r, &mut received);
                    }
                    Op::Duplicate(_) => {
                        let m = &flight[i];
                        let copy = InFlight {
                            to_bob: m.to_bob,
                            id: m.id,
                            msg: m.msg.clone(),
                        };
                        deliver(&copy, &mut alice, &mut bob, &mut r, &mut received);
                    }
                    Op::Drop(_) => {
                        dropped.insert(flight.remove(i).id);
                    }
                    _ => {
                        if flight[i].to_bob {
                            let snapshot = bob.store.clone();
                            let mut scratch = BTreeSet::new();
                            deliver(&flight[i], &mut alice, &mut bob, &mut r, &mut scratch);
                            bob.store = snapshot;
                        }
                    }
                }
            }
            Op::CrashDuringSend => {
                let snapshot = bob.store.clone();
                let _ = encrypt(&mut bob.store, &alice.address(), b"lost");
                bob.store = snapshot;
            }
            _ => {}
        }
    }
    // Drain the network.
    for m in std::mem::take(&mut flight) {
        deliver(&m, &mut alice, &mut bob, &mut r, &mut received);
    }
    // Nothing that reached its recipient was lost, even out of order or after crashes.
    for id in 0..next_id {
        assert!(
            received.contains(&id) || dropped.contains(&id),
            "message {id} never decrypted"
        );
    }
    // Converged: both directions work now.
    let m = encrypt(&mut alice.store, &bob.address(), b"final a").unwrap();
    assert_eq!(
        decrypt(&mut bob.store, &alice.address(), &common::wire(&m), &mut r)
            .unwrap()
            .expose(),
        b"final a"
    );
    let m = encrypt(&mut bob.store, &alice.address(), b"final b").unwrap();
    assert_eq!(
        decrypt(&mut alice.store, &bob.address(), &common::wire(&m), &mut r)
            .unwrap()
            .expose(),
        b"final b"
    );
    let m = encrypt(&mut alice.store, &bob.address(), b"final c").unwrap();
    assert!(matches!(m, CiphertextMessage::Ratchet(_)));
    assert_eq!(
        decrypt(&mut bob.store, &alice.address(), &common::wire(&m), &mut r)
            .unwrap()
            .expose(),
        b"final c"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn parties_always_converge(seed in any::<u64>(), ops in prop::collection::vec(op(), 0..60)) {
        run(seed, ops);
    }
}
