//! The Latch relay: carries ciphertext between devices. Filled in by the relay issue.
#![forbid(unsafe_code)]
