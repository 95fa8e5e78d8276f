//! The Kafka consumer: a member of a consumer group whose offsets move only past records that
//! have an outcome from the engine.
//!
//! Records of one partition go to the pipeline in chunks; when a chunk is settled, the keeper
//! (a thread) extends that partition's settled prefix ([`InOrder`]) and stores the offset
//! after it; librdkafka commits stored offsets every second, and the keeper commits
//! synchronously when partitions are revoked and at the end. A rebalance starts a new
//! generation: what an older one still had in flight is consumed again by the partition's new
//! owner (found again by its id, so nothing is indexed twice), and its late settlements are
//! not stored.
//!
//! In batch mode each partition is read up to the end offset it had at start, and the run ends
//! once the group's committed offsets reach those ends on every partition (those of the other
//! members too: a member that died has its partitions read by the others first).

use super::offsets::{keep, Context, Done, Mark, Part};
use super::settings::KafkaSettings;
use crate::ack::Ack;
use crate::chunk::{Identity, RawChunk, Route};
use crate::common::InputId;
use crate::source::intake::Intake;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The header evtship's Kafka output gives each document: its id. A record with it is a
/// document already, indexed as it is.
pub const ID_HEADER: &str = "evtship-id";

/// A chunk waits at most this long for more records of its partition.
const LINGER: Duration = Duration::from_millis(100);

type Group = StreamConsumer<Context>;

/// A partition being read.
struct Reading {
    input: InputId,
    origin: Arc<str>,
    chunk: Option<RawChunk>,
    started: Instant,
    last: i64,
    ordinal: u64,
    /// Batch mode: the offset it ends before (its end at start).
    end: Option<i64>,
}

/// Messages handled in one go once one has arrived, while more are ready (the `select!` of
/// the loop costs more than a message).
const BURST: usize = 4096;

/// The output of `f` if it is ready at once.
fn ready<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

/// The consumer, running.
pub struct Running {
    keeper: std::thread::JoinHandle<()>,
}

impl Running {
    /// Waits for the keeper's last commit (it ends once every chunk has been settled).
    pub fn join(self) {
        let _ = self.keeper.join();
    }
}

/// What went wrong starting the consumer.
#[derive(Debug, thiserror::Error)]
#[error("kafka {brokers}: {source}")]
pub struct KafkaStartError {
    brokers: String,
    #[source]
    source: rdkafka::error::KafkaError,
}

/// Joins the group and starts consuming into `intake` (until caught up, in batch mode; until
/// the run stops, in tail mode).
pub fn start(
    settings: &KafkaSettings,
    batch: bool,
    intake: Intake,
) -> Result<(tokio::task::JoinHandle<()>, Running), KafkaStartError> {
    let error = |source| KafkaStartError {
        brokers: settings.brokers.clone(),
        source,
    };
    let stats = intake.stats.clone();
    stats.kafka.active.store(true, Relaxed);
    let context = Context {
        stats: stats.clone(),
        generation: AtomicU64::new(0),
    };
    let consumer: Arc<Group> = Arc::new(
        settings
            .client_config()
            .create_with_context(context)
            .map_err(error)?,
    );
    let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(error)?;
    let ends = end_offsets(&consumer, &settings.topics).map_err(error)?;
    for ((topic, partition), (_, high)) in &ends {
        stats.kafka.set_end(topic, *partition, *high);
    }
    let (tx, rx) = flume::unbounded();
    let keeper = {
        let consumer = consumer.clone();
        std::thread::Builder::new()
            .name("evtship-kafka-keeper".into())
            .spawn(move || keep(&consumer, &rx))
            .expect("spawning the Kafka keeper")
    };
    let reader = Reader {
        consumer,
        intake,
        keeper: tx,
        metadata: settings.metadata,
        ends: if batch { Some(ends) } else { None },
        parts: HashMap::new(),
        topics: HashMap::new(),
        generation: 0,
    };
    Ok((tokio::spawn(reader.run()), Running { keeper }))
}

/// Each partition of `topics`: its low and high watermarks now.
fn end_offsets(
    consumer: &Group,
    topics: &[String],
) -> KafkaResult<HashMap<(String, i32), (i64, i64)>> {
    let mut ends = HashMap::new();
    for topic in topics {
        let meta = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
        for t in meta.topics() {
            for p in t.partitions() {
                let w = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(30))?;
                ends.insert((topic.clone(), p.id()), w);
            }
        }
    }
    Ok(ends)
}

struct Reader {
    consumer: Arc<Group>,
    intake: Intake,
    keeper: flume::Sender<Done>,
    metadata: bool,
    /// Batch mode: where each partition ends.
    ends: Option<HashMap<(String, i32), (i64, i64)>>,
    parts: HashMap<Part, Reading>,
    /// Each topic's name, shared by its partitions' keys.
    topics: HashMap<String, Arc<str>>,
    generation: u64,
}

impl Reader {
    async fn run(mut self) {
        let mut stop = self.intake.clone();
        let mut tick = tokio::time::interval(LINGER);
        let mut checked = Instant::now();
        let consumer = self.consumer.clone();
        loop {
            tokio::select! {
                got = consumer.recv() => {
                    let mut got = Some(got);
                    let mut burst = 0;
                    while let Some(next) = got.take() {
                        match next {
                            Ok(m) => {
                                if !self.take(&m).await {
                                    return;
                                }
                            }
                            Err(e) => tracing::warn!("kafka: {e}"),
                        }
                        burst += 1;
                        if burst < BURST {
                            got = ready(consumer.recv());
                        }
                    }
                }
                _ = tick.tick() => {
                    if !self.flush(false).await {
                        return;
                    }
                    if self.ends.is_some() && checked.elapsed() >= Duration::from_secs(1) {
                        checked = Instant::now();
                        if self.caught_up() {
                            tracing::info!("kafka: every partition is read to its end offset at start");
                            break;
                        }
                    } else if self.ends.is_none() && checked.elapsed() >= Duration::from_secs(10) {
                        checked = Instant::now();
                        self.refresh_ends();
                    }
                }
                () = stop.stopped() => break,
            }
        }
        self.flush(true).await;
    }

    /// The route of a message: a document from evtship's Kafka output keeps its id.
    fn route(m: &rdkafka::message::BorrowedMessage<'_>) -> Option<Route> {
        let headers = m.headers()?;
        let id = (0..headers.count())
            .map(|i| headers.get(i))
            .find(|h| h.key == ID_HEADER)
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())?;
        Some(Route {
            index: None,
            id: Some(id.to_owned()),
            overwrite: false,
            verbatim: true,
        })
    }

    /// The message's value with the metadata fields added where the record has none.
    fn with_metadata(m: &rdkafka::message::BorrowedMessage<'_>, value: &[u8]) -> Option<Vec<u8>> {
        let mut fields = vec![
            ("KafkaTopic", Value::from(m.topic())),
            ("KafkaPartition", Value::from(m.partition())),
            ("KafkaOffset", Value::from(m.offset())),
        ];
        if let Some(k) = m.key() {
            fields.push((
                "KafkaKey",
                Value::from(String::from_utf8_lossy(k).into_owned()),
            ));
        }
        crate::common::fields::append_missing(value, &fields)
    }

    /// The partition's reading, begun when it is new.
    fn reading(&mut self, topic: &str, partition: i32) -> (Part, &mut Reading) {
        let topic = match self.topics.get(topic) {
            Some(t) => t.clone(),
            None => {
                let t: Arc<str> = Arc::from(topic);
                self.topics.insert(topic.to_owned(), t.clone());
                t
            }
        };
        let part = Part { topic, partition };
        let stats = &self.intake.stats;
        let ends = &self.ends;
        let reading = self.parts.entry(part.clone()).or_insert_with(|| {
            let name = format!("kafka:{}/{}", part.topic, part.partition);
            Reading {
                input: stats.add_input(name.clone()),
                origin: Arc::from(name),
                chunk: None,
                started: Instant::now(),
                last: -1,
                ordinal: 0,
                end: ends.as_ref().map(|e| {
                    e.get(&(part.topic.to_string(), partition))
                        .map_or(0, |e| e.1)
                }),
            }
        });
        (part, reading)
    }

    /// Adds a message's record to its partition's chunk (nothing when it is past the batch's
    /// end or empty); `false` when the pipeline takes no more.
    async fn take(&mut self, m: &rdkafka::message::BorrowedMessage<'_>) -> bool {
        let generation = self.consumer.context().generation.load(Relaxed);
        if generation != self.generation {
            // A rebalance: what was gathered and not handed over is read again from the
            // committed offsets.
            self.generation = generation;
            for r in self.parts.values_mut() {
                r.chunk = None;
                r.ordinal = 0;
            }
        }
        let Some(value) = m.payload() else {
            return true;
        };
        let offset = m.offset();
        let route = Self::route(m);
        let extended = (self.metadata && route.is_none())
            .then(|| Self::with_metadata(m, value))
            .flatten();
        let (part, reading) = self.reading(m.topic(), m.partition());
        if reading.end.is_some_and(|end| offset >= end) {
            return true;
        }
        let chunk = reading.chunk.get_or_insert_with(|| {
            let mut c = RawChunk::new(reading.input, &reading.origin);
            c.identity = Identity::Content;
            c
        });
        if chunk.lines.is_empty() {
            reading.started = Instant::now();
        }
        let has_routes = !chunk.routes.is_empty() || route.is_some();
        if has_routes {
            // Routes are one per line once any record has one.
            while chunk.routes.len() < chunk.lines.len() {
                chunk.routes.push(Route::default());
            }
        }
        let record = extended.as_deref().unwrap_or(value);
        chunk.push_record(offset as u64 + 1, |b| b.extend_from_slice(record));
        if has_routes {
            chunk.routes.push(route.unwrap_or_default());
        }
        reading.last = offset;
        if chunk.is_full() {
            return self.send(&part).await;
        }
        true
    }

    /// Hands over the chunks that waited long enough (all, with `all`).
    async fn flush(&mut self, all: bool) -> bool {
        let due: Vec<Part> = self
            .parts
            .iter()
            .filter(|(_, r)| r.chunk.is_some() && (all || r.started.elapsed() >= LINGER))
            .map(|(p, _)| p.clone())
            .collect();
        for p in due {
            if !self.send(&p).await {
                return false;
            }
        }
        true
    }

    async fn send(&mut self, part: &Part) -> bool {
        let Some(reading) = self.parts.get_mut(part) else {
            return true;
        };
        let Some(mut chunk) = reading.chunk.take() else {
            return true;
        };
        let done = Done {
            part: part.clone(),
            generation: self.generation,
            ordinal: reading.ordinal,
            last: reading.last,
            delivered: false,
        };
        reading.ordinal += 1;
        chunk.ack = Ack::new(
            chunk.lines.len(),
            Some(Box::new(Mark {
                done: Some(done),
                keeper: self.keeper.clone(),
            })),
        );
        self.intake.send(chunk).await
    }

    /// Tail mode: the end offsets of the partitions read, for the lag.
    fn refresh_ends(&self) {
        let consumer = self.consumer.clone();
        let stats = &self.intake.stats;
        tokio::task::block_in_place(|| {
            for part in self.parts.keys() {
                if let Ok((_, high)) =
                    consumer.fetch_watermarks(&part.topic, part.partition, Duration::from_secs(5))
                {
                    stats.kafka.set_end(&part.topic, part.partition, high);
                }
            }
        });
    }

    /// Whether the group's committed offsets have reached every partition's end at start.
    fn caught_up(&self) -> bool {
        let Some(ends) = &self.ends else {
            return false;
        };
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in ends.keys() {
            tpl.add_partition(topic, *partition);
        }
        let consumer = self.consumer.clone();
        let committed = tokio::task::block_in_place(|| {
            consumer.committed_offsets(tpl, Duration::from_secs(10))
        });
        let Ok(committed) = committed else {
            return false;
        };
        let stats = &self.intake.stats;
        ends.iter().all(|((topic, partition), (low, high))| {
            let at = committed
                .find_partition(topic, *partition)
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            if let Some(o) = at {
                stats.kafka.set_committed(topic, *partition, o);
            }
            high <= low || at.is_some_and(|o| o >= *high)
        })
    }
}
