//! Registration with the relay and the life of this device's prekeys there: publishing,
//! replenishing when the relay says few are left.

use latch_relay::api::{self, ClientFrame, PrekeyUpload};
use latch_store::{PreKeyKind, StoreError};

use crate::events::Event;
use crate::prekeys::{self};
use crate::profile::{self, PRIMARY_DEVICE_ID, now_ms};
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
        // one only a fresh batch, since an earlier key may be claimed and not yet used.
        let identity = self.inner.profile.identity.clone();
        let one_time = self.write(|tx| {
            if tx.profile()?.and_then(|p| p.handle).is_some() {
                profile::generate_one_time_prekeys(tx, &identity, now_ms())
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
                if let Some(b) = load(PreKeyKind::Signed, 1)? {
                    let r = latch_protocol::SignedPreKeyRecord::from_secret_bytes(&b)
                        .map_err(|_| StoreError::BadValue("prekeys.record"))?;
                    upload.signed = Some(prekeys::signed_blob(identity.public(), &r));
                }
                if let Some(b) = load(PreKeyKind::PostQuantum, 1)? {
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

    /// Makes a fresh batch of one-time prekeys and publishes them (the relay said few are
    /// left).
    /// Only the new batch goes up: keys published before may be claimed and not yet used,
    /// and offering one again could hand it to two initiators.
    pub(super) async fn replenish_prekeys(&self, relay: &Relay) -> Result<(), ClientError> {
        let identity = self.inner.profile.identity.clone();
        let fresh = self.write(|tx| profile::generate_one_time_prekeys(tx, &identity, now_ms()))?;
        self.publish_prekeys(relay, false, &fresh).await?;
        self.emit(Event::PrekeysReplenished { count: fresh.len() });
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
