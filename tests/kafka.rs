//! Kafka in and out, against the real broker of `scripts/kafka-local` and the real engine:
//! a consumer group through a SIGKILL, batch runs that end, an engine outage, and edge ->
//! Kafka -> central giving the documents of a direct run.

mod common;

use common::kafka::{broker, committed, produce, topic};
use common::proxy::FaultProxy;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `n` records of NXLog's shape; record `i` goes to partition `i % partitions`, at offset
/// `i / partitions`, which it carries as `P` and `O`.
fn records(n: usize, partitions: usize, host: &str) -> Vec<String> {
    (0..n)
        .map(|i| {
            json!({
                "@timestamp": "2020-05-02T02:55:56.157Z", "Hostname": host,
                "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1,
                "RecordNumber": i, "P": i % partitions, "O": i / partitions,
                "Image": format!("C:\\Windows\\System32\\cmd{}.exe", i % 7),
            })
            .to_string()
        })
        .collect()
}

fn pipeline(dir: &Path, name: &str, index: &str, topic: &str, group: &str, extra: &str) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "name = \"{name}\"\n[kafka]\nbrokers = [\"{}\"]\ntopics = [\"{topic}\"]\n\
             group_id = \"{group}\"\nsession_timeout_ms = 3000\n\
             [elasticsearch]\nindex = \"{index}\"\n[template]\nreplicas = 0\n{extra}",
            broker()
        ),
    )
    .unwrap();
    p
}

/// An evtship consumer running in the background.
struct Consumer {
    child: Option<Child>,
    stderr: PathBuf,
    summary: PathBuf,
}

impl Consumer {
    fn start(p: &Path, dir: &Path, name: &str, es_url: &str, args: &[&str]) -> Self {
        let stderr = dir.join(format!("{name}.stderr"));
        let summary = dir.join(format!("{name}.summary.json"));
        let child = Command::new(env!("CARGO_BIN_EXE_evtship"))
            .current_dir(root())
            .env("ES_URL", es_url)
            .env("RUST_LOG", "info")
            .arg("run")
            .arg(p)
            .args(["--no-progress", "--summary-json"])
            .arg(&summary)
            .arg("--checkpoint-dir")
            .arg(dir.join(format!("{name}-checkpoints")))
            .arg("--dead-letter")
            .arg(dir.join(format!("{name}.dlq.ndjson")))
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Self {
            child: Some(child),
            stderr,
            summary,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn kill(&mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// Waits for it to exit by itself within `limit`; its exit code and summary.
    fn wait(&mut self, limit: Duration) -> (i32, Value) {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().unwrap();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {limit:?}: {}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        self.child = None;
        let summary = std::fs::read_to_string(&self.summary)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        (status.code().unwrap_or(-1), summary)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Every record of partition `p` below its committed offset is in the index (record `i` of
/// partition `p` has offset `o` when `i = o * partitions + p`).
fn assert_committed_are_indexed(index: &TestIndex, offsets: &[i64]) {
    let partitions = offsets.len() as i64;
    for (p, &c) in offsets.iter().enumerate() {
        if c <= 0 {
            continue;
        }
        let n = index.count_query(json!({"bool": {"filter": [
            {"term": {"P.keyword": p.to_string()}},
            {"range": {"RecordNumber": {"lt": c * partitions}}}
        ]}}));
        assert_eq!(
            n, c as u64,
            "partition {p}: committed {c}, but {n} of those indexed"
        );
    }
}

#[test]
fn a_group_of_two_loses_one_to_sigkill_and_every_record_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("kafkagroup");
    let total = 100_000usize;
    let t = topic("group", 4);
    produce(&t, &records(total, 4, "KAFKAGROUP"), |i| (i % 4) as i32);
    let group = format!("{t}-group");
    let p = pipeline(dir.path(), "group", &index.name, &t, &group, "");
    let mut a = Consumer::start(&p, dir.path(), "a", &es_url(), &[]);
    let mut b = Consumer::start(&p, dir.path(), "b", &es_url(), &[]);
    index.wait_for(30_000, Duration::from_secs(120), || {
        a.stderr() + &b.stderr()
    });
    a.kill();
    // What the group committed at the kill is in the index, whatever was in flight.
    let at_kill = committed(&group, &t, 4);
    assert_committed_are_indexed(&index, &at_kill);
    let (code, summary) = b.wait(Duration::from_secs(180));
    assert_eq!(code, 0, "{}", b.stderr());
    assert_each_once(&index, "RecordNumber", total as u64);
    let ends: Vec<i64> = (0..4)
        .map(|p| (total / 4 + usize::from(p < total % 4)) as i64)
        .collect();
    assert_eq!(committed(&group, &t, 4), ends, "the group's lag is 0");
    let lag: i64 = summary["kafka"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["lag"].as_i64().unwrap())
        .sum();
    assert_eq!(lag, 0, "{summary}");
    assert!(
        summary["kafka"]["rebalances"].as_u64().unwrap() >= 2,
        "{summary}"
    );
    eprintln!(
        "committed at the kill: {at_kill:?}; survivor: {}",
        summary["kafka"]
    );
}

#[test]
fn a_batch_run_ends_by_itself_and_the_next_one_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("kafkabatch");
    let t = topic("batch", 2);
    produce(&t, &records(5_000, 2, "KAFKABATCH"), |i| (i % 2) as i32);
    let uri = format!("kafka://{}/{t}?group={t}-g", broker());
    let run = evtship(
        &["run", "--input", &uri, "--index", &index.name],
        dir.path(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.n("events_indexed"), 5_000, "{}", run.summary);
    assert_each_once(&index, "RecordNumber", 5_000);
    // More records after the first run are the next run's, and only those.
    let more: Vec<String> = records(5_100, 2, "KAFKABATCH").split_off(5_000);
    produce(&t, &more, |i| (i % 2) as i32);
    let run = evtship(
        &["run", "--input", &uri, "--index", &index.name],
        dir.path(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.n("events_read"), 100, "{}", run.summary);
    let run = evtship(
        &["run", "--input", &uri, "--index", &index.name],
        dir.path(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.n("events_read"), 0, "{}", run.summary);
    assert!(run.stderr.contains("lag 0"), "{}", run.stderr);
}

#[test]
fn an_engine_outage_pauses_consumption_and_holds_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("kafkaoutage");
    let total = 60_000usize;
    let t = topic("outage", 4);
    produce(&t, &records(total, 4, "KAFKAOUT"), |i| (i % 4) as i32);
    let proxy = FaultProxy::start(&es_url());
    let group = format!("{t}-g");
    let p = pipeline(
        dir.path(),
        "outage",
        &index.name,
        &t,
        &group,
        // librdkafka's read-ahead kept to 2 MiB, so that it is full before memory is first
        // measured (the default, 16 MiB, can still be filling at 5 s on a loaded machine).
        "[bulk]\nmax_backoff_ms = 2000\nmax_retries = 100\n\
         [kafka.options]\n\"queued.max.messages.kbytes\" = \"2048\"\n",
    );
    let mut c = Consumer::start(&p, dir.path(), "c", &proxy.url, &[]);
    index.wait_for(10_000, Duration::from_secs(120), || c.stderr());
    proxy.set(|f| f.refuse = true);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(8));
    // In-flight requests have failed and the queues are full by now; from here nothing may
    // move and memory may not grow.
    let (held, base) = (committed(&group, &t, 4), rss_kib(c.pid()));
    let mut most = base;
    while started.elapsed() < Duration::from_secs(30) {
        most = most.max(rss_kib(c.pid()));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        committed(&group, &t, 4),
        held,
        "a commit moved during the outage"
    );
    assert_committed_are_indexed(&index, &held);
    proxy.set(|f| f.refuse = false);
    let (code, summary) = c.wait(Duration::from_secs(180));
    assert_eq!(code, 0, "{}", c.stderr());
    assert_each_once(&index, "RecordNumber", total as u64);
    eprintln!("outage: RSS {base} KiB at 8 s, at most {most} KiB; committed held at {held:?}");
    // Bounded, not flat to the byte: in CI runs of this session it grew by up to 14 MiB over
    // the outage (retried requests and the allocator), never further. The topic holds 60,000
    // records, 12.1 MB of JSON: a consumer that read them all into memory, with the documents
    // made of them, would pass 16 MiB.
    let slack = 16 * 1024;
    assert!(most <= base + slack, "RSS grew from {base} to {most} KiB");
    assert!(summary["retries"].as_u64().unwrap() > 0, "{summary}");
}

#[test]
fn edge_to_kafka_to_central_gives_the_documents_and_ids_of_a_direct_run() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic("edge", 3);
    let inputs = [data("otrf"), data("evtx/security.evtx"), data("archives")];
    let mut args = vec!["run".to_owned()];
    for i in &inputs {
        args.push("--input".into());
        args.push(i.display().to_string());
    }
    let edge_args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = format!("kafka://{}/{t}", broker());
    let mut edge = edge_args.clone();
    edge.extend(["--output", &out]);
    let run = evtship(&edge, dir.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let produced = run.n("events_indexed");
    assert!(produced > 1_000, "{}", run.summary);
    let central = TestIndex::new("kafkacentral");
    let uri = format!("kafka://{}/{t}?group={t}-central", broker());
    let run = evtship(
        &["run", "--input", &uri, "--index", &central.name],
        dir.path(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The archives hold one export three times: the same ids, so duplicates, as directly.
    let indexed = run.n("events_indexed");
    assert_eq!(indexed + run.n("duplicates"), produced, "{}", run.summary);
    let direct = TestIndex::new("kafkadirect");
    let mut straight = edge_args.clone();
    straight.extend(["--index", &direct.name]);
    let elsewhere = tempfile::tempdir().unwrap();
    let run = evtship(&straight, elsewhere.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (a, b) = (central.documents(), direct.documents());
    assert_eq!(a.len() as u64, indexed);
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same ids"
    );
    for (id, doc) in &a {
        assert_eq!(doc, &b[id], "document {id}");
    }
}
