//! The decoding error shared by every wire and storage format.

/// Why untrusted bytes could not be decoded. Carries sizes and versions only, never content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before a field was complete.
    #[error("input truncated")]
    Truncated,
    /// Bytes remained after the last field; refusing them keeps encodings canonical.
    #[error("trailing bytes after the last field")]
    TrailingBytes,
    /// The input, or a length field inside it, exceeds a hard limit.
    #[error("input exceeds the limit of {limit} bytes or items")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The leading version byte names a format this build does not know.
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    /// A field holds a value outside its domain (names the field, never its content).
    #[error("invalid {0}")]
    InvalidField(&'static str),
    /// A signature or public key inside the structure failed to verify or parse.
    #[error("invalid key or signature in {0}")]
    InvalidKey(&'static str),
}
