//! The real Kafka broker of `scripts/kafka-local` (started here when not running): topics,
//! records produced to chosen partitions, and a group's committed offsets.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::sync::OnceLock;
use std::time::Duration;

/// The broker's address (`EVTSHIP_KAFKA`, default the local broker), started once per test
/// binary when it is the local one and not running.
pub fn broker() -> String {
    static BROKER: OnceLock<String> = OnceLock::new();
    BROKER
        .get_or_init(|| {
            if let Ok(b) = std::env::var("EVTSHIP_KAFKA") {
                return b;
            }
            let out = std::process::Command::new(super::root().join("scripts/kafka-local"))
                .arg("start")
                .output()
                .expect("running scripts/kafka-local");
            assert!(
                out.status.success(),
                "scripts/kafka-local start failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        })
        .clone()
}

/// A topic of `partitions` partitions with a name of its own.
pub fn topic(name: &str, partitions: i32) -> String {
    let topic = format!("evtship-test-{name}-{}", std::process::id());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let new = NewTopic::new(&topic, partitions, TopicReplication::Fixed(1));
    let results = rt
        .block_on(admin.create_topics([&new], &AdminOptions::new()))
        .unwrap();
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    topic
}

/// Produces `records` to `topic`, record `i` to partition `partition(i)`, in order, and waits
/// until the broker has them all.
pub fn produce(topic: &str, records: &[String], partition: impl Fn(usize) -> i32) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for (i, r) in records.iter().enumerate() {
        let mut record = BaseRecord::<(), str>::to(topic)
            .payload(r.as_str())
            .partition(partition(i));
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// The committed offset of each partition of `topic` for `group` (-1 when none).
pub fn committed(group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    (0..partitions)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => -1,
        })
        .collect()
}
