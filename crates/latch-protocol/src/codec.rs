//! Bounded binary reader and writer shared by every wire and storage format.
//!
//! All multi-byte integers are big-endian. Every read is bounds-checked and returns
//! [`DecodeError`] instead of panicking, so untrusted bytes can be fed straight in.

use crate::error::DecodeError;
use crate::secret::Secret;

/// Appends fields to a byte vector.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    /// Length-prefixed (u32) bytes. Callers keep lengths below `u32::MAX` by construction.
    pub(crate) fn var_bytes(&mut self, v: &[u8]) {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.buf.extend_from_slice(v);
    }
    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads fields from an untrusted byte slice.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data }
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.data.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    /// A secret read straight into its own storage, with no stack copy on the way.
    pub(crate) fn secret<const N: usize>(&mut self) -> Result<Secret<N>, DecodeError> {
        Secret::copy_from_slice(self.take(N)?).ok_or(DecodeError::Truncated)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub(crate) fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::InvalidField("boolean")),
        }
    }
    /// Length-prefixed bytes, refusing lengths above `max` before looking at the data.
    pub(crate) fn var_bytes(&mut self, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(DecodeError::TooLarge { limit: max });
        }
        self.take(len)
    }
    /// A count that bounds a following list, refusing counts above `max`.
    pub(crate) fn count(&mut self, max: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(DecodeError::TooLarge { limit: max });
        }
        Ok(n)
    }
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

/// Checks the overall size and the version byte, returning a reader positioned after it.
pub(crate) fn open(data: &[u8], max: usize, version: u8) -> Result<Reader<'_>, DecodeError> {
    if data.len() > max {
        return Err(DecodeError::TooLarge { limit: max });
    }
    let mut r = Reader::new(data);
    let v = r.u8()?;
    if v != version {
        return Err(DecodeError::UnknownVersion(v));
    }
    Ok(r)
}
