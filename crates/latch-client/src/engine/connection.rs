//! The relay connection: connecting with back-off, serving what the relay pushes, and
//! acknowledging envelopes once their effects are committed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use latch_relay::api::ClientFrame;
use tokio::sync::watch;

use crate::events::{ConnectionState, Event};
use crate::profile::{PRIMARY_DEVICE_ID, now_ms};
use crate::relay::{Inbound, Relay, RelayError};

use super::{ACK_BATCH, ClientError, Engine, SEEN_ENVELOPE_RETENTION_MS, backoff};

/// How often an idle connection pings the relay by default: well inside the relay's
/// two-minute idle timeout.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// How often a long-lived connection checks whether the signed prekeys are due to rotate.
const ROTATION_CHECK_INTERVAL: Duration = Duration::from_secs(3_600);

impl Engine {
    fn set_connection(&self, state: ConnectionState) {
        let changed = self.inner.connection.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
        if changed {
            self.emit(Event::Connection { state });
        }
    }

    pub(super) async fn connection_loop(&self) {
        let mut stop = self.inner.shutdown.subscribe();
        let mut failures = 0u32;
        while !*stop.borrow() {
            self.set_connection(ConnectionState::Connecting);
            match self.connect_and_serve(&mut stop).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    tracing::info!(error = %e, "relay connection ended");
                    failures = failures.saturating_add(1);
                }
            }
            *self.inner.relay.write().await = None;
            if *stop.borrow() {
                break;
            }
            self.set_connection(ConnectionState::Offline);
            tokio::select! {
                () = tokio::time::sleep(backoff(failures)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn connect_and_serve(&self, stop: &mut watch::Receiver<bool>) -> Result<(), ClientError> {
        if self.handle()?.is_none() {
            return Err(ClientError::NotRegistered);
        }
        let url = self.relay_url()?;
        let (relay, mut inbound) =
            Relay::connect(&url, &self.inner.profile.identity, PRIMARY_DEVICE_ID, false).await?;
        *self.inner.relay.write().await = Some(relay.clone());
        self.set_connection(ConnectionState::Online);
        self.write(|tx| tx.prune_seen_envelopes(now_ms() - SEEN_ENVELOPE_RETENTION_MS))?;
        self.rotate_prekeys(&relay).await?;
        if relay.replenish {
            self.replenish_prekeys(&relay, relay.one_time_prekeys)
                .await?;
        }
        self.release_all_held().await;
        self.inner.outbox_changed.notify_one();
        let mut unacked: Option<u64> = None;
        let mut pending_acks = 0u32;
        // The relay drops a connection that is silent for a while, and a connection whose
        // other end vanished (sleep, a NAT dropping state) stays open here until something is
        // written to it: a ping now and then answers both.
        let period = self.keepalive_interval();
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rotation = tokio::time::interval_at(
            tokio::time::Instant::now() + ROTATION_CHECK_INTERVAL,
            ROTATION_CHECK_INTERVAL,
        );
        loop {
            let item = tokio::select! {
                item = inbound.recv() => item,
                _ = keepalive.tick() => {
                    // Answered, or the connection is gone and the loop reconnects.
                    relay.request(|req| ClientFrame::Ping { req }).await?;
                    continue;
                }
                _ = rotation.tick() => {
                    self.rotate_prekeys(&relay).await?;
                    continue;
                }
                _ = stop.changed() => {
                    relay.close().await;
                    return Ok(());
                }
            };
            match item {
                Some(Inbound::Envelope(env)) => {
                    let seq = env.seq;
                    if self.receive(&relay, env).await {
                        unacked = Some(seq);
                        pending_acks += 1;
                    } else {
                        // Not processed (store failure, sender not checkable now): acknowledge
                        // what came before, then reconnect so the relay delivers it again.
                        self.ack(&relay, &mut unacked, &mut pending_acks).await?;
                        relay.close().await;
                        return Err(ClientError::Invalid(
                            "an envelope could not be processed yet",
                        ));
                    }
                }
                Some(Inbound::BacklogDone) => {
                    self.ack(&relay, &mut unacked, &mut pending_acks).await?;
                    self.emit(Event::Synced);
                }
                Some(Inbound::PrekeysLow { remaining }) => {
                    self.replenish_prekeys(&relay, remaining).await?;
                }
                None => return Err(ClientError::Relay(RelayError::Unreachable)),
            }
            if inbound.is_empty() || pending_acks >= ACK_BATCH {
                self.ack(&relay, &mut unacked, &mut pending_acks).await?;
            }
        }
    }

    /// How often an idle connection pings the relay.
    fn keepalive_interval(&self) -> Duration {
        Duration::from_millis(self.inner.keepalive_ms.load(Ordering::Relaxed).max(1))
    }

    /// Sets how often an idle connection pings the relay: [`KEEPALIVE_INTERVAL`] unless the
    /// relay drops idle connections sooner than its default of two minutes. Applies from the
    /// next connection.
    pub fn set_keepalive_interval(&self, every: Duration) {
        let ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX).max(1);
        self.inner.keepalive_ms.store(ms, Ordering::Relaxed);
    }

    pub(super) async fn ack(
        &self,
        relay: &Relay,
        unacked: &mut Option<u64>,
        pending: &mut u32,
    ) -> Result<(), ClientError> {
        if let Some(seq) = unacked.take() {
            relay
                .send_only(|req| ClientFrame::AckThrough { req, seq })
                .await?;
        }
        *pending = 0;
        Ok(())
    }
}
