//! Abuse limits (issue 18): prekey claims per claimer and per target, collapsed `PrekeysLow`
//! notices, devices per identity, one-time prekeys per device, the size of a claim answer, and
//! metrics kept off the public listener.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use latch_relay::api::{
    self, ClientFrame, ErrorCode, IdentityKey, Prekey, PrekeyUpload, Response, ServerFrame,
};
use latch_relay::limits::Rate;
use latch_relay::store::sqlite::{Durability, SqliteStore};
use latch_relay::store::{DirectoryStore, Registration, StoreLimits};

fn upload(ids: std::ops::Range<u32>, key_bytes: usize) -> PrekeyUpload {
    PrekeyUpload {
        signed: Some(Prekey {
            id: 1,
            key: vec![1; key_bytes],
        }),
        last_resort: Some(Prekey {
            id: 1,
            key: vec![2; key_bytes],
        }),
        one_time: ids
            .map(|i| Prekey {
                id: i,
                key: vec![3; key_bytes],
            })
            .collect(),
    }
}

async fn publish(c: &mut Client, ids: std::ops::Range<u32>) -> Result<Response, ErrorCode> {
    let req = c.req();
    c.call(ClientFrame::PublishPrekeys {
        req,
        upload: upload(ids, 32),
    })
    .await
}

async fn claim(c: &mut Client, target: IdentityKey) -> Result<Response, ErrorCode> {
    let req = c.req();
    c.call(ClientFrame::ClaimPrekeys {
        req,
        identity_key: target,
        device_id: None,
    })
    .await
}

/// The one-time key id a successful claim handed out.
fn one_time_id(r: Result<Response, ErrorCode>) -> u32 {
    match r {
        Ok(Response::Prekeys { bundles }) => bundles[0].one_time.as_ref().unwrap().id,
        other => panic!("expected bundles, got {other:?}"),
    }
}

/// `PrekeysLow` notices among frames kept while waiting for answers.
fn notices(frames: Vec<ServerFrame>) -> Vec<u32> {
    frames
        .into_iter()
        .filter_map(|f| match f {
            ServerFrame::PrekeysLow { remaining } => Some(remaining),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn prekey_claims_are_limited_per_claimer_and_per_target() {
    let r = start(|c| {
        c.claim_rate = Rate {
            per_second: 1.0,
            burst: 3.0,
        };
        c.claim_target_rate = Rate {
            per_second: 1.0,
            burst: 5.0,
        };
        // Every claim leaves the owner "low", and (the clock moving 1 ms before each claim)
        // every granted claim notifies: a refused one must not.
        c.prekey_low_threshold = 1_000;
        c.prekey_low_notice_interval_ms = 1;
    })
    .await;
    let tick = || r.clock.advance_ms(1);
    let bob_key = key(2);
    let bob_id = address(&bob_key, 1).identity_key;
    let mut bob = Client::login(r.addr, &bob_key, 1, true).await;
    assert_eq!(bob.backlog().await, vec![]);
    assert_eq!(
        publish(&mut bob, 100..120).await,
        Ok(Response::PrekeysPublished {
            one_time_remaining: 20
        })
    );
    let mut alice = Client::login(r.addr, &key(1), 1, true).await;
    assert_eq!(alice.backlog().await, vec![]);
    // Per claimer: a burst of three, then refused with a wait of about a second.
    for want in 100..103 {
        tick();
        assert_eq!(one_time_id(claim(&mut alice, bob_id).await), want);
    }
    tick();
    let req = alice.req();
    alice
        .send(&ClientFrame::ClaimPrekeys {
            req,
            identity_key: bob_id,
            device_id: None,
        })
        .await;
    match alice.recv().await {
        ServerFrame::Error {
            req: Some(q),
            code: ErrorCode::RateLimited,
            retry_after_ms,
        } if q == req => assert!((900..=1_000).contains(&retry_after_ms), "{retry_after_ms}"),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    // The claimer's second device shares its identity's bucket.
    let mut alice2 = Client::login(r.addr, &key(1), 2, true).await;
    tick();
    assert_eq!(
        claim(&mut alice2, bob_id).await,
        Err(ErrorCode::RateLimited)
    );

    // Per target: other claimers together get the target's remaining two, then nothing.
    let mut carol = Client::login(r.addr, &key(3), 1, true).await;
    tick();
    assert_eq!(one_time_id(claim(&mut carol, bob_id).await), 103);
    tick();
    assert_eq!(one_time_id(claim(&mut carol, bob_id).await), 104);
    let mut dave = Client::login(r.addr, &key(4), 1, true).await;
    tick();
    assert_eq!(claim(&mut dave, bob_id).await, Err(ErrorCode::RateLimited));
    tick();
    assert_eq!(claim(&mut carol, bob_id).await, Err(ErrorCode::RateLimited));
    // Another target is not affected by Bob's empty bucket.
    let erin_key = key(5);
    let mut erin = Client::login(r.addr, &erin_key, 1, true).await;
    assert!(publish(&mut erin, 1..3).await.is_ok());
    assert_eq!(
        one_time_id(claim(&mut dave, address(&erin_key, 1).identity_key).await),
        1
    );

    // Refused claims handed out no key and sent Bob no notice: five granted claims, five
    // notices, in order.
    bob.ping().await;
    assert_eq!(notices(bob.take_buffered()), vec![19, 18, 17, 16, 15]);
    drop(bob);
    let mut bob = Client::connect(r.addr).await;
    bob.authenticate(&bob_key, 1, false).await;
    match bob.recv().await {
        ServerFrame::Authenticated {
            one_time_prekeys, ..
        } => assert_eq!(
            one_time_prekeys, 15,
            "only the five granted claims took keys"
        ),
        other => panic!("expected Authenticated, got {other:?}"),
    }

    // The buckets refill with time.
    r.clock.advance_ms(1_000);
    assert_eq!(one_time_id(claim(&mut dave, bob_id).await), 105);
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn repeated_claims_send_one_prekeys_low_notice_per_interval() {
    let r = start(|c| {
        c.prekey_low_threshold = 100;
        c.prekey_low_notice_interval_ms = 60_000;
    })
    .await;
    let bob_key = key(2);
    let bob_id = address(&bob_key, 1).identity_key;
    let mut bob = Client::login(r.addr, &bob_key, 1, true).await;
    assert_eq!(bob.backlog().await, vec![]);
    assert!(publish(&mut bob, 0..10).await.is_ok());
    let mut alice = Client::login(r.addr, &key(1), 1, true).await;
    for _ in 0..6 {
        assert!(claim(&mut alice, bob_id).await.is_ok());
    }
    // Each notice is queued to Bob before the claim is answered, so by now every notice
    // the six claims caused is ahead of this pong.
    bob.ping().await;
    assert_eq!(
        notices(bob.take_buffered()),
        vec![9],
        "one notice for six claims"
    );

    // After the interval, the next low claim notifies again (once).
    r.clock.advance_ms(60_000);
    for _ in 0..3 {
        assert!(claim(&mut alice, bob_id).await.is_ok());
    }
    bob.ping().await;
    assert_eq!(notices(bob.take_buffered()), vec![3]);
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_identity_registers_at_most_the_device_cap() {
    let r = start(|c| c.max_devices_per_identity = 3).await;
    let bob_key = key(2);
    let mut devices = Vec::new();
    for id in 1..=3 {
        devices.push(Client::login(r.addr, &bob_key, id, true).await);
    }
    // The fourth is refused clearly, and the connection stays usable.
    let mut fourth = Client::connect(r.addr).await;
    fourth.authenticate(&bob_key, 4, true).await;
    assert_eq!(
        fourth.error().await,
        (None, ErrorCode::TooManyDevices, 0),
        "the N+1th device must be refused"
    );
    fourth.ping().await;
    // Registering a device that exists is no new device.
    drop(Client::login(r.addr, &bob_key, 2, true).await);
    // Other identities have their own count.
    drop(Client::login(r.addr, &key(3), 4, true).await);

    // Lookups and claims over all devices see the three.
    let mut alice = Client::login(r.addr, &key(1), 1, true).await;
    let bob_id = address(&bob_key, 1).identity_key;
    let Ok(Response::Prekeys { bundles }) = claim(&mut alice, bob_id).await else {
        panic!("claim failed")
    };
    assert_eq!(
        bundles.iter().map(|b| b.device_id).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );

    // Unregistering one makes room.
    let mut first = devices.remove(0);
    let req = first.req();
    assert_eq!(
        first.call(ClientFrame::Unregister { req }).await,
        Ok(Response::Unregistered)
    );
    drop(Client::login(r.addr, &bob_key, 4, true).await);
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn stored_one_time_prekeys_are_capped_per_device() {
    let r = start(|c| c.max_one_time_prekeys = 150).await;
    let mut bob = Client::login(r.addr, &key(2), 1, true).await;
    let count = |r: Result<Response, ErrorCode>| match r {
        Ok(Response::PrekeysPublished { one_time_remaining }) => one_time_remaining,
        other => panic!("expected PrekeysPublished, got {other:?}"),
    };
    assert_eq!(count(publish(&mut bob, 0..100).await), 100);
    // Fresh ids past the cap are not stored: the count says how many are.
    assert_eq!(count(publish(&mut bob, 100..200).await), 150);
    assert_eq!(count(publish(&mut bob, 200..400).await), 150);
    // Another device has its own cap.
    let mut bob2 = Client::login(r.addr, &key(2), 2, true).await;
    assert_eq!(count(publish(&mut bob2, 0..200).await), 150);

    // The signed and last-resort keys of an upload at the cap still replace the old ones.
    let req = bob.req();
    let mut at_cap = upload(400..410, 32);
    at_cap.signed = Some(Prekey {
        id: 7,
        key: vec![7; 32],
    });
    assert_eq!(
        count(
            bob.call(ClientFrame::PublishPrekeys {
                req,
                upload: at_cap
            })
            .await
        ),
        150
    );
    let mut alice = Client::login(r.addr, &key(1), 1, true).await;
    let req = alice.req();
    let Ok(Response::Prekeys { bundles }) = alice
        .call(ClientFrame::ClaimPrekeys {
            req,
            identity_key: address(&key(2), 1).identity_key,
            device_id: Some(1),
        })
        .await
    else {
        panic!("claim failed")
    };
    assert_eq!(bundles[0].signed.as_ref().unwrap().id, 7);
    assert_eq!(bundles[0].one_time.as_ref().unwrap().id, 0);
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_claim_over_all_devices_fits_a_client_frame_even_on_an_old_database() {
    // A database filled before the device cap existed: 150 devices of one identity, each
    // with prekeys of the largest size. Answering for all of them would take ~900 KiB.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.db");
    let bob_key = key(2);
    {
        let s = SqliteStore::open_with_limits(
            &path,
            Durability::Normal,
            StoreLimits {
                max_devices_per_identity: 1_000,
                ..StoreLimits::default()
            },
        )
        .unwrap();
        for id in 1..=150 {
            let d = address(&bob_key, id);
            assert_eq!(
                s.register_device(d, T0).await.unwrap(),
                Registration::Created
            );
            s.publish_prekeys(d, upload(0..1, api::MAX_PREKEY_BYTES))
                .await
                .unwrap();
        }
        s.shutdown();
    }
    let r = start(|c| c.database = path.clone()).await;
    let mut alice = Client::login(r.addr, &key(1), 1, true).await;
    assert_eq!(alice.backlog().await, vec![]);
    let req = alice.req();
    alice
        .send(&ClientFrame::ClaimPrekeys {
            req,
            identity_key: address(&bob_key, 1).identity_key,
            device_id: None,
        })
        .await;
    let answer = alice.recv().await;
    // What latch-client accepts from the relay (its MAX_SERVER_FRAME).
    let client_limit = api::MIN_MESSAGE_LIMIT_BYTES + api::FRAME_OVERHEAD_BYTES;
    let len = answer.encode().unwrap().len();
    assert!(len <= client_limit, "claim answer of {len} bytes");
    let ServerFrame::Response {
        body: Response::Prekeys { bundles },
        ..
    } = answer
    else {
        panic!("expected bundles, got {answer:?}")
    };
    assert_eq!(bundles.len(), 16, "the default cap bounds the answer");
    assert_eq!(bundles[0].device_id, 1);
    // A device past the cap is still reachable by its number.
    let req = alice.req();
    let Ok(Response::Prekeys { bundles }) = alice
        .call(ClientFrame::ClaimPrekeys {
            req,
            identity_key: address(&bob_key, 1).identity_key,
            device_id: Some(150),
        })
        .await
    else {
        panic!("claim failed")
    };
    assert_eq!(bundles[0].device_id, 150);
    // And no new device joins an identity already over the cap.
    let mut more = Client::connect(r.addr).await;
    more.authenticate(&bob_key, 151, true).await;
    assert_eq!(more.error().await, (None, ErrorCode::TooManyDevices, 0));
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn metrics_are_served_only_on_their_own_listener() {
    let r = start(|_| {}).await;
    assert_eq!(http_get(r.addr, "/healthz").await, (200, "ok\n".to_owned()));
    let (status, body) = http_get(r.addr, "/metrics").await;
    assert_eq!(status, 404, "the public listener serves metrics:\n{body}");
    let (status, body) = http_get(r.metrics_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("latch_relay_connections "), "{body}");
    assert_eq!(
        http_get(r.metrics_addr, "/healthz").await,
        (200, "ok\n".to_owned())
    );
    // The metrics listener speaks no WebSocket.
    let (status, _) = http_get(r.metrics_addr, api::WS_PATH).await;
    assert_eq!(status, 404);
    r.relay.shutdown().await.unwrap();

    // Off unless configured.
    let dir = tempfile::tempdir().unwrap();
    let config = latch_relay::config::Config {
        metrics_listen: None,
        ..test_config(dir.path())
    };
    let clock = latch_relay::clock::ManualClock::new(T0);
    let relay = latch_relay::server::start(config, std::sync::Arc::new(clock))
        .await
        .unwrap();
    assert_eq!(relay.metrics_addr(), None);
    assert_eq!(http_get(relay.local_addr(), "/metrics").await.0, 404);
    relay.shutdown().await.unwrap();
}
