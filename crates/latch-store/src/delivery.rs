//! Queries the client engine needs to deliver messages: secret-chat threads, the envelopes
//! already processed, messages held back from sending, and small settings.

use rusqlite::{OptionalExtension, params};

use crate::model::*;
use crate::store::StoreError;
use crate::tx::{CONTACT_COLUMNS, MESSAGE_COLUMNS, Tx, contact_row, message_from_row, message_row};

/// How many rows a list query returns at most: the lists below are per-profile and small
/// (contacts, conversations, one conversation's unread or held messages).
const LIST_LIMIT: i64 = 100_000;

fn tag_from_sql(v: Vec<u8>) -> Result<[u8; 16], StoreError> {
    <[u8; 16]>::try_from(v.as_slice()).map_err(|_| StoreError::BadValue("secret_threads.tag"))
}

impl Tx<'_> {
    // ---- contacts ------------------------------------------------------------------

    /// Every contact, oldest first.
    ///
    /// # Errors
    /// A database error.
    pub fn contacts(&self) -> Result<Vec<Contact>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts ORDER BY id LIMIT ?1"
        ))?;
        let rows = stmt.query_map([LIST_LIMIT], contact_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks (or clears) that a contact's key changed and the user has not accepted it yet.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown contact.
    pub fn set_key_change_pending(&self, id: ContactId, pending: bool) -> Result<(), StoreError> {
        let n = self.conn.execute(
            "UPDATE contacts SET key_change_pending = ?2 WHERE id = ?1",
            params![id.0, pending],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound("contact"));
        }
        Ok(())
    }

    /// Whether a key change of this contact waits for the user's acceptance.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown contact.
    pub fn key_change_pending(&self, id: ContactId) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT key_change_pending FROM contacts WHERE id = ?1",
                [id.0],
                |r| r.get(0),
            )
            .optional()?
            .ok_or(StoreError::NotFound("contact"))
    }

    // ---- conversations -------------------------------------------------------------

    /// Every conversation, oldest first.
    ///
    /// # Errors
    /// A database error.
    pub fn conversations(&self) -> Result<Vec<Conversation>, StoreError> {
        let ids: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT id FROM conversations ORDER BY id LIMIT ?1")?;
            let rows = stmt.query_map([LIST_LIMIT], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        ids.into_iter()
            .filter_map(|id| self.conversation(ConversationId(id)).transpose())
            .collect()
    }

    /// The standard conversation with a contact, if there is one.
    ///
    /// # Errors
    /// A database error.
    pub fn standard_conversation(
        &self,
        contact: ContactId,
    ) -> Result<Option<ConversationId>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM conversations WHERE contact_id = ?1 AND kind = 0",
                [contact.0],
                |r| r.get(0),
            )
            .optional()?
            .map(ConversationId))
    }

    /// Records the tag of a secret conversation (unique per contact).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] if the conversation is not a secret chat of `contact`; a
    /// constraint error if the contact already has a thread with this tag.
    pub fn set_secret_thread(
        &self,
        conversation: ConversationId,
        tag: &[u8; 16],
    ) -> Result<(), StoreError> {
        let conv = self
            .conversation(conversation)?
            .ok_or(StoreError::NotFound("conversation"))?;
        if conv.kind.is_searchable() {
            return Err(StoreError::Invalid("only secret chats have a thread tag"));
        }
        self.conn.execute(
            "INSERT INTO secret_threads (conversation_id, contact_id, tag) VALUES (?1, ?2, ?3)",
            params![conversation.0, conv.contact_id.0, tag.as_slice()],
        )?;
        Ok(())
    }

    /// The tag of a secret conversation (`None` for a standard one).
    ///
    /// # Errors
    /// A database error.
    pub fn secret_thread(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<[u8; 16]>, StoreError> {
        self.conn
            .query_row(
                "SELECT tag FROM secret_threads WHERE conversation_id = ?1",
                [conversation.0],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .optional()?
            .map(tag_from_sql)
            .transpose()
    }

    /// The secret conversation with `contact` that carries `tag`.
    ///
    /// # Errors
    /// A database error.
    pub fn conversation_by_thread(
        &self,
        contact: ContactId,
        tag: &[u8; 16],
    ) -> Result<Option<ConversationId>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT conversation_id FROM secret_threads WHERE contact_id = ?1 AND tag = ?2",
                params![contact.0, tag.as_slice()],
                |r| r.get(0),
            )
            .optional()?
            .map(ConversationId))
    }

    // ---- messages ------------------------------------------------------------------

    /// The message of a conversation that both sides call `remote_id`.
    ///
    /// # Errors
    /// A database error.
    pub fn message_by_remote_id(
        &self,
        conversation: ConversationId,
        remote_id: &[u8; 16],
    ) -> Result<Option<Message>, StoreError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages
                     WHERE conversation_id = ?1 AND remote_id = ?2"
                ),
                params![conversation.0, remote_id.as_slice()],
                message_row,
            )
            .optional()?
            .map(message_from_row)
            .transpose()
    }

    /// Replaces a message's text after an edit (the search index follows by trigger). After
    /// commit the WAL is checkpointed, so the old text leaves no copy there.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown message.
    pub fn edit_message(
        &self,
        id: MessageId,
        body: &str,
        edited_at: UnixMillis,
    ) -> Result<(), StoreError> {
        let n = self.conn.execute(
            "UPDATE messages SET body = ?2, edited_at = ?3 WHERE id = ?1",
            params![id.0, body, edited_at],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound("message"));
        }
        // The old text lives on in the WAL until a checkpoint, which the commit runs.
        self.text_removed.set(true);
        Ok(())
    }

    /// Incoming messages of a conversation not yet read, oldest first.
    ///
    /// # Errors
    /// A database error.
    pub fn unread_messages(
        &self,
        conversation: ConversationId,
    ) -> Result<Vec<Message>, StoreError> {
        self.messages_where(
            "conversation_id = ?1 AND direction = 0 AND status = 5",
            conversation,
        )
    }

    /// Outgoing messages still pending with nothing in the outbox: held back because no
    /// session exists yet or because the contact's new key waits for acceptance. Oldest first.
    ///
    /// # Errors
    /// A database error.
    pub fn held_messages(&self, conversation: ConversationId) -> Result<Vec<Message>, StoreError> {
        self.messages_where(
            "conversation_id = ?1 AND direction = 1 AND status = 0
             AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.message_id = messages.id)",
            conversation,
        )
    }

    fn messages_where(
        &self,
        cond: &str,
        conversation: ConversationId,
    ) -> Result<Vec<Message>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE {cond}
             ORDER BY sent_at, id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![conversation.0, LIST_LIMIT], message_row)?;
        rows.map(|r| message_from_row(r?)).collect()
    }

    /// How many envelopes wait in the outbox (for status displays and tests).
    ///
    /// # Errors
    /// A database error.
    pub fn outbox_len(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?;
        u64::try_from(n).map_err(|_| StoreError::BadValue("outbox count"))
    }

    /// Drops every outbox entry of a message (it failed for good or was deleted).
    ///
    /// # Errors
    /// A database error.
    pub fn drop_outbox_of(&self, message: MessageId) -> Result<usize, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM outbox WHERE message_id = ?1", [message.0])?)
    }

    // ---- envelopes -----------------------------------------------------------------

    /// Records that the envelope `id` from `sender` was processed. Returns `false` if it
    /// had been already: the caller drops the redelivery.
    ///
    /// # Errors
    /// A database error.
    pub fn mark_envelope_seen(
        &self,
        sender: &[u8],
        id: &[u8; 16],
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO seen_envelopes (sender, id, seen_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![sender, id.as_slice(), now])?
            > 0)
    }

    /// Forgets processed envelope ids older than `before` (the relay no longer holds any
    /// envelope that old, so none can come back).
    ///
    /// # Errors
    /// A database error.
    pub fn prune_seen_envelopes(&self, before: UnixMillis) -> Result<usize, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM seen_envelopes WHERE seen_at < ?1", [before])?)
    }

    // ---- last-resort prekey uses ----------------------------------------------------

    /// Whether the last-resort prekey `kem_id` was already used with `base_key`.
    ///
    /// # Errors
    /// A database error.
    pub fn last_resort_used(&self, kem_id: u32, base_key: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM last_resort_uses WHERE kem_id = ?1 AND base_key = ?2",
                params![kem_id, base_key.as_slice()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Records a use of the last-resort prekey `kem_id` with `base_key`.
    ///
    /// # Errors
    /// A database error.
    pub fn record_last_resort_use(
        &self,
        kem_id: u32,
        base_key: &[u8; 32],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO last_resort_uses (kem_id, base_key, used_at) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
            params![kem_id, base_key.as_slice(), now],
        )?;
        Ok(())
    }

    /// Forgets the recorded uses of a last-resort prekey once the key itself is gone: with
    /// no key, a replayed message cannot decrypt anyway, and the list would only grow.
    /// Returns how many were removed.
    ///
    /// # Errors
    /// A database error.
    pub fn forget_last_resort_uses(&self, kem_id: u32) -> Result<usize, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM last_resort_uses WHERE kem_id = ?1", [kem_id])?)
    }

    // ---- settings ------------------------------------------------------------------

    /// A setting's value.
    ///
    /// # Errors
    /// A database error.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Sets a setting.
    ///
    /// # Errors
    /// A database error.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Removes a setting; returns whether it was set.
    ///
    /// # Errors
    /// A database error.
    pub fn delete_setting(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM settings WHERE key = ?1", [key])?
            > 0)
    }

    /// Every setting whose key starts with `prefix`, by key.
    ///
    /// # Errors
    /// A database error.
    pub fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        // `substr` rather than LIKE: a prefix may hold `%` or `_`.
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, value FROM settings WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key",
        )?;
        let rows = stmt.query_map([prefix], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
