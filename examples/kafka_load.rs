//! Loads a topic for `bench/run --only kafka`: creates TOPIC with PARTITIONS partitions (when
//! missing) and produces every line of FILE to it, line `i` to partition `i % PARTITIONS`.
//!
//! Usage: kafka_load BROKER TOPIC PARTITIONS FILE      Prints: records seconds

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use std::io::BufRead;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, broker, topic, partitions, file] = args.as_slice() else {
        panic!("usage: kafka_load BROKER TOPIC PARTITIONS FILE");
    };
    let partitions: i32 = partitions.parse().expect("PARTITIONS");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let _ = rt.block_on(admin.create_topics([&new], &AdminOptions::new()));
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()
        .expect("producer");
    let started = Instant::now();
    let reader = std::io::BufReader::new(std::fs::File::open(file).expect("FILE"));
    let mut n = 0u64;
    for line in reader.split(b'\n') {
        let line = line.expect("read");
        if line.is_empty() {
            continue;
        }
        let mut record = BaseRecord::<(), [u8]>::to(topic)
            .payload(&line)
            .partition((n % partitions as u64) as i32);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
        n += 1;
    }
    producer.flush(Duration::from_secs(300)).expect("flush");
    println!("{n} {:.3}", started.elapsed().as_secs_f64());
}
