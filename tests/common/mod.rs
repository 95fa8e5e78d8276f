//! Helpers for tests against the real engine started by `scripts/opensearch-local start`.
//!
//! The engine URL is `EVTSHIP_TEST_ES_URL`, else `http://127.0.0.1:19200`. When no engine
//! answers, tests fail (they never skip) with a message saying how to start one.

#![allow(dead_code)]

pub mod kafka;
pub mod listen;
pub mod proxy;
pub mod recorder;
pub mod tls;
pub mod wait;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The resident memory of a running process, in KiB (the test fails when it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("a VmRSS line")
}

/// A port that was free a moment ago on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The engine's URL.
pub fn es_url() -> String {
    std::env::var("EVTSHIP_TEST_ES_URL").unwrap_or_else(|_| "http://127.0.0.1:19200".into())
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture path.
pub fn data(rel: &str) -> PathBuf {
    root().join("tests/data").join(rel)
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

/// A fresh, unique index for one test (deleted first if it exists).
pub struct TestIndex {
    /// Its name.
    pub name: String,
}

impl TestIndex {
    /// Makes sure the engine answers and the index does not exist.
    pub fn new(test: &str) -> Self {
        let name = format!("evtship-test-{test}-{}", std::process::id());
        let url = es_url();
        http().get(&url).send().unwrap_or_else(|e| {
            panic!("no engine at {url} ({e}); start one with `scripts/opensearch-local start`")
        });
        let _ = http().delete(format!("{url}/{name}")).send();
        Self { name }
    }

    /// Makes every write visible to search.
    pub fn refresh(&self) {
        assert!(self.try_refresh(), "refresh: the index does not exist");
    }

    /// Refreshes; `false` when the index does not exist (yet).
    fn try_refresh(&self) -> bool {
        let r = http()
            .post(format!("{}/{}/_refresh", es_url(), self.name))
            .send()
            .expect("refresh");
        if r.status().as_u16() == 404 {
            return false;
        }
        assert!(r.status().is_success(), "refresh: {}", r.status());
        true
    }

    /// `_count` of the index; the test fails when the index does not exist.
    pub fn count(&self) -> u64 {
        self.count_if_created()
            .unwrap_or_else(|| panic!("index {} does not exist", self.name))
    }

    /// `_count` of the index, 0 while it does not exist yet (for waiting on a run that may
    /// not have indexed anything so far).
    pub fn count_so_far(&self) -> u64 {
        self.count_if_created().unwrap_or(0)
    }

    /// Whether the index exists.
    pub fn exists(&self) -> bool {
        self.count_if_created().is_some()
    }

    /// `_count` of the index, or `None` when it does not exist.
    pub fn count_if_created(&self) -> Option<u64> {
        if !self.try_refresh() {
            return None;
        }
        let v = self.count_body();
        Some(
            v["count"]
                .as_u64()
                .unwrap_or_else(|| panic!("no count in {v}")),
        )
    }

    /// The answer of `_count` on the index.
    fn count_body(&self) -> Value {
        http()
            .get(format!("{}/{}/_count", es_url(), self.name))
            .send()
            .expect("count")
            .json()
            .expect("count json")
    }

    /// `_count` once the engine has finished what is in flight (two readings a second apart
    /// agree). Requests of a killed evtship may still be executing in the engine; the test
    /// fails when the count still moves after two minutes.
    pub fn settled_count(&self) -> u64 {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let mut last = self.count();
        loop {
            std::thread::sleep(Duration::from_millis(1000));
            let now = self.count();
            if now == last {
                return now;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: the count still moves after two minutes ({last} then {now})",
                self.name
            );
            last = now;
        }
    }

    /// `_count` as a search sees it now, without forcing a refresh.
    pub fn count_without_refresh(&self) -> u64 {
        self.count_body()["count"].as_u64().unwrap_or(0)
    }

    /// `_count` of the documents matching a query.
    pub fn count_query(&self, query: Value) -> u64 {
        self.refresh();
        let v: Value = http()
            .post(format!("{}/{}/_count", es_url(), self.name))
            .json(&json!({ "query": query }))
            .send()
            .expect("count")
            .json()
            .expect("count json");
        v["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("no count in {v}"))
    }

    /// A `_search` request body's answer.
    pub fn search(&self, body: Value) -> Value {
        self.refresh();
        http()
            .post(format!("{}/{}/_search", es_url(), self.name))
            .json(&body)
            .send()
            .expect("search")
            .json()
            .expect("search json")
    }

    /// Waits until at least `n` documents are searchable; fails after `limit`, with `why()`
    /// (the process's stderr, say).
    pub fn wait_for(&self, n: u64, limit: Duration, why: impl Fn() -> String) {
        let deadline = std::time::Instant::now() + limit;
        while self.count_so_far() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {n}: {}",
                self.count_so_far(),
                why()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every document as `_id` → `_source` (for indices of a few thousand documents).
    pub fn documents(&self) -> BTreeMap<String, Value> {
        let v = self.search(json!({ "size": 10000, "sort": ["_doc"] }));
        v["hits"]["hits"]
            .as_array()
            .unwrap_or_else(|| panic!("no hits in {v}"))
            .iter()
            .map(|h| (h["_id"].as_str().unwrap().to_owned(), h["_source"].clone()))
            .collect()
    }

    /// The index mapping's properties.
    pub fn properties(&self) -> Value {
        self.get("_mapping")[&self.name]["mappings"]["properties"].clone()
    }

    /// The index's `index` settings as the engine reports them.
    pub fn settings(&self) -> Value {
        self.get("_settings")[&self.name]["settings"]["index"].clone()
    }

    /// The answer of `GET /<index>/<what>`.
    fn get(&self, what: &str) -> Value {
        http()
            .get(format!("{}/{}/{what}", es_url(), self.name))
            .send()
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .json()
            .unwrap_or_else(|e| panic!("{what} json: {e}"))
    }
}

impl Drop for TestIndex {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            delete(&format!("/{}", self.name));
            delete(&format!("/_index_template/evtship-{}", self.name));
        }
    }
}

/// POSTs a raw body to a path of the engine; returns status and body.
pub fn post_raw(path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let r = http()
        .post(format!("{}{path}", es_url()))
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .expect("post");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// PUTs JSON to a path of the engine.
pub fn put_json(path: &str, body: Value) -> u16 {
    http()
        .put(format!("{}{path}", es_url()))
        .json(&body)
        .send()
        .expect("put")
        .status()
        .as_u16()
}

/// DELETEs a path of the engine, whatever the answer.
pub fn delete(path: &str) {
    let _ = http().delete(format!("{}{path}", es_url())).send();
}

/// The result of one `evtship` invocation.
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// The `--summary-json` object, when one was asked for and written.
    pub summary: Value,
}

impl Run {
    /// A summary counter.
    pub fn n(&self, key: &str) -> u64 {
        self.summary[key].as_u64().unwrap_or_else(|| {
            panic!(
                "no `{key}` in summary {}\nstderr:\n{}",
                self.summary, self.stderr
            )
        })
    }
}

/// Runs `evtship ARGS` from the repository root, with a summary file, and returns its outcome.
pub fn evtship(args: &[&str], dir: &Path) -> Run {
    evtship_env(args, dir, &[])
}

/// Like [`evtship`], with extra environment variables.
pub fn evtship_env(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Run {
    evtship_with(args, dir, env, true)
}

/// Like [`evtship`] but without `--no-progress`: standard error is a pipe, and evtship must
/// see that itself.
pub fn evtship_on_a_pipe(args: &[&str], dir: &Path) -> Run {
    evtship_with(args, dir, &[], false)
}

fn evtship_with(args: &[&str], dir: &Path, env: &[(&str, &str)], no_progress: bool) -> Run {
    let summary_path = dir.join(format!("summary-{}.json", fastrand_suffix()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_evtship"));
    cmd.current_dir(root())
        .args(args)
        .env("ES_URL", es_url())
        .env("EVTSHIP_CHECKPOINT_DIR", dir.join("checkpoints"))
        .env("RUST_LOG", "info")
        // Nothing of the developer's own setup reaches a test.
        .env_remove("KIBANA_URL");
    let is_run = args.first() == Some(&"run");
    if is_run {
        cmd.arg("--summary-json").arg(&summary_path);
        if no_progress {
            cmd.arg("--no-progress");
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("running evtship");
    let summary = std::fs::read_to_string(&summary_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        summary,
    }
}

fn fastrand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The non-blank lines of a file, parsed as JSON objects, counted independently of evtship.
pub fn records(path: &Path) -> Vec<serde_json::Map<String, Value>> {
    std::fs::read_to_string(path)
        .expect("fixture")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l.trim_start_matches('\u{feff}')).expect("fixture line is JSON")
        })
        .collect()
}

/// A minimal HTTP/1.1 file server on loopback for URL-input tests: serves one body at any path,
/// with `Content-Length` and an `ETag`, answers `HEAD` and `GET`, and counts the `GET`s.
pub struct FileServer {
    /// Base URL, e.g. `http://127.0.0.1:PORT`.
    pub url: String,
    gets: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FileServer {
    /// Starts serving `body` in a background thread (for the rest of the test process).
    pub fn start(body: Vec<u8>) -> Self {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let gets = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = gets.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"v1\"\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                if request.starts_with("GET") {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.write_all(&body);
                }
            }
        });
        Self { url, gets }
    }

    /// `GET` requests served so far.
    pub fn gets(&self) -> usize {
        self.gets.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Writes `n` unique NXLog-shaped Sysmon records (one `RecordNumber` each) to `path`.
pub fn write_records(path: &Path, n: usize, host: &str) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        writeln!(
            f,
            r#"{{"@timestamp":"2020-05-02T02:55:56.157Z","Hostname":"{host}","Channel":"Microsoft-Windows-Sysmon/Operational","EventID":1,"RecordNumber":{i},"Image":"C:\\Windows\\System32\\cmd{}.exe","CommandLine":"cmd /c echo {i} {}"}}"#,
            i % 7,
            "x".repeat(150)
        )
        .unwrap();
    }
}

/// Asserts that the index holds exactly the values `0..total` of a numeric field, each once:
/// `total` documents, no value twice (an exact terms aggregation on one shard), all in range.
pub fn assert_each_once(index: &TestIndex, field: &str, total: u64) {
    assert_eq!(index.settled_count(), total, "documents");
    let v = index.search(json!({"size": 0, "aggs": {
        "twice": {"terms": {"field": field, "min_doc_count": 2, "size": 5}},
        "range": {"stats": {"field": field}}
    }}));
    let twice = &v["aggregations"]["twice"]["buckets"];
    assert_eq!(
        twice.as_array().map(Vec::len),
        Some(0),
        "values indexed twice: {twice}"
    );
    let stats = &v["aggregations"]["range"];
    assert_eq!(stats["count"].as_u64(), Some(total), "{stats}");
    assert_eq!(stats["min"].as_f64(), Some(0.0), "{stats}");
    assert_eq!(stats["max"].as_f64(), Some((total - 1) as f64), "{stats}");
}

/// Runs `f` with the helpers pointed at another engine (for a test binary with one test).
pub fn with_engine<T>(url: &str, f: impl FnOnce() -> T) -> T {
    let before = std::env::var("EVTSHIP_TEST_ES_URL").ok();
    std::env::set_var("EVTSHIP_TEST_ES_URL", url);
    let out = f();
    match before {
        Some(v) => std::env::set_var("EVTSHIP_TEST_ES_URL", v),
        None => std::env::remove_var("EVTSHIP_TEST_ES_URL"),
    }
    out
}
