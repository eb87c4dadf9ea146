//! Latch's encrypted store: one SQLCipher database per profile, keys in the OS keyring.
#![forbid(unsafe_code)]

pub mod selftest;
