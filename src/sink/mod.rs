//! Where documents go: Elasticsearch/OpenSearch ([`elasticsearch`]), or a file of documents or
//! `_bulk` bodies ([`file`]); the `_bulk` wire format ([`wire`]); the dead letter queue
//! ([`dlq`]) for what cannot go anywhere; and the accounting of every record's outcome
//! ([`accounting`]), which tells each record's source.

pub mod accounting;
pub mod dlq;
pub mod elasticsearch;
pub mod file;
pub mod kafka;
pub mod rate;
pub mod wire;

pub use accounting::Accounting;
