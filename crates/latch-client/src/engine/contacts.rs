//! Contacts: adding by handle or invite code, and starting sessions from claimed prekeys.

use latch_protocol::{ProtocolAddress, session};
use latch_relay::api::{self, ClientFrame, Response};
use latch_store::{
    Contact, ContactId, ContactStanding, ConversationKind, StoreError, Tx, UnixMillis,
};
use rand_core::OsRng;

use crate::events::{Event, standing_name};
use crate::prekeys::{self};
use crate::profile::now_ms;
use crate::protocol_store::TxProtocolStore;
use crate::relay::{Relay, RelayError};
use crate::wire::{STANDARD_THREAD, ThreadTag};

use super::{ClientError, Engine, forget_secret_sessions, session_address};

impl Engine {
    /// This profile's invite code: handle, identity key and relay, so someone can add us
    /// without trusting the directory.
    ///
    /// # Errors
    /// [`ClientError::NotRegistered`] before registration.
    pub fn invite_code(&self) -> Result<String, ClientError> {
        let handle = self.handle()?.ok_or(ClientError::NotRegistered)?;
        let key = hex::encode(self.inner.profile.identity.public().signing_key_bytes());
        Ok(format!(
            "latch-invite:1:{handle}:{key}:{}",
            self.relay_url()?
        ))
    }

    /// Adds a contact by handle (the relay's directory says which key it has).
    ///
    /// # Errors
    /// `NotFound` from the relay for an unknown handle, or a connection error.
    pub async fn add_contact(&self, handle: &str) -> Result<ContactId, ClientError> {
        let handle = api::normalize_handle(handle).ok_or(ClientError::Invalid("invalid handle"))?;
        let relay = self.current_relay().await?;
        let h = handle.clone();
        let Response::Handle { identity_key, .. } = relay
            .request(|req| ClientFrame::LookupHandle { req, handle: h })
            .await?
        else {
            return Err(RelayError::Protocol.into());
        };
        self.add_contact_with_key(&relay, &handle, identity_key.0)
            .await
    }

    /// Adds a contact from an invite code; the key comes from the code, not the directory.
    ///
    /// # Errors
    /// [`ClientError::BadInvite`], or as [`Engine::add_contact`].
    pub async fn add_contact_by_invite(&self, code: &str) -> Result<ContactId, ClientError> {
        let mut parts = code.trim().splitn(5, ':');
        let (Some("latch-invite"), Some("1"), Some(handle), Some(key), Some(relay_url)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(ClientError::BadInvite);
        };
        let handle = api::normalize_handle(handle).ok_or(ClientError::BadInvite)?;
        let key: [u8; 32] = hex::decode(key)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or(ClientError::BadInvite)?;
        if relay_url.trim_end_matches('/') != self.relay_url()?.trim_end_matches('/') {
            return Err(ClientError::Invalid("the invite is for another relay"));
        }
        let relay = self.current_relay().await?;
        self.add_contact_with_key(&relay, &handle, key).await
    }

    pub(super) async fn claim_bundles(
        &self,
        relay: &Relay,
        key: [u8; 32],
    ) -> Result<Vec<api::PrekeyBundle>, ClientError> {
        match relay
            .request(|req| ClientFrame::ClaimPrekeys {
                req,
                identity_key: api::IdentityKey(key),
                device_id: None,
            })
            .await?
        {
            Response::Prekeys { bundles } if !bundles.is_empty() => Ok(bundles),
            Response::Prekeys { .. } => Err(ClientError::NotFound("device of the contact")),
            _ => Err(RelayError::Protocol.into()),
        }
    }

    async fn add_contact_with_key(
        &self,
        relay: &Relay,
        handle: &str,
        key: [u8; 32],
    ) -> Result<ContactId, ClientError> {
        if key == self.inner.profile.identity.public().signing_key_bytes() {
            return Err(ClientError::Invalid("that is this profile's own handle"));
        }
        let bundles = self.claim_bundles(relay, key).await?;
        let now = now_ms();
        let (contact, events) = self.write(|tx| {
            let mut events = Vec::new();
            let contact =
                self.start_sessions(tx, handle, STANDARD_THREAD, &bundles, key, now, &mut events)?;
            // Adding someone is letting them in, whatever they were before.
            if contact.standing != ContactStanding::Accepted {
                tx.set_contact_standing(contact.id, ContactStanding::Accepted)?;
                events.push(Event::ContactStanding {
                    contact_id: contact.id.0,
                    standing: standing_name(ContactStanding::Accepted),
                });
            }
            if tx.standard_conversation(contact.id)?.is_none() {
                tx.create_conversation(contact.id, ConversationKind::Standard, None, now)?;
            }
            Ok((contact.id, events))
        })?;
        for e in events {
            self.emit(e);
        }
        self.release_all_held().await;
        Ok(contact)
    }

    /// Starts a session with every device whose bundle verifies and carries `key`; records
    /// the identity (a changed key is noted and announced).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_sessions(
        &self,
        tx: &Tx<'_>,
        handle: &str,
        thread: ThreadTag,
        bundles: &[api::PrekeyBundle],
        key: [u8; 32],
        now: UnixMillis,
        events: &mut Vec<Event>,
    ) -> Result<Contact, StoreError> {
        let identity = &self.inner.profile.identity;
        let mut contact = None;
        for b in bundles {
            let bundle = match prekeys::bundle_from_relay(b) {
                Ok(bundle) if bundle.identity.signing_key_bytes() == key => bundle,
                Ok(_) | Err(_) => {
                    tracing::warn!("skipped a device whose prekeys did not verify");
                    continue;
                }
            };
            let (id, change) = tx.observe_identity(handle, &bundle.identity.to_bytes(), now)?;
            if let latch_store::IdentityChange::Changed { was_verified } = change {
                tx.set_key_change_pending(id, true)?;
                if let Some(c) = tx.contact(id)? {
                    forget_secret_sessions(tx, &c)?;
                }
                events.push(Event::KeyChanged {
                    contact_id: id.0,
                    contact: handle.to_owned(),
                    was_verified,
                    key: hex::encode(key),
                });
            }
            let c = tx.contact(id)?.ok_or(StoreError::NotFound("contact"))?;
            let address = ProtocolAddress::new(session_address(&c.address, thread), b.device_id);
            let mut store = TxProtocolStore::new(tx, identity, now);
            if let Err(e) =
                session::process_prekey_bundle(&mut store, &address, &bundle, &mut OsRng)
            {
                tracing::warn!(error = %e, "could not start a session with a device");
                continue;
            }
            contact = Some(c);
        }
        contact.ok_or(StoreError::NotFound("usable device of the contact"))
    }

    /// Every contact.
    ///
    /// # Errors
    /// A database error.
    pub fn contacts(&self) -> Result<Vec<Contact>, ClientError> {
        Ok(self.write(|tx| tx.contacts())?)
    }

    /// A contact by handle.
    ///
    /// # Errors
    /// [`ClientError::NotFound`].
    pub fn contact_by_handle(&self, handle: &str) -> Result<Contact, ClientError> {
        let handle = api::normalize_handle(handle).ok_or(ClientError::NotFound("contact"))?;
        self.write(|tx| tx.contact_by_address(&handle))?
            .ok_or(ClientError::NotFound("contact"))
    }
}
