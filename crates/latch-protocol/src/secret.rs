//! Secret byte containers.
//!
//! Every secret Latch handles lives in one of these types so that it is wiped from memory when
//! dropped and can never be printed by accident: `Debug` shows only the type name and length.

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A fixed-size secret (keys, chain keys, seeds).
///
/// Boxed so that moves do not leave stray copies of the key on the stack.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret<const N: usize>(Box<[u8; N]>);

impl<const N: usize> Secret<N> {
    /// Wraps bytes the caller already owns; the caller's copy should be zeroized by them.
    pub fn new(bytes: [u8; N]) -> Self {
        let mut boxed = Box::new([0u8; N]);
        let mut bytes = bytes;
        boxed.copy_from_slice(&bytes);
        bytes.zeroize();
        Self(boxed)
    }

    /// Fresh random secret from the caller's CSPRNG.
    pub fn random<R: rand_core::CryptoRng + rand_core::RngCore>(rng: &mut R) -> Self {
        let mut boxed = Box::new([0u8; N]);
        rng.fill_bytes(boxed.as_mut_slice());
        Self(boxed)
    }

    /// A secret written in place by `fill`, so its bytes exist only in this secret's heap
    /// storage and never in a stack array copied in and left behind. If `fill` fails, what
    /// it wrote is wiped with the storage.
    pub(crate) fn try_fill<E>(fill: impl FnOnce(&mut [u8; N]) -> Result<(), E>) -> Result<Self, E> {
        let mut secret = Self(Box::new([0u8; N]));
        fill(&mut secret.0)?;
        Ok(secret)
    }

    /// Copies borrowed bytes straight into the secret's storage (wiping the source stays
    /// its owner's job).
    pub(crate) fn copy_from(bytes: &[u8; N]) -> Self {
        let mut boxed = Box::new([0u8; N]);
        boxed.copy_from_slice(bytes);
        Self(boxed)
    }

    /// [`Self::copy_from`] for a slice; `None` unless it is exactly `N` bytes long.
    pub(crate) fn copy_from_slice(bytes: &[u8]) -> Option<Self> {
        <&[u8; N]>::try_from(bytes).ok().map(Self::copy_from)
    }

    /// Borrows the secret bytes; keep the borrow short and never log it.
    pub fn expose(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> fmt::Debug for Secret<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret<{N}>(***)")
    }
}

impl<const N: usize> PartialEq for Secret<N> {
    /// Constant time, so comparing secrets never leaks where they differ.
    fn eq(&self, other: &Self) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

impl<const N: usize> Eq for Secret<N> {}

/// A variable-length secret, e.g. a decrypted plaintext or a serialized private record.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretVec(Vec<u8>);

impl SecretVec {
    /// Takes ownership of the bytes; they are wiped when this value is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Borrows the secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes (not secret: ciphertext length reveals it anyway).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretVec({} bytes, ***)", self.0.len())
    }
}

impl PartialEq for SecretVec {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretVec {}
