-- Relay schema v2: an envelope id is unique per (recipient, sender), not per recipient alone,
-- so another sender reusing an id can no longer make a real send look like a duplicate.
-- SQLite cannot change a table constraint in place: rebuild the table, keeping every seq and
-- the AUTOINCREMENT high-water mark (a seq is never reused, so ack cursors stay meaningful).
CREATE TABLE envelopes_v2 (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient_key    BLOB    NOT NULL,
    recipient_device INTEGER NOT NULL,
    id               BLOB    NOT NULL,
    sender_key       BLOB    NOT NULL,
    sender_device    INTEGER NOT NULL,
    received_at      INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    body             BLOB    NOT NULL,
    UNIQUE (recipient_key, recipient_device, sender_key, sender_device, id)
);
INSERT INTO envelopes_v2
    (seq, recipient_key, recipient_device, id, sender_key, sender_device, received_at, expires_at, body)
    SELECT seq, recipient_key, recipient_device, id, sender_key, sender_device, received_at, expires_at, body
    FROM envelopes;
DELETE FROM sqlite_sequence WHERE name = 'envelopes_v2';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'envelopes_v2', seq FROM sqlite_sequence WHERE name = 'envelopes';
DROP TABLE envelopes;
ALTER TABLE envelopes_v2 RENAME TO envelopes;
CREATE INDEX envelopes_by_mailbox ON envelopes (recipient_key, recipient_device, seq);
CREATE INDEX envelopes_by_expiry ON envelopes (expires_at);
