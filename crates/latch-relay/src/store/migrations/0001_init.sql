-- Relay schema v1. Holds only public keys and ciphertext: the file is not encrypted.
CREATE TABLE devices (
    identity_key  BLOB    NOT NULL,
    device_id     INTEGER NOT NULL,
    registered_at INTEGER NOT NULL,
    PRIMARY KEY (identity_key, device_id)
) WITHOUT ROWID;

CREATE TABLE handles (
    handle       TEXT PRIMARY KEY,
    identity_key BLOB NOT NULL UNIQUE
);

-- AUTOINCREMENT: a seq is never reused after deletes, so ack cursors stay meaningful.
CREATE TABLE envelopes (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient_key    BLOB    NOT NULL,
    recipient_device INTEGER NOT NULL,
    id               BLOB    NOT NULL,
    sender_key       BLOB    NOT NULL,
    sender_device    INTEGER NOT NULL,
    received_at      INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    body             BLOB    NOT NULL,
    UNIQUE (recipient_key, recipient_device, id)
);
CREATE INDEX envelopes_by_mailbox ON envelopes (recipient_key, recipient_device, seq);
CREATE INDEX envelopes_by_expiry ON envelopes (expires_at);

-- kind 0: signed prekey, kind 1: last-resort prekey; one of each per device.
CREATE TABLE signed_prekeys (
    identity_key BLOB    NOT NULL,
    device_id    INTEGER NOT NULL,
    kind         INTEGER NOT NULL,
    key_id       INTEGER NOT NULL,
    key          BLOB    NOT NULL,
    PRIMARY KEY (identity_key, device_id, kind)
) WITHOUT ROWID;

CREATE TABLE one_time_prekeys (
    identity_key BLOB    NOT NULL,
    device_id    INTEGER NOT NULL,
    key_id       INTEGER NOT NULL,
    key          BLOB    NOT NULL,
    PRIMARY KEY (identity_key, device_id, key_id)
) WITHOUT ROWID;
