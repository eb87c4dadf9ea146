//! The engine a Latch UI drives. Filled in by the client-engine issue.
#![forbid(unsafe_code)]
