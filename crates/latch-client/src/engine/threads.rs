//! Conversations: standard and secret chats, pages of history, search, drafts, timers and
//! read state.

use latch_relay::api::{self};
use latch_store::{
    ContactId, ContactStanding, Conversation, ConversationId, ConversationKind, MessageId,
    MessageStatus, PageCursor, StoreError, Tx,
};

use crate::events::{ConversationView, Event, MessageView, kind_name, standing_name};
use crate::profile::now_ms;
use crate::wire::{Content, ReceiptKind, ThreadTag};

use super::{
    ClientError, Engine, MAX_DRAFT_BYTES, TIMER_SET_BY_ME, create_secret_conversation, draft_key,
    key_name, relay_key, timer_setter_key, validate_timer,
};

impl Engine {
    /// Opens the standard chat with a contact (existing or new).
    ///
    /// # Errors
    /// [`ClientError::NotFound`] for an unknown contact.
    pub fn open_standard_chat(&self, contact: ContactId) -> Result<ConversationId, ClientError> {
        let now = now_ms();
        Ok(self.write(|tx| match tx.standard_conversation(contact)? {
            Some(id) => Ok(id),
            None => tx.create_conversation(contact, ConversationKind::Standard, None, now),
        })?)
    }

    /// Starts a secret chat (the lock toggle): a new thread beside the standard chat, with its
    /// own session, bound to this device, never indexed, with a disappearing timer. Needs the
    /// relay (fresh prekeys start the separate session).
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for a bad timer, [`ClientError::Offline`], relay errors.
    pub async fn start_secret_chat(
        &self,
        contact: ContactId,
        timer_secs: u32,
    ) -> Result<ConversationId, ClientError> {
        validate_timer(Some(timer_secs))?;
        let c = self.write(|tx| {
            let c = tx
                .contact(contact)?
                .ok_or(StoreError::NotFound("contact"))?;
            Self::refuse_unless_accepted(&c)?;
            // A secret chat starts only with a key the user accepted: the first thing it sends
            // (its timer) would otherwise go to a key nobody looked at.
            if tx.key_change_pending(c.id)? {
                return Err(StoreError::Invalid(
                    "the contact's safety number changed: accept the new key first",
                ));
            }
            Ok(c)
        })?;
        let relay = self.current_relay().await?;
        let key = relay_key(&c)?;
        let bundles = self.claim_bundles(&relay, key).await?;
        let thread =
            ThreadTag::random().map_err(|_| ClientError::Invalid("the OS random source failed"))?;
        let now = now_ms();
        let (conv, events) = self.write(|tx| {
            let mut events = Vec::new();
            let c = self.start_sessions(tx, &c.address, thread, &bundles, key, now, &mut events)?;
            let id = create_secret_conversation(tx, c.id, thread, timer_secs, now)?;
            let conv = tx
                .conversation(id)?
                .ok_or(StoreError::NotFound("conversation"))?;
            // Tells the contact's device the thread exists and what its timer is.
            self.queue_content(
                tx,
                &c,
                &conv,
                &Content::Timer {
                    secs: Some(timer_secs),
                },
                None,
                now,
            )?;
            Ok((id, events))
        })?;
        for e in events {
            self.emit(e);
        }
        self.inner.outbox_changed.notify_one();
        Ok(conv)
    }

    /// Every conversation with its contact, unread count and newest message.
    ///
    /// # Errors
    /// A database error.
    pub fn conversations(&self) -> Result<Vec<ConversationView>, ClientError> {
        Ok(self.write(|tx| {
            let mut out = Vec::new();
            for conv in tx.conversations()? {
                if let Some(view) = conversation_view(tx, &conv)? {
                    out.push(view);
                }
            }
            Ok(out)
        })?)
    }

    /// One page of a conversation, oldest first: the newest `limit` messages, or with
    /// `before`, the `limit` messages older than that message (for scrolling back).
    ///
    /// # Errors
    /// A database error; `NotFound` for an unknown `before` message.
    pub fn messages(
        &self,
        conversation: ConversationId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<MessageView>, ClientError> {
        let mut page = self.write(|tx| {
            let cursor = match before {
                Some(id) => Some(PageCursor::from(
                    &tx.message(id)?.ok_or(StoreError::NotFound("message"))?,
                )),
                None => None,
            };
            tx.conversation_page(conversation, cursor, limit)
        })?;
        page.reverse();
        Ok(page.iter().map(MessageView::from).collect())
    }

    /// Full-text search over standard chats (secret chats are never indexed).
    ///
    /// # Errors
    /// A database error.
    /// Message requests and blocked contacts are left out: a stranger's text shows only in
    /// its own chat, once the user opens it.
    pub fn search(&self, query: &str, limit: u32) -> Result<Vec<MessageView>, ClientError> {
        Ok(self.write(|tx| {
            let mut out = Vec::new();
            for id in tx.search(query, limit)? {
                let Some(m) = tx.message(id)? else { continue };
                let (_, contact) = Self::conversation_and_contact(tx, m.conversation_id)?;
                if contact.standing == ContactStanding::Accepted {
                    out.push(MessageView::from(&m));
                }
            }
            Ok(out)
        })?)
    }

    /// Keeps the unsent text of a standard chat in the encrypted profile, so it survives a
    /// restart (empty text clears it). A secret chat's draft is never written to disk: it
    /// lives in the window only. Returns whether the draft was stored.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for a draft over [`MAX_DRAFT_BYTES`]; a database error.
    pub fn save_draft(
        &self,
        conversation: ConversationId,
        text: &str,
    ) -> Result<bool, ClientError> {
        if text.len() > MAX_DRAFT_BYTES {
            return Err(ClientError::Invalid(
                "the draft is too long (1 MiB at most)",
            ));
        }
        Ok(self.write(|tx| {
            let conv = tx
                .conversation(conversation)?
                .ok_or(StoreError::NotFound("conversation"))?;
            if matches!(conv.kind, ConversationKind::Secret { .. }) {
                return Ok(false);
            }
            let key = draft_key(conv.id);
            if text.is_empty() {
                tx.delete_setting(&key)?;
            } else {
                tx.set_setting(&key, text)?;
            }
            Ok(true)
        })?)
    }

    /// Sets the disappearing timer (applies to messages sent from now on) and tells the
    /// contact, so both sides agree and both see who changed it.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for a bad value (secret chats cannot turn it off).
    pub fn set_timer(
        &self,
        conversation: ConversationId,
        secs: Option<u32>,
    ) -> Result<(), ClientError> {
        validate_timer(secs)?;
        let now = now_ms();
        self.write(|tx| {
            let (conv, contact) = Self::conversation_and_contact(tx, conversation)?;
            tx.set_disappearing_timer(conv.id, secs)?;
            tx.set_setting(&timer_setter_key(conv.id), TIMER_SET_BY_ME)?;
            self.queue_control(tx, &contact, &conv, &Content::Timer { secs }, now)?;
            Ok(())
        })?;
        self.inner.outbox_changed.notify_one();
        self.emit(Event::TimerChanged {
            conversation_id: conversation.0,
            seconds: secs,
            by_me: true,
        });
        Ok(())
    }

    /// Marks a conversation read: starts the disappearing clock of its unread messages and
    /// sends read receipts.
    ///
    /// # Errors
    /// A database error.
    pub fn mark_read(&self, conversation: ConversationId) -> Result<usize, ClientError> {
        let now = now_ms();
        let updated = self.write(|tx| {
            let (conv, contact) = Self::conversation_and_contact(tx, conversation)?;
            let unread = tx.unread_messages(conv.id)?;
            let mut ids = Vec::new();
            for m in &unread {
                tx.set_message_status(m.id, MessageStatus::Read)?;
                if let Some(secs) = m.expire_after_secs {
                    let at = now + i64::from(secs) * 1_000;
                    tx.set_message_expiry(m.id, m.expires_at.map_or(at, |e| e.min(at)))?;
                }
                ids.extend(m.remote_id);
            }
            // A request learns nothing until accepted, not even that its message was read.
            let ids = if contact.standing == ContactStanding::Accepted {
                ids
            } else {
                Vec::new()
            };
            for chunk in ids.chunks(api::MAX_ACK_IDS) {
                let receipt = Content::Receipt {
                    kind: ReceiptKind::Read,
                    ids: chunk.to_vec(),
                };
                self.queue_content(tx, &contact, &conv, &receipt, None, now)?;
            }
            let mut views = Vec::new();
            for m in &unread {
                if let Some(m) = tx.message(m.id)? {
                    views.push(MessageView::from(&m));
                }
            }
            Ok(views)
        })?;
        self.inner.outbox_changed.notify_one();
        let n = updated.len();
        for message in updated {
            self.emit(Event::MessageUpdated { message });
        }
        Ok(n)
    }

    /// One conversation as the list shows it.
    ///
    /// # Errors
    /// `NotFound`, or a database error.
    pub fn conversation(&self, id: ConversationId) -> Result<ConversationView, ClientError> {
        self.write(|tx| match tx.conversation(id)? {
            Some(conv) => conversation_view(tx, &conv),
            None => Ok(None),
        })?
        .ok_or(ClientError::NotFound("conversation"))
    }
}

/// A conversation as the list shows it (`None` if its contact is gone).
fn conversation_view(
    tx: &Tx<'_>,
    conv: &Conversation,
) -> Result<Option<ConversationView>, StoreError> {
    let Some(contact) = tx.contact(conv.contact_id)? else {
        return Ok(None);
    };
    Ok(Some(ConversationView {
        id: conv.id.0,
        kind: kind_name(conv),
        contact_id: contact.id.0,
        verified: contact.verified,
        disappear_after_secs: conv.disappear_after_secs,
        timer_set_by_me: tx
            .setting(&timer_setter_key(conv.id))?
            .map(|who| who == TIMER_SET_BY_ME),
        unread: tx.unread_messages(conv.id)?.len(),
        key_change_pending: tx.key_change_pending(contact.id)?,
        contact_key: key_name(&contact.identity_key)?,
        standing: standing_name(contact.standing),
        draft: match conv.kind {
            ConversationKind::Standard => tx.setting(&draft_key(conv.id))?,
            ConversationKind::Secret { .. } => None,
        },
        last_message: tx
            .conversation_page(conv.id, None, 1)?
            .first()
            .map(MessageView::from),
        contact_name: contact.address,
    }))
}
