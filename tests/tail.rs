//! Tail mode against the real engine: appends, rotation by rename, copy-and-truncate, SIGKILL
//! and restart; every line written ends up in the index exactly once.

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn line(n: u64) -> String {
    format!(
        "{{\"@timestamp\":\"2020-05-02T02:55:56.157Z\",\"Hostname\":\"TAILHOST\",\"Channel\":\"Microsoft-Windows-Sysmon/Operational\",\"EventID\":1,\"RecordNumber\":{n},\"Image\":\"C:\\\\t\\\\{n}.exe\"}}\n"
    )
}

fn append(path: &Path, from: u64, to: u64) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for n in from..to {
        f.write_all(line(n).as_bytes()).unwrap();
    }
}

fn start(dir: &Path, logs: &Path, index: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_evtship"))
        .current_dir(root())
        .env("ES_URL", es_url())
        .env("EVTSHIP_CHECKPOINT_DIR", dir.join("checkpoints"))
        .args([
            "run",
            "--tail",
            "--no-progress",
            "--index",
            index,
            "--input",
        ])
        .arg(logs.join("*.log"))
        .arg("--summary-json")
        .arg(dir.join("summary.json"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("stderr.log"))
                .unwrap(),
        ))
        .spawn()
        .unwrap()
}

/// Waits until the index holds `n` documents; returns how long that took.
fn wait_for(index: &TestIndex, n: u64, limit: Duration, dir: &Path) -> Duration {
    wait_until(|| index.count_so_far(), n, limit, dir)
}

/// Waits until `count()` says `n` (never more); returns how long that took.
fn wait_until(count: impl Fn() -> u64, n: u64, limit: Duration, dir: &Path) -> Duration {
    let log = || std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    common::wait::until(
        &format!("{n} documents"),
        limit,
        || {
            let c = count();
            assert!(
                c <= n,
                "more documents than lines written: {c} > {n}\n{}",
                log()
            );
            c == n
        },
        || format!("{} documents\n{}", count(), log()),
    )
}

#[test]
fn appended_lines_are_searchable_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let index = TestIndex::new("taillatency");
    let log = logs.join("app.log");
    append(&log, 0, 10);
    let mut child = start(dir.path(), &logs, &index.name);
    wait_for(&index, 10, Duration::from_secs(30), dir.path());
    let mut worst = Duration::ZERO;
    for round in 0..5u64 {
        append(&log, 10 + round, 11 + round);
        // No forced refresh: searchable as the engine's default refresh makes it.
        let took = wait_until(
            || index.count_without_refresh(),
            11 + round,
            Duration::from_secs(10),
            dir.path(),
        );
        worst = worst.max(took);
        std::thread::sleep(Duration::from_millis(300));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    eprintln!("slowest append-to-searchable of 5: {worst:?}");
    assert!(
        worst <= Duration::from_secs(2),
        "slowest append-to-searchable: {worst:?}"
    );
}

#[test]
fn rotation_truncation_and_sigkill_lose_nothing_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let logs: PathBuf = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let index = TestIndex::new("tailrotate");
    let log = logs.join("app.log");
    let written = std::cell::Cell::new(0u64);
    let write = |path: &Path, n: u64| {
        append(path, written.get(), written.get() + n);
        written.set(written.get() + n);
        written.get()
    };

    let mut child = start(dir.path(), &logs, &index.name);
    let total = write(&log, 2000);
    wait_for(&index, total, Duration::from_secs(30), dir.path());

    // A partial line waits for its newline.
    let partial = line(written.get());
    let (head, tail) = partial.split_at(40);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(head.as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(index.count(), total, "a partial line must not be shipped");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(tail.as_bytes())
        .unwrap();
    written.set(written.get() + 1);
    let total = written.get();
    wait_for(&index, total, Duration::from_secs(10), dir.path());

    // Rotation by rename: the old file gets a last line, a new file starts.
    let rotated = logs.join("app.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    write(&rotated, 5);
    let total = write(&log, 500);
    wait_for(&index, total, Duration::from_secs(15), dir.path());

    // Killed while lines keep coming: no chance to flush anything.
    write(&log, 3000);
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let total = write(&log, 1000);

    // Restarted: resumes from the checkpoint; re-sent lines are recognised by their ids.
    let mut child = start(dir.path(), &logs, &index.name);
    wait_for(&index, total, Duration::from_secs(30), dir.path());

    // Copy-and-truncate: the file is emptied in place and written again.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let total = write(&log, 300);
    wait_for(&index, total, Duration::from_secs(15), dir.path());

    // Graceful stop: SIGTERM, then the summary is written.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(dir.path().join("stderr.log")).unwrap()
    );
    assert!(dir.path().join("summary.json").exists());

    assert_each_once(&index, "RecordNumber", total);
}
