//! evtship: ships Sysmon and Windows event logs into Elasticsearch or OpenSearch.
//!
//! The flow, one module per stage, each importing only earlier ones:
//! [`source`] (files, globs, archives, tail) → [`decode`] (NDJSON lines, `.evtx` records) →
//! [`transform`] (dialects, Message fields, timestamp, id) → [`sink`] (`_bulk` wire format,
//! requests, retries, dead letter queue, file outputs). Below them all: [`common`] (small
//! shared types), [`chunk`] (the unit that flows), [`ack`] (the acknowledgement model),
//! [`metrics`], [`checkpoint`] and [`redact`]. Above them: [`config`] (pipeline files, merged
//! into each stage's settings), [`pipeline`] (the wiring), and what observes or drives a run
//! ([`exporter`], [`progress`], [`replay`], [`setup`]).

#![forbid(unsafe_code)]

pub mod ack;
pub mod checkpoint;
pub mod chunk;
pub mod common;
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
