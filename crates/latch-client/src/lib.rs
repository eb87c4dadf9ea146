#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod call_media;
mod device_prekeys;
pub mod engine;
pub mod events;
mod fault;
pub mod prekeys;
pub mod profile;
mod protocol_store;
pub mod qr;
pub mod relay;
pub mod sound_devices;
/// The envelope and content format (its own crate, so its fuzz targets build alone).
pub use latch_wire as wire;

pub use call_media::CallDevices;
pub use engine::{
    CallMedia, ClientError, Engine, LocalTransport, ReceiveError, SafetyNumber, TIMER_PRESETS,
    TIMER_RANGE,
};
pub use events::{ConnectionState, ConversationView, Event, MessageView};
pub use profile::{OpenProfile, ProfileError, ProfileInfo, Profiles, Protection};
