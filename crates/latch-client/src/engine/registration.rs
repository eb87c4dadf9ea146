//! Registration with the relay and the life of this device's prekeys there: publishing,
//! replenishing when the relay says few are left (at most once per
//! [`REPLENISH_MIN_INTERVAL`], however often it says so), and rotating the signed and
//! last-resort keys.

use latch_relay::api::{self, ClientFrame, PrekeyUpload};
use latch_store::{PreKeyKind, StoreError};

use crate::events::Event;
use std::time::{Duration, Instant};

use crate::device_prekeys;
use crate::prekeys;
use crate::profile::{PRIMARY_DEVICE_ID, now_ms};
use crate::relay::Relay;

use super::{ClientError, Engine};

impl Engine {
    /// Registers this device with the relay, publishes its prekeys and claims `handle`.
    /// Safe to repeat (e.g. to change the handle). Call it before [`Engine::start`]: it uses
    /// its own connection, and the relay keeps one connection per device.
    ///
    /// # Errors
    /// [`RelayError::Refused`] with `HandleTaken`/`HandleInvalid`, or a connection error.
    pub async fn register(&self, handle: &str) -> Result<String, ClientError> {
        let handle = api::normalize_handle(handle).ok_or(ClientError::Invalid(
            "a handle is 3-32 characters of a-z, 0-9, '_' or '.'",
        ))?;
        let url = self.relay_url()?;
        let (relay, _inbound) =
            Relay::connect(&url, &self.inner.profile.identity, PRIMARY_DEVICE_ID, true).await?;
        // A first registration publishes every one-time prekey this device holds; a repeated
        // one only fresh keys up to the target, since an earlier key may be claimed and not
        // yet used.
        let identity = self.inner.profile.identity.clone();
        let one_time = self.write(|tx| {
            if tx.profile()?.and_then(|p| p.handle).is_some() {
                device_prekeys::replenish_one_time(tx, &identity, relay.one_time_prekeys, now_ms())
            } else {
                tx.prekey_ids(PreKeyKind::OneTime)
            }
        })?;
        self.publish_prekeys(&relay, true, &one_time).await?;
        let h = handle.clone();
        relay
            .request(|req| ClientFrame::ClaimHandle { req, handle: h })
            .await?;
        self.write(|tx| {
            let mut p = tx.profile()?.ok_or(StoreError::NotFound("profile"))?;
            p.handle = Some(handle.clone());
            tx.set_profile(&p)
        })?;
        Ok(handle)
    }

    /// Uploads the signed and last-resort prekeys (with `full`) and the one-time prekeys
    /// `one_time` (at most one upload's worth).
    async fn publish_prekeys(
        &self,
        relay: &Relay,
        full: bool,
        one_time: &[u32],
    ) -> Result<(), ClientError> {
        let identity = &self.inner.profile.identity;
        let upload = self.write(|tx| {
            let load = |kind, id| tx.prekey(kind, id);
            let mut upload = PrekeyUpload::default();
            if full {
                if let Some(b) = load(PreKeyKind::Signed, device_prekeys::current_signed_id(tx)?)? {
                    let r = latch_protocol::SignedPreKeyRecord::from_secret_bytes(&b)
                        .map_err(|_| StoreError::BadValue("prekeys.record"))?;
                    upload.signed = Some(prekeys::signed_blob(identity.public(), &r));
                }
                if let Some(b) = load(
                    PreKeyKind::PostQuantum,
                    device_prekeys::current_last_resort_id(tx)?,
                )? {
                    let r = latch_protocol::KemPreKeyRecord::from_secret_bytes(&b)
                        .map_err(|_| StoreError::BadValue("prekeys.record"))?;
                    upload.last_resort = Some(prekeys::last_resort_blob(&r));
                }
            }
            for &id in one_time {
                let (Some(x), Some(k)) = (
                    load(PreKeyKind::OneTime, id)?,
                    load(PreKeyKind::PostQuantum, id)?,
                ) else {
                    continue;
                };
                let x = latch_protocol::OneTimePreKeyRecord::from_secret_bytes(&x)
                    .map_err(|_| StoreError::BadValue("prekeys.record"))?;
                let k = latch_protocol::KemPreKeyRecord::from_secret_bytes(&k)
                    .map_err(|_| StoreError::BadValue("prekeys.record"))?;
                upload.one_time.push(prekeys::one_time_blob(&x, &k));
                if upload.one_time.len() >= api::MAX_PREKEYS_PER_UPLOAD {
                    break;
                }
            }
            Ok(upload)
        })?;
        relay
            .request(|req| ClientFrame::PublishPrekeys { req, upload })
            .await?;
        Ok(())
    }

    /// Tops the relay's pool of our one-time prekeys back up to the target, given how many
    /// it says it holds. Only fresh keys go up: keys published before may be claimed and not
    /// yet used, and offering one again could hand it to two initiators. Notices closer
    /// together than [`REPLENISH_MIN_INTERVAL`] are collapsed into the first: a stranger
    /// claiming our keys in a loop costs us one batch per interval, not one per claim.
    pub(super) async fn replenish_prekeys(
        &self,
        relay: &Relay,
        relay_holds: u32,
    ) -> Result<(), ClientError> {
        if relay_holds >= device_prekeys::ONE_TIME_PREKEY_TARGET
            || !self.inner.replenish_gate.try_pass(Instant::now())
        {
            return Ok(());
        }
        let identity = self.inner.profile.identity.clone();
        let fresh = self
            .write(|tx| device_prekeys::replenish_one_time(tx, &identity, relay_holds, now_ms()))?;
        if fresh.is_empty() {
            return Ok(());
        }
        self.publish_prekeys(relay, false, &fresh).await?;
        self.emit(Event::PrekeysReplenished { count: fresh.len() });
        Ok(())
    }

    /// Replaces the signed and last-resort prekeys when they are due and publishes the new
    /// ones; deletes replaced keys whose grace period is over.
    pub(super) async fn rotate_prekeys(&self, relay: &Relay) -> Result<(), ClientError> {
        let identity = self.inner.profile.identity.clone();
        let rotated = self.write(|tx| device_prekeys::rotate_if_due(tx, &identity, now_ms()))?;
        if rotated {
            self.publish_prekeys(relay, true, &[]).await?;
        }
        Ok(())
    }

    /// Removes this device from the relay (mailbox, prekeys, and the handle when no device
    /// is left). Used before deleting a profile.
    ///
    /// # Errors
    /// A connection error.
    pub async fn unregister(&self) -> Result<(), ClientError> {
        let relay = self.current_relay().await?;
        relay.request(|req| ClientFrame::Unregister { req }).await?;
        Ok(())
    }
}

/// The least time between two replenishments the relay asked for.
pub(super) const REPLENISH_MIN_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Lets one replenishment through per [`REPLENISH_MIN_INTERVAL`].
#[derive(Debug, Default)]
pub(super) struct ReplenishGate {
    last: std::sync::Mutex<Option<Instant>>,
}

impl ReplenishGate {
    /// Whether a replenishment may run at `now`; if so, the interval starts again.
    pub(super) fn try_pass(&self, now: Instant) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        match *last {
            Some(at) if now.saturating_duration_since(at) < REPLENISH_MIN_INTERVAL => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_lets_one_replenishment_through_per_interval() {
        let gate = ReplenishGate::default();
        let t0 = Instant::now();
        assert!(gate.try_pass(t0));
        assert!(!gate.try_pass(t0));
        assert!(!gate.try_pass(t0 + REPLENISH_MIN_INTERVAL - Duration::from_millis(1)));
        assert!(gate.try_pass(t0 + REPLENISH_MIN_INTERVAL));
        assert!(!gate.try_pass(t0 + REPLENISH_MIN_INTERVAL + Duration::from_secs(1)));
    }
}
