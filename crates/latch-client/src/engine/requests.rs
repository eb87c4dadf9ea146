//! Message requests and blocking: someone the user never added who writes first waits in the
//! requests until the user accepts, declines or blocks them; a blocked contact's envelopes are
//! dropped before decryption (see `receive`).

use latch_relay::api;
use latch_store::{ContactId, ContactStanding, Direction, StoreError};

use crate::events::{Event, standing_name};
use crate::profile::now_ms;
use crate::wire::{Content, ReceiptKind};

use super::{ClientError, Engine, forget_secret_sessions};

impl Engine {
    /// Accepts a message request: the contact's chats become ordinary chats (replies,
    /// receipts, notification text), and what they sent meanwhile is now receipted as
    /// delivered (not as read: what the user did while deciding stays theirs).
    ///
    /// # Errors
    /// `NotFound`; [`ClientError::Invalid`] when the contact is not a request.
    pub fn accept_request(&self, contact: ContactId) -> Result<(), ClientError> {
        let now = now_ms();
        self.write(|tx| {
            let c = tx
                .contact(contact)?
                .ok_or(StoreError::NotFound("contact"))?;
            if c.standing != ContactStanding::Request {
                return Err(StoreError::Invalid("that chat is not a message request"));
            }
            tx.set_contact_standing(contact, ContactStanding::Accepted)?;
            for conv in tx.conversations()? {
                if conv.contact_id != c.id {
                    continue;
                }
                // The newest ones: one receipt's worth, however much a stranger sent.
                let ids: Vec<[u8; 16]> = tx
                    .conversation_page(conv.id, None, api::MAX_ACK_IDS as u32)?
                    .iter()
                    .filter(|m| m.direction == Direction::Incoming)
                    .filter_map(|m| m.remote_id)
                    .collect();
                if !ids.is_empty() {
                    let receipt = Content::Receipt {
                        kind: ReceiptKind::Delivered,
                        ids,
                    };
                    self.queue_content(tx, &c, &conv, &receipt, None, now)?;
                }
            }
            Ok(())
        })?;
        self.standing_changed(contact, ContactStanding::Accepted);
        Ok(())
    }

    /// Declines a message request: the contact, their chats and their sessions are deleted.
    /// What their device sends on that session afterwards cannot be read and is dropped; a
    /// new first message from them (a new session) is a new request.
    ///
    /// # Errors
    /// `NotFound`; [`ClientError::Invalid`] when the contact is not a request.
    pub fn decline_request(&self, contact: ContactId) -> Result<(), ClientError> {
        let conversation_ids = self.write(|tx| {
            let c = tx
                .contact(contact)?
                .ok_or(StoreError::NotFound("contact"))?;
            if c.standing != ContactStanding::Request {
                return Err(StoreError::Invalid("that chat is not a message request"));
            }
            let gone: Vec<i64> = tx
                .conversations()?
                .iter()
                .filter(|conv| conv.contact_id == c.id)
                .map(|conv| conv.id.0)
                .collect();
            forget_secret_sessions(tx, &c)?;
            tx.delete_sessions(&c.address, None)?;
            tx.delete_contact(c.id)?;
            Ok(gone)
        })?;
        self.emit(Event::ContactRemoved {
            contact_id: contact.0,
            conversation_ids,
        });
        Ok(())
    }

    /// Blocks a contact (a request or anyone else): what they send from now on is dropped
    /// unread, and nothing can be sent to them.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn block(&self, contact: ContactId) -> Result<(), ClientError> {
        if !self.write(|tx| tx.set_contact_standing(contact, ContactStanding::Blocked))? {
            return Err(ClientError::NotFound("contact"));
        }
        self.standing_changed(contact, ContactStanding::Blocked);
        Ok(())
    }

    /// Unblocks a contact: they are an ordinary contact again.
    ///
    /// # Errors
    /// `NotFound`; [`ClientError::Invalid`] when the contact is not blocked.
    pub fn unblock(&self, contact: ContactId) -> Result<(), ClientError> {
        let to = ContactStanding::Accepted;
        self.write(|tx| {
            let c = tx
                .contact(contact)?
                .ok_or(StoreError::NotFound("contact"))?;
            if c.standing != ContactStanding::Blocked {
                return Err(StoreError::Invalid("that contact is not blocked"));
            }
            tx.set_contact_standing(contact, to).map(drop)
        })?;
        self.standing_changed(contact, to);
        Ok(())
    }

    fn standing_changed(&self, contact: ContactId, standing: ContactStanding) {
        self.emit(Event::ContactStanding {
            contact_id: contact.0,
            standing: standing_name(standing),
        });
        if standing == ContactStanding::Accepted {
            // The receipts accepting queued, and held messages, may go now.
            self.inner.outbox_changed.notify_one();
        }
    }
}
