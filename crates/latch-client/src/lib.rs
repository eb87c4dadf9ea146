#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod device_prekeys;
pub mod engine;
pub mod events;
mod fault;
pub mod prekeys;
pub mod profile;
mod protocol_store;
pub mod qr;
pub mod relay;
pub mod wire;

pub use engine::{
    CallMedia, ClientError, Engine, LocalTransport, ReceiveError, SafetyNumber, TIMER_PRESETS,
    TIMER_RANGE,
};
pub use events::{ConnectionState, ConversationView, Event, MessageView};
pub use profile::{OpenProfile, ProfileError, ProfileInfo, Profiles, Protection};
