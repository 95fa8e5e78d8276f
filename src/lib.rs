//! evtship: ships Sysmon and Windows event logs into Elasticsearch or OpenSearch.
//!
//! The flow, one module per stage:
//! [`source`] (files, globs, archives) → [`decode`] (NDJSON lines) → [`transform`] (Message
//! fields, timestamp, id, `_bulk` encoding) → [`sink`] (bulk requests, retries, dead letter
//! queue), wired by [`pipeline`] and counted by [`metrics`]. Settings come from [`config`].

pub mod checkpoint;
pub mod config;
pub mod decode;
pub mod exporter;
pub mod metrics;
pub mod pipeline;
pub mod progress;
pub mod redact;
pub mod replay;
pub mod setup;
pub mod sink;
pub mod source;
pub mod transform;
