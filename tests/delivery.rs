//! Delivery under faults, against the real engine through the fault-injection proxy: every
//! record indexed exactly once, or dead-lettered with its reason.

mod common;

use common::proxy::FaultProxy;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn pipeline(dir: &Path, input: &Path, index: &str, extra: &str) -> std::path::PathBuf {
    let p = dir.join("p.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"delivery\"\ninputs = [\"{}\"]\n[elasticsearch]\nindex = \"{index}\"\n[template]\nreplicas = 0\n{extra}",
            input.display()
        ),
    )
    .unwrap();
    p
}

fn evtship_cmd(dir: &Path, es_url: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_evtship"));
    c.current_dir(root())
        .env("ES_URL", es_url)
        .env("EVTSHIP_CHECKPOINT_DIR", dir.join("checkpoints"))
        .args(args);
    c
}

fn summary(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn item_level_429_and_503_on_a_fifth_of_the_items_are_all_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("itemfaults");
    let input = dir.path().join("r.json");
    let total = 5000;
    write_records(&input, total, "ITEMS");
    let proxy = FaultProxy::start(&es_url());
    proxy.set(|f| {
        f.item_fault_rate = 0.2;
        f.item_statuses = vec![429, 503];
    });
    let p = pipeline(
        dir.path(),
        &input,
        &index.name,
        "[bulk]\nmax_events = 250\ninitial_backoff_ms = 20\nmax_backoff_ms = 200\n",
    );
    let s = dir.path().join("s.json");
    let out = evtship_cmd(
        dir.path(),
        &proxy.url,
        &[
            "run",
            p.to_str().unwrap(),
            "--no-progress",
            "--summary-json",
            s.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let s = summary(&s);
    assert_eq!(s["events_indexed"], total);
    assert_eq!(s["duplicates"], 0);
    assert_eq!(s["dead_lettered"], 0);
    let faulted = proxy
        .seen
        .faulted_items
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(faulted > total as u64 / 10, "only {faulted} items faulted");
    assert_eq!(
        s["retries"].as_u64().unwrap(),
        faulted,
        "every faulted item retried once per fault"
    );
    assert_each_once(&index, "RecordNumber", total as u64);
}

/// Runs evtship against `es_url` (the engine, or a proxy in front of it) with `extra`
/// pipeline settings and `flags`; returns its summary.
fn run_through(
    es_url: &str,
    (dir, input, index): (&Path, &Path, &str),
    extra: &str,
    flags: &[&str],
) -> Value {
    let p = pipeline(dir, input, index, extra);
    let s = dir.join("s.json");
    let mut args = vec![
        "run",
        p.to_str().unwrap(),
        "--no-progress",
        "--summary-json",
        s.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    let out = evtship_cmd(dir, es_url, &args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    summary(&s)
}

#[test]
fn gzip_bodies_reach_the_engine_and_a_refused_request_is_sent_again_byte_for_byte() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("gzip");
    let input = dir.path().join("r.json");
    let total = 6000;
    write_records(&input, total, "GZIP");
    let proxy = FaultProxy::start(&es_url());
    proxy.set(|f| f.request_fault_rate = 0.3);
    // The default compression level (1): nothing about compression in the file.
    let s = run_through(
        &proxy.url,
        (dir.path(), &input, &index.name),
        "[bulk]\nmax_events = 300\ninitial_backoff_ms = 20\nmax_backoff_ms = 100\n",
        &["--compression-level", "1"],
    );
    assert_eq!(s["events_indexed"], total);
    assert_eq!(s["dead_lettered"], 0);
    assert_each_once(&index, "RecordNumber", total as u64);
    let seen = &proxy.seen;
    let (wire, plain) = (seen.wire_bytes.load(SeqCst), seen.body_bytes.load(SeqCst));
    let bodies = seen.bodies.lock().unwrap().clone();
    let faulted = seen.faulted_requests.load(SeqCst) as usize;
    assert!(faulted >= 3, "only {faulted} requests refused");
    assert_eq!(
        seen.gzip_bodies.load(SeqCst) as usize,
        bodies.len(),
        "every body gzipped"
    );
    assert!(wire * 5 < plain, "{wire} bytes on the wire for {plain}");
    // A whole request refused is sent again with the same bytes: the distinct bodies are the
    // requests less the refused ones.
    let distinct: std::collections::HashSet<_> = bodies.iter().collect();
    assert_eq!(
        distinct.len(),
        bodies.len() - faulted,
        "{} bodies",
        bodies.len()
    );
    let bulk = &s["bulk"];
    assert_eq!(bulk["compression_level"], 1);
    assert_eq!(bulk["requests"].as_u64(), Some(bodies.len() as u64));
    assert_eq!(bulk["wire_bytes"].as_u64(), Some(wire));
    assert_eq!(bulk["body_bytes"].as_u64(), Some(plain));
}

#[test]
fn a_backfill_of_files_sends_full_batches() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("fullbatches");
    let input = dir.path().join("r.json");
    write_records(&input, 5000, "FULL");
    // Nobody waits for a file's records: a batch is sent when it is full (or after the flush
    // interval, long here), not whenever the sink's queue happens to be empty.
    let s = run_through(
        &es_url(),
        (dir.path(), &input, &index.name),
        "[bulk]\nmax_events = 500\nflush_interval_ms = 10000\n",
        &[],
    );
    assert_eq!(s["events_indexed"], 5000);
    assert_each_once(&index, "RecordNumber", 5000);
    assert_eq!(s["bulk"]["requests"], 10, "{}", s["bulk"]);
}

#[test]
fn the_engine_itself_takes_gzip_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("gzipdirect");
    let input = dir.path().join("r.json");
    write_records(&input, 3000, "DIRECT");
    let s = run_through(
        &es_url(),
        (dir.path(), &input, &index.name),
        "[bulk]\nmax_events = 400\n",
        &["--compression-level", "6"],
    );
    assert_eq!(s["bulk"]["compression_level"], 6);
    assert!(
        s["bulk"]["wire_ratio"].as_f64().unwrap() < 0.2,
        "{}",
        s["bulk"]
    );
    assert_each_once(&index, "RecordNumber", 3000);
}

#[test]
fn bodies_to_an_engine_on_this_host_go_uncompressed_by_default() {
    use std::sync::atomic::Ordering::SeqCst;
    let index = TestIndex::new("nogzip");
    let proxy = FaultProxy::start(&es_url());
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("r.json");
    write_records(&input, 1000, "PLAIN");
    // The proxy listens on 127.0.0.1: no compression_level, no flag.
    let s = run_through(
        &proxy.url,
        (dir.path(), &input, &index.name),
        "[bulk]\nmax_events = 300\n",
        &[],
    );
    assert_eq!(s["bulk"]["compression_level"], 0);
    assert_eq!(proxy.seen.gzip_bodies.load(SeqCst), 0);
    assert_eq!(
        proxy.seen.wire_bytes.load(SeqCst),
        proxy.seen.body_bytes.load(SeqCst)
    );
    assert_each_once(&index, "RecordNumber", 1000);
}

#[test]
fn adaptive_concurrency_under_30_percent_429_delivers_everything_once() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("adaptive");
    let input = dir.path().join("r.json");
    let total = 20_000;
    write_records(&input, total, "ADAPTIVE");
    let proxy = FaultProxy::start(&es_url());
    proxy.set(|f| f.request_fault_rate = 0.3);
    let s = run_through(
        &proxy.url,
        (dir.path(), &input, &index.name),
        "[bulk]\nmax_events = 250\nconcurrency = \"adaptive\"\nmax_concurrency = 12\n\
         initial_backoff_ms = 20\nmax_backoff_ms = 200\n",
        &[],
    );
    assert_eq!(s["events_indexed"], total);
    assert_eq!(s["dead_lettered"], 0);
    assert_each_once(&index, "RecordNumber", total as u64);
    assert!(proxy.seen.faulted_requests.load(SeqCst) >= 10);
    let c = &s["bulk"]["concurrency"];
    assert_eq!(c["mode"], "adaptive", "{c}");
    // Refusals at a steady share do not drive it to the floor (it starts at 4).
    assert!(c["last"].as_u64().unwrap() >= 2, "{c}");
}

#[test]
fn rejected_items_are_dead_lettered_then_replayed_once_the_mapping_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("replay400");
    // The user's own strict mapping, without `CommandLine`: those documents are refused (400).
    let status = put_json(
        &format!("/{}", index.name),
        json!({"settings": {"number_of_replicas": 0}, "mappings": {"dynamic": "strict", "properties": {
            "@timestamp": {"type": "date"}, "@version": {"type": "keyword"}, "Hostname": {"type": "keyword"},
            "Channel": {"type": "keyword"}, "EventID": {"type": "long"}, "RecordNumber": {"type": "long"},
            "Image": {"type": "keyword"}, "MessageTitle": {"type": "keyword"}}}}),
    );
    assert_eq!(status, 200);
    let input = dir.path().join("r.json");
    write_records(&input, 100, "REPLAY");
    // Half of them lack CommandLine and fit the mapping.
    let text: String = std::fs::read_to_string(&input)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut v: serde_json::Map<String, Value> = serde_json::from_str(l).unwrap();
            if i % 2 == 0 {
                v.remove("CommandLine");
            }
            serde_json::to_string(&v).unwrap() + "\n"
        })
        .collect();
    std::fs::write(&input, text).unwrap();
    let dlq = dir.path().join("dlq.ndjson");
    let run = evtship(
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--index",
            &index.name,
            "--dead-letter",
            dlq.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.n("events_indexed"), 50);
    assert_eq!(run.n("dead_lettered"), 50);
    let first: Value = serde_json::from_str(
        std::fs::read_to_string(&dlq)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["status"], 400);
    assert!(
        first["reason"]
            .as_str()
            .unwrap()
            .contains("strict_dynamic_mapping_exception"),
        "{first}"
    );

    let list = evtship(&["dlq", "list", dlq.to_str().unwrap()], dir.path());
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout.contains("50 records, 50 replayable"),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout.contains("strict_dynamic_mapping_exception"),
        "{}",
        list.stdout
    );

    // Replaying before the fix changes nothing: the records stay, with the engine's reason.
    let early = evtship(
        &[
            "dlq",
            "replay",
            dlq.to_str().unwrap(),
            "--index",
            &index.name,
        ],
        dir.path(),
    );
    assert_eq!(early.code, 3, "{}", early.stderr);
    assert_eq!(std::fs::read_to_string(&dlq).unwrap().lines().count(), 50);
    let kept: Value = serde_json::from_str(
        std::fs::read_to_string(&dlq)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        kept["input"],
        input.to_str().unwrap(),
        "original provenance kept"
    );
    assert_eq!(kept["line"], first["line"]);

    // Fix the cause, replay: all delivered, the file is gone.
    let fixed = put_json(
        &format!("/{}/_mapping", index.name),
        json!({"properties": {"CommandLine": {"type": "keyword"}}}),
    );
    assert_eq!(fixed, 200);
    let replay = evtship(
        &[
            "dlq",
            "replay",
            dlq.to_str().unwrap(),
            "--index",
            &index.name,
        ],
        dir.path(),
    );
    assert_eq!(replay.code, 0, "{}", replay.stderr);
    assert!(replay.stderr.contains("50 indexed"), "{}", replay.stderr);
    assert!(!dlq.exists());
    assert_each_once(&index, "RecordNumber", 100);
}

#[test]
fn an_engine_outage_of_30_seconds_is_waited_out_with_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("outage");
    let input = dir.path().join("r.json");
    let total = 120_000u64;
    write_records(&input, total as usize, "OUTAGE");
    let proxy = FaultProxy::start(&es_url());
    let p = pipeline(
        dir.path(),
        &input,
        &index.name,
        "[bulk]\nmax_events = 500\nconcurrency = 2\nmax_retries = 1000\nmax_backoff_ms = 2000\n",
    );
    let s = dir.path().join("s.json");
    let mut child = evtship_cmd(
        dir.path(),
        &proxy.url,
        &[
            "run",
            p.to_str().unwrap(),
            "--no-progress",
            "--summary-json",
            s.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    // Before: let it index a part, sampling memory once its queues are full (from 10,000
    // documents on, well after the first requests went out).
    let mut before = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let indexed = index.count_so_far();
        if indexed >= 20_000 {
            break;
        }
        assert!(Instant::now() < deadline, "no progress before the outage");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the outage"
        );
        if indexed >= 10_000 {
            before = before.max(rss_kib(child.id()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(before > 0, "no memory sample before the outage");
    proxy.set(|f| f.refuse = true);
    let outage_start = Instant::now();
    let mut during = 0;
    let indexed_at_start = index.count();
    while outage_start.elapsed() < Duration::from_secs(30) {
        during = during.max(rss_kib(child.id()));
        assert!(
            child.try_wait().unwrap().is_none(),
            "evtship gave up during the outage"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let indexed_during = index.count() - indexed_at_start;
    proxy.set(|f| f.refuse = false);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let s = summary(&s);
    assert_eq!(s["events_read"], total);
    assert_eq!(s["dead_lettered"], 0);
    assert_each_once(&index, "RecordNumber", total);
    assert!(
        indexed_during < 2_000,
        "{indexed_during} documents arrived during the outage"
    );
    eprintln!("peak RSS before the outage {before} KiB, during it {during} KiB");
    // The readers pause: memory during the outage stays at the level before it. The slack is
    // 5% or 4 MiB, whichever is more: the retry path has a fixed cost of 1 to 2 MiB, which 5%
    // of a 40 MiB process does not always cover. Readers that did not pause would buffer the
    // rest of the input, tens of MiB.
    let slack = (before / 20).max(4 * 1024);
    assert!(
        during <= before + slack,
        "RSS grew from {before} to {during} KiB"
    );
    // The test can fail: what was left to read when the outage began is far more than the
    // slack, so readers that buffered it would be seen.
    let left_kib = std::fs::metadata(&input).unwrap().len() / 1024 * (total - 20_000) / total;
    assert!(
        left_kib > 4 * slack,
        "the input ({left_kib} KiB left) is too small to tell"
    );
}

#[test]
fn a_backfill_killed_ten_times_ends_with_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("sigkill");
    let input = dir.path().join("r.json");
    let total = 250_000u64;
    write_records(&input, total as usize, "KILLED");
    let p = pipeline(
        dir.path(),
        &input,
        &index.name,
        "[bulk]\nmax_events = 1000\nconcurrency = 2\n",
    );
    let mut killed_mid_run = 0;
    for round in 0..10 {
        let mut child = evtship_cmd(
            dir.path(),
            &es_url(),
            &["run", p.to_str().unwrap(), "--no-progress"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(200 + fastrand::u64(0..800)));
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        eprintln!("kill {round}: {} documents", index.count_so_far());
    }
    assert!(
        killed_mid_run >= 10,
        "only {killed_mid_run} kills hit a running backfill"
    );
    let last = evtship(&["run", p.to_str().unwrap()], dir.path());
    assert_eq!(last.code, 0, "{}", last.stderr);
    assert_each_once(&index, "RecordNumber", total);
}

#[test]
fn a_rate_limit_holds_within_five_percent_over_twenty_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("rate");
    let input = dir.path().join("r.json");
    let rate = 1000u64;
    let total = rate * 20;
    write_records(&input, total as usize, "RATE");
    let p = pipeline(
        dir.path(),
        &input,
        &index.name,
        &format!("[bulk]\nmax_events_per_second = {rate}\n"),
    );
    let started = Instant::now();
    let run = evtship(&["run", p.to_str().unwrap()], dir.path());
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let s = run.summary;
    assert_eq!(s["events_indexed"], total);
    let elapsed = s["elapsed_seconds"].as_f64().unwrap();
    let measured = total as f64 / elapsed;
    eprintln!("{total} events in {elapsed:.2} s (wall {wall:.2} s): {measured:.1} events/s for a limit of {rate}");
    assert!(
        (measured - rate as f64).abs() / rate as f64 <= 0.05,
        "{measured:.1} events/s"
    );
}
