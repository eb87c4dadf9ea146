//! Receiving: envelope → sender check → decrypt → store → events, in one transaction that
//! also records the envelope as seen; a decrypt failure leaves the session state unchanged.

use latch_protocol::{CiphertextMessage, ProtocolAddress, session};
use latch_relay::api::{self, ClientFrame, DeliveredEnvelope, ErrorCode, Response};
use latch_store::{
    Contact, ContactStanding, Conversation, ConversationKind, Direction, MessageId, MessageStatus,
    NewMessage, StoreError, Tx, UnixMillis,
};
use rand_core::OsRng;

use crate::events::{Event, MessageView, kind_name};
use crate::profile::now_ms;
use crate::protocol_store::TxProtocolStore;
use crate::relay::{Relay, RelayError};
use crate::wire::{Content, ReceiptKind, Sealed, ThreadTag, WireError};

use super::calls::{IncomingSignal, incoming_signal};
use super::{
    Engine, ReceiveError, TIMER_PRESETS, TIMER_RANGE, TIMER_SET_BY_CONTACT,
    UNREAD_DISAPPEARING_LIMIT_MS, create_secret_conversation, forget_secret_sessions, key_name,
    session_address, timer_setter_key,
};

/// Outcome of processing one envelope.
enum Received {
    /// Stored; the events to send after the commit, and a call signal for the switchboard.
    Stored(Vec<Event>, Option<IncomingSignal>),
    /// Processed before (a redelivery): dropped.
    Duplicate,
    /// Unusable: acknowledged and dropped (undecryptable ones also have their id
    /// remembered, so a replay is not tried again).
    Dropped(ReceiveError),
}

/// The reason a receiving transaction is rolled back on purpose: the message decrypted but
/// must not count (altered thread tag, undecodable content), so the ratchet must not move.
const REJECTED: &str = "envelope rejected after decryption";

/// Likewise, for a message on a session whose contact was deleted.
const NO_CONTACT: &str = "session without a contact";

/// Likewise, for a first message from a key the user has not accepted that names an existing
/// secret chat: a secret chat belongs to the key it started with, so nothing of it is shown
/// and the one-time prekey it used is not spent.
const SECRET_CHAT_REKEYED: &str = "secret chat message from an unaccepted key";

impl Engine {
    /// Processes one envelope. Returns `false` when it must not be acknowledged (the store
    /// failed, or the sender cannot be checked right now); every other problem is reported
    /// and the envelope dropped.
    pub(super) async fn receive(&self, relay: &Relay, env: DeliveredEnvelope) -> bool {
        let outcome = match self.receive_inner(relay, &env).await {
            Ok(o) => o,
            Err(e) => Received::Dropped(e),
        };
        match outcome {
            Received::Stored(events, signal) => {
                crate::fault::point("after-receive-commit");
                for e in events {
                    self.emit(e);
                }
                if let Some(signal) = signal {
                    self.on_call_signal(signal);
                }
                self.inner.outbox_changed.notify_one();
                true
            }
            Received::Duplicate => true,
            // Said nowhere: a blocked sender learns nothing and the user sees nothing.
            Received::Dropped(ReceiveError::Blocked) => true,
            Received::Dropped(ReceiveError::Store(e)) => {
                tracing::warn!(error = %e, "store failed while receiving");
                false
            }
            Received::Dropped(ReceiveError::Retry) => false,
            Received::Dropped(e) => {
                tracing::warn!(error = %e, "dropped an envelope");
                self.emit(Event::ReceiveFailed {
                    reason: e.to_string(),
                });
                true
            }
        }
    }

    /// Finds the contact an envelope comes from, introducing a new one (or a changed key)
    /// when a prekey message names a handle the directory confirms. A blocked contact's
    /// envelopes stop here, before any decryption.
    async fn resolve_sender(
        &self,
        relay: &Relay,
        from: &[u8; 32],
        sealed: &Sealed,
    ) -> Result<String, ReceiveError> {
        let known = self.write(|tx| tx.contact_by_signing_key(from))?;
        if known
            .as_ref()
            .is_some_and(|c| c.standing == ContactStanding::Blocked)
        {
            return Err(ReceiveError::Blocked);
        }
        // A prekey message carries the sender's whole identity: it must be the relay-checked
        // sender's, whoever the sender is.
        if let CiphertextMessage::PreKey(m) = &sealed.message
            && m.identity.signing_key_bytes() != *from
        {
            return Err(ReceiveError::UnknownSender);
        }
        if let Some(c) = known {
            return Ok(c.address);
        }
        if !matches!(sealed.message, CiphertextMessage::PreKey(_)) {
            return Err(ReceiveError::UnknownSender);
        }
        let handle = sealed
            .sender_handle
            .as_deref()
            .and_then(api::normalize_handle)
            .ok_or(ReceiveError::UnknownSender)?;
        let h = handle.clone();
        match relay
            .request(|req| ClientFrame::LookupHandle { req, handle: h })
            .await
        {
            Ok(Response::Handle { identity_key, .. }) if identity_key.0 == *from => {
                // A blocked person stays blocked under a new key.
                let existing = self.write(|tx| tx.contact_by_address(&handle))?;
                if existing.is_some_and(|c| c.standing == ContactStanding::Blocked) {
                    return Err(ReceiveError::Blocked);
                }
                Ok(handle)
            }
            // A clear answer: the handle is someone else's, or nobody's.
            Ok(Response::Handle { .. }) | Err(RelayError::Refused(ErrorCode::NotFound)) => {
                Err(ReceiveError::HandleMismatch)
            }
            // Anything else (rate limit, timeout, lost connection) says nothing yet.
            Ok(_) | Err(_) => Err(ReceiveError::Retry),
        }
    }

    async fn receive_inner(
        &self,
        relay: &Relay,
        env: &DeliveredEnvelope,
    ) -> Result<Received, ReceiveError> {
        let from = env.from.identity_key.0;
        let sealed = Sealed::from_bytes(&env.body)?;
        let address = self.resolve_sender(relay, &from, &sealed).await?;
        let identity = self.inner.profile.identity.clone();
        let now = now_ms();
        let received = self.write(|tx| {
            if !tx.mark_envelope_seen(&from, &env.id.0, now)? {
                return Ok(Received::Duplicate);
            }
            // Someone the user never added who writes first waits as a message request.
            let stranger = tx.contact_by_address(&address)?.is_none();
            let protocol_address =
                ProtocolAddress::new(session_address(&address, sealed.thread), env.from.device_id);
            let mut store = TxProtocolStore::new(tx, &identity, now);
            // A failed decrypt writes nothing; only the seen id commits.
            let plaintext = match session::decrypt(
                &mut store,
                &protocol_address,
                &sealed.message,
                &mut OsRng,
            ) {
                Ok(p) => p,
                Err(session::SessionError::Store(e)) => {
                    return Err(StoreError::Io(std::io::Error::other(e.to_string())));
                }
                Err(e) => return Ok(Received::Dropped(ReceiveError::Decrypt(e))),
            };
            let key_changes = std::mem::take(&mut store.key_changes);
            let content = match Content::from_plaintext(plaintext.expose()) {
                Ok((thread, c)) if thread == sealed.thread => c,
                // Roll back: the ratchet must not move for a message that does not count.
                Ok(_) | Err(_) => return Err(StoreError::Invalid(REJECTED)),
            };
            // A session can outlive its contact (one deleted while their messages were on the
            // way): drop such a message rather than fail the store and retry it forever.
            let Some(mut contact) = tx.contact_by_address(&address)? else {
                return Err(StoreError::Invalid(NO_CONTACT));
            };
            if stranger {
                tx.set_contact_standing(contact.id, ContactStanding::Request)?;
                contact.standing = ContactStanding::Request;
            }
            if !sealed.thread.is_standard()
                && (!key_changes.is_empty() || tx.key_change_pending(contact.id)?)
                && tx
                    .conversation_by_thread(contact.id, &sealed.thread.0)?
                    .is_some()
            {
                return Err(StoreError::Invalid(SECRET_CHAT_REKEYED));
            }
            let mut events = Vec::new();
            for k in key_changes {
                forget_secret_sessions(tx, &contact)?;
                events.push(Event::KeyChanged {
                    contact_id: k.contact.0,
                    contact: contact.address.clone(),
                    was_verified: k.was_verified,
                    key: key_name(&contact.identity_key)?,
                });
            }
            let signal = self.apply(tx, &contact, sealed.thread, content, now, &mut events)?;
            Ok(Received::Stored(events, signal))
        });
        match received {
            Ok(r) => Ok(r),
            Err(StoreError::Invalid(NO_CONTACT)) => {
                Ok(Received::Dropped(ReceiveError::UnknownSender))
            }
            Err(StoreError::Invalid(SECRET_CHAT_REKEYED)) => {
                Ok(Received::Dropped(ReceiveError::SecretChatRekeyed))
            }
            Err(StoreError::Invalid(REJECTED)) => Ok(Received::Dropped(ReceiveError::Malformed(
                WireError::ThreadMismatch,
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The conversation a received message belongs to, created when the contact opened it.
    fn conversation_for(
        &self,
        tx: &Tx<'_>,
        contact: &Contact,
        thread: ThreadTag,
        content: &Content,
        now: UnixMillis,
        events: &mut Vec<Event>,
    ) -> Result<Conversation, StoreError> {
        let existing = if thread.is_standard() {
            tx.standard_conversation(contact.id)?
        } else {
            tx.conversation_by_thread(contact.id, &thread.0)?
        };
        let id = match existing {
            Some(id) => id,
            None if thread.is_standard() => {
                tx.create_conversation(contact.id, ConversationKind::Standard, None, now)?
            }
            None => {
                // A secret chat the contact started: it always has a timer.
                let timer = match content {
                    Content::Timer { secs }
                    | Content::Text {
                        expire_after_secs: secs,
                        ..
                    } => secs.filter(|s| TIMER_RANGE.contains(s)),
                    _ => None,
                }
                .unwrap_or(TIMER_PRESETS[1]);
                create_secret_conversation(tx, contact.id, thread, timer, now)?
            }
        };
        let conv = tx
            .conversation(id)?
            .ok_or(StoreError::NotFound("conversation"))?;
        if existing.is_none() {
            events.push(Event::ConversationStarted {
                conversation_id: id.0,
                kind: kind_name(&conv),
            });
        }
        Ok(conv)
    }

    /// Applies one decrypted content inside the receiving transaction. A call signal is
    /// returned instead, for the switchboard once the transaction committed.
    fn apply(
        &self,
        tx: &Tx<'_>,
        contact: &Contact,
        thread: ThreadTag,
        content: Content,
        now: UnixMillis,
        events: &mut Vec<Event>,
    ) -> Result<Option<IncomingSignal>, StoreError> {
        let conv = self.conversation_for(tx, contact, thread, &content, now, events)?;
        match content {
            Content::Text {
                id,
                sent_at,
                body,
                expire_after_secs,
            } => {
                if tx.message_by_remote_id(conv.id, &id)?.is_some() {
                    return Ok(None);
                }
                let timer =
                    expire_after_secs
                        .filter(|s| TIMER_RANGE.contains(s))
                        .or(match conv.kind {
                            ConversationKind::Secret { .. } => conv.disappear_after_secs,
                            ConversationKind::Standard => None,
                        });
                let mid = tx.insert_message(&NewMessage {
                    conversation_id: conv.id,
                    direction: Direction::Incoming,
                    status: MessageStatus::Received,
                    body: &body,
                    sent_at,
                    received_at: Some(now),
                    expires_at: timer.map(|_| now + UNREAD_DISAPPEARING_LIMIT_MS),
                    remote_id: Some(id),
                    expire_after_secs: timer,
                })?;
                // A request learns nothing until accepted, not even that this device is on.
                if contact.standing == ContactStanding::Accepted {
                    let receipt = Content::Receipt {
                        kind: ReceiptKind::Delivered,
                        ids: vec![id],
                    };
                    self.queue_content(tx, contact, &conv, &receipt, None, now)?;
                }
                if let Some(m) = tx.message(mid)? {
                    events.push(Event::Message {
                        message: MessageView::from(&m),
                    });
                }
            }
            Content::Receipt { kind, ids } => {
                let status = match kind {
                    ReceiptKind::Delivered => MessageStatus::Delivered,
                    ReceiptKind::Read => MessageStatus::Read,
                };
                for id in ids.iter().take(api::MAX_ACK_IDS) {
                    let Some(m) = tx.message_by_remote_id(conv.id, id)? else {
                        continue;
                    };
                    if m.direction == Direction::Outgoing
                        && status_rank(status) > status_rank(m.status)
                    {
                        tx.set_message_status(m.id, status)?;
                        push_updated(tx, m.id, events)?;
                    }
                }
            }
            Content::Edit {
                id,
                body,
                edited_at,
            } => {
                if let Some(m) = tx.message_by_remote_id(conv.id, &id)?
                    && m.direction == Direction::Incoming
                {
                    tx.edit_message(m.id, &body, edited_at)?;
                    push_updated(tx, m.id, events)?;
                }
            }
            Content::Delete { id } => {
                if let Some(m) = tx.message_by_remote_id(conv.id, &id)?
                    && m.direction == Direction::Incoming
                {
                    tx.delete_message(m.id)?;
                    events.push(Event::MessageUpdated {
                        message: MessageView::deleted(&m),
                    });
                }
            }
            Content::Timer { secs } => {
                let valid = secs.is_none_or(|s| TIMER_RANGE.contains(&s))
                    && (secs.is_some() || conv.kind.is_searchable());
                if valid && conv.disappear_after_secs != secs {
                    tx.set_disappearing_timer(conv.id, secs)?;
                    tx.set_setting(&timer_setter_key(conv.id), TIMER_SET_BY_CONTACT)?;
                    events.push(Event::TimerChanged {
                        conversation_id: conv.id.0,
                        seconds: secs,
                        by_me: false,
                    });
                }
            }
            Content::Call(signal) => {
                return incoming_signal(tx, &conv, signal).map(Some);
            }
        }
        Ok(None)
    }
}

fn status_rank(s: MessageStatus) -> u8 {
    match s {
        MessageStatus::Failed => 0,
        MessageStatus::Pending => 1,
        MessageStatus::Sent => 2,
        MessageStatus::Delivered => 3,
        MessageStatus::Read | MessageStatus::Received => 4,
    }
}

fn push_updated(tx: &Tx<'_>, id: MessageId, events: &mut Vec<Event>) -> Result<(), StoreError> {
    if let Some(m) = tx.message(id)? {
        events.push(Event::MessageUpdated {
            message: MessageView::from(&m),
        });
    }
    Ok(())
}
