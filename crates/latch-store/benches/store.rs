#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]
//! Store benchmarks, SQLCipher against plain SQLite through the same code in the same run.
//!
//! `cargo bench -p latch-store --bench store` prints a table of figures.

use std::time::{Duration, Instant};

use latch_store::*;

const MESSAGES: usize = 10_000;
const RUNS: usize = 7;

/// CPU time of the calling thread in ns (`CLOCK_THREAD_CPUTIME_ID`): unlike wall time it
/// does not count time spent preempted by other processes, which dominate on a shared
/// 2-core machine. SQLite runs on the calling thread, so this is the store's own work.
fn thread_cpu_ns() -> u64 {
    cpu_time::ThreadTime::now().as_duration().as_nanos() as u64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[idx]
}

fn setup(dir: &std::path::Path, key: Option<&DatabaseKey>) -> (Store, ConversationId) {
    let opts = StoreOptions::default();
    let store = match key {
        Some(k) => Store::create(dir, k, &opts).unwrap(),
        None => Store::create_unencrypted(dir, &opts).unwrap(),
    };
    let conv = store
        .write(|tx| {
            let (bob, _) = tx.observe_identity("bob", b"key", 0)?;
            tx.create_conversation(bob, ConversationKind::Standard, None, 0)
        })
        .unwrap();
    (store, conv)
}

fn insert_all(store: &Store, conv: ConversationId) -> (f64, f64) {
    let bodies: Vec<String> = (0..MESSAGES)
        .map(|i| format!("message number {i}: the quick brown fox jumps over the lazy dog"))
        .collect();
    let cpu = thread_cpu_ns();
    let start = Instant::now();
    store
        .write(|tx| {
            for (i, body) in bodies.iter().enumerate() {
                tx.insert_message(&NewMessage {
                    conversation_id: conv,
                    direction: Direction::Incoming,
                    status: MessageStatus::Received,
                    body,
                    sent_at: i as i64,
                    received_at: Some(i as i64),
                    expires_at: None,
                    remote_id: None,
                    expire_after_secs: None,
                })?;
            }
            Ok(())
        })
        .unwrap();
    (
        start.elapsed().as_secs_f64() * 1e3,
        (thread_cpu_ns() - cpu) as f64 / 1e6,
    )
}

fn page_read(store: &Store, conv: ConversationId, i: usize) -> (f64, f64) {
    // Alternate the newest page and one from the middle of the history.
    let cursor = (i % 2 == 1).then_some(PageCursor {
        sent_at: (MESSAGES / 2) as i64,
        id: MessageId((MESSAGES / 2) as i64),
    });
    let cpu = thread_cpu_ns();
    let start = Instant::now();
    let p = store
        .write(|tx| tx.conversation_page(conv, cursor, 50))
        .unwrap();
    let t = start.elapsed().as_secs_f64() * 1e6;
    let c = (thread_cpu_ns() - cpu) as f64 / 1e3;
    assert_eq!(p.len(), 50);
    (t, c)
}

fn push(into: &mut [Vec<f64>; 2], (wall, cpu): (f64, f64)) {
    into[0].push(wall);
    into[1].push(cpu);
}

fn report(
    what: &str,
    unit: &str,
    cipher: &mut [Vec<f64>; 2],
    plain: &mut [Vec<f64>; 2],
    target: bool,
) {
    println!("{what}:");
    for (i, kind) in ["wall", "cpu "].iter().enumerate() {
        let (c, p) = (median(&mut cipher[i]), median(&mut plain[i]));
        let (cm, pm) = (
            percentile(&mut cipher[i], 0.0),
            percentile(&mut plain[i], 0.0),
        );
        println!(
            "  {kind} median: sqlcipher {c:8.1} {unit}  plain {p:8.1} {unit}  ratio {:.3}   min: {cm:8.1} / {pm:8.1}  ratio {:.3}{}",
            c / p,
            cm / pm,
            if target { "  (target <= 1.15)" } else { "" }
        );
    }
}

fn bench_insert_and_page() {
    let key = DatabaseKey::generate().unwrap();
    let new = || [Vec::new(), Vec::new()];
    let (mut ins_c, mut ins_p, mut page_c, mut page_p, mut cold_c, mut cold_p) =
        (new(), new(), new(), new(), new(), new());
    for _ in 0..RUNS {
        let cipher_dir = tempfile::tempdir().unwrap();
        let plain_dir = tempfile::tempdir().unwrap();
        let (cipher, cconv) = setup(cipher_dir.path(), Some(&key));
        let (plain, pconv) = setup(plain_dir.path(), None);
        // Alternate the two modes so load from other processes hits both alike.
        push(&mut ins_c, insert_all(&cipher, cconv));
        push(&mut ins_p, insert_all(&plain, pconv));
        // Warm page reads, interleaved read by read.
        for i in 0..400 {
            push(&mut page_c, page_read(&cipher, cconv, i));
            push(&mut page_p, page_read(&plain, pconv, i));
        }
        cipher.close().unwrap();
        plain.close().unwrap();
        // Cold page read: reopen, then the first page (pages decrypted from disk).
        let opts = StoreOptions::default();
        let cipher = Store::open(cipher_dir.path(), &key, &opts).unwrap();
        push(&mut cold_c, page_read(&cipher, cconv, 0));
        let plain = Store::open_unencrypted(plain_dir.path(), &opts).unwrap();
        push(&mut cold_p, page_read(&plain, pconv, 0));
    }
    report(
        &format!("insert {MESSAGES} messages in one transaction ({RUNS} runs)"),
        "ms",
        &mut ins_c,
        &mut ins_p,
        true,
    );
    report(
        &format!("conversation page of 50, warm cache ({RUNS} x 400 interleaved reads)"),
        "us",
        &mut page_c,
        &mut page_p,
        true,
    );
    report(
        &format!("conversation page of 50, first read after reopening ({RUNS} runs)"),
        "us",
        &mut cold_c,
        &mut cold_p,
        false,
    );
}

fn bench_open() {
    let key = DatabaseKey::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, conv) = setup(dir.path(), Some(&key));
    insert_all(&store, conv);
    store.close().unwrap();
    let mut times = Vec::new();
    for _ in 0..30 {
        let start = Instant::now();
        let store = Store::open(dir.path(), &key, &StoreOptions::default()).unwrap();
        times.push(start.elapsed().as_secs_f64() * 1e3);
        store.close().unwrap();
    }
    let med = median(&mut times);
    let p95 = percentile(&mut times, 0.95);
    println!("open profile with raw key ({MESSAGES} messages, 30 opens):");
    println!("  median {med:.2} ms   p95 {p95:.2} ms   (target < 20 ms)");
}

fn bench_sweeper(n: i64, spacing_ms: i64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let key = DatabaseKey::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (store, conv) = setup(dir.path(), Some(&key));
        let mut events = store.subscribe();
        let sweeper = Sweeper::spawn(store.clone()).unwrap();
        // All expiries are written (one transaction) well before the first is due, so the
        // figure measures the sweeper, not contention with the writer.
        let base = store.clock().now_ms() + 1_000;
        store
            .write(|tx| {
                for i in 0..n {
                    tx.insert_message(&NewMessage {
                        conversation_id: conv,
                        direction: Direction::Incoming,
                        status: MessageStatus::Received,
                        body: "disappearing",
                        sent_at: i,
                        received_at: Some(i),
                        expires_at: Some(base + i * spacing_ms),
                        remote_id: None,
                        expire_after_secs: None,
                    })?;
                }
                Ok(())
            })
            .unwrap();
        let mut delays = Vec::new();
        while delays.len() < n as usize {
            let ev = tokio::time::timeout(Duration::from_secs(10), events.recv())
                .await
                .unwrap()
                .unwrap();
            let now = SystemClock.now_ms();
            if let StoreEvent::MessagesExpired { messages, .. } = ev {
                for m in messages {
                    delays.push((now - m.expires_at) as f64);
                }
            }
        }
        sweeper.stop().await;
        let p50 = percentile(&mut delays, 0.5);
        let p99 = percentile(&mut delays, 0.99);
        let max = percentile(&mut delays, 1.0);
        println!(
            "sweeper delay expires_at -> deletion event ({n} expiries, {spacing_ms} ms apart):"
        );
        println!("  p50 {p50:.0} ms   p99 {p99:.0} ms   max {max:.0} ms   (target p99 < 100 ms)");
    });
}

fn main() {
    // `cargo test --benches` passes `--bench`-less args; only run when benchmarking.
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    bench_insert_and_page();
    bench_open();
    bench_sweeper(100, 100);
    bench_sweeper(200, 17);
}
