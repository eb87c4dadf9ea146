//! The outbox pump: sends queued envelopes in order per recipient device, a window at a
//! time, and records each outcome (sent, retry with back-off, failed for good).

use std::collections::HashSet;
use std::time::Duration;

use latch_relay::api::{self, ClientFrame, ErrorCode};
use latch_store::{MessageStatus, StoreError, Tx, UnixMillis};

use crate::events::{Event, MessageView};
use crate::profile::now_ms;
use crate::relay::RelayError;
use crate::wire::ThreadTag;

use super::{
    BACKOFF_MAX, ClientError, Engine, OUTBOX_BATCH, SEND_WINDOW, backoff, session_address,
};

impl Engine {
    /// Waits until the outbox is empty (everything acknowledged by the relay) or `timeout`
    /// passes. Returns whether it emptied.
    ///
    /// # Errors
    /// A database error.
    pub async fn flush(&self, timeout: Duration) -> Result<bool, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the check, so progress between the two is not missed.
            let progress = self.inner.outbox_progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            if self.write(|tx| tx.outbox_len())? == 0 {
                return Ok(true);
            }
            tokio::select! {
                () = progress => {}
                () = tokio::time::sleep_until(deadline) => return Ok(false),
            }
        }
    }

    pub(super) async fn outbox_loop(&self) {
        let mut stop = self.inner.shutdown.subscribe();
        let mut connection = self.connection();
        loop {
            if *stop.borrow() {
                return;
            }
            let next = match self.pump_once().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::info!(error = %e, "outbox paused");
                    Some(now_ms() + BACKOFF_MAX.as_millis() as i64)
                }
            };
            let wait = next.map(|at| {
                tokio::time::Instant::now()
                    + Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))
            });
            tokio::select! {
                () = self.inner.outbox_changed.notified() => {}
                _ = connection.changed() => {}
                _ = stop.changed() => return,
                () = async {
                    match wait {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
    }

    /// Sends due outbox entries in queue order, keeping each recipient device's order: once
    /// one of its entries is not due, its later entries wait too. Up to [`SEND_WINDOW`]
    /// envelopes are in flight at once (the relay commits one connection's envelopes in the
    /// order it reads them); their outcomes are recorded in one transaction. Returns when the
    /// next waiting entry falls due.
    async fn pump_once(&self) -> Result<Option<UnixMillis>, ClientError> {
        let Ok(relay) = self.current_relay().await else {
            // Offline: the connection watch wakes the loop.
            return Ok(None);
        };
        loop {
            let queue = self.write(|tx| tx.outbox_queue(OUTBOX_BATCH))?;
            let now = now_ms();
            let mut waiting: HashSet<(String, u32)> = HashSet::new();
            let mut next_due: Option<UnixMillis> = None;
            let mut sendable = Vec::new();
            for item in queue {
                let device = (item.recipient.clone(), item.device_id);
                if waiting.contains(&device) {
                    continue;
                }
                if item.next_attempt_at > now {
                    next_due = Some(
                        next_due.map_or(item.next_attempt_at, |d| d.min(item.next_attempt_at)),
                    );
                    waiting.insert(device);
                    continue;
                }
                sendable.push(item);
                if sendable.len() >= SEND_WINDOW {
                    break;
                }
            }
            if sendable.is_empty() {
                return Ok(next_due);
            }
            let sends = sendable.iter().map(|item| {
                let relay = relay.clone();
                let item = item.clone();
                async move {
                    let to = hex::decode(&item.recipient)
                        .ok()
                        .and_then(|k| <[u8; 32]>::try_from(k).ok())
                        .ok_or(StoreError::BadValue("outbox.recipient"))?;
                    Ok::<_, StoreError>(
                        relay
                            .request(move |req| ClientFrame::Send {
                                req,
                                id: api::EnvelopeId(item.envelope_id),
                                to: api::DeviceAddress {
                                    identity_key: api::IdentityKey(to),
                                    device_id: item.device_id,
                                },
                                body: item.envelope,
                            })
                            .await,
                    )
                }
            });
            let results = futures_util::future::join_all(sends).await;
            crate::fault::point("after-relay-ack");
            let (updated, lost, rediscover) = self.write(|tx| {
                let mut updated = Vec::new();
                let mut lost = None;
                let mut rediscover = false;
                for (item, result) in sendable.iter().zip(results) {
                    match result? {
                        Ok(_) => {
                            tx.outbox_acked(item.id)?;
                            let Some(mid) = item.message_id else { continue };
                            if let Some(m) = tx.message(mid)?
                                && m.status == MessageStatus::Pending
                            {
                                tx.set_message_status(mid, MessageStatus::Sent)?;
                                if let Some(secs) = m.expire_after_secs {
                                    // The sender's clock starts now that the relay has it.
                                    tx.set_message_expiry(mid, now_ms() + i64::from(secs) * 1_000)?;
                                }
                                updated.extend(tx.message(mid)?);
                            }
                        }
                        Err(RelayError::Refused(ErrorCode::UnknownRecipient)) => {
                            // The device is gone (the contact reinstalled or left): its
                            // session is useless. The message waits, held, for a session with
                            // whatever device the contact has now (see `release_held`).
                            tracing::info!("the relay no longer knows a recipient device");
                            tx.outbox_acked(item.id)?;
                            forget_device(tx, &item.recipient, item.device_id)?;
                            rediscover = true;
                            let Some(mid) = item.message_id else { continue };
                            tx.drop_outbox_of(mid)?;
                        }
                        Err(RelayError::Refused(code @ ErrorCode::EnvelopeTooLarge)) => {
                            tracing::warn!(?code, "the relay refused an envelope for good");
                            tx.outbox_acked(item.id)?;
                            let Some(mid) = item.message_id else { continue };
                            tx.drop_outbox_of(mid)?;
                            tx.set_message_status(mid, MessageStatus::Failed)?;
                            updated.extend(tx.message(mid)?);
                        }
                        Err(e) => {
                            // Deferred (rate limit, full queue) or the connection is gone:
                            // try again later; later entries may overtake it, which the
                            // ratchet and the display order (by sending time) absorb.
                            let at = now_ms() + backoff(item.attempts).as_millis() as i64;
                            tx.outbox_retry_at(item.id, at)?;
                            if !matches!(e, RelayError::Refused(_)) {
                                lost = Some(e);
                            }
                        }
                    }
                }
                Ok((updated, lost, rediscover))
            })?;
            self.inner.outbox_progress.notify_waiters();
            if rediscover {
                let engine = self.clone();
                self.spawn(async move { engine.release_all_held().await });
            }
            for m in &updated {
                self.emit(Event::MessageUpdated {
                    message: MessageView::from(m),
                });
            }
            if let Some(e) = lost {
                return Err(e.into());
            }
        }
    }
}

/// Drops the sessions with a contact's device that the relay no longer knows, in every
/// thread with them. `recipient` is the outbox's hex relay key.
fn forget_device(tx: &Tx<'_>, recipient: &str, device: u32) -> Result<(), StoreError> {
    let Some(key) = hex::decode(recipient)
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
    else {
        return Err(StoreError::BadValue("outbox.recipient"));
    };
    let Some(contact) = tx.contact_by_signing_key(&key)? else {
        return Ok(());
    };
    tx.delete_sessions(&contact.address, Some(device))?;
    for conv in tx.conversations()? {
        if conv.contact_id == contact.id
            && let Some(tag) = tx.secret_thread(conv.id)?
        {
            tx.delete_sessions(
                &session_address(&contact.address, ThreadTag(tag)),
                Some(device),
            )?;
        }
    }
    Ok(())
}
