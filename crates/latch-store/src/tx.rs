//! One transaction over a profile: every query the client makes.

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::path::PathBuf;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::model::*;
use crate::store::StoreError;

/// One open transaction. Every write the client makes goes through here, so a message and
/// the ratchet state that produced it commit together.
pub struct Tx<'a> {
    pub(crate) conn: &'a Connection,
    pub(crate) attachments_dir: PathBuf,
    /// Set when a write adds or moves an expiry: the sweeper is woken after commit.
    pub(crate) expiry_added: Cell<bool>,
    /// Attachment files written in this transaction: removed if it does not commit.
    pub(crate) new_files: RefCell<Vec<PathBuf>>,
    /// Files of deleted attachments: removed only after commit.
    pub(crate) dead_files: RefCell<Vec<PathBuf>>,
    /// Set when a write deletes or replaces message text: the WAL, which still holds the
    /// old pages, is checkpointed after commit, as after an expiry.
    pub(crate) text_removed: Cell<bool>,
}

/// The settings key of the highest message id ever handed out.
const SETTING_MESSAGE_ID_HIGH: &str = "message_id_high";

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").finish_non_exhaustive()
    }
}

fn kind_to_sql(kind: ConversationKind) -> (i64, Option<i64>) {
    match kind {
        ConversationKind::Standard => (0, None),
        ConversationKind::Secret { bound_device_id } => (1, Some(i64::from(bound_device_id))),
    }
}

fn direction_to_sql(d: Direction) -> i64 {
    match d {
        Direction::Incoming => 0,
        Direction::Outgoing => 1,
    }
}

fn direction_from_sql(v: i64) -> Result<Direction, StoreError> {
    match v {
        0 => Ok(Direction::Incoming),
        1 => Ok(Direction::Outgoing),
        _ => Err(StoreError::BadValue("messages.direction")),
    }
}

fn status_to_sql(s: MessageStatus) -> i64 {
    match s {
        MessageStatus::Pending => 0,
        MessageStatus::Sent => 1,
        MessageStatus::Delivered => 2,
        MessageStatus::Read => 3,
        MessageStatus::Failed => 4,
        MessageStatus::Received => 5,
    }
}

fn status_from_sql(v: i64) -> Result<MessageStatus, StoreError> {
    Ok(match v {
        0 => MessageStatus::Pending,
        1 => MessageStatus::Sent,
        2 => MessageStatus::Delivered,
        3 => MessageStatus::Read,
        4 => MessageStatus::Failed,
        5 => MessageStatus::Received,
        _ => return Err(StoreError::BadValue("messages.status")),
    })
}

fn prekey_kind_to_sql(k: PreKeyKind) -> i64 {
    match k {
        PreKeyKind::OneTime => 0,
        PreKeyKind::Signed => 1,
        PreKeyKind::PostQuantum => 2,
    }
}

fn u32_from_sql(v: i64, column: &'static str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::BadValue(column))
}

type ConversationRow = (i64, i64, i64, Option<i64>, Option<i64>, i64);

/// A message row as read: the first eight columns, then the delivery columns, then the call
/// columns.
type MessageRow = (
    (i64, i64, i64, i64, String, i64, Option<i64>, Option<i64>),
    (Option<Vec<u8>>, Option<i64>, Option<i64>),
    (Option<i64>, Option<i64>, Option<i64>),
);

pub(crate) const MESSAGE_COLUMNS: &str = "id, conversation_id, direction, status, body, sent_at, \
     received_at, expires_at, remote_id, expire_after_secs, edited_at, call_media, call_outcome, \
     call_duration_ms";

pub(crate) fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok((
        (
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
        ),
        (r.get(8)?, r.get(9)?, r.get(10)?),
        (r.get(11)?, r.get(12)?, r.get(13)?),
    ))
}

fn call_kind_to_sql(k: CallKind) -> i64 {
    match k {
        CallKind::Voice => 0,
        CallKind::Video => 1,
    }
}

fn call_outcome_to_sql(o: CallOutcome) -> i64 {
    match o {
        CallOutcome::Completed => 0,
        CallOutcome::Missed => 1,
        CallOutcome::Declined => 2,
        CallOutcome::Busy => 3,
        CallOutcome::NoAnswer => 4,
        CallOutcome::Cancelled => 5,
        CallOutcome::Failed => 6,
    }
}

fn call_from_sql(
    (media, outcome, duration): (Option<i64>, Option<i64>, Option<i64>),
) -> Result<Option<CallEvent>, StoreError> {
    let (Some(media), Some(outcome)) = (media, outcome) else {
        return Ok(None);
    };
    let kind = match media {
        0 => CallKind::Voice,
        1 => CallKind::Video,
        _ => return Err(StoreError::BadValue("messages.call_media")),
    };
    let outcome = match outcome {
        0 => CallOutcome::Completed,
        1 => CallOutcome::Missed,
        2 => CallOutcome::Declined,
        3 => CallOutcome::Busy,
        4 => CallOutcome::NoAnswer,
        5 => CallOutcome::Cancelled,
        6 => CallOutcome::Failed,
        _ => return Err(StoreError::BadValue("messages.call_outcome")),
    };
    let duration_ms = duration
        .map(|d| u64::try_from(d).map_err(|_| StoreError::BadValue("messages.call_duration_ms")))
        .transpose()?;
    Ok(Some(CallEvent {
        kind,
        outcome,
        duration_ms,
    }))
}

pub(crate) fn message_from_row(row: MessageRow) -> Result<Message, StoreError> {
    let ((id, conv, dir, status, body, sent_at, received_at, expires_at), delivery, call) = row;
    let (remote_id, expire_after_secs, edited_at) = delivery;
    Ok(Message {
        id: MessageId(id),
        conversation_id: ConversationId(conv),
        direction: direction_from_sql(dir)?,
        status: status_from_sql(status)?,
        body,
        sent_at,
        received_at,
        expires_at,
        remote_id: remote_id
            .map(|v| <[u8; 16]>::try_from(v.as_slice()))
            .transpose()
            .map_err(|_| StoreError::BadValue("messages.remote_id"))?,
        expire_after_secs: expire_after_secs
            .map(|v| u32_from_sql(v, "messages.expire_after_secs"))
            .transpose()?,
        edited_at,
        call: call_from_sql(call)?,
    })
}

/// The columns of a contact, in the order [`contact_row`] reads them.
pub(crate) const CONTACT_COLUMNS: &str =
    "id, address, display_name, identity_key, verified, added_at, standing";

/// Reads a contact selected with [`CONTACT_COLUMNS`].
pub(crate) fn contact_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Contact> {
    Ok(Contact {
        id: ContactId(r.get(0)?),
        address: r.get(1)?,
        display_name: r.get(2)?,
        identity_key: r.get(3)?,
        verified: r.get(4)?,
        added_at: r.get(5)?,
        standing: ContactStanding::from_sql(r.get(6)?),
    })
}

/// Turns user text into an FTS5 phrase query, so search input can never be FTS syntax.
fn fts_phrase(query: &str) -> String {
    format!("\"{}\"", query.replace('"', "\"\""))
}

impl Tx<'_> {
    /// Runs an `UPDATE` that must touch exactly the row it names; `NotFound(what)` otherwise.
    fn update_one(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        what: &'static str,
    ) -> Result<(), StoreError> {
        match self.conn.execute(sql, params)? {
            0 => Err(StoreError::NotFound(what)),
            _ => Ok(()),
        }
    }

    // ---- profile -------------------------------------------------------------------

    /// Writes the profile row (device id, handle, display name).
    ///
    /// # Errors
    /// A database error.
    pub fn set_profile(&self, profile: &Profile) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO profile (id, device_id, handle, display_name, created_at)
             VALUES (1, ?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET device_id = excluded.device_id,
                 handle = excluded.handle, display_name = excluded.display_name",
            params![
                profile.device_id,
                profile.handle,
                profile.display_name,
                profile.created_at
            ],
        )?;
        Ok(())
    }

    /// The profile row, if written.
    ///
    /// # Errors
    /// A database error.
    pub fn profile(&self) -> Result<Option<Profile>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT device_id, handle, display_name, created_at FROM profile WHERE id = 1",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        row.map(|(device, handle, display_name, created_at)| {
            Ok(Profile {
                device_id: u32_from_sql(device, "profile.device_id")?,
                handle,
                display_name,
                created_at,
            })
        })
        .transpose()
    }

    // ---- contacts ------------------------------------------------------------------

    /// Records the identity key seen for `address`: adds the contact, or notes a key change
    /// (history row, verification reset), or confirms the known key.
    ///
    /// # Errors
    /// A database error.
    pub fn observe_identity(
        &self,
        address: &str,
        identity_key: &[u8],
        now: UnixMillis,
    ) -> Result<(ContactId, IdentityChange), StoreError> {
        let existing: Option<(i64, Vec<u8>, bool)> = self
            .conn
            .query_row(
                "SELECT id, identity_key, verified FROM contacts WHERE address = ?1",
                [address],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        match existing {
            None => {
                self.conn.execute(
                    "INSERT INTO contacts (address, identity_key, added_at) VALUES (?1, ?2, ?3)",
                    params![address, identity_key, now],
                )?;
                Ok((
                    ContactId(self.conn.last_insert_rowid()),
                    IdentityChange::New,
                ))
            }
            Some((id, key, _)) if key == identity_key => {
                Ok((ContactId(id), IdentityChange::Unchanged))
            }
            Some((id, key, was_verified)) => {
                self.conn.execute(
                    "INSERT INTO contact_key_changes
                         (contact_id, old_identity_key, new_identity_key, was_verified, changed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, key, identity_key, was_verified, now],
                )?;
                self.conn.execute(
                    "UPDATE contacts SET identity_key = ?2, verified = 0 WHERE id = ?1",
                    params![id, identity_key],
                )?;
                Ok((ContactId(id), IdentityChange::Changed { was_verified }))
            }
        }
    }

    /// Sets a contact's local display name.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown contact.
    pub fn set_contact_name(&self, id: ContactId, name: Option<&str>) -> Result<(), StoreError> {
        self.update_one(
            "UPDATE contacts SET display_name = ?2 WHERE id = ?1",
            params![id.0, name],
            "contact",
        )
    }

    /// Marks the contact's *current* key verified (or not), after a safety-number check.
    ///
    /// `expected_key` must be the key the user compared: if it changed meanwhile, nothing is
    /// marked and [`StoreError::Invalid`] says so.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] or [`StoreError::Invalid`].
    pub fn set_verified(
        &self,
        id: ContactId,
        expected_key: &[u8],
        verified: bool,
    ) -> Result<(), StoreError> {
        let contact = self.contact(id)?.ok_or(StoreError::NotFound("contact"))?;
        if contact.identity_key != expected_key {
            return Err(StoreError::Invalid(
                "identity key changed since it was compared",
            ));
        }
        self.conn.execute(
            "UPDATE contacts SET verified = ?2 WHERE id = ?1",
            params![id.0, verified],
        )?;
        Ok(())
    }

    /// A contact by id.
    ///
    /// # Errors
    /// A database error.
    pub fn contact(&self, id: ContactId) -> Result<Option<Contact>, StoreError> {
        self.contact_where("id = ?1", rusqlite::types::Value::Integer(id.0))
    }

    /// A contact by relay address.
    ///
    /// # Errors
    /// A database error.
    pub fn contact_by_address(&self, address: &str) -> Result<Option<Contact>, StoreError> {
        self.contact_where(
            "address = ?1",
            rusqlite::types::Value::Text(address.to_owned()),
        )
    }

    /// The contact whose identity key has this Ed25519 signing key (how the relay names a
    /// sender), through an index: no key is decoded.
    ///
    /// # Errors
    /// A database error.
    pub fn contact_by_signing_key(
        &self,
        signing_key: &[u8; 32],
    ) -> Result<Option<Contact>, StoreError> {
        self.contact_where(
            "substr(identity_key, 2, 32) = ?1",
            rusqlite::types::Value::Blob(signing_key.to_vec()),
        )
    }

    /// Sets whether the user lets a contact in. Returns whether the contact exists.
    ///
    /// # Errors
    /// A database error.
    pub fn set_contact_standing(
        &self,
        id: ContactId,
        standing: ContactStanding,
    ) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "UPDATE contacts SET standing = ?2 WHERE id = ?1",
            params![id.0, standing.to_sql()],
        )? > 0)
    }

    /// Deletes a contact with their conversations and messages (a declined request).
    /// Returns whether the contact existed.
    ///
    /// # Errors
    /// A database error.
    pub fn delete_contact(&self, id: ContactId) -> Result<bool, StoreError> {
        let deleted = self
            .conn
            .execute("DELETE FROM contacts WHERE id = ?1", [id.0])?
            > 0;
        if deleted {
            // Their messages' text lives on in the WAL until a checkpoint.
            self.text_removed.set(true);
        }
        Ok(deleted)
    }

    fn contact_where(
        &self,
        cond: &str,
        value: rusqlite::types::Value,
    ) -> Result<Option<Contact>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE {cond}"),
                [value],
                contact_row,
            )
            .optional()?)
    }

    /// The history of a contact's key changes, oldest first.
    ///
    /// # Errors
    /// A database error.
    pub fn key_changes(&self, id: ContactId) -> Result<Vec<KeyChange>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT old_identity_key, new_identity_key, was_verified, changed_at
             FROM contact_key_changes WHERE contact_id = ?1 ORDER BY changed_at, id",
        )?;
        let rows = stmt.query_map([id.0], |r| {
            Ok(KeyChange {
                old_identity_key: r.get(0)?,
                new_identity_key: r.get(1)?,
                was_verified: r.get(2)?,
                changed_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ---- conversations -------------------------------------------------------------

    /// Starts a conversation. A contact has at most one standard conversation; secret chats
    /// need a timer of 5 s to 24 h and are bound to a device.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a bad timer, [`StoreError::NotFound`] for an unknown contact.
    pub fn create_conversation(
        &self,
        contact: ContactId,
        kind: ConversationKind,
        disappear_after_secs: Option<u32>,
        now: UnixMillis,
    ) -> Result<ConversationId, StoreError> {
        validate_timer(kind, disappear_after_secs)?;
        if self.contact(contact)?.is_none() {
            return Err(StoreError::NotFound("contact"));
        }
        let (k, device) = kind_to_sql(kind);
        self.conn.execute(
            "INSERT INTO conversations (contact_id, kind, bound_device_id, disappear_after_secs, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![contact.0, k, device, disappear_after_secs, now],
        )?;
        Ok(ConversationId(self.conn.last_insert_rowid()))
    }

    /// Changes a conversation's disappearing timer (applies to messages sent from now on).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a bad timer, [`StoreError::NotFound`].
    pub fn set_disappearing_timer(
        &self,
        id: ConversationId,
        secs: Option<u32>,
    ) -> Result<(), StoreError> {
        let conv = self
            .conversation(id)?
            .ok_or(StoreError::NotFound("conversation"))?;
        validate_timer(conv.kind, secs)?;
        self.conn.execute(
            "UPDATE conversations SET disappear_after_secs = ?2 WHERE id = ?1",
            params![id.0, secs],
        )?;
        Ok(())
    }

    /// A conversation by id.
    ///
    /// # Errors
    /// A database error.
    pub fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>, StoreError> {
        let row: Option<ConversationRow> = self
            .conn
            .prepare_cached(
                "SELECT id, contact_id, kind, bound_device_id, disappear_after_secs, created_at
                 FROM conversations WHERE id = ?1",
            )?
            .query_row([id.0], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .optional()?;
        row.map(|(id, contact, kind, device, timer, created_at)| {
            let kind = match (kind, device) {
                (0, None) => ConversationKind::Standard,
                (1, Some(d)) => ConversationKind::Secret {
                    bound_device_id: u32_from_sql(d, "conversations.bound_device_id")?,
                },
                _ => return Err(StoreError::BadValue("conversations.kind")),
            };
            Ok(Conversation {
                id: ConversationId(id),
                contact_id: ContactId(contact),
                kind,
                disappear_after_secs: timer
                    .map(|t| u32_from_sql(t, "conversations.disappear_after_secs"))
                    .transpose()?,
                created_at,
            })
        })
        .transpose()
    }

    // ---- messages ------------------------------------------------------------------

    /// Inserts a message. Standard-chat text enters the search index; secret-chat text never
    /// does (the schema's trigger only indexes standard conversations, and a conversation
    /// cannot change kind). A message in a secret chat must carry an expiry.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown conversation, [`StoreError::Invalid`] for a
    /// secret-chat message without expiry.
    pub fn insert_message(&self, m: &NewMessage<'_>) -> Result<MessageId, StoreError> {
        let conv = self
            .conversation(m.conversation_id)?
            .ok_or(StoreError::NotFound("conversation"))?;
        if !conv.kind.is_searchable() && m.expires_at.is_none() {
            return Err(StoreError::Invalid("secret-chat messages must expire"));
        }
        // Ids are never reused, even after the newest messages were deleted (SQLite would
        // hand out max(id) + 1 again): a UI or a notification that still knows a deleted
        // message's id must never take a new message for it.
        let id: i64 = self
            .conn
            .prepare_cached(
                "SELECT max(
                     coalesce((SELECT CAST(value AS INTEGER) FROM settings WHERE key = ?1), 0),
                     coalesce((SELECT max(id) FROM messages), 0)) + 1",
            )?
            .query_row([SETTING_MESSAGE_ID_HIGH], |r| r.get(0))?;
        self.conn
            .prepare_cached(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![SETTING_MESSAGE_ID_HIGH, id.to_string()])?;
        self.conn
            .prepare_cached(
                "INSERT INTO messages (id, conversation_id, direction, status, body, sent_at,
                     received_at, expires_at, remote_id, expire_after_secs)
                 VALUES (?10, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                m.conversation_id.0,
                direction_to_sql(m.direction),
                status_to_sql(m.status),
                m.body,
                m.sent_at,
                m.received_at,
                m.expires_at,
                m.remote_id.as_ref().map(<[u8; 16]>::as_slice),
                m.expire_after_secs,
                id
            ])?;
        if m.expires_at.is_some() {
            self.expiry_added.set(true);
        }
        Ok(MessageId(id))
    }

    /// Adds a call to its chat: a row like a message (it sorts, marks read and disappears
    /// with the chat, an unread one's timer starting at reading as `expire_after_secs`
    /// says), never sent, with an empty body so nothing of it is indexed.
    ///
    /// # Errors
    /// As [`Tx::insert_message`].
    #[allow(clippy::too_many_arguments)] // a message row's fields, and the call
    pub fn insert_call_event(
        &self,
        conversation_id: ConversationId,
        direction: Direction,
        status: MessageStatus,
        at: UnixMillis,
        expires_at: Option<UnixMillis>,
        expire_after_secs: Option<u32>,
        call: CallEvent,
    ) -> Result<MessageId, StoreError> {
        let id = self.insert_message(&NewMessage {
            conversation_id,
            direction,
            status,
            body: "",
            sent_at: at,
            received_at: (direction == Direction::Incoming).then_some(at),
            expires_at,
            remote_id: None,
            expire_after_secs,
        })?;
        let duration = call
            .duration_ms
            .map(|d| i64::try_from(d).map_err(|_| StoreError::Invalid("call too long")))
            .transpose()?;
        self.conn
            .prepare_cached(
                "UPDATE messages SET call_media = ?2, call_outcome = ?3, call_duration_ms = ?4
                 WHERE id = ?1",
            )?
            .execute(params![
                id.0,
                call_kind_to_sql(call.kind),
                call_outcome_to_sql(call.outcome),
                duration
            ])?;
        Ok(id)
    }

    /// A message by id.
    ///
    /// # Errors
    /// A database error.
    pub fn message(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"),
                [id.0],
                message_row,
            )
            .optional()?
            .map(message_from_row)
            .transpose()
    }

    /// One page of a conversation, newest first, strictly older than `before`.
    ///
    /// # Errors
    /// A database error.
    pub fn conversation_page(
        &self,
        conversation: ConversationId,
        before: Option<PageCursor>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let (sent_at, id) = before.map_or((i64::MAX, i64::MAX), |c| (c.sent_at, c.id.0));
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE conversation_id = ?1 AND (sent_at, id) < (?2, ?3)
             ORDER BY sent_at DESC, id DESC LIMIT ?4"
        ))?;
        let rows = stmt.query_map(params![conversation.0, sent_at, id, limit], message_row)?;
        rows.map(|r| message_from_row(r?)).collect()
    }

    /// Updates a message's delivery status.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown message.
    pub fn set_message_status(
        &self,
        id: MessageId,
        status: MessageStatus,
    ) -> Result<(), StoreError> {
        self.update_one(
            "UPDATE messages SET status = ?2 WHERE id = ?1",
            params![id.0, status_to_sql(status)],
            "message",
        )
    }

    /// Sets when a message disappears (e.g. the timer starts when an incoming one is read).
    /// An earlier expiry than the sweeper is waiting for wakes it.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown message.
    pub fn set_message_expiry(
        &self,
        id: MessageId,
        expires_at: UnixMillis,
    ) -> Result<(), StoreError> {
        self.update_one(
            "UPDATE messages SET expires_at = ?2 WHERE id = ?1",
            params![id.0, expires_at],
            "message",
        )?;
        self.expiry_added.set(true);
        Ok(())
    }

    /// Deletes a message with its search entry and attachments (files go after commit). After
    /// commit the WAL is checkpointed, so the text leaves no copy there ([`Store::write`]).
    ///
    /// # Errors
    /// A database error. Deleting an unknown message returns `false`.
    pub fn delete_message(&self, id: MessageId) -> Result<bool, StoreError> {
        self.forget_attachment_files(id)?;
        let deleted = self
            .conn
            .execute("DELETE FROM messages WHERE id = ?1", [id.0])?
            > 0;
        if deleted {
            self.text_removed.set(true);
        }
        Ok(deleted)
    }

    fn forget_attachment_files(&self, id: MessageId) -> Result<Vec<AttachmentId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, file_name FROM attachments WHERE message_id = ?1")?;
        let rows = stmt.query_map([id.0], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut ids = Vec::new();
        for row in rows {
            let (aid, name) = row?;
            ids.push(AttachmentId(aid));
            self.dead_files
                .borrow_mut()
                .push(self.attachments_dir.join(name));
        }
        Ok(ids)
    }

    pub(crate) fn delete_expired(
        &self,
        now: UnixMillis,
    ) -> Result<Vec<ExpiredMessage>, StoreError> {
        let due: Vec<(i64, i64, i64)> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id, conversation_id, expires_at FROM messages
                 WHERE expires_at IS NOT NULL AND expires_at <= ?1 ORDER BY expires_at",
            )?;
            let rows = stmt.query_map([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut removed = Vec::with_capacity(due.len());
        for (id, conv, expires_at) in due {
            let attachments = self.forget_attachment_files(MessageId(id))?;
            self.conn
                .execute("DELETE FROM messages WHERE id = ?1", [id])?;
            removed.push(ExpiredMessage {
                message_id: MessageId(id),
                conversation_id: ConversationId(conv),
                expires_at,
                attachments,
            });
        }
        Ok(removed)
    }

    /// Full-text search over standard chats; `query` is matched as a phrase (user input is
    /// never parsed as FTS syntax). Newest matches first.
    ///
    /// # Errors
    /// A database error.
    pub fn search(&self, query: &str, limit: u32) -> Result<Vec<MessageId>, StoreError> {
        if query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1 ORDER BY rowid DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![fts_phrase(query), limit], |r| r.get(0))?;
        rows.map(|r| Ok(MessageId(r?))).collect()
    }

    // ---- attachments ---------------------------------------------------------------

    /// Stores an attachment for a message: the bytes go to a new file under the profile's
    /// `attachments/`, encrypted under a fresh key that lives only in the database row, so
    /// deleting the row shreds the file even before it is unlinked.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown message, file-system errors.
    pub fn add_attachment(
        &self,
        message: MessageId,
        data: &[u8],
        content_type: Option<&str>,
    ) -> Result<AttachmentId, StoreError> {
        if self.message(message)?.is_none() {
            return Err(StoreError::NotFound("message"));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        let mut nonce = [0u8; 12];
        let mut name = [0u8; 16];
        for buf in [key.as_mut_slice(), &mut nonce, &mut name] {
            getrandom::fill(buf).map_err(|e| StoreError::Io(io::Error::other(e.to_string())))?;
        }
        let file_name: String = name.iter().map(|b| format!("{b:02x}")).collect();
        let ct = ChaCha20Poly1305::new(Key::from_slice(key.as_slice()))
            .encrypt(Nonce::from_slice(&nonce), data)
            .map_err(|_| StoreError::Invalid("attachment too large"))?;
        let path = self.attachments_dir.join(&file_name);
        self.new_files.borrow_mut().push(path.clone());
        {
            let mut f = crate::open::create_private_file(&path)?;
            f.write_all(&nonce)?;
            f.write_all(&ct)?;
            f.sync_all()?;
        }
        self.conn.execute(
            "INSERT INTO attachments (message_id, file_name, file_key, content_type, size)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                message.0,
                file_name,
                key.as_slice(),
                content_type,
                data.len() as i64
            ],
        )?;
        Ok(AttachmentId(self.conn.last_insert_rowid()))
    }

    /// The attachments of a message.
    ///
    /// # Errors
    /// A database error.
    pub fn attachments(&self, message: MessageId) -> Result<Vec<Attachment>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, content_type, size FROM attachments WHERE message_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([message.0], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        rows.map(|r| {
            let (id, content_type, size) = r?;
            Ok(Attachment {
                id: AttachmentId(id),
                message_id: message,
                content_type,
                size: u64::try_from(size).map_err(|_| StoreError::BadValue("attachments.size"))?,
            })
        })
        .collect()
    }

    // ---- sessions and prekeys (opaque protocol records) -----------------------------

    /// Stores the ratchet session record for one device of an address.
    ///
    /// # Errors
    /// A database error.
    pub fn put_session(
        &self,
        address: &str,
        device_id: u32,
        record: &[u8],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO sessions (address, device_id, record, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (address, device_id) DO UPDATE SET record = excluded.record,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![address, device_id, record, now])?;
        Ok(())
    }

    /// The session record for one device of an address.
    ///
    /// It holds ratchet keys, so it comes back in a buffer that is wiped on drop.
    ///
    /// # Errors
    /// A database error.
    pub fn session(
        &self,
        address: &str,
        device_id: u32,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT record FROM sessions WHERE address = ?1 AND device_id = ?2")?
            .query_row(params![address, device_id], |r| {
                r.get::<_, Vec<u8>>(0).map(Zeroizing::new)
            })
            .optional()?)
    }

    /// The devices of an address we have sessions with.
    ///
    /// # Errors
    /// A database error.
    pub fn session_devices(&self, address: &str) -> Result<Vec<u32>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT device_id FROM sessions WHERE address = ?1 ORDER BY device_id",
        )?;
        let rows = stmt.query_map([address], |r| r.get::<_, i64>(0))?;
        rows.map(|r| u32_from_sql(r?, "sessions.device_id"))
            .collect()
    }

    /// Deletes one session (`Some(device)`) or all sessions of an address (`None`).
    ///
    /// # Errors
    /// A database error.
    pub fn delete_sessions(
        &self,
        address: &str,
        device_id: Option<u32>,
    ) -> Result<usize, StoreError> {
        Ok(match device_id {
            Some(d) => self.conn.execute(
                "DELETE FROM sessions WHERE address = ?1 AND device_id = ?2",
                params![address, d],
            )?,
            None => self
                .conn
                .execute("DELETE FROM sessions WHERE address = ?1", [address])?,
        })
    }

    /// Stores a prekey record.
    ///
    /// # Errors
    /// A database error.
    pub fn put_prekey(
        &self,
        kind: PreKeyKind,
        id: u32,
        record: &[u8],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO prekeys (kind, id, record, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (kind, id) DO UPDATE SET record = excluded.record",
            params![prekey_kind_to_sql(kind), id, record, now],
        )?;
        Ok(())
    }

    /// A prekey record.
    ///
    /// It holds a private key, so it comes back in a buffer that is wiped on drop.
    ///
    /// # Errors
    /// A database error.
    pub fn prekey(
        &self,
        kind: PreKeyKind,
        id: u32,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT record FROM prekeys WHERE kind = ?1 AND id = ?2",
                params![prekey_kind_to_sql(kind), id],
                |r| r.get::<_, Vec<u8>>(0).map(Zeroizing::new),
            )
            .optional()?)
    }

    /// Removes a prekey (one-time prekeys are removed once used). Returns whether it existed.
    ///
    /// # Errors
    /// A database error.
    pub fn remove_prekey(&self, kind: PreKeyKind, id: u32) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM prekeys WHERE kind = ?1 AND id = ?2",
            params![prekey_kind_to_sql(kind), id],
        )? > 0)
    }

    /// The ids of stored prekeys of a kind, ascending.
    ///
    /// # Errors
    /// A database error.
    pub fn prekey_ids(&self, kind: PreKeyKind) -> Result<Vec<u32>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM prekeys WHERE kind = ?1 ORDER BY id")?;
        let rows = stmt.query_map([prekey_kind_to_sql(kind)], |r| r.get::<_, i64>(0))?;
        rows.map(|r| u32_from_sql(r?, "prekeys.id")).collect()
    }

    /// The ids of stored prekeys of a kind with when each was made, ascending by id.
    ///
    /// # Errors
    /// A database error.
    pub fn prekey_ages(&self, kind: PreKeyKind) -> Result<Vec<(u32, UnixMillis)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, created_at FROM prekeys WHERE kind = ?1 ORDER BY id")?;
        let rows = stmt.query_map([prekey_kind_to_sql(kind)], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })?;
        rows.map(|r| {
            let (id, at) = r?;
            Ok((u32_from_sql(id, "prekeys.id")?, at))
        })
        .collect()
    }

    // ---- outbox --------------------------------------------------------------------

    /// Queues an encrypted envelope for the relay, due immediately.
    ///
    /// # Errors
    /// A database error.
    pub fn enqueue_outbox(
        &self,
        message: Option<MessageId>,
        recipient: &str,
        device_id: u32,
        envelope_id: &[u8; 16],
        envelope: &[u8],
        now: UnixMillis,
    ) -> Result<OutboxId, StoreError> {
        self.conn.execute(
            "INSERT INTO outbox (message_id, recipient, device_id, envelope_id, envelope,
                 next_attempt_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![
                message.map(|m| m.0),
                recipient,
                device_id,
                envelope_id.as_slice(),
                envelope,
                now
            ],
        )?;
        Ok(OutboxId(self.conn.last_insert_rowid()))
    }

    /// Envelopes due at `now`, oldest first.
    ///
    /// # Errors
    /// A database error.
    pub fn due_outbox(&self, now: UnixMillis, limit: u32) -> Result<Vec<OutboxItem>, StoreError> {
        self.outbox_where(
            "next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2",
            params![now, limit],
        )
    }

    /// The first `limit` envelopes in queue order (oldest first), due or not: a sender that
    /// keeps each recipient's order stops at that recipient's first entry not yet due.
    ///
    /// # Errors
    /// A database error.
    pub fn outbox_queue(&self, limit: u32) -> Result<Vec<OutboxItem>, StoreError> {
        self.outbox_where("1 ORDER BY id LIMIT ?1", params![limit])
    }

    fn outbox_where(
        &self,
        cond: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id, message_id, recipient, device_id, envelope, attempts, next_attempt_at,
                 envelope_id
             FROM outbox WHERE {cond}"
        ))?;
        let rows = stmt.query_map(params, |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Vec<u8>>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, Option<Vec<u8>>>(7)?,
            ))
        })?;
        rows.map(|r| {
            let (id, message, recipient, device, envelope, attempts, next, envelope_id) = r?;
            Ok(OutboxItem {
                id: OutboxId(id),
                message_id: message.map(MessageId),
                recipient,
                device_id: u32_from_sql(device, "outbox.device_id")?,
                envelope_id: envelope_id
                    .and_then(|v| <[u8; 16]>::try_from(v.as_slice()).ok())
                    .ok_or(StoreError::BadValue("outbox.envelope_id"))?,
                envelope,
                attempts: u32_from_sql(attempts, "outbox.attempts")?,
                next_attempt_at: next,
            })
        })
        .collect()
    }

    /// The relay acknowledged an envelope: drop it from the outbox.
    ///
    /// # Errors
    /// A database error. Returns whether it was still queued.
    pub fn outbox_acked(&self, id: OutboxId) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM outbox WHERE id = ?1", [id.0])?
            > 0)
    }

    /// A send attempt failed: count it and postpone.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown entry.
    pub fn outbox_retry_at(
        &self,
        id: OutboxId,
        next_attempt_at: UnixMillis,
    ) -> Result<(), StoreError> {
        self.update_one(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2 WHERE id = ?1",
            params![id.0, next_attempt_at],
            "outbox entry",
        )
    }

    /// Runs raw SQL and returns the first column of each row as bytes; for tests that
    /// inspect the search index's shadow tables (proving they hold no secret text).
    ///
    /// # Errors
    /// A database error.
    #[cfg(feature = "test-support")]
    pub fn raw_blobs(&self, sql: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map([], |r| {
            Ok(match r.get_ref(0)? {
                rusqlite::types::ValueRef::Blob(b) => b.to_vec(),
                rusqlite::types::ValueRef::Text(t) => t.to_vec(),
                rusqlite::types::ValueRef::Integer(i) => i.to_string().into_bytes(),
                rusqlite::types::ValueRef::Real(f) => f.to_string().into_bytes(),
                rusqlite::types::ValueRef::Null => Vec::new(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn validate_timer(kind: ConversationKind, secs: Option<u32>) -> Result<(), StoreError> {
    match (kind, secs) {
        (ConversationKind::Secret { .. }, Some(5..=86_400)) => Ok(()),
        (ConversationKind::Secret { .. }, _) => Err(StoreError::Invalid(
            "secret chats need a timer of 5 seconds to 24 hours",
        )),
        (ConversationKind::Standard, Some(0)) => Err(StoreError::Invalid("timer must be positive")),
        (ConversationKind::Standard, _) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_phrase_escapes_quotes() {
        assert_eq!(fts_phrase(r#"a "b" OR c*"#), r#""a ""b"" OR c*""#);
    }

    #[test]
    fn timers_are_validated() {
        let secret = ConversationKind::Secret { bound_device_id: 1 };
        assert!(validate_timer(secret, None).is_err());
        assert!(validate_timer(secret, Some(4)).is_err());
        assert!(validate_timer(secret, Some(86_401)).is_err());
        assert!(validate_timer(secret, Some(5)).is_ok());
        assert!(validate_timer(ConversationKind::Standard, None).is_ok());
        assert!(validate_timer(ConversationKind::Standard, Some(0)).is_err());
    }
}
