-- Finding the contact an envelope comes from without decoding every contact's key: the relay
-- names a sender by its Ed25519 signing key, which is bytes 2..33 of the stored identity key
-- (version byte, signing key, X25519 key, certificate).
CREATE INDEX contacts_signing_key ON contacts(substr(identity_key, 2, 32));

-- Whether the user let a contact in: 0 accepted (they added them, or answered), 1 a message
-- request (the contact wrote first and the user has not answered), 2 blocked.
ALTER TABLE contacts ADD COLUMN standing INTEGER NOT NULL DEFAULT 0 CHECK (standing IN (0, 1, 2));
