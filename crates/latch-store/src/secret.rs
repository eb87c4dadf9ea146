//! Secret newtypes: key material that zeroizes on drop and never prints.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length in bytes of a database key: SQLCipher takes a raw 256-bit key.
pub const DATABASE_KEY_LEN: usize = 32;

/// The raw 256-bit key that opens a profile's SQLCipher database.
///
/// Held in a `Box` so moving the value does not leave copies on the stack, zeroized on
/// drop, and redacted in `Debug` so it can never reach a log line.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DatabaseKey(Box<[u8; DATABASE_KEY_LEN]>);

impl DatabaseKey {
    /// Draws a fresh key from the operating system's CSPRNG.
    ///
    /// # Errors
    /// Fails only when the OS random source is unavailable.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut key = Box::new([0u8; DATABASE_KEY_LEN]);
        getrandom::fill(key.as_mut_slice())?;
        Ok(Self(key))
    }

    /// Wraps bytes already held elsewhere (the keyring, an unwrapped key file).
    ///
    /// Returns `None` when the length is not exactly 32 bytes, so a truncated keyring entry
    /// is an error rather than a short key.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; DATABASE_KEY_LEN] = bytes.try_into().ok()?;
        let key = Self(Box::new(arr));
        // `arr` is a copy on the stack; it is `Copy`, so wipe it explicitly.
        let mut arr = arr;
        arr.zeroize();
        Some(key)
    }

    /// The key bytes, for handing to SQLCipher or a key wrap.
    pub fn expose(&self) -> &[u8; DATABASE_KEY_LEN] {
        &self.0
    }

    /// The SQLCipher `PRAGMA key` statement for this raw key (`x'<hex>'`: no KDF runs).
    ///
    /// The string holds the key in hex, so it lives in a zeroizing buffer sized up front
    /// (no reallocation leaves a stray copy behind).
    pub(crate) fn pragma_statement(&self) -> Zeroizing<String> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = Zeroizing::new(String::with_capacity(32 + 2 * DATABASE_KEY_LEN));
        s.push_str("PRAGMA key = \"x'");
        for b in self.0.iter() {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        s.push_str("'\";");
        s
    }
}

impl fmt::Debug for DatabaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatabaseKey(***)")
    }
}

/// Arbitrary secret bytes kept in the keyring, such as identity private keys.
///
/// The store does not interpret them: the protocol crate defines their encoding.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of the bytes; the caller's buffer moves in and is wiped on drop.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes({} bytes, ***)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let key = DatabaseKey::from_slice(&[0xee; 32]).unwrap();
        assert_eq!(format!("{key:?}"), "DatabaseKey(***)");
        let s = SecretBytes::new(vec![0xee; 5]);
        assert_eq!(format!("{s:?}"), "SecretBytes(5 bytes, ***)");
        let pretty = format!("{key:#?}{s:#?}").to_lowercase();
        assert!(!pretty.contains("ee") && !pretty.contains("238"));
    }

    #[test]
    fn pragma_is_raw_hex_key() {
        let key = DatabaseKey::from_slice(&[0x0f; 32]).unwrap();
        let p = key.pragma_statement();
        assert_eq!(
            p.as_str(),
            format!("PRAGMA key = \"x'{}'\";", "0f".repeat(32))
        );
        assert_eq!(p.capacity(), 32 + 64, "no reallocation while building");
    }

    #[test]
    fn wrong_length_is_rejected() {
        assert!(DatabaseKey::from_slice(&[1; 31]).is_none());
        assert!(DatabaseKey::from_slice(&[1; 33]).is_none());
    }

    #[test]
    fn generated_keys_differ() {
        let a = DatabaseKey::generate().unwrap();
        let b = DatabaseKey::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
    }
}
