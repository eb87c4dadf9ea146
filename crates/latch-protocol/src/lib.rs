//! Latch's sans-I/O cryptographic protocol: identities, prekeys, PQXDH, the Double Ratchet,
//! the envelope wire format and safety numbers. Filled in by the protocol-core issue.
#![forbid(unsafe_code)]
