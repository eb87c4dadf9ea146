//! Sending: encrypting content for every device of a chat's session into the outbox, holding
//! messages that cannot go yet, and the user's changes to messages already sent.

use latch_protocol::{CiphertextMessage, ProtocolAddress, session};
use latch_relay::api::{self, ClientFrame, ErrorCode, Response};
use latch_store::{
    Contact, ContactStanding, Conversation, ConversationId, Direction, Message, MessageId,
    MessageStatus, NewMessage, StoreError, Tx, UnixMillis,
};

use crate::events::{Event, MessageView};
use crate::profile::now_ms;
use crate::protocol_store::TxProtocolStore;
use crate::relay::{Relay, RelayError};
use crate::wire::{Content, MAX_TEXT_BYTES, Sealed};

use super::{
    ClientError, Engine, UNREAD_DISAPPEARING_LIMIT_MS, random_id, relay_key, session_address,
    thread_of,
};

impl Engine {
    /// Encrypts `content` to every device of the conversation's session and queues it.
    /// Returns `false` when there is no session yet: a text message stays held (stored, not
    /// queued) until one starts; control messages use [`Self::queue_control`].
    pub(super) fn queue_content(
        &self,
        tx: &Tx<'_>,
        contact: &Contact,
        conv: &Conversation,
        content: &Content,
        message: Option<MessageId>,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let thread = thread_of(tx, conv)?;
        let address = session_address(&contact.address, thread);
        let devices = tx.session_devices(&address)?;
        if devices.is_empty() {
            return Ok(false);
        }
        let plaintext = content
            .to_plaintext(thread)
            .map_err(|_| StoreError::Invalid("message could not be encoded"))?;
        let handle = tx.profile()?.and_then(|p| p.handle);
        let to = hex::encode(relay_key(contact)?);
        let identity = &self.inner.profile.identity;
        for device in devices {
            let mut store = TxProtocolStore::new(tx, identity, now);
            let addr = ProtocolAddress::new(address.clone(), device);
            let ciphertext = match session::encrypt(&mut store, &addr, &plaintext) {
                Ok(m) => m,
                Err(session::SessionError::Store(e)) => {
                    return Err(StoreError::Io(std::io::Error::other(e.to_string())));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot encrypt to a device; holding");
                    return Ok(false);
                }
            };
            let sender_handle = match ciphertext {
                CiphertextMessage::PreKey(_) => handle.clone(),
                _ => None,
            };
            let sealed = Sealed {
                thread,
                sender_handle,
                message: ciphertext,
            };
            let body = sealed
                .to_bytes()
                .map_err(|_| StoreError::Invalid("message could not be encoded"))?;
            let envelope_id =
                random_id().map_err(|_| StoreError::Invalid("the OS random source failed"))?;
            tx.enqueue_outbox(message, &to, device, &envelope_id, &body, now)?;
        }
        Ok(true)
    }

    /// Queues a control message the user asked for (timer, edit, delete), refusing when it
    /// cannot go now, so the transaction that changed local state rolls back with it.
    pub(super) fn queue_control(
        &self,
        tx: &Tx<'_>,
        contact: &Contact,
        conv: &Conversation,
        content: &Content,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        Self::refuse_unless_accepted(contact)?;
        if Self::is_held(tx, conv)? {
            return Err(StoreError::Invalid(
                "the contact's safety number changed: accept the new key first",
            ));
        }
        if !self.queue_content(tx, contact, conv, content, None, now)? {
            return Err(StoreError::Invalid(
                "no session with the contact in this chat yet: send a message first",
            ));
        }
        Ok(())
    }

    /// Whether outgoing messages of this conversation must wait: a secret chat whose
    /// contact's new key the user has not accepted yet.
    fn is_held(tx: &Tx<'_>, conv: &Conversation) -> Result<bool, StoreError> {
        Ok(!conv.kind.is_searchable() && tx.key_change_pending(conv.contact_id)?)
    }

    /// Refuses to send to someone the user has not let in: a message request waits for an
    /// answer, and a blocked contact gets nothing.
    pub(super) fn refuse_unless_accepted(contact: &Contact) -> Result<(), StoreError> {
        match contact.standing {
            ContactStanding::Accepted => Ok(()),
            ContactStanding::Request => Err(StoreError::Invalid(
                "accept the message request before you reply",
            )),
            _ => Err(StoreError::Invalid("unblock the contact before you write")),
        }
    }

    pub(super) fn conversation_and_contact(
        tx: &Tx<'_>,
        id: ConversationId,
    ) -> Result<(Conversation, Contact), StoreError> {
        let conv = tx
            .conversation(id)?
            .ok_or(StoreError::NotFound("conversation"))?;
        let contact = tx
            .contact(conv.contact_id)?
            .ok_or(StoreError::NotFound("contact"))?;
        Ok((conv, contact))
    }

    /// Sends a text message. It is stored and queued at once (offline too) and goes out when
    /// the relay is reachable.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for empty or oversized text; `NotFound`.
    pub fn send_text(
        &self,
        conversation: ConversationId,
        body: &str,
    ) -> Result<MessageView, ClientError> {
        if body.trim().is_empty() {
            return Err(ClientError::Invalid("the message is empty"));
        }
        if body.len() > MAX_TEXT_BYTES {
            return Err(ClientError::Invalid(
                "the message is too long (60 KiB at most)",
            ));
        }
        let remote_id = random_id()?;
        let now = now_ms();
        let view = self.write(|tx| {
            let (conv, contact) = Self::conversation_and_contact(tx, conversation)?;
            Self::refuse_unless_accepted(&contact)?;
            let timer = conv.disappear_after_secs;
            let mid = tx.insert_message(&NewMessage {
                conversation_id: conv.id,
                direction: Direction::Outgoing,
                status: MessageStatus::Pending,
                body,
                sent_at: now,
                received_at: None,
                // Until the relay has it, a disappearing message may wait; its clock starts
                // when the relay acknowledges it (see the outbox pump).
                expires_at: timer.map(|_| now + UNREAD_DISAPPEARING_LIMIT_MS),
                remote_id: Some(remote_id),
                expire_after_secs: timer,
            })?;
            let mut needs_session = false;
            if !Self::is_held(tx, &conv)? {
                let content = Content::Text {
                    id: remote_id,
                    sent_at: now,
                    body: body.to_owned(),
                    expire_after_secs: timer,
                };
                needs_session =
                    !self.queue_content(tx, &contact, &conv, &content, Some(mid), now)?;
            }
            let m = tx.message(mid)?.ok_or(StoreError::NotFound("message"))?;
            Ok((m, needs_session))
        })?;
        let (view, needs_session) = view;
        if needs_session {
            // No session with the contact's (new) key yet: start one when the relay answers.
            let engine = self.clone();
            self.spawn(async move { engine.release_all_held().await });
        }
        let view = MessageView::from(&view);
        self.inner.outbox_changed.notify_one();
        self.emit(Event::Message {
            message: view.clone(),
        });
        Ok(view)
    }

    /// Queues held messages of every conversation that may send now (a session exists or
    /// can be started, and no key change waits for acceptance).
    pub(super) async fn release_all_held(&self) {
        let _one_at_a_time = self.inner.releasing.lock().await;
        let convs = match self.write(|tx| tx.conversations()) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not list conversations");
                return;
            }
        };
        for conv in convs {
            if let Err(e) = self.release_held(&conv).await {
                tracing::info!(error = %e, "held messages stay held");
            }
        }
    }

    /// The contact's devices now: those of the key we know, or, when that key has no device
    /// left on the relay (they reinstalled), those of the key the directory gives their
    /// handle, which starting the sessions then records as a key change. `None` when the
    /// handle is nobody's any more, or still names the departed key.
    async fn current_devices(
        &self,
        relay: &Relay,
        contact: &Contact,
    ) -> Result<Option<([u8; 32], Vec<api::PrekeyBundle>)>, ClientError> {
        let key = relay_key(contact)?;
        match self.claim_bundles(relay, key).await {
            Ok(bundles) => return Ok(Some((key, bundles))),
            Err(
                ClientError::NotFound(_)
                | ClientError::Relay(RelayError::Refused(ErrorCode::NotFound)),
            ) => {}
            Err(e) => return Err(e),
        }
        let handle = contact.address.clone();
        let new_key = match relay
            .request(|req| ClientFrame::LookupHandle { req, handle })
            .await
        {
            Ok(Response::Handle { identity_key, .. }) if identity_key.0 != key => identity_key.0,
            Ok(Response::Handle { .. }) | Err(RelayError::Refused(ErrorCode::NotFound)) => {
                return Ok(None);
            }
            Ok(_) => return Err(RelayError::Protocol.into()),
            Err(e) => return Err(e.into()),
        };
        Ok(Some((new_key, self.claim_bundles(relay, new_key).await?)))
    }

    /// Marks a conversation's held messages failed (they cannot be delivered).
    fn fail_held(&self, conv: &Conversation) -> Result<(), ClientError> {
        let failed = self.write(|tx| {
            let mut failed = Vec::new();
            for m in tx.held_messages(conv.id)? {
                tx.set_message_status(m.id, MessageStatus::Failed)?;
                failed.extend(tx.message(m.id)?);
            }
            Ok(failed)
        })?;
        for m in &failed {
            self.emit(Event::MessageUpdated {
                message: MessageView::from(m),
            });
        }
        Ok(())
    }

    async fn release_held(&self, conv: &Conversation) -> Result<(), ClientError> {
        let (held, contact, blocked) = self.write(|tx| {
            let (conv, contact) = Self::conversation_and_contact(tx, conv.id)?;
            Ok((
                tx.held_messages(conv.id)?,
                contact,
                Self::is_held(tx, &conv)?,
            ))
        })?;
        if held.is_empty() || blocked || contact.standing != ContactStanding::Accepted {
            return Ok(());
        }
        let thread = self.write(|tx| thread_of(tx, conv))?;
        let address = session_address(&contact.address, thread);
        if self.write(|tx| tx.session_devices(&address))?.is_empty() {
            let relay = self.current_relay().await?;
            let Some((key, bundles)) = self.current_devices(&relay, &contact).await? else {
                // Nobody has the handle any more: the messages cannot go.
                self.fail_held(conv)?;
                return Ok(());
            };
            let now = now_ms();
            let events = self.write(|tx| {
                let mut events = Vec::new();
                self.start_sessions(
                    tx,
                    &contact.address,
                    thread,
                    &bundles,
                    key,
                    now,
                    &mut events,
                )?;
                Ok(events)
            })?;
            for e in events {
                self.emit(e);
            }
        }
        let now = now_ms();
        self.write(|tx| {
            // Look again: a key change may have arrived while prekeys were claimed.
            let (conv, contact) = Self::conversation_and_contact(tx, conv.id)?;
            if Self::is_held(tx, &conv)? {
                return Ok(());
            }
            for m in &tx.held_messages(conv.id)? {
                let content = Content::Text {
                    id: m.remote_id.unwrap_or_default(),
                    sent_at: m.sent_at,
                    body: m.body.clone(),
                    expire_after_secs: m.expire_after_secs,
                };
                if !self.queue_content(tx, &contact, &conv, &content, Some(m.id), now)? {
                    break;
                }
            }
            Ok(())
        })?;
        self.inner.outbox_changed.notify_one();
        Ok(())
    }

    fn own_message(
        tx: &Tx<'_>,
        id: MessageId,
    ) -> Result<(Message, Conversation, Contact), StoreError> {
        let m = tx.message(id)?.ok_or(StoreError::NotFound("message"))?;
        if m.direction != Direction::Outgoing {
            return Err(StoreError::Invalid("only your own messages can be changed"));
        }
        let (conv, contact) = Self::conversation_and_contact(tx, m.conversation_id)?;
        Ok((m, conv, contact))
    }

    /// Edits one of our messages, here and (by an encrypted control message) there.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for someone else's message or bad text.
    pub fn edit_message(&self, id: MessageId, body: &str) -> Result<MessageView, ClientError> {
        if body.trim().is_empty() || body.len() > MAX_TEXT_BYTES {
            return Err(ClientError::Invalid("the new text is empty or too long"));
        }
        let now = now_ms();
        let view = self.write(|tx| {
            let (m, conv, contact) = Self::own_message(tx, id)?;
            tx.edit_message(m.id, body, now)?;
            if let Some(remote) = m.remote_id {
                let content = Content::Edit {
                    id: remote,
                    body: body.to_owned(),
                    edited_at: now,
                };
                self.queue_control(tx, &contact, &conv, &content, now)?;
            }
            tx.message(m.id)?.ok_or(StoreError::NotFound("message"))
        })?;
        let view = MessageView::from(&view);
        self.inner.outbox_changed.notify_one();
        self.emit(Event::MessageUpdated {
            message: view.clone(),
        });
        Ok(view)
    }

    /// Deletes one of our messages for everyone.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for someone else's message.
    pub fn delete_for_everyone(&self, id: MessageId) -> Result<(), ClientError> {
        let now = now_ms();
        let view = self.write(|tx| {
            let (m, conv, contact) = Self::own_message(tx, id)?;
            if let Some(remote) = m.remote_id {
                self.queue_control(tx, &contact, &conv, &Content::Delete { id: remote }, now)?;
            }
            tx.delete_message(m.id)?;
            Ok(m)
        })?;
        self.inner.outbox_changed.notify_one();
        self.emit(Event::MessageUpdated {
            message: MessageView::deleted(&view),
        });
        Ok(())
    }
}
