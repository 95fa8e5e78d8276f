//! Checkpoints: interrupted runs resume where the engine's acknowledgements stopped.

mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The checkpoint file of the `resume` pipeline (never a temporary file beside it).
fn stored(dir: &std::path::Path) -> Value {
    let file = std::fs::read_dir(dir.join("checkpoints"))
        .ok()
        .and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|e| e == "json"))
        });
    file.and_then(|f| std::fs::read(f).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

fn stored_records(dir: &std::path::Path) -> u64 {
    stored(dir)["entries"]
        .as_object()
        .and_then(|e| e.values().next())
        .and_then(|e| e["records"].as_u64())
        .unwrap_or(0)
}

#[test]
fn an_interrupted_batch_run_resumes_without_duplicates_or_rereading() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("resume");
    let input = dir.path().join("big.json");
    let total = 60_000u64;
    write_records(&input, total as usize, "RESUME");
    // Small requests, one at a time: slow enough to be interrupted mid-way.
    let pipeline = dir.path().join("slow.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"resume\"\ninputs = [\"{}\"]\n[elasticsearch]\nindex = \"{}\"\n[template]\nreplicas = 0\n[bulk]\nmax_events = 200\nconcurrency = 1\n",
            input.display(),
            index.name
        ),
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_evtship"))
        .current_dir(root())
        .env("ES_URL", es_url())
        .env("EVTSHIP_CHECKPOINT_DIR", dir.path().join("checkpoints"))
        .args(["run", pipeline.to_str().unwrap(), "--no-progress"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored_records(dir.path()) < 5_000 {
        assert!(Instant::now() < deadline, "no checkpoint progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no chance to flush anything
    child.wait().unwrap();
    let saved = stored(dir.path());
    let acked = stored_records(dir.path());
    assert!(acked > 0 && acked < total, "{saved}");
    let entry = saved["entries"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(entry["finished"], false);
    assert_eq!(entry["position"]["line"], acked, "one record per line here");
    // A request sent just before the kill may still be applied: wait for the count to settle.
    let indexed_before = index.settled_count();
    assert!(
        indexed_before >= acked,
        "the checkpoint never runs ahead of the engine"
    );

    let summary = dir.path().join("s.json");
    let out = Command::new(env!("CARGO_BIN_EXE_evtship"))
        .current_dir(root())
        .env("ES_URL", es_url())
        .env("EVTSHIP_CHECKPOINT_DIR", dir.path().join("checkpoints"))
        .args([
            "run",
            pipeline.to_str().unwrap(),
            "--no-progress",
            "--summary-json",
        ])
        .arg(&summary)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("resuming at line"), "{stderr}");
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    // Nothing acknowledged is read again; what was indexed after the last checkpoint is
    // answered as already present.
    assert_eq!(s["events_read"].as_u64().unwrap(), total - acked);
    assert_eq!(
        s["duplicates"].as_u64().unwrap(),
        indexed_before - acked,
        "{s}"
    );
    assert_eq!(index.count(), total);
    assert_eq!(
        stored(dir.path())["entries"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()["finished"],
        true
    );
}

#[test]
fn checkpoints_can_be_listed_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("cpreset");
    let input = data("otrf/covenant_copy_smb_CreateRequest_2020-09-22145302.json");
    let run = evtship(
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--index",
            &index.name,
        ],
        dir.path(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);

    let list = evtship(&["checkpoints", "list"], dir.path());
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout
            .contains(&dir.path().join("checkpoints").display().to_string()),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout.contains(input.to_str().unwrap()),
        "{}",
        list.stdout
    );
    assert!(list.stdout.contains("506"), "{}", list.stdout);

    // A renamed file is the same file (same inode, same first bytes): still finished.
    let renamed = dir.path().join("renamed.json");
    std::fs::rename(&input, &renamed).unwrap();
    let again = evtship(
        &[
            "run",
            "--input",
            renamed.to_str().unwrap(),
            "--index",
            &index.name,
        ],
        dir.path(),
    );
    assert_eq!(again.n("events_read"), 0, "{}", again.stderr);
    // A copy under the old name is another file (another inode): read, and all of it already
    // present. Then the copy is replaced in place by other records: the inode is the same,
    // the fingerprint of its first bytes is not, so it is read as a new file.
    std::fs::copy(&renamed, &input).unwrap();
    let copy = evtship(
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--index",
            &index.name,
        ],
        dir.path(),
    );
    assert_eq!(copy.n("events_read"), 506, "{}", copy.stderr);
    assert_eq!(copy.n("duplicates"), 506);
    let other = std::fs::read_to_string(&input).unwrap();
    let mut lines: Vec<&str> = other.lines().collect();
    lines.reverse();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let replaced = evtship(
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--index",
            &index.name,
        ],
        dir.path(),
    );
    assert_eq!(replaced.n("events_read"), 506, "{}", replaced.stderr);
    assert_eq!(replaced.n("duplicates"), 506);

    let reset = evtship(
        &["checkpoints", "reset", input.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(reset.code, 0, "{}", reset.stderr);
    assert!(reset.stdout.contains("removed"), "{}", reset.stdout);
    let third = evtship(
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--index",
            &index.name,
        ],
        dir.path(),
    );
    assert_eq!(third.n("events_read"), 506);
    assert_eq!(third.n("duplicates"), 506);
}
