//! A two-node cluster (two launcher processes, one cluster name): one node stopped in the middle
//! of a run; the run fails over to the other and ends with every record once.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A node started with `scripts/opensearch-local`, stopped when dropped.
struct ClusterNode {
    env: Vec<(String, String)>,
}

impl ClusterNode {
    fn start(env: Vec<(String, String)>) -> Self {
        let node = Self { env };
        let out = node.script("start");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        node
    }

    fn script(&self, action: &str) -> std::process::Output {
        let mut c = Command::new(root().join("scripts/opensearch-local"));
        c.arg(action);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.output().unwrap()
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        let _ = self.script("stop");
    }
}

#[test]
fn a_node_stopped_mid_run_is_failed_over_and_every_record_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = format!("evtship-pair-{}", std::process::id());
    // Free ports, never a developer's own engine: HTTP and transport for each node.
    let (a_http, a_transport, b_http, b_transport) =
        (free_port(), free_port(), free_port(), free_port());
    let seeds = format!("127.0.0.1:{a_transport},127.0.0.1:{b_transport}");
    let env = |port: u16, transport: u16, name: &str, roles: &str| -> Vec<(String, String)> {
        [
            ("EVTSHIP_ENGINE_PORT", port.to_string()),
            ("EVTSHIP_ENGINE_TRANSPORT_PORT", transport.to_string()),
            (
                "EVTSHIP_ENGINE_HOME",
                dir.path().join(name).display().to_string(),
            ),
            ("EVTSHIP_ENGINE_HEAP", "512m".to_owned()),
            ("EVTSHIP_ENGINE_CLUSTER", cluster.clone()),
            ("EVTSHIP_ENGINE_NODE", name.to_owned()),
            ("EVTSHIP_ENGINE_SEEDS", seeds.clone()),
            ("EVTSHIP_ENGINE_MANAGERS", "pair-a".to_owned()),
            ("EVTSHIP_ENGINE_ROLES", roles.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    };
    // A manages the cluster and holds data; B holds data only, so stopping B keeps a manager.
    let a = ClusterNode::start(env(
        a_http,
        a_transport,
        "pair-a",
        "cluster_manager,data,ingest",
    ));
    let b = ClusterNode::start(env(b_http, b_transport, "pair-b", "data,ingest"));
    let a_url = &format!("http://127.0.0.1:{a_http}");
    let nodes: serde_json::Value =
        reqwest::blocking::get(format!("{a_url}/_cat/nodes?format=json"))
            .unwrap()
            .json()
            .unwrap();
    assert_eq!(nodes.as_array().map(Vec::len), Some(2), "{nodes}");

    let total = 150_000u64;
    let input = dir.path().join("r.json");
    write_records(&input, total as usize, "PAIR");
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "inputs = [\"{}\"]\n[elasticsearch]\nurls = [\"http://127.0.0.1:{b_http}\", \"{a_url}\"]\nindex = \"pair\"\n[template]\nreplicas = 1\n[bulk]\nmax_events = 500\nconcurrency = 2\nmax_backoff_ms = 2000\nmax_retries = 100\n",
            input.display()
        ),
    )
    .unwrap();
    let summary = dir.path().join("s.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_evtship"))
        .current_dir(root())
        .env_remove("ES_URL")
        .env("EVTSHIP_CHECKPOINT_DIR", dir.path().join("cp"))
        .args([
            "run",
            pipeline.to_str().unwrap(),
            "--no-progress",
            "--summary-json",
            summary.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let count = || -> u64 {
        let _ = reqwest::blocking::Client::new()
            .post(format!("{a_url}/pair/_refresh"))
            .send();
        reqwest::blocking::get(format!("{a_url}/pair/_count"))
            .ok()
            .and_then(|r| r.json::<serde_json::Value>().ok())
            .and_then(|v| v["count"].as_u64())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while count() < 20_000 {
        assert!(Instant::now() < deadline, "no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the node was stopped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(b); // stops node B (the one evtship was talking to)
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("switching to"), "{stderr}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(s["events_read"], total);
    assert_eq!(s["dead_lettered"], 0);
    // Every record once, counted on the surviving node.
    let index = TestIndex {
        name: "pair".into(),
    };
    let check = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = &a;
        with_engine(a_url, || assert_each_once(&index, "RecordNumber", total));
    }));
    std::mem::forget(index);
    drop(a);
    check.unwrap();
}
