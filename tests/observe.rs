//! What an operator watches: Prometheus metrics equal to the summary, a health endpoint, and
//! progress drawn on a terminal but never on a pipe.

mod common;

use common::*;
use nix::pty::{openpty, Winsize};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `name{labels}` → value, from Prometheus text.
fn scrape(url: &str) -> Option<BTreeMap<String, f64>> {
    let text = reqwest::blocking::get(url).ok()?.text().ok()?;
    Some(
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_owned(), v.parse().ok()?))
            })
            .collect(),
    )
}

#[test]
fn prometheus_counters_equal_the_summary() {
    let index = TestIndex::new("metrics");
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    write_records(&a, 300, "metrics-host");
    // b: ten records of a again (duplicates) and one broken line (dead-lettered).
    let text = std::fs::read_to_string(&a).unwrap();
    let mut again: String = text.lines().take(10).map(|l| format!("{l}\n")).collect();
    again.push_str("{\"broken\": \n");
    std::fs::write(&b, again).unwrap();

    let port = free_port();
    let summary = dir.path().join("summary.json");
    let input = format!("{}/*.json", dir.path().display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_evtship"))
        .current_dir(root())
        .args([
            "run",
            "--tail",
            "--no-progress",
            "--index",
            &index.name,
            "--input",
            &input,
        ])
        .arg("--dead-letter")
        .arg(dir.path().join("dlq.ndjson"))
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .arg("--summary-json")
        .arg(&summary)
        .env("ES_URL", es_url())
        .env("EVTSHIP_CHECKPOINT_DIR", dir.path().join("cp"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let settled = |m: &BTreeMap<String, f64>| {
        ["indexed", "duplicate", "dead_lettered"]
            .iter()
            .map(|k| {
                m.get(&format!("evtship_events_{k}_total"))
                    .copied()
                    .unwrap_or(0.0)
            })
            .sum::<f64>()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let last = loop {
        assert!(
            Instant::now() < deadline,
            "the run did not settle 311 records in 60 s"
        );
        std::thread::sleep(Duration::from_millis(300));
        if let Some(m) = scrape(&metrics_url) {
            if settled(&m) >= 311.0 {
                break m;
            }
        }
    };
    let health: serde_json::Value =
        reqwest::blocking::get(format!("http://127.0.0.1:{port}/health"))
            .unwrap()
            .json()
            .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "one record dead-lettered\n{stderr}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["events_read"], 311, "{s}");
    assert_eq!(s["events_indexed"], 300, "{s}");
    assert_eq!(s["duplicates"], 10, "{s}");
    assert_eq!(s["dead_lettered"], 1, "{s}");
    for (metric, key) in [
        ("events_read", "events_read"),
        ("events_indexed", "events_indexed"),
        ("events_duplicate", "duplicates"),
        ("events_dead_lettered", "dead_lettered"),
        ("events_failed", "failed"),
        ("bytes_read", "bytes_read"),
        ("input_errors", "input_errors"),
        ("retries", "retries"),
    ] {
        let scraped = if metric == "retries" {
            last.iter()
                .filter(|(k, _)| k.starts_with("evtship_retries_total"))
                .map(|(_, v)| v)
                .sum::<f64>()
        } else {
            last[&format!("evtship_{metric}_total")]
        };
        assert_eq!(
            scraped,
            s[key].as_f64().unwrap(),
            "{metric} vs summary {key}"
        );
    }
    for i in s["inputs"].as_array().unwrap() {
        let label = i["input"].as_str().unwrap();
        for (metric, key) in [
            ("events_read", "events_read"),
            ("events_indexed", "events_indexed"),
            ("events_duplicate", "duplicates"),
            ("events_dead_lettered", "dead_lettered"),
            ("bytes_read", "bytes_read"),
        ] {
            let name = format!("evtship_input_{metric}_total{{input=\"{label}\"}}");
            assert_eq!(last.get(&name).copied(), i[key].as_f64(), "{name}");
        }
    }
    assert!(last["evtship_bulk_request_duration_seconds_count"] >= 1.0);
    assert!(last.contains_key("evtship_queue_depth{queue=\"parse\"}"));
    assert!(last.contains_key("evtship_queue_depth{queue=\"deliver\"}"));
    assert_eq!(index.settled_count(), 300);
}

/// Runs the sample pipeline with standard error on a pseudo-terminal; returns what it drew.
fn run_on_a_terminal(index: &str, dir: &std::path::Path) -> (i32, String) {
    let size = Winsize {
        ws_row: 40,
        ws_col: 160,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size), None).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_evtship"))
        .current_dir(root())
        .args(["run", "pipelines/sample.toml", "--index", index])
        .env("ES_URL", es_url())
        .env("EVTSHIP_CHECKPOINT_DIR", dir.join("cp"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(pty.slave))
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once the child (the last holder of the terminal) exits.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        let _ = master.flush();
        String::from_utf8_lossy(&out).into_owned()
    });
    let code = child.wait().unwrap().code().unwrap_or(-1);
    (code, reader.join().unwrap())
}

#[test]
fn progress_is_drawn_on_a_terminal_and_not_on_a_pipe() {
    let index = TestIndex::new("progress");
    let dir = tempfile::tempdir().unwrap();
    let (code, drawn) = run_on_a_terminal(&index.name, dir.path());
    assert_eq!(code, 0, "{drawn}");
    assert!(
        drawn.contains("events ("),
        "no overall line on the terminal:\n{drawn}"
    );
    assert!(
        drawn.contains("indexed 1,941"),
        "the final line shows every record:\n{drawn}"
    );
    assert!(drawn.contains("5/5 inputs"), "{drawn}");
    assert!(
        drawn.contains("\x1b["),
        "no terminal control sequences:\n{drawn}"
    );

    // The same run on a pipe, without --no-progress: evtship sees the pipe itself and writes
    // the summary and nothing else (no control sequences).
    let piped = evtship_on_a_pipe(
        &[
            "run",
            "pipelines/sample.toml",
            "--index",
            &index.name,
            "--from-start",
        ],
        dir.path(),
    );
    assert_eq!(piped.code, 0, "{}", piped.stderr);
    assert!(!piped.stderr.contains("events ("), "{}", piped.stderr);
    assert!(!piped.stderr.contains('\x1b'), "{}", piped.stderr);
    assert!(!piped.stderr.contains('━'), "{}", piped.stderr);
    assert_eq!(piped.n("duplicates"), 1941);
}
