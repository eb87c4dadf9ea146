-- Latch store, schema version 2: what the client engine needs to deliver messages.

-- The id both sides use for one message: receipts, edits and deletes name it.
ALTER TABLE messages ADD COLUMN remote_id BLOB
    CHECK (remote_id IS NULL OR length(remote_id) = 16);
-- An incoming message's disappearing timer: its clock starts when it is read.
ALTER TABLE messages ADD COLUMN expire_after_secs INTEGER
    CHECK (expire_after_secs IS NULL OR expire_after_secs BETWEEN 5 AND 86400);
-- When the sender last edited the text (NULL: never edited).
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
CREATE UNIQUE INDEX messages_by_remote_id ON messages(conversation_id, remote_id)
    WHERE remote_id IS NOT NULL;

-- A secret chat's random tag: both sides put it on the chat's envelopes so each message lands
-- in its own thread (and its own ratchet session) beside the standard chat.
CREATE TABLE secret_threads (
    conversation_id INTEGER PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
    contact_id      INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    tag             BLOB NOT NULL CHECK (length(tag) = 16),
    UNIQUE (contact_id, tag)
) STRICT;

-- Set when a contact's identity key changed and the user has not yet accepted the new key:
-- secret chats hold their outgoing messages meanwhile.
ALTER TABLE contacts ADD COLUMN key_change_pending INTEGER NOT NULL DEFAULT 0
    CHECK (key_change_pending IN (0, 1));

-- Envelopes already processed, by (sender, envelope id): a redelivery after a crash between
-- commit and acknowledgement is dropped instead of shown twice.
CREATE TABLE seen_envelopes (
    sender  BLOB NOT NULL,
    id      BLOB NOT NULL,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (sender, id)
) STRICT, WITHOUT ROWID;
CREATE INDEX seen_envelopes_by_age ON seen_envelopes(seen_at);

-- The relay de-duplicates by this id, so a retried envelope keeps it.
ALTER TABLE outbox ADD COLUMN envelope_id BLOB
    CHECK (envelope_id IS NULL OR length(envelope_id) = 16);

-- Small per-profile settings (relay URL, registration state).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- Uses of the last-resort ML-KEM prekey, by base key: that prekey is never deleted, so a
-- repeated (key id, base key) pair is a replay and is refused.
CREATE TABLE last_resort_uses (
    kem_id   INTEGER NOT NULL,
    base_key BLOB NOT NULL CHECK (length(base_key) = 32),
    used_at  INTEGER NOT NULL,
    PRIMARY KEY (kem_id, base_key)
) STRICT, WITHOUT ROWID;
