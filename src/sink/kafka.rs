//! The Kafka output (`--output kafka://BROKER/TOPIC`): each final document produced to a topic
//! with its id as key and in the `evtship-id` header, so that an evtship consuming the topic
//! indexes the same documents under the same ids as a direct run. The producer is idempotent
//! with `acks=all`; a record is settled (and its file checkpoint may move) only once the
//! broker has acknowledged it.

use super::Accounting;
use crate::ack::Outcome;
use crate::source::kafka::ID_HEADER;
use crate::transform::EncodedChunk;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What failed.
#[derive(Debug, thiserror::Error)]
#[error("kafka output {brokers}: {source}")]
pub struct KafkaSinkError {
    brokers: String,
    #[source]
    source: KafkaError,
}

/// Where each delivery report goes: the record's chunk and place.
struct Reports {
    acct: Arc<Accounting>,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<(Arc<EncodedChunk>, usize)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (chunk, doc) = *opaque;
        let line = chunk.docs[doc].line;
        match result {
            Ok(_) => self
                .acct
                .resolve(&chunk.raw, line, Outcome::Indexed, || (201, None)),
            Err((e, _)) => {
                let reason = format!("the Kafka broker did not take it: {e}");
                self.acct.dead_letter(&chunk.raw, line, &reason, None, None);
            }
        }
    }
}

/// A producer to one topic.
pub struct KafkaSink {
    brokers: String,
    topic: String,
    config: ClientConfig,
}

impl KafkaSink {
    /// A sink to `topic` on `brokers`, with the connection's other librdkafka properties.
    pub fn new(brokers: &str, topic: &str, connection: &BTreeMap<String, String>) -> Self {
        let mut config = ClientConfig::new();
        for (k, v) in connection {
            config.set(k, v);
        }
        config
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            .set("linger.ms", "5");
        Self {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            config,
        }
    }

    /// Produces every document received until the channel closes, then waits for the broker
    /// to acknowledge what is in flight.
    pub fn run(
        self,
        rx: &flume::Receiver<EncodedChunk>,
        acct: &Arc<Accounting>,
    ) -> Result<(), KafkaSinkError> {
        let error = |source| KafkaSinkError {
            brokers: self.brokers.clone(),
            source,
        };
        let producer: ThreadedProducer<Reports> = self
            .config
            .create_with_context(Reports { acct: acct.clone() })
            .map_err(error)?;
        for chunk in rx.iter() {
            acct.reject_unparsable(&chunk);
            let chunk = Arc::new(chunk);
            for doc in 0..chunk.docs.len() {
                let id = chunk.docs[doc]
                    .route
                    .as_ref()
                    .and_then(|r| r.id.clone())
                    .unwrap_or_else(|| chunk.docs[doc].id.as_str().to_owned());
                let line = chunk.doc_line(doc);
                let payload = line.strip_suffix(b"\n").unwrap_or(line);
                let mut record =
                    BaseRecord::with_opaque_to(&self.topic, Box::new((chunk.clone(), doc)))
                        .key(id.as_bytes())
                        .payload(payload)
                        .headers(OwnedHeaders::new().insert(Header {
                            key: ID_HEADER,
                            value: Some(id.as_bytes()),
                        }));
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                            // The producer's queue is full: wait for deliveries.
                            record = back;
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err((e, back)) => {
                            let (chunk, doc) = *back.delivery_opaque;
                            let reason = format!("the Kafka producer refused it: {e}");
                            acct.dead_letter(&chunk.raw, chunk.docs[doc].line, &reason, None, None);
                            break;
                        }
                    }
                }
            }
        }
        producer.flush(Duration::from_secs(300)).map_err(error)
    }
}
