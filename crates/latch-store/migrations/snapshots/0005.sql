-- user_version 5
-- index attachments_by_message on attachments
CREATE INDEX attachments_by_message ON attachments(message_id);
-- index contact_key_changes_by_contact on contact_key_changes
CREATE INDEX contact_key_changes_by_contact ON contact_key_changes(contact_id, changed_at);
-- index contacts_signing_key on contacts
CREATE INDEX contacts_signing_key ON contacts(substr(identity_key, 2, 32));
-- index conversations_one_standard_per_contact on conversations
CREATE UNIQUE INDEX conversations_one_standard_per_contact ON conversations(contact_id) WHERE kind = 0;
-- index messages_by_conversation on messages
CREATE INDEX messages_by_conversation ON messages(conversation_id, sent_at, id);
-- index messages_by_expiry on messages
CREATE INDEX messages_by_expiry ON messages(expires_at) WHERE expires_at IS NOT NULL;
-- index messages_by_remote_id on messages
CREATE UNIQUE INDEX messages_by_remote_id ON messages(conversation_id, remote_id)
    WHERE remote_id IS NOT NULL;
-- index messages_pending on messages
CREATE INDEX messages_pending ON messages(conversation_id, sent_at, id)
    WHERE direction = 1 AND status = 0;
-- index messages_unread on messages
CREATE INDEX messages_unread ON messages(conversation_id, sent_at, id)
    WHERE direction = 0 AND status = 5;
-- index outbox_by_due on outbox
CREATE INDEX outbox_by_due ON outbox(next_attempt_at);
-- index seen_envelopes_by_age on seen_envelopes
CREATE INDEX seen_envelopes_by_age ON seen_envelopes(seen_at);
-- table attachments on attachments
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
-- table contact_key_changes on contact_key_changes
CREATE TABLE contact_key_changes (
    id               INTEGER PRIMARY KEY,
    contact_id       INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    old_identity_key BLOB NOT NULL,
    new_identity_key BLOB NOT NULL,
    was_verified     INTEGER NOT NULL CHECK (was_verified IN (0, 1)),
    changed_at       INTEGER NOT NULL
) STRICT;
-- table contacts on contacts
CREATE TABLE contacts (
    id            INTEGER PRIMARY KEY,
    address       TEXT NOT NULL UNIQUE,
    display_name  TEXT,
    identity_key  BLOB NOT NULL,
    -- 0 unverified, 1 verified (safety number compared); reset to 0 when the key changes.
    verified      INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
    added_at      INTEGER NOT NULL
, key_change_pending INTEGER NOT NULL DEFAULT 0
    CHECK (key_change_pending IN (0, 1)), standing INTEGER NOT NULL DEFAULT 0 CHECK (standing IN (0, 1, 2))) STRICT;
-- table conversations on conversations
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
-- table last_resort_uses on last_resort_uses
CREATE TABLE last_resort_uses (
    kem_id   INTEGER NOT NULL,
    base_key BLOB NOT NULL CHECK (length(base_key) = 32),
    used_at  INTEGER NOT NULL,
    PRIMARY KEY (kem_id, base_key)
) STRICT, WITHOUT ROWID;
-- table messages on messages
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
, remote_id BLOB
    CHECK (remote_id IS NULL OR length(remote_id) = 16), expire_after_secs INTEGER
    CHECK (expire_after_secs IS NULL OR expire_after_secs BETWEEN 5 AND 86400), edited_at INTEGER, call_media INTEGER CHECK (call_media IN (0, 1)), call_outcome INTEGER CHECK (call_outcome BETWEEN 0 AND 6), call_duration_ms INTEGER CHECK (call_duration_ms >= 0)) STRICT;
-- table messages_fts on messages_fts
CREATE VIRTUAL TABLE messages_fts USING fts5(body, tokenize = 'unicode61');
-- table messages_fts_config on messages_fts_config
CREATE TABLE 'messages_fts_config'(k PRIMARY KEY, v) WITHOUT ROWID;
-- table messages_fts_content on messages_fts_content
CREATE TABLE 'messages_fts_content'(id INTEGER PRIMARY KEY, c0);
-- table messages_fts_data on messages_fts_data
CREATE TABLE 'messages_fts_data'(id INTEGER PRIMARY KEY, block BLOB);
-- table messages_fts_docsize on messages_fts_docsize
CREATE TABLE 'messages_fts_docsize'(id INTEGER PRIMARY KEY, sz BLOB);
-- table messages_fts_idx on messages_fts_idx
CREATE TABLE 'messages_fts_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID;
-- table outbox on outbox
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER REFERENCES messages(id) ON DELETE CASCADE,
    recipient       TEXT NOT NULL,
    device_id       INTEGER NOT NULL,
    envelope        BLOB NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
, envelope_id BLOB
    CHECK (envelope_id IS NULL OR length(envelope_id) = 16)) STRICT;
-- table prekeys on prekeys
CREATE TABLE prekeys (
    kind       INTEGER NOT NULL CHECK (kind IN (0, 1, 2)),
    id         INTEGER NOT NULL,
    record     BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
) STRICT, WITHOUT ROWID;
-- table profile on profile
CREATE TABLE profile (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    device_id     INTEGER NOT NULL,
    handle        TEXT,
    display_name  TEXT,
    created_at    INTEGER NOT NULL
) STRICT;
-- table secret_threads on secret_threads
CREATE TABLE secret_threads (
    conversation_id INTEGER PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
    contact_id      INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    tag             BLOB NOT NULL CHECK (length(tag) = 16),
    UNIQUE (contact_id, tag)
) STRICT;
-- table seen_envelopes on seen_envelopes
CREATE TABLE seen_envelopes (
    sender  BLOB NOT NULL,
    id      BLOB NOT NULL,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (sender, id)
) STRICT, WITHOUT ROWID;
-- table sessions on sessions
CREATE TABLE sessions (
    address    TEXT NOT NULL,
    device_id  INTEGER NOT NULL,
    record     BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (address, device_id)
) STRICT, WITHOUT ROWID;
-- table settings on settings
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
-- trigger conversations_kind_immutable on conversations
CREATE TRIGGER conversations_kind_immutable BEFORE UPDATE OF kind ON conversations
WHEN new.kind IS NOT old.kind
BEGIN
    SELECT RAISE(ABORT, 'conversation kind is immutable');
END;
-- trigger messages_fts_delete on messages
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
BEGIN
    DELETE FROM messages_fts WHERE rowid = old.id;
END;
-- trigger messages_fts_insert on messages
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN (SELECT kind FROM conversations WHERE id = new.conversation_id) = 0
BEGIN
    INSERT INTO messages_fts(rowid, body) VALUES (new.id, new.body);
END;
-- trigger messages_fts_update on messages
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages
BEGIN
    DELETE FROM messages_fts WHERE rowid = old.id;
    INSERT INTO messages_fts(rowid, body)
        SELECT new.id, new.body
        WHERE (SELECT kind FROM conversations WHERE id = new.conversation_id) = 0;
END;
-- fts5 config messages_fts: secure-delete = Integer(1)
-- fts5 config messages_fts: version = Integer(4)
