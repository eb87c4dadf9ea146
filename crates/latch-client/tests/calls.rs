//! Call signalling between engines through a real relay on loopback: the offer, ringing,
//! answer, candidates and hang-up travel as encrypted messages in the 1:1 session, and both
//! ends agree the same frame keys. Media transport is not in this layer: the tests stand in
//! for it with made-up DTLS fingerprints and ICE credentials, which is all it hands the engine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use latch_call::{CallId, DtlsFingerprint, IceCredentials, MediaKind, MediaStream};
use latch_client::{ConnectionState, Engine, Event, LocalTransport, Profiles};
use latch_store::{ConversationId, MemoryKeyStore};
use tokio::sync::broadcast;

struct Net {
    _dir: tempfile::TempDir,
    _relay: latch_relay::server::RunningRelay,
    url: String,
    profiles: Profiles,
}

async fn net() -> Net {
    let dir = tempfile::tempdir().unwrap();
    let relay = latch_relay::server::start(
        latch_relay::config::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database: dir.path().join("relay.db"),
            ..latch_relay::config::Config::default()
        },
        Arc::new(latch_relay::clock::SystemClock),
    )
    .await
    .unwrap();
    let url = format!("ws://{}", relay.local_addr());
    let profiles = Profiles::new(dir.path(), Box::new(MemoryKeyStore::new()));
    Net {
        _dir: dir,
        _relay: relay,
        url,
        profiles,
    }
}

async fn person(net: &Net, name: &str) -> Engine {
    let e = Engine::new(net.profiles.create(name, &net.url).unwrap()).unwrap();
    e.register(name).await.unwrap();
    e.start();
    let mut c = e.connection();
    tokio::time::timeout(
        Duration::from_secs(30),
        c.wait_for(|s| *s == ConnectionState::Online),
    )
    .await
    .unwrap()
    .unwrap();
    e
}

/// `a` adds `b` and writes; `b` accepts the request and answers, so both have a session and
/// both are accepted contacts. Returns both sides' chat ids.
async fn befriend(
    a: &Engine,
    b: &Engine,
    b_name: &str,
    a_name: &str,
) -> (ConversationId, ConversationId) {
    let mut b_events = b.subscribe();
    let contact = a.add_contact(b_name).await.unwrap();
    let chat_a = a.open_standard_chat(contact).unwrap();
    a.send_text(chat_a, "hi").unwrap();
    let chat_b = loop {
        if let Event::Message { message } = next(&mut b_events).await {
            break ConversationId(message.conversation_id);
        }
    };
    b.accept_request(b.contact_by_handle(a_name).unwrap().id)
        .unwrap();
    (chat_a, chat_b)
}

async fn next(events: &mut broadcast::Receiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .expect("no event within 30 s")
        .unwrap()
}

/// Waits for a call event in `state`; returns (call id, reason, remote video).
async fn call_state(
    events: &mut broadcast::Receiver<Event>,
    state: &str,
) -> (CallId, Option<&'static str>, bool) {
    loop {
        if let Event::Call {
            call_id,
            state: s,
            reason,
            remote_video,
            ..
        } = next(events).await
            && s == state
        {
            let mut id = [0u8; 16];
            id.copy_from_slice(&hex::decode(call_id).unwrap());
            return (CallId(id), reason, remote_video);
        }
    }
}

/// Waits for the call row written into a chat; returns (chat, outcome, kind, seconds).
async fn call_record(
    events: &mut broadcast::Receiver<Event>,
) -> (i64, &'static str, &'static str, Option<u64>) {
    loop {
        if let Event::Message { message } = next(events).await
            && let Some(call) = message.call
        {
            assert_eq!(message.body, "", "a call row carries no text");
            return (
                message.conversation_id,
                call.outcome,
                call.kind,
                call.duration_secs,
            );
        }
    }
}

fn transport(n: u8) -> LocalTransport {
    LocalTransport {
        dtls: DtlsFingerprint([n; 32]),
        ice: IceCredentials {
            ufrag: format!("ufrag{n}"),
            pwd: format!("password0123456789abcd{n}"),
        },
        candidates: vec![format!(
            "candidate:{n} 1 udp 2130706431 127.0.0.1 {} typ host",
            5000 + u16::from(n)
        )],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_rings_is_answered_and_both_ends_hold_the_same_frame_keys() {
    let net = net().await;
    let alice = person(&net, "alice").await;
    let bob = person(&net, "bob").await;
    let (chat_a, chat_b) = befriend(&alice, &bob, "bob", "alice").await;
    let (mut ea, mut eb) = (alice.subscribe(), bob.subscribe());

    let id = alice
        .place_call(chat_a, MediaKind::Video, transport(1))
        .unwrap();
    let (rung, _, _) = call_state(&mut eb, "ringing").await;
    assert_eq!(rung, id);
    // Alice hears that Bob's device rings.
    call_state(&mut ea, "ringing").await;
    // Keys exist only once both sides are known.
    assert!(bob.take_call_media(id).is_none());

    bob.accept_call(id, false, transport(2)).unwrap();
    let (_, _, alice_sees_video) = call_state(&mut ea, "connecting").await;
    assert!(!alice_sees_video, "Bob answered without his camera");
    let mut on_alice = alice.take_call_media(id).unwrap();
    let mut on_bob = bob.take_call_media(id).unwrap();
    assert!(alice.take_call_media(id).is_none(), "handed out once");
    assert_eq!(on_alice.conversation_id, chat_a);
    assert_eq!(on_bob.conversation_id, chat_b);
    assert_eq!(on_alice.remote.dtls, transport(2).dtls);
    assert_eq!(on_bob.remote.dtls, transport(1).dtls);
    assert_eq!(on_bob.remote.candidates, transport(1).candidates);

    let mut seal = on_alice.secrets.sealer(MediaStream::Audio).unwrap();
    let mut open = on_bob.secrets.opener(MediaStream::Audio).unwrap();
    let frame = seal.seal(b"", b"twenty ms of opus").unwrap();
    assert_eq!(open.open(b"", &frame).unwrap(), b"twenty ms of opus");
    let mut back = on_bob.secrets.sealer(MediaStream::Video).unwrap();
    let mut back_open = on_alice.secrets.opener(MediaStream::Video).unwrap();
    let frame = back.seal(&[0x90], b"a vp8 frame").unwrap();
    assert_eq!(back_open.open(&[0x90], &frame).unwrap(), b"a vp8 frame");
    on_alice.remote.candidates.clear();
    on_bob.remote.candidates.clear();

    // Trickled candidates reach the other side's transport.
    let late = vec![
        "candidate:9 1 udp 1694498815 192.0.2.1 6000 typ srflx raddr 0.0.0.0 rport 0".to_owned(),
    ];
    bob.send_call_candidates(id, late.clone()).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let c = alice.take_remote_candidates(id);
            if !c.is_empty() {
                return c;
            }
            // Candidates are state, not events: poll the engine until they land.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(got, late);

    alice.call_media_connected(id);
    bob.call_media_connected(id);
    call_state(&mut ea, "connected").await;
    bob.hang_up_call(id).unwrap();
    let (_, reason, _) = call_state(&mut ea, "ended").await;
    assert_eq!(reason, Some("hung_up"));
    let (chat, outcome, kind, secs) = call_record(&mut ea).await;
    assert_eq!((chat, outcome, kind), (chat_a.0, "completed", "video"));
    assert!(secs.is_some(), "a connected call shows its duration");
    let (_, reason, _) = call_state(&mut eb, "ended").await;
    assert_eq!(reason, Some("hung_up"));
    assert_eq!(call_record(&mut eb).await.1, "completed");
    // The line is free again.
    assert!(
        alice
            .place_call(chat_a, MediaKind::Audio, transport(3))
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_cancelled_and_busy_calls_end_with_their_reason_on_both_sides() {
    let net = net().await;
    let alice = person(&net, "alice").await;
    let bob = person(&net, "bob").await;
    let carol = person(&net, "carol").await;
    let (chat_ab, chat_ab_on_bob) = befriend(&alice, &bob, "bob", "alice").await;
    let (chat_cb, _) = befriend(&carol, &bob, "bob", "carol").await;
    let (mut ea, mut eb, mut ec) = (alice.subscribe(), bob.subscribe(), carol.subscribe());

    let id = alice
        .place_call(chat_ab, MediaKind::Audio, transport(1))
        .unwrap();
    call_state(&mut eb, "ringing").await;
    bob.decline_call(id).unwrap();
    assert_eq!(call_state(&mut ea, "ended").await.1, Some("declined"));
    assert_eq!(call_record(&mut ea).await.1, "declined");
    assert_eq!(call_state(&mut eb, "ended").await.1, Some("declined"));
    assert_eq!(call_record(&mut eb).await.1, "declined");

    let id = alice
        .place_call(chat_ab, MediaKind::Audio, transport(1))
        .unwrap();
    call_state(&mut eb, "ringing").await;
    alice.hang_up_call(id).unwrap();
    assert_eq!(call_state(&mut ea, "ended").await.1, Some("cancelled"));
    assert_eq!(call_record(&mut ea).await.1, "cancelled");
    assert_eq!(call_state(&mut eb, "ended").await.1, Some("cancelled"));
    assert_eq!(call_record(&mut eb).await.1, "missed");

    // Bob is in a call with Alice when Carol calls: Carol hears busy, Alice's call goes on.
    let id = alice
        .place_call(chat_ab, MediaKind::Audio, transport(1))
        .unwrap();
    call_state(&mut eb, "ringing").await;
    bob.accept_call(id, false, transport(2)).unwrap();
    call_state(&mut ea, "connecting").await;
    carol
        .place_call(chat_cb, MediaKind::Video, transport(3))
        .unwrap();
    assert_eq!(call_state(&mut ec, "ended").await.1, Some("busy"));
    assert_eq!(call_record(&mut ec).await.1, "busy");
    // Bob's side records Carol's call as missed, and his call with Alice is still there.
    assert_eq!(call_state(&mut eb, "ended").await.1, Some("busy"));
    let (chat, outcome, kind, _) = call_record(&mut eb).await;
    assert_eq!((outcome, kind), ("missed", "video"));
    assert_ne!(chat, chat_ab_on_bob.0, "in Carol's chat, not Alice's");
    assert!(
        alice
            .place_call(chat_ab, MediaKind::Audio, transport(1))
            .is_err(),
        "busy here too"
    );
    bob.hang_up_call(id).unwrap();
    assert_eq!(call_state(&mut ea, "ended").await.1, Some("hung_up"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_request_cannot_ring_and_cannot_be_called() {
    let net = net().await;
    let bob = person(&net, "bob").await;
    let mallory = person(&net, "mallory").await;
    let mut eb = bob.subscribe();
    let contact = mallory.add_contact("bob").await.unwrap();
    let chat_m = mallory.open_standard_chat(contact).unwrap();
    mallory.send_text(chat_m, "hello, stranger").unwrap();
    let chat_b = loop {
        if let Event::Message { message } = next(&mut eb).await {
            break ConversationId(message.conversation_id);
        }
    };
    // Mallory has a session and calls; Bob never accepted her, so nothing rings.
    let first = mallory
        .place_call(chat_m, MediaKind::Video, transport(6))
        .unwrap();
    loop {
        match next(&mut eb).await {
            Event::Call { state, reason, .. } => {
                assert_eq!((state, reason), ("ended", Some("not_allowed")));
                break;
            }
            other => assert!(!matches!(other, Event::Call { .. }), "{other:?}"),
        }
    }
    // It shows in the request's chat as missed, and unread.
    let (chat, outcome, _, _) = call_record(&mut eb).await;
    assert_eq!((chat, outcome), (chat_b.0, "missed"));
    let row = bob.messages(chat_b, None, 10).unwrap().pop().unwrap();
    assert_eq!(row.status, "received");

    // Calling again and again leaves one missed call, not a row per try.
    mallory.hang_up_call(first).unwrap();
    let mut em = mallory.subscribe();
    for _ in 0..3 {
        let id = mallory
            .place_call(chat_m, MediaKind::Audio, transport(6))
            .unwrap();
        call_state(&mut em, "dialing").await;
        mallory.hang_up_call(id).unwrap();
        call_state(&mut em, "ended").await;
        let (_, reason, _) = call_state(&mut eb, "ended").await;
        assert_eq!(reason, Some("not_allowed"));
    }
    // A text after the tries: once it is here, every try before it was handled.
    mallory.send_text(chat_m, "are you there?").unwrap();
    loop {
        if let Event::Message { message } = next(&mut eb).await
            && message.body == "are you there?"
        {
            break;
        }
    }
    let calls = bob
        .messages(chat_b, None, 50)
        .unwrap()
        .into_iter()
        .filter(|m| m.call.is_some())
        .count();
    assert_eq!(calls, 1);
    let err = bob
        .place_call(chat_b, MediaKind::Audio, transport(2))
        .unwrap_err();
    assert!(
        err.to_string().contains("accept the message request"),
        "{err}"
    );
}

/// A speaker that hands every frame it is given to the test.
struct Recorder(tokio::sync::mpsc::UnboundedSender<Vec<i16>>);

impl latch_call::audio::AudioSink for Recorder {
    fn write(&mut self, frame: &[i16]) {
        let _ = self.0.send(frame.to_vec());
    }
}

/// A microphone that stays silent.
struct Silence;

impl latch_call::audio::AudioSource for Silence {
    fn read(&mut self, frame: &mut [i16]) -> bool {
        frame.fill(0);
        true
    }
}

/// The first frame index from which `window` frames in a row carry mostly `hz`.
fn tone_starts(frames: &[Vec<i16>], hz: f64, window: usize) -> Option<usize> {
    (0..frames.len().saturating_sub(window))
        .find(|&i| latch_call::audio::tone_share(&frames[i..i + window].concat(), hz) > 0.8)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_carries_the_callers_voice_to_the_callee_through_real_sockets() {
    use latch_call::audio::ToneSource;
    use latch_client::CallDevices;
    let net = net().await;
    let alice = person(&net, "alice").await;
    let bob = person(&net, "bob").await;
    for e in [&alice, &bob] {
        e.set_call_hosts(vec![std::net::Ipv4Addr::LOCALHOST.into()]);
    }
    let (chat_a, _) = befriend(&alice, &bob, "bob", "alice").await;
    let (mut ea, mut eb) = (alice.subscribe(), bob.subscribe());

    // Alice says 440 Hz for 1.5 s, then 880 Hz for 1.5 s; Bob records what he hears.
    let voice = ToneSource::new(vec![(440.0, 75), (880.0, 75)]);
    let id = alice
        .start_call(
            chat_a,
            MediaKind::Audio,
            CallDevices {
                microphone: Box::new(voice),
                speaker: Box::new(Recorder(tokio::sync::mpsc::unbounded_channel().0)),
            },
        )
        .await
        .unwrap();
    call_state(&mut eb, "ringing").await;
    let (heard_tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    bob.answer_call(
        id,
        false,
        CallDevices {
            microphone: Box::new(Silence),
            speaker: Box::new(Recorder(heard_tx)),
        },
    )
    .await
    .unwrap();
    call_state(&mut ea, "connected").await;
    call_state(&mut eb, "connected").await;

    let mut frames = Vec::new();
    while frames.len() < 200 {
        let f = tokio::time::timeout(Duration::from_secs(30), heard.recv())
            .await
            .expect("Bob's speaker stopped getting frames")
            .unwrap();
        frames.push(f);
    }
    let low = tone_starts(&frames, 440.0, 10).expect("the 440 Hz tone never arrived");
    let high = tone_starts(&frames, 880.0, 10).expect("the 880 Hz tone never arrived");
    assert!(low < high, "440 Hz at frame {low}, 880 Hz at {high}");
    // The second tone starts 75 frames after the first, give or take the jitter buffer.
    assert!((70..=80).contains(&(high - low)), "{low} → {high}");

    alice.hang_up_call(id).unwrap();
    assert_eq!(call_state(&mut eb, "ended").await.1, Some("hung_up"));
    // Bob's media task stopped with the call: his speaker gets nothing more.
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        while heard.recv().await.is_some() {}
    })
    .await;
    assert!(
        rest.is_ok(),
        "the media task kept running after the call ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_a_secret_chat_stays_in_it_and_its_row_disappears_with_the_chat() {
    let net = net().await;
    let alice = person(&net, "alice").await;
    let bob = person(&net, "bob").await;
    let (chat_a, chat_b) = befriend(&alice, &bob, "bob", "alice").await;
    let mut eb = bob.subscribe();
    let contact = alice.contact_by_handle("bob").unwrap().id;
    let secret_a = alice.start_secret_chat(contact, 30).await.unwrap();
    let secret_b = loop {
        if let Event::ConversationStarted {
            conversation_id,
            kind: "secret",
        } = next(&mut eb).await
        {
            break ConversationId(conversation_id);
        }
    };
    assert_ne!(secret_b, chat_b);
    let mut ea = alice.subscribe();

    let id = alice
        .place_call(secret_a, MediaKind::Audio, transport(1))
        .unwrap();
    // The ring belongs to Bob's secret chat, not his standard one.
    loop {
        if let Event::Call {
            state: "ringing",
            conversation_id,
            ..
        } = next(&mut eb).await
        {
            assert_eq!(conversation_id, secret_b.0);
            break;
        }
    }
    bob.decline_call(id).unwrap();
    let (chat, outcome, _, _) = call_record(&mut ea).await;
    assert_eq!((chat, outcome), (secret_a.0, "declined"));
    let (chat, outcome, _, _) = call_record(&mut eb).await;
    assert_eq!((chat, outcome), (secret_b.0, "declined"));
    for (engine, chat) in [(&alice, secret_a), (&bob, secret_b)] {
        let row = engine
            .messages(chat, None, 10)
            .unwrap()
            .into_iter()
            .find(|m| m.call.is_some())
            .unwrap();
        assert!(
            row.expires_at.is_some(),
            "a secret chat's call row disappears"
        );
    }
    // Nothing of it in the standard chat.
    assert!(
        alice
            .messages(chat_a, None, 50)
            .unwrap()
            .iter()
            .all(|m| m.call.is_none())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_answer_keeps_the_first_answers_keys() {
    let net = net().await;
    let alice = person(&net, "alice").await;
    let bob = person(&net, "bob").await;
    let (chat_a, _) = befriend(&alice, &bob, "bob", "alice").await;
    let (mut ea, mut eb) = (alice.subscribe(), bob.subscribe());

    // A double click on Answer: the second is refused and the first answer's keys stand. (The
    // two accepts here run one after the other; the race the engine guards against, a second
    // accept between the first's accept and its key agreement, is not reproduced: this guards
    // the outcome against regressions.)
    let id = alice
        .place_call(chat_a, MediaKind::Audio, transport(1))
        .unwrap();
    call_state(&mut eb, "ringing").await;
    bob.accept_call(id, false, transport(2)).unwrap();
    assert!(bob.accept_call(id, false, transport(3)).is_err());
    call_state(&mut ea, "connecting").await;
    let on_alice = alice.take_call_media(id).unwrap();
    let on_bob = bob.take_call_media(id).unwrap();
    assert_eq!(
        on_alice.remote.dtls,
        transport(2).dtls,
        "the first answer went out"
    );
    let mut seal = on_bob.secrets.sealer(MediaStream::Audio).unwrap();
    let mut open = on_alice.secrets.opener(MediaStream::Audio).unwrap();
    let frame = seal.seal(b"", b"still the same keys").unwrap();
    assert_eq!(open.open(b"", &frame).unwrap(), b"still the same keys");
    alice.hang_up_call(id).unwrap();
    call_state(&mut ea, "ended").await;
    call_state(&mut eb, "ended").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muting_sends_silence_and_unmuting_brings_the_voice_back() {
    use latch_call::audio::ToneSource;
    use latch_client::CallDevices;
    let net = net().await;
    let alice = person(&net, "alice").await;
    let bob = person(&net, "bob").await;
    for e in [&alice, &bob] {
        e.set_call_hosts(vec![std::net::Ipv4Addr::LOCALHOST.into()]);
    }
    let (chat_a, _) = befriend(&alice, &bob, "bob", "alice").await;
    let (mut ea, mut eb) = (alice.subscribe(), bob.subscribe());
    let id = alice
        .start_call(
            chat_a,
            MediaKind::Audio,
            CallDevices {
                microphone: Box::new(ToneSource::new(vec![(440.0, 50 * 120)])),
                speaker: Box::new(Recorder(tokio::sync::mpsc::unbounded_channel().0)),
            },
        )
        .await
        .unwrap();
    call_state(&mut eb, "ringing").await;
    assert!(
        bob.set_call_muted(id, true).is_err(),
        "no media of this call runs on Bob's side yet"
    );
    let (heard_tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    bob.answer_call(
        id,
        false,
        CallDevices {
            microphone: Box::new(Silence),
            speaker: Box::new(Recorder(heard_tx)),
        },
    )
    .await
    .unwrap();
    call_state(&mut ea, "connected").await;

    // Waits until `n` frames in a row are loud (or quiet); the frames are the signal, and
    // ten seconds (500 frames) is far more than a change needs to cross the jitter buffer.
    async fn run_of(
        heard: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<i16>>,
        loud: bool,
        n: usize,
    ) {
        let mut run = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while run < n {
            let f = tokio::time::timeout_at(deadline, heard.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no run of {n} {} frames",
                        if loud { "loud" } else { "quiet" }
                    )
                })
                .unwrap();
            let peak = f.iter().map(|&x| i32::from(x).abs()).max().unwrap_or(0);
            run = if (peak > 2_000) == loud { run + 1 } else { 0 };
        }
    }
    run_of(&mut heard, true, 20).await;
    alice.set_call_muted(id, true).unwrap();
    run_of(&mut heard, false, 20).await;
    alice.set_call_muted(id, false).unwrap();
    run_of(&mut heard, true, 20).await;
    // Muted is not lost: the call stayed connected throughout.
    alice.hang_up_call(id).unwrap();
    let (_, reason, _) = call_state(&mut eb, "ended").await;
    assert_eq!(reason, Some("hung_up"));
}
