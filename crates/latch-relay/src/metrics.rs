//! Prometheus metrics, served as text at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The relay's metrics. Labels never carry keys or handles (cardinality and privacy).
pub struct Metrics {
    registry: Registry,
    /// Open WebSocket connections.
    pub connections: Gauge,
    /// Authenticated connections.
    pub authenticated: Gauge,
    /// Envelopes committed to a mailbox.
    pub envelopes_in: Counter,
    /// Envelopes written to a recipient's connection.
    pub envelopes_out: Counter,
    /// Envelopes deleted by recipients' acks.
    pub envelopes_acked: Counter,
    /// Times a slow connection's live feed overflowed and it re-read its mailbox.
    pub delivery_catchups: Counter,
    /// Envelopes queued across all mailboxes (set at scrape time).
    pub queue_depth: Gauge,
    /// Seconds from receiving a `Send` frame to its durable commit.
    pub commit_latency: Histogram,
    /// Error replies, by code.
    pub errors: Family<Vec<(String, String)>, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("latch_relay");
        let connections = Gauge::default();
        let authenticated = Gauge::default();
        let envelopes_in = Counter::default();
        let envelopes_out = Counter::default();
        let envelopes_acked = Counter::default();
        let queue_depth = Gauge::default();
        let delivery_catchups = Counter::default();
        // 0.1 ms .. ~1.6 s: group commits take milliseconds; seconds means trouble.
        let commit_latency = Histogram::new(exponential_buckets(0.0001, 2.0, 15));
        let errors = Family::default();
        registry.register(
            "connections",
            "Open WebSocket connections",
            connections.clone(),
        );
        registry.register(
            "authenticated",
            "Authenticated connections",
            authenticated.clone(),
        );
        registry.register("envelopes_in", "Envelopes committed", envelopes_in.clone());
        registry.register(
            "envelopes_out",
            "Envelopes delivered to connections",
            envelopes_out.clone(),
        );
        registry.register(
            "envelopes_acked",
            "Envelopes deleted by acks",
            envelopes_acked.clone(),
        );
        registry.register(
            "queue_depth",
            "Envelopes queued in all mailboxes",
            queue_depth.clone(),
        );
        registry.register(
            "commit_latency_seconds",
            "Send frame received to durable commit",
            commit_latency.clone(),
        );
        registry.register("errors", "Error replies by code", errors.clone());
        registry.register(
            "delivery_catchups",
            "Live feeds that overflowed and re-read the mailbox",
            delivery_catchups.clone(),
        );
        Self {
            registry,
            connections,
            authenticated,
            envelopes_in,
            envelopes_out,
            envelopes_acked,
            delivery_catchups,
            queue_depth,
            commit_latency,
            errors,
        }
    }
}

impl Metrics {
    /// Count an error reply.
    pub fn error(&self, code: crate::api::ErrorCode) {
        self.errors
            .get_or_create(&vec![("code".to_owned(), format!("{code:?}"))])
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
