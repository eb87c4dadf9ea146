-- Latch store, schema version 1.
-- Timestamps are milliseconds since the Unix epoch (UTC).

CREATE TABLE profile (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    device_id     INTEGER NOT NULL,
    handle        TEXT,
    display_name  TEXT,
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE contacts (
    id            INTEGER PRIMARY KEY,
    address       TEXT NOT NULL UNIQUE,
    display_name  TEXT,
    identity_key  BLOB NOT NULL,
    -- 0 unverified, 1 verified (safety number compared); reset to 0 when the key changes.
    verified      INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
    added_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE contact_key_changes (
    id               INTEGER PRIMARY KEY,
    contact_id       INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    old_identity_key BLOB NOT NULL,
    new_identity_key BLOB NOT NULL,
    was_verified     INTEGER NOT NULL CHECK (was_verified IN (0, 1)),
    changed_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX contact_key_changes_by_contact ON contact_key_changes(contact_id, changed_at);

CREATE TABLE conversations (
    id                   INTEGER PRIMARY KEY,
    contact_id           INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    -- 0 standard, 1 secret (bound to one local device, always disappearing, never indexed).
    kind                 INTEGER NOT NULL CHECK (kind IN (0, 1)),
    bound_device_id      INTEGER,
    disappear_after_secs INTEGER CHECK (disappear_after_secs IS NULL OR disappear_after_secs > 0),
    created_at           INTEGER NOT NULL,
    CHECK ((kind = 0 AND bound_device_id IS NULL)
        OR (kind = 1 AND bound_device_id IS NOT NULL
            AND disappear_after_secs BETWEEN 5 AND 86400))
) STRICT;
CREATE UNIQUE INDEX conversations_one_standard_per_contact ON conversations(contact_id) WHERE kind = 0;

-- A conversation never changes kind: a secret chat's text must never become indexable.
CREATE TRIGGER conversations_kind_immutable BEFORE UPDATE OF kind ON conversations
WHEN new.kind IS NOT old.kind
BEGIN
    SELECT RAISE(ABORT, 'conversation kind is immutable');
END;

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    -- 0 incoming, 1 outgoing
    direction       INTEGER NOT NULL CHECK (direction IN (0, 1)),
    -- 0 pending, 1 sent, 2 delivered, 3 read, 4 failed, 5 received
    status          INTEGER NOT NULL CHECK (status BETWEEN 0 AND 5),
    body            TEXT NOT NULL,
    sent_at         INTEGER NOT NULL,
    received_at     INTEGER,
    expires_at      INTEGER
) STRICT;
CREATE INDEX messages_by_conversation ON messages(conversation_id, sent_at, id);
CREATE INDEX messages_by_expiry ON messages(expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE attachments (
    id           INTEGER PRIMARY KEY,
    message_id   INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    -- Name of the encrypted file under <profile>/attachments/ (random, carries no data).
    file_name    TEXT NOT NULL UNIQUE,
    -- Per-file ChaCha20-Poly1305 key: deleting the row shreds the file even if unlink fails.
    file_key     BLOB NOT NULL,
    content_type TEXT,
    size         INTEGER NOT NULL
) STRICT;
CREATE INDEX attachments_by_message ON attachments(message_id);

-- Ratchet session records, opaque to the store (the protocol crate owns the encoding).
CREATE TABLE sessions (
    address    TEXT NOT NULL,
    device_id  INTEGER NOT NULL,
    record     BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (address, device_id)
) STRICT, WITHOUT ROWID;

-- Prekeys (one-time, signed, post-quantum), opaque records keyed by kind and id.
CREATE TABLE prekeys (
    kind       INTEGER NOT NULL CHECK (kind IN (0, 1, 2)),
    id         INTEGER NOT NULL,
    record     BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
) STRICT, WITHOUT ROWID;

-- Encrypted envelopes waiting for the relay's acknowledgement.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER REFERENCES messages(id) ON DELETE CASCADE,
    recipient       TEXT NOT NULL,
    device_id       INTEGER NOT NULL,
    envelope        BLOB NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX outbox_by_due ON outbox(next_attempt_at);

-- Full-text index of standard-chat messages only; rowid = messages.id.
CREATE VIRTUAL TABLE messages_fts USING fts5(body, tokenize = 'unicode61');

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN (SELECT kind FROM conversations WHERE id = new.conversation_id) = 0
BEGIN
    INSERT INTO messages_fts(rowid, body) VALUES (new.id, new.body);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages
BEGIN
    DELETE FROM messages_fts WHERE rowid = old.id;
    INSERT INTO messages_fts(rowid, body)
        SELECT new.id, new.body
        WHERE (SELECT kind FROM conversations WHERE id = new.conversation_id) = 0;
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
BEGIN
    DELETE FROM messages_fts WHERE rowid = old.id;
END;

-- Delete a row's tokens from the index at once instead of leaving them in old segments
-- behind a delete marker until a merge: expired text must not linger in the index.
INSERT INTO messages_fts(messages_fts, rank) VALUES ('secure-delete', 1);
