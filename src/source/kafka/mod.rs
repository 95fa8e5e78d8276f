//! Kafka as a source: a consumer group member whose offsets move only past records the engine
//! has answered for ([`consumer`], its group and offsets in `offsets`), and the settings shared with the Kafka output
//! ([`settings`]).

pub mod consumer;
mod offsets;
pub mod settings;

pub use consumer::{start, Running, ID_HEADER};
pub use settings::{KafkaSection, KafkaSettings, KafkaSettingsError, KafkaUri};
