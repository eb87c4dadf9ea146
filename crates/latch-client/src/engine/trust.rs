//! Trust: safety numbers, verification by digits, QR code or image, and accepting a
//! contact's changed identity key.

use latch_protocol::IdentityKey;
use latch_protocol::fingerprint::Fingerprint;
use latch_store::{ContactId, StoreError};

use super::{ClientError, Engine, key_name};

impl Engine {
    /// The safety number with a contact: 60 digits and the QR payload.
    ///
    /// # Errors
    /// [`ClientError::NotRegistered`] (the number covers both handles), `NotFound`.
    pub fn safety_number(&self, contact: ContactId) -> Result<SafetyNumber, ClientError> {
        let handle = self.handle()?.ok_or(ClientError::NotRegistered)?;
        let c = self
            .write(|tx| tx.contact(contact))?
            .ok_or(ClientError::NotFound("contact"))?;
        let theirs = IdentityKey::from_bytes(&c.identity_key)
            .map_err(|_| ClientError::Store(StoreError::BadValue("contacts.identity_key")))?;
        let fp = Fingerprint::for_identities(
            handle.as_bytes(),
            self.inner.profile.identity.public(),
            c.address.as_bytes(),
            &theirs,
        )
        .map_err(|_| ClientError::Fingerprint)?;
        Ok(SafetyNumber {
            digits: fp.display.to_string(),
            qr_payload: fp.scannable.to_bytes(),
            verified: c.verified,
            key: key_name(&c.identity_key)?,
            fingerprint: fp,
            remote_key: c.identity_key,
        })
    }

    /// Compares a scanned QR payload with the contact's safety number and marks the contact
    /// verified when it matches. Returns whether it matched.
    ///
    /// # Errors
    /// [`ClientError::Fingerprint`] for a payload that is not a safety-number code.
    pub fn verify_scanned(&self, contact: ContactId, scanned: &[u8]) -> Result<bool, ClientError> {
        let sn = self.safety_number(contact)?;
        let matches = sn
            .fingerprint
            .scannable
            .compare(scanned)
            .map_err(|_| ClientError::Fingerprint)?;
        if matches {
            // Refused by the store if the key changed since the number was computed.
            self.write(|tx| tx.set_verified(contact, &sn.remote_key, true))?;
        }
        Ok(matches)
    }

    /// Marks a contact verified after the user compared the 60 digits (or clears it). Like a
    /// scan, it binds to the key the number was computed for.
    ///
    /// # Errors
    /// `NotFound`, or a store error if the key changed in between.
    /// To mark verified, `compared` must be the 60 digits the user compared: if the key
    /// changed after they were shown, the digits no longer match and nothing is marked.
    pub fn set_verified(
        &self,
        contact: ContactId,
        verified: bool,
        compared: &str,
    ) -> Result<(), ClientError> {
        let sn = self.safety_number(contact)?;
        if verified && sn.digits != compared {
            return Err(ClientError::Invalid(
                "The safety number changed while you were comparing it. Compare the new one.",
            ));
        }
        self.write(|tx| tx.set_verified(contact, &sn.remote_key, verified))?;
        Ok(())
    }

    /// Whether the contact's identity key changed and the user has not accepted it yet.
    ///
    /// # Errors
    /// A database error.
    pub fn key_change_pending(&self, contact: ContactId) -> Result<bool, ClientError> {
        Ok(self.write(|tx| tx.key_change_pending(contact))?)
    }

    /// Reads the QR codes in an image (screenshot, photo, pasted file) and verifies the
    /// contact with the first one that is their safety number. Returns whether one matched.
    ///
    /// # Errors
    /// [`ClientError::Qr`] when the image holds no readable code.
    /// A code that is some other QR code (a link, a Wi-Fi password) is not a mismatch: when
    /// no code in the image is a safety-number code the result is
    /// [`ClientError::Fingerprint`].
    pub fn verify_image(&self, contact: ContactId, image: &[u8]) -> Result<bool, ClientError> {
        let mut saw_safety_number = false;
        for payload in crate::qr::decode_image(image)? {
            match self.verify_scanned(contact, &payload) {
                Ok(true) => return Ok(true),
                Ok(false) => saw_safety_number = true,
                Err(ClientError::Fingerprint) => {}
                Err(e) => return Err(e),
            }
        }
        if saw_safety_number {
            Ok(false)
        } else {
            Err(ClientError::Fingerprint)
        }
    }

    /// Accepts a contact's new identity key, the one the user was shown (`shown_key`, as the
    /// key-change event and the conversation name it): secret chats release their held
    /// messages. The key is compared in the transaction that clears the warning, so a key
    /// that changed again after the banner appeared is never accepted unseen.
    ///
    /// # Errors
    /// `NotFound`; [`ClientError::Invalid`] when the contact's key is no longer `shown_key`.
    pub async fn accept_key_change(
        &self,
        contact: ContactId,
        shown_key: &str,
    ) -> Result<(), ClientError> {
        let accepted = self.write(|tx| {
            let c = tx
                .contact(contact)?
                .ok_or(StoreError::NotFound("contact"))?;
            if !key_name(&c.identity_key)?.eq_ignore_ascii_case(shown_key.trim()) {
                return Ok(false);
            }
            tx.set_key_change_pending(contact, false)?;
            Ok(true)
        })?;
        if !accepted {
            return Err(ClientError::Invalid(
                "The contact's key changed again since it was shown. Review the new one.",
            ));
        }
        self.release_all_held().await;
        Ok(())
    }
}

/// A safety number as the UI shows it.
#[derive(Clone, Debug)]
pub struct SafetyNumber {
    /// 60 digits.
    pub digits: String,
    /// What the QR code encodes.
    pub qr_payload: Vec<u8>,
    /// Whether the contact is verified.
    pub verified: bool,
    /// The contact key the number was computed for, named as key-change events name it.
    pub key: String,
    fingerprint: Fingerprint,
    /// The contact key this number was computed for: verification applies to it only.
    remote_key: Vec<u8>,
}

impl SafetyNumber {
    /// The QR code's modules (`true` = dark), for the UI to draw.
    ///
    /// # Errors
    /// [`crate::qr::QrError::TooLong`] (cannot happen for a safety number).
    pub fn qr_modules(&self) -> Result<Vec<Vec<bool>>, crate::qr::QrError> {
        crate::qr::modules(&self.qr_payload)
    }

    /// The digits in the 12 groups of 5 that both people read out.
    pub fn groups(&self) -> Vec<&str> {
        (0..self.digits.len())
            .step_by(5)
            .filter_map(|i| self.digits.get(i..i + 5))
            .collect()
    }
}
