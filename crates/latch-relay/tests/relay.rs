//! End-to-end tests: a real relay on loopback, real WebSocket clients.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use latch_relay::api::{
    ClientFrame, ErrorCode, Prekey, PrekeyUpload, Response, ServerFrame, WS_PATH,
};
use tokio_tungstenite::tungstenite::Message;

fn prekeys(ids: std::ops::Range<u32>) -> PrekeyUpload {
    PrekeyUpload {
        signed: Some(Prekey {
            id: 1,
            key: vec![1; 32],
        }),
        last_resort: Some(Prekey {
            id: 1000,
            key: vec![2; 1568],
        }),
        one_time: ids
            .map(|i| Prekey {
                id: i,
                key: vec![i as u8; 32],
            })
            .collect(),
    }
}

#[tokio::test]
async fn register_publish_claim_send_receive_ack_and_backlog_order() {
    let r = start(|c| c.prekey_low_threshold = 2).await;
    let (alice_key, bob_key) = (key(1), key(2));
    let mut alice = Client::login(r.addr, &alice_key, 1, true).await;
    let mut bob = Client::login(r.addr, &bob_key, 1, true).await;
    assert_eq!(bob.backlog().await, vec![]);
    assert_eq!(alice.backlog().await, vec![]);
    let bob_addr = address(&bob_key, 1);

    // Handles.
    let req = bob.req();
    assert_eq!(
        bob.call(ClientFrame::ClaimHandle {
            req,
            handle: "Bob".into()
        })
        .await,
        Ok(Response::HandleClaimed)
    );
    let req = alice.req();
    assert_eq!(
        alice
            .call(ClientFrame::ClaimHandle {
                req,
                handle: "bob".into()
            })
            .await,
        Err(ErrorCode::HandleTaken)
    );
    let req = alice.req();
    assert_eq!(
        alice
            .call(ClientFrame::LookupHandle {
                req,
                handle: "BOB".into()
            })
            .await,
        Ok(Response::Handle {
            identity_key: bob_addr.identity_key,
            devices: vec![1]
        })
    );
    let req = alice.req();
    assert_eq!(
        alice
            .call(ClientFrame::LookupHandle {
                req,
                handle: "nobody".into()
            })
            .await,
        Err(ErrorCode::NotFound)
    );

    // Prekeys: publish 3, claim 4 times: three one-time keys, then the last-resort key.
    let req = bob.req();
    assert_eq!(
        bob.call(ClientFrame::PublishPrekeys {
            req,
            upload: prekeys(10..13)
        })
        .await,
        Ok(Response::PrekeysPublished {
            one_time_remaining: 3
        })
    );
    let mut got = Vec::new();
    for _ in 0..4 {
        let req = alice.req();
        let Ok(Response::Prekeys { bundles }) = alice
            .call(ClientFrame::ClaimPrekeys {
                req,
                identity_key: bob_addr.identity_key,
                device_id: None,
            })
            .await
        else {
            panic!("claim failed")
        };
        assert_eq!(bundles.len(), 1);
        assert_eq!(bundles[0].signed.as_ref().unwrap().id, 1);
        got.push(bundles[0].clone());
    }
    let one_time: Vec<u32> = got
        .iter()
        .filter_map(|b| b.one_time.as_ref().map(|k| k.id))
        .collect();
    assert_eq!(one_time, vec![10, 11, 12]);
    assert!(got[..3].iter().all(|b| b.last_resort.is_none()));
    assert_eq!(got[3].one_time, None);
    assert_eq!(got[3].last_resort.as_ref().unwrap().id, 1000);
    // Bob is told to replenish once below the threshold of 2, and not again for the claims
    // that follow within the notice interval.
    match bob.recv().await {
        ServerFrame::PrekeysLow { remaining } => assert_eq!(remaining, 1),
        other => panic!("expected PrekeysLow, got {other:?}"),
    }
    bob.ping().await;
    assert_eq!(bob.take_buffered(), vec![], "one notice, not one per claim");

    // Live push and ack by id.
    let id = random_id();
    assert_eq!(
        alice.send_to(bob_addr, id, b"hello").await,
        Ok(Response::Sent { duplicate: false })
    );
    let e = bob.envelope().await;
    assert_eq!(
        (e.id, e.body.as_slice(), e.from),
        (id, &b"hello"[..], address(&alice_key, 1))
    );
    let req = bob.req();
    assert_eq!(
        bob.call(ClientFrame::AckIds { req, ids: vec![id] }).await,
        Ok(Response::Acked { deleted: 1 })
    );

    // Bob offline: the backlog arrives in order on reconnect; unacked ones come again.
    drop(bob);
    let ids: Vec<_> = (0..5).map(|_| random_id()).collect();
    for (i, id) in ids.iter().enumerate() {
        assert!(alice.send_to(bob_addr, *id, &[i as u8]).await.is_ok());
    }
    let mut bob = Client::login(r.addr, &bob_key, 1, false).await;
    let backlog = bob.backlog().await;
    assert_eq!(backlog.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    assert!(backlog.windows(2).all(|w| w[0].seq < w[1].seq));
    // Ack the first three by cursor.
    let req = bob.req();
    assert_eq!(
        bob.call(ClientFrame::AckThrough {
            req,
            seq: backlog[2].seq
        })
        .await,
        Ok(Response::Acked { deleted: 3 })
    );
    drop(bob);
    let mut bob = Client::login(r.addr, &bob_key, 1, false).await;
    let again: Vec<_> = bob.backlog().await.iter().map(|e| e.id).collect();
    assert_eq!(
        again,
        ids[3..].to_vec(),
        "unacked envelopes are delivered again"
    );

    // A retry with the same id is a duplicate, not a second envelope.
    assert_eq!(
        alice.send_to(bob_addr, ids[4], &[4]).await,
        Ok(Response::Sent { duplicate: true })
    );
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn authentication_failures_are_refused_and_the_connection_stays_usable() {
    let r = start(|c| c.challenge_ttl_ms = 1_000).await;
    let (alice_key, bob_key) = (key(1), key(2));
    let mut bob = Client::login(r.addr, &bob_key, 1, true).await;
    bob.backlog().await;

    // Wrong signature: Alice claims to be Bob, signing with her own key.
    let mut c = Client::connect(r.addr).await;
    let mut forged = c.auth_frame(&alice_key, 1, false);
    if let ClientFrame::Authenticate { device, .. } = &mut forged {
        *device = address(&bob_key, 1);
    }
    c.send(&forged).await;
    assert_eq!(c.error().await.1, ErrorCode::BadSignature);
    // Not authenticated: cannot touch a mailbox.
    let req = c.req();
    assert_eq!(
        c.call(ClientFrame::AckThrough { req, seq: u64::MAX }).await,
        Err(ErrorCode::NotAuthenticated)
    );
    // The challenge was spent by the failed attempt: the same frame again is refused.
    let honest = c.auth_frame(&alice_key, 1, true);
    c.send(&honest).await;
    assert_eq!(c.error().await.1, ErrorCode::ChallengeInvalid);
    // A fresh challenge on the same connection works.
    c.send(&ClientFrame::NewChallenge).await;
    let ServerFrame::Challenge { nonce, .. } = c.recv().await else {
        panic!("no challenge")
    };
    c.challenge = nonce;
    c.authenticate(&alice_key, 1, true).await;
    assert!(matches!(c.recv().await, ServerFrame::Authenticated { .. }));
    c.backlog().await;
    // Authenticating twice is refused.
    let again = c.auth_frame(&alice_key, 1, true);
    c.send(&again).await;
    assert_eq!(c.error().await.1, ErrorCode::AlreadyAuthenticated);

    // Replay: a valid Authenticate frame from one connection, replayed on another.
    let mut first = Client::connect(r.addr).await;
    let captured = first.auth_frame(&alice_key, 2, true);
    first.send(&captured).await;
    assert!(matches!(
        first.recv().await,
        ServerFrame::Authenticated { .. }
    ));
    let mut replay = Client::connect(r.addr).await;
    replay.send(&captured).await;
    assert_eq!(replay.error().await.1, ErrorCode::ChallengeInvalid);
    replay.ping().await;

    // Expired challenge.
    let mut late = Client::connect(r.addr).await;
    r.clock.advance_ms(1_001);
    late.authenticate(&alice_key, 1, false).await;
    assert_eq!(late.error().await.1, ErrorCode::ChallengeInvalid);

    // Logging in as a device never registered.
    let mut ghost = Client::connect(r.addr).await;
    ghost.authenticate(&key(9), 1, false).await;
    assert_eq!(ghost.error().await.1, ErrorCode::UnknownDevice);

    // Another device's mailbox: Alice acks Bob's envelope ids; nothing is deleted and Bob
    // still gets them.
    let bob_addr = address(&bob_key, 1);
    drop(bob);
    let id = random_id();
    assert!(c.send_to(bob_addr, id, b"for bob").await.is_ok());
    let req = c.req();
    assert_eq!(
        c.call(ClientFrame::AckIds { req, ids: vec![id] }).await,
        Ok(Response::Acked { deleted: 0 })
    );
    let req = c.req();
    assert_eq!(
        c.call(ClientFrame::AckThrough { req, seq: u64::MAX }).await,
        Ok(Response::Acked { deleted: 0 })
    );
    let mut bob = Client::login(r.addr, &bob_key, 1, false).await;
    assert_eq!(
        bob.backlog().await.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![id]
    );
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_limit_answers_with_its_error_and_keeps_the_connection() {
    let r = start(|c| {
        c.max_envelope_bytes = 1_000;
        c.queue_cap = 3;
        c.device_rate = latch_relay::limits::Rate {
            per_second: 1.0,
            burst: 20.0,
        };
    })
    .await;
    let (alice_key, bob_key) = (key(1), key(2));
    let mut alice = Client::login(r.addr, &alice_key, 1, true).await;
    alice.backlog().await;
    let bob_addr = address(&bob_key, 1);
    drop(Client::login(r.addr, &bob_key, 1, true).await);

    // Envelope size: at the cap is fine, one byte over is refused.
    assert!(
        alice
            .send_to(bob_addr, random_id(), &[0; 1_000])
            .await
            .is_ok()
    );
    assert_eq!(
        alice.send_to(bob_addr, random_id(), &[0; 1_001]).await,
        Err(ErrorCode::EnvelopeTooLarge)
    );
    alice.ping().await;

    // Queue cap: Bob is offline with 1 queued; two more fit, the fourth is refused.
    assert!(alice.send_to(bob_addr, random_id(), b"2").await.is_ok());
    assert!(alice.send_to(bob_addr, random_id(), b"3").await.is_ok());
    assert_eq!(
        alice.send_to(bob_addr, random_id(), b"4").await,
        Err(ErrorCode::QueueFull)
    );
    alice.ping().await;

    // Unknown recipient.
    assert_eq!(
        alice.send_to(address(&key(77), 1), random_id(), b"x").await,
        Err(ErrorCode::UnknownRecipient)
    );

    // Malformed frames: garbage bytes, a text frame, too many ack ids.
    alice
        .send_raw(Message::Binary(vec![0xff, 0x00, 0x13].into()))
        .await;
    assert_eq!(alice.error().await, (None, ErrorCode::Malformed, 0));
    alice.send_raw(Message::Text("hello".into())).await;
    assert_eq!(alice.error().await, (None, ErrorCode::Malformed, 0));
    let req = alice.req();
    let ids = vec![random_id(); latch_relay::api::MAX_ACK_IDS + 1];
    assert_eq!(
        alice.call(ClientFrame::AckIds { req, ids }).await,
        Err(ErrorCode::Malformed)
    );
    alice.ping().await;

    // Per-device rate: the burst of 20 is used up (12 requests so far); drain it.
    let mut limited = None;
    for _ in 0..30 {
        let req = alice.req();
        let answer = alice
            .call(ClientFrame::LookupHandle {
                req,
                handle: "nobody".into(),
            })
            .await;
        if answer == Err(ErrorCode::RateLimited) {
            limited = Some(());
            break;
        }
    }
    assert!(limited.is_some(), "device bucket never ran out");
    let req = alice.req();
    alice
        .send(&ClientFrame::LookupHandle {
            req,
            handle: "nobody".into(),
        })
        .await;
    match alice.recv().await {
        ServerFrame::Error {
            req: Some(got),
            code: ErrorCode::RateLimited,
            retry_after_ms,
        } => {
            assert_eq!(got, req);
            assert!(
                (1..=1_000).contains(&retry_after_ms),
                "retry after {retry_after_ms}"
            );
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    // Pings are not charged to the device bucket; after the refill the request works again.
    alice.ping().await;
    r.clock.advance_ms(1_000);
    let req = alice.req();
    assert_eq!(
        alice
            .call(ClientFrame::LookupHandle {
                req,
                handle: "nobody".into()
            })
            .await,
        Err(ErrorCode::NotFound)
    );
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn per_ip_rate_limit_applies_before_login_and_refills() {
    let r = start(|c| {
        c.ip_rate = latch_relay::limits::Rate {
            per_second: 1.0,
            burst: 5.0,
        }
    })
    .await;
    // The upgrade itself costs one token.
    let mut c = Client::connect(r.addr).await;
    for _ in 0..4 {
        c.ping().await;
    }
    let req = c.req();
    assert_eq!(
        c.call(ClientFrame::Ping { req }).await,
        Err(ErrorCode::RateLimited)
    );
    r.clock.advance_ms(1_000);
    c.ping().await;
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn handshake_and_idle_timeouts_close_with_a_reason() {
    // Each relay makes only the timeout under test short; whatever must succeed (a login on a
    // loaded CI host) gets a generous one, so a slow step cannot trip the wrong deadline.
    let r = start(|c| {
        c.handshake_timeout_ms = 300;
        c.idle_timeout_ms = 60_000;
    })
    .await;
    let mut silent = Client::connect(r.addr).await;
    assert_eq!(silent.error().await, (None, ErrorCode::HandshakeTimeout, 0));
    assert!(
        silent.recv_wire().await.is_none(),
        "closed after the fatal error"
    );
    r.relay.shutdown().await.unwrap();

    let r = start(|c| {
        c.handshake_timeout_ms = 60_000;
        c.idle_timeout_ms = 300;
    })
    .await;
    let mut idle = Client::login(r.addr, &key(1), 1, true).await;
    // `error` skips the backlog frames, which may come before or after the timeout fires.
    assert_eq!(idle.error().await, (None, ErrorCode::IdleTimeout, 0));
    assert!(idle.recv_wire().await.is_none());
    // The relay is fine: a new connection still logs in.
    let again = Client::login(r.addr, &key(1), 1, false).await;
    drop(again);
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn undelivered_envelopes_expire_after_thirty_days() {
    let r = start(|_| {}).await;
    let (alice_key, bob_key) = (key(1), key(2));
    let mut alice = Client::login(r.addr, &alice_key, 1, true).await;
    drop(Client::login(r.addr, &bob_key, 1, true).await);
    let bob_addr = address(&bob_key, 1);
    let old = random_id();
    assert!(alice.send_to(bob_addr, old, b"old").await.is_ok());
    r.clock.advance_ms(29 * 24 * 3600 * 1000);
    let young = random_id();
    assert!(alice.send_to(bob_addr, young, b"young").await.is_ok());
    r.clock.advance_ms(24 * 3600 * 1000);
    let mut bob = Client::login(r.addr, &bob_key, 1, false).await;
    assert_eq!(
        bob.backlog().await.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![young]
    );
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_second_connection_of_a_device_supersedes_the_first() {
    let r = start(|_| {}).await;
    let mut first = Client::login(r.addr, &key(1), 1, true).await;
    first.backlog().await;
    let mut second = Client::login(r.addr, &key(1), 1, false).await;
    second.backlog().await;
    assert_eq!(first.error().await, (None, ErrorCode::Superseded, 0));
    let mut alice = Client::login(r.addr, &key(2), 1, true).await;
    let id = random_id();
    assert!(alice.send_to(address(&key(1), 1), id, b"x").await.is_ok());
    assert_eq!(second.envelope().await.id, id);
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn healthz_and_metrics_are_served() {
    let r = start(|_| {}).await;
    let mut a = Client::login(r.addr, &key(1), 1, true).await;
    drop(Client::login(r.addr, &key(2), 1, true).await);
    assert!(
        a.send_to(address(&key(2), 1), random_id(), b"x")
            .await
            .is_ok()
    );
    assert_eq!(http_get(r.addr, "/healthz").await, (200, "ok\n".to_owned()));
    let (status, body) = http_get(r.metrics_addr, "/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "latch_relay_connections ",
        "latch_relay_envelopes_in_total 1",
        "latch_relay_queue_depth 1",
        "latch_relay_commit_latency_seconds_count 1",
    ] {
        assert!(body.contains(needle), "{needle} missing from:\n{body}");
    }
    let (status, _) = http_get(r.addr, WS_PATH).await;
    assert_ne!(
        status, 200,
        "plain GET on the socket path is not an upgrade"
    );
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_answers_in_flight_sends_and_keeps_them() {
    let r = start(|c| {
        c.device_rate = latch_relay::limits::Rate {
            per_second: 1e6,
            burst: 1e6,
        }
    })
    .await;
    let dir = r.dir.path().to_owned();
    let mut alice = Client::login(r.addr, &key(1), 1, true).await;
    alice.backlog().await;
    drop(Client::login(r.addr, &key(2), 1, true).await);
    let bob = address(&key(2), 1);
    let ids: Vec<_> = (0..200).map(|_| random_id()).collect();
    for (i, id) in ids.iter().enumerate() {
        alice
            .send(&ClientFrame::Send {
                req: i as u32,
                id: *id,
                to: bob,
                body: vec![1; 64],
            })
            .await;
    }
    // At least one send is answered before shutdown starts, so the check below is not empty
    // by timing luck.
    let mut acked = Vec::new();
    while acked.is_empty() {
        match alice.recv_wire().await {
            Some(ServerFrame::Response {
                body: Response::Sent { .. },
                req,
            }) => acked.push(ids[req as usize]),
            other => panic!("expected a Sent answer, got {other:?}"),
        }
    }
    let token = r.relay.shutdown_token();
    let shutdown = tokio::spawn(r.relay.shutdown());
    token.cancelled().await;
    loop {
        match alice.recv_wire().await {
            Some(ServerFrame::Response {
                body: Response::Sent { .. },
                req,
            }) => {
                acked.push(ids[req as usize]);
            }
            Some(ServerFrame::Error {
                code: ErrorCode::ShuttingDown,
                req: None,
                ..
            }) => break,
            Some(ServerFrame::Error {
                code: ErrorCode::ShuttingDown,
                req: Some(_),
                ..
            }) => {}
            Some(other) => panic!("unexpected {other:?}"),
            None => panic!("closed without ShuttingDown"),
        }
    }
    shutdown.await.unwrap().unwrap();
    // Every acked envelope is in the database after restart.
    let config = test_config(&dir);
    let clock = latch_relay::clock::ManualClock::new(T0);
    let relay = latch_relay::server::start(config, std::sync::Arc::new(clock))
        .await
        .unwrap();
    let mut b = Client::login(relay.local_addr(), &key(2), 1, false).await;
    let got: std::collections::HashSet<_> = b.backlog().await.iter().map(|e| e.id).collect();
    assert!(!acked.is_empty());
    assert!(
        acked.iter().all(|id| got.contains(id)),
        "an acked envelope was lost"
    );
    relay.shutdown().await.unwrap();
    drop(r.dir);
}

#[tokio::test]
async fn tls_with_a_self_signed_certificate() {
    use tokio_rustls::rustls;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let r = start(|c| {
        c.tls_cert = Some(cert_path.clone());
        c.tls_key = Some(key_path.clone());
    })
    .await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(r.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (ws, _) =
        tokio_tungstenite::client_async(format!("wss://localhost:{}/v1/ws", r.addr.port()), tls)
            .await
            .unwrap();
    let mut c = Client::from_ws(ws).await;
    c.authenticate(&key(1), 1, true).await;
    assert!(matches!(c.recv().await, ServerFrame::Authenticated { .. }));
    c.ping().await;
    // Plain WebSocket to the TLS port fails.
    let plain = tokio_tungstenite::connect_async(format!("ws://{}/v1/ws", r.addr)).await;
    assert!(plain.is_err());
    r.relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_recipient_gets_every_live_envelope_in_order() {
    // More than the live buffers hold (subscription 1024 + socket queue 1024), so the delivery
    // task must fall back to re-reading the mailbox from its cursor.
    const N: usize = 3_000;
    let r = start(|c| {
        c.device_rate = latch_relay::limits::Rate {
            per_second: 1e6,
            burst: 1e6,
        };
        c.ip_rate = latch_relay::limits::Rate {
            per_second: 1e6,
            burst: 1e6,
        };
    })
    .await;
    let mut bob = Client::login(r.addr, &key(2), 1, true).await;
    assert_eq!(bob.backlog().await, vec![]);
    let mut alice = Client::login(r.addr, &key(1), 1, true).await;
    alice.backlog().await;
    let to = address(&key(2), 1);
    let ids: Vec<_> = (0..N).map(|_| random_id()).collect();
    // Bob reads nothing while Alice pipelines the whole burst and waits for every commit.
    for (i, id) in ids.iter().enumerate() {
        alice
            .send(&ClientFrame::Send {
                req: i as u32,
                id: *id,
                to,
                body: vec![7; 8 * 1024],
            })
            .await;
    }
    let mut answered = 0;
    while answered < N {
        match alice.recv().await {
            ServerFrame::Response {
                body: Response::Sent { duplicate: false },
                ..
            } => answered += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut got = Vec::with_capacity(N);
    let mut last = 0;
    while got.len() < N {
        let e = bob.envelope().await;
        assert!(e.seq > last, "out of order");
        last = e.seq;
        got.push(e.id);
    }
    assert_eq!(got, ids);
    let (_, metrics) = http_get(r.metrics_addr, "/metrics").await;
    assert!(
        !metrics.contains("latch_relay_delivery_catchups_total 0"),
        "the lag path was not exercised:\n{metrics}"
    );
    r.relay.shutdown().await.unwrap();
}

/// Poll `/metrics` until it contains `needle` (bounded), returning whether it appeared.
async fn metrics_show(addr: std::net::SocketAddr, needle: &str) -> bool {
    for _ in 0..400 {
        let (_, body) = http_get(addr, "/metrics").await;
        if body.contains(needle) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_and_loses_nothing() {
    let r = start(|c| {
        c.outbound_queue_bytes = 256 * 1024;
        c.write_timeout_ms = 1_000;
    })
    .await;
    let (alice_key, bob_key) = (key(1), key(2));
    let mut alice = Client::login(r.addr, &alice_key, 1, true).await;
    let mut bob = Client::login(r.addr, &bob_key, 1, true).await;
    assert_eq!(bob.backlog().await, vec![]);
    assert_eq!(alice.backlog().await, vec![]);
    let bob_addr = address(&bob_key, 1);

    // Bob stops reading. ~10 MB towards him overflows socket buffers and his queue.
    let body = vec![7u8; 32 * 1024];
    let mut ids = Vec::new();
    for _ in 0..300 {
        let id = random_id();
        ids.push(id);
        assert_eq!(
            alice.send_to(bob_addr, id, &body).await,
            Ok(Response::Sent { duplicate: false })
        );
    }
    assert!(
        metrics_show(r.metrics_addr, "code=\"TooSlow\"} 1").await,
        "the stalled connection was never closed"
    );
    // Bob's socket ends after whatever was already in flight.
    let mut drained = 0;
    while bob.recv_wire().await.is_some() {
        drained += 1;
        assert!(drained <= ids.len() + 2, "connection never closed");
    }
    // Nothing was acknowledged, so a reconnect gets everything, in order.
    let mut bob = Client::login(r.addr, &bob_key, 1, false).await;
    let got: Vec<_> = bob.backlog().await.into_iter().map(|e| e.id).collect();
    assert_eq!(got, ids);
    // Alice's connection was never affected.
    alice.ping().await;
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_mailbox_read_error_closes_the_connection_instead_of_stopping_delivery() {
    let r = start(|_| {}).await;
    let (alice_key, bob_key) = (key(1), key(2));
    let mut alice = Client::login(r.addr, &alice_key, 1, true).await;
    let bob = Client::login(r.addr, &bob_key, 1, true).await;
    drop(bob);
    assert_eq!(alice.backlog().await, vec![]);
    let bob_addr = address(&bob_key, 1);
    let id = random_id();
    assert_eq!(
        alice.send_to(bob_addr, id, b"x").await,
        Ok(Response::Sent { duplicate: false })
    );
    // Damage the stored row (a real read error from the real store): its id no longer has
    // the right length, so every backlog read of Bob's mailbox fails.
    let db = r.dir.path().join("relay.db");
    tokio::task::spawn_blocking(move || {
        let c = rusqlite::Connection::open(db).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(c.execute("UPDATE envelopes SET id = x'00'", []).unwrap(), 1);
    })
    .await
    .unwrap();

    let mut bob = Client::login(r.addr, &bob_key, 1, false).await;
    assert_eq!(bob.error().await, (None, ErrorCode::DeliveryFailed, 0));
    assert!(ErrorCode::DeliveryFailed.is_fatal());
    assert_eq!(bob.recv_wire().await, None, "the connection stayed open");
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_senders_reusing_an_id_are_both_delivered() {
    let r = start(|_| {}).await;
    let (alice_key, carol_key, bob_key) = (key(1), key(3), key(2));
    let mut alice = Client::login(r.addr, &alice_key, 1, true).await;
    let mut carol = Client::login(r.addr, &carol_key, 1, true).await;
    let mut bob = Client::login(r.addr, &bob_key, 1, true).await;
    assert_eq!(bob.backlog().await, vec![]);
    let bob_addr = address(&bob_key, 1);
    let id = random_id();
    assert_eq!(
        alice.send_to(bob_addr, id, b"from alice").await,
        Ok(Response::Sent { duplicate: false })
    );
    assert_eq!(
        carol.send_to(bob_addr, id, b"from carol").await,
        Ok(Response::Sent { duplicate: false })
    );
    // A retry by the same sender is still a duplicate.
    assert_eq!(
        carol.send_to(bob_addr, id, b"from carol").await,
        Ok(Response::Sent { duplicate: true })
    );
    let a = bob.envelope().await;
    let c = bob.envelope().await;
    assert_eq!(
        (a.id, a.from, a.body),
        (id, address(&alice_key, 1), b"from alice".to_vec())
    );
    assert_eq!(
        (c.id, c.from, c.body),
        (id, address(&carol_key, 1), b"from carol".to_vec())
    );
    r.relay.shutdown().await.unwrap();
}

async fn claim_handle(c: &mut Client, handle: &str) -> Result<Response, ErrorCode> {
    let req = c.req();
    c.call(ClientFrame::ClaimHandle {
        req,
        handle: handle.into(),
    })
    .await
}

async fn unregister(c: &mut Client) {
    let req = c.req();
    assert_eq!(
        c.call(ClientFrame::Unregister { req }).await,
        Ok(Response::Unregistered)
    );
    // The relay closes the connection after the answer.
    loop {
        match c.recv_wire().await {
            None => break,
            Some(ServerFrame::Envelope(_) | ServerFrame::BacklogDone) => continue,
            Some(other) => panic!("unexpected {other:?} after Unregistered"),
        }
    }
}

#[tokio::test]
async fn unregister_deletes_the_device_its_mailbox_prekeys_and_finally_its_handle() {
    let r = start(|_| {}).await;
    let (bob_key, alice_key, mallory_key) = (key(2), key(1), key(3));
    let mut alice = Client::login(r.addr, &alice_key, 1, true).await;
    alice.backlog().await;
    let mut bob1 = Client::login(r.addr, &bob_key, 1, true).await;
    bob1.backlog().await;
    let mut bob2 = Client::login(r.addr, &bob_key, 2, true).await;
    bob2.backlog().await;
    assert_eq!(
        claim_handle(&mut bob1, "bob").await,
        Ok(Response::HandleClaimed)
    );
    let req = bob1.req();
    assert!(
        bob1.call(ClientFrame::PublishPrekeys {
            req,
            upload: prekeys(1..4)
        })
        .await
        .is_ok()
    );
    // Queued for device 1 while it is offline: the mailbox must go with the device.
    drop(bob1);
    let bob1_addr = address(&bob_key, 1);
    for _ in 0..3 {
        assert!(alice.send_to(bob1_addr, random_id(), b"x").await.is_ok());
    }
    let mut bob1 = Client::login(r.addr, &bob_key, 1, false).await;
    assert_eq!(bob1.backlog().await.len(), 3);
    unregister(&mut bob1).await;

    // Device 1 is gone everywhere; device 2 still holds the handle.
    let mut again = Client::connect(r.addr).await;
    again.authenticate(&bob_key, 1, false).await;
    assert_eq!(again.error().await.1, ErrorCode::UnknownDevice);
    assert_eq!(
        alice.send_to(bob1_addr, random_id(), b"x").await,
        Err(ErrorCode::UnknownRecipient)
    );
    let req = alice.req();
    assert_eq!(
        alice
            .call(ClientFrame::ClaimPrekeys {
                req,
                identity_key: bob1_addr.identity_key,
                device_id: Some(1),
            })
            .await,
        Err(ErrorCode::NotFound)
    );
    let req = alice.req();
    assert_eq!(
        alice
            .call(ClientFrame::LookupHandle {
                req,
                handle: "bob".into()
            })
            .await,
        Ok(Response::Handle {
            identity_key: bob1_addr.identity_key,
            devices: vec![2]
        })
    );
    let mut mallory = Client::login(r.addr, &mallory_key, 1, true).await;
    mallory.backlog().await;
    assert_eq!(
        claim_handle(&mut mallory, "bob").await,
        Err(ErrorCode::HandleTaken)
    );

    // The last device goes: the handle is free for a new identity.
    unregister(&mut bob2).await;
    let req = alice.req();
    assert_eq!(
        alice
            .call(ClientFrame::LookupHandle {
                req,
                handle: "bob".into()
            })
            .await,
        Err(ErrorCode::NotFound)
    );
    assert_eq!(
        claim_handle(&mut mallory, "bob").await,
        Ok(Response::HandleClaimed)
    );

    // Registering device 1 again starts from an empty mailbox and no prekeys.
    let mut bob1 = Client::connect(r.addr).await;
    bob1.authenticate(&bob_key, 1, true).await;
    match bob1.recv().await {
        ServerFrame::Authenticated {
            one_time_prekeys, ..
        } => assert_eq!(one_time_prekeys, 0),
        other => panic!("expected Authenticated, got {other:?}"),
    }
    assert_eq!(bob1.backlog().await, vec![]);
    let (status, body) = http_get(r.metrics_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("latch_relay_queue_depth 0"), "{body}");
    r.relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn ack_envelopes_deletes_only_the_named_senders_envelope() {
    let r = start(|_| {}).await;
    let (alice_key, carol_key, bob_key) = (key(1), key(3), key(2));
    let mut alice = Client::login(r.addr, &alice_key, 1, true).await;
    let mut carol = Client::login(r.addr, &carol_key, 1, true).await;
    let mut bob = Client::login(r.addr, &bob_key, 1, true).await;
    assert_eq!(bob.backlog().await, vec![]);
    let bob_addr = address(&bob_key, 1);
    let id = random_id();
    assert!(alice.send_to(bob_addr, id, b"from alice").await.is_ok());
    assert!(carol.send_to(bob_addr, id, b"from carol").await.is_ok());
    assert_eq!(bob.envelope().await.from, address(&alice_key, 1));
    assert_eq!(bob.envelope().await.from, address(&carol_key, 1));

    // Bob processed Alice's only: acking (alice, id) must leave Carol's.
    let req = bob.req();
    assert_eq!(
        bob.call(ClientFrame::AckEnvelopes {
            req,
            envelopes: vec![(address(&alice_key, 1), id)]
        })
        .await,
        Ok(Response::Acked { deleted: 1 })
    );
    // Another device acking Carol's envelope in Bob's mailbox deletes nothing.
    let req = alice.req();
    assert_eq!(
        alice
            .call(ClientFrame::AckEnvelopes {
                req,
                envelopes: vec![(address(&carol_key, 1), id)]
            })
            .await,
        Ok(Response::Acked { deleted: 0 })
    );
    // Too many pairs: a typed error, the connection stays usable.
    let req = bob.req();
    assert_eq!(
        bob.call(ClientFrame::AckEnvelopes {
            req,
            envelopes: vec![(address(&carol_key, 1), id); latch_relay::api::MAX_ACK_IDS + 1]
        })
        .await,
        Err(ErrorCode::Malformed)
    );
    drop(bob);
    let mut bob = Client::login(r.addr, &bob_key, 1, false).await;
    let left = bob.backlog().await;
    assert_eq!(
        left.iter()
            .map(|e| (e.from, e.id, e.body.clone()))
            .collect::<Vec<_>>(),
        vec![(address(&carol_key, 1), id, b"from carol".to_vec())]
    );
    let req = bob.req();
    assert_eq!(
        bob.call(ClientFrame::AckEnvelopes {
            req,
            envelopes: vec![(address(&carol_key, 1), id)]
        })
        .await,
        Ok(Response::Acked { deleted: 1 })
    );
    r.relay.shutdown().await.unwrap();
}
