//! Latch's calls, without I/O: the call state machine, the one-call-at-a-time switchboard,
//! the signalling carried in the 1:1 session, the per-call keys bound to that session, and
//! RFC 9605 frame encryption keyed from them.
//!
//! Layering: this crate knows nothing of the relay, the store or the session; the client
//! (`latch-client`'s `calls` module) carries [`CallSignal`]s inside encrypted messages, feeds
//! what arrives into a [`Switchboard`], and drives the transport and devices. The same frame
//! encryption is meant to carry group calls, keyed from MLS instead of [`keys`].

#[cfg(feature = "media")]
pub mod audio;
pub mod frame;
pub mod keys;
pub mod machine;
pub mod signal;
pub mod switchboard;
#[cfg(feature = "media")]
pub mod transport;

pub use frame::{FrameError, FrameOpener, FrameSealer, MediaStream};
pub use keys::{CallKeyPair, CallTranscript, KeyError, MediaSecrets, Role};
pub use machine::{Call, CallError, CallOutput, CallRecord, CallState, Direction, EndReason};
pub use signal::{
    CallId, CallSignal, DtlsFingerprint, HangupReason, IceCredentials, MediaKind, MediaOffer,
    SignalError,
};
pub use switchboard::{Switchboard, SwitchboardEvent};
#[cfg(feature = "media")]
pub use transport::{MediaTransport, TransportError, TransportEvent, TransportOutput};
