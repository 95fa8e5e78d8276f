//! A consumer's group and offsets: the context that commits what is settled before partitions
//! are revoked and counts commits and rebalances, and the keeper that stores each partition's
//! offset past its settled prefix.

use crate::ack::{InOrder, Settle, Settled};
use crate::metrics::Stats;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Events of the group, seen by the consumer's context.
pub(super) struct Context {
    pub(super) stats: Arc<Stats>,
    /// Raised by each rebalance: chunks read before it are settled but not stored.
    pub(super) generation: AtomicU64,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // What is settled is committed before another member takes the partitions.
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(rdkafka::error::KafkaError::ConsumerCommit(_)) => {}
                Err(e) => tracing::warn!("kafka: commit on revoke: {e}"),
            }
            tracing::info!("kafka: {} partitions revoked", tpl.count());
        }
        self.generation.fetch_add(1, Relaxed);
        self.stats.kafka.rebalances.fetch_add(1, Relaxed);
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts: Vec<String> = tpl
                .elements()
                .iter()
                .map(|e| format!("{}/{}", e.topic(), e.partition()))
                .collect();
            tracing::info!("kafka: assigned {}", parts.join(", "));
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                self.stats.kafka.commits.fetch_add(1, Relaxed);
                for e in offsets.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        self.stats.kafka.set_committed(e.topic(), e.partition(), o);
                    }
                }
            }
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => {}
            Err(e) => {
                self.stats.kafka.commit_failures.fetch_add(1, Relaxed);
                tracing::warn!("kafka: commit failed: {e}");
            }
        }
    }
}

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Part {
    pub(super) topic: Arc<str>,
    pub(super) partition: i32,
}

/// What the keeper is told of a settled chunk: its partition, the generation that read it, its
/// ordinal there, the offset of its last record, and whether every record was delivered.
pub(super) struct Done {
    pub(super) part: Part,
    pub(super) generation: u64,
    pub(super) ordinal: u64,
    pub(super) last: i64,
    pub(super) delivered: bool,
}

/// A chunk's settlement hook: tells the keeper.
pub(super) struct Mark {
    pub(super) done: Option<Done>,
    pub(super) keeper: flume::Sender<Done>,
}

impl Settle for Mark {
    fn settled(mut self: Box<Self>, settled: Settled) {
        if let Some(mut d) = self.done.take() {
            d.delivered = settled.tally.failed == 0;
            let _ = self.keeper.send(d);
        }
    }
}

/// Stores the offset after each partition's settled prefix, until every chunk is settled;
/// then commits synchronously.
pub(super) fn keep(consumer: &StreamConsumer<Context>, settled: &flume::Receiver<Done>) {
    struct Progress {
        generation: u64,
        order: InOrder<(i64, bool)>,
        held: bool,
    }
    let mut parts: HashMap<Part, Progress> = HashMap::new();
    for d in settled.iter() {
        let p = parts.entry(d.part.clone()).or_insert(Progress {
            generation: d.generation,
            order: InOrder::default(),
            held: false,
        });
        if d.generation < p.generation {
            continue;
        }
        if d.generation > p.generation {
            *p = Progress {
                generation: d.generation,
                order: InOrder::default(),
                held: false,
            };
        }
        for (last, delivered) in p.order.settle(d.ordinal, (d.last, d.delivered)) {
            // A record that could not be delivered holds the offset: it is read again.
            p.held |= !delivered;
            if !p.held {
                // librdkafka's offset store takes the last record's offset, and commits the
                // one after it.
                if let Err(e) = consumer.store_offset(&d.part.topic, d.part.partition, last) {
                    tracing::debug!("kafka: {}/{}: {e}", d.part.topic, d.part.partition);
                }
            }
        }
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(rdkafka::error::KafkaError::ConsumerCommit(_)) => {}
        Err(e) => tracing::warn!("kafka: last commit: {e}"),
    }
}
