//! Connections, index naming, secrets and split backfills, against the real engine.

mod common;

use common::proxy::FaultProxy;
use common::*;
use serde_json::{json, Value};

#[test]
fn api_keys_and_basic_auth_send_the_documented_headers() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("auth");
    let input = dir.path().join("r.json");
    write_records(&input, 10, "AUTH");
    let proxy = FaultProxy::start(&es_url());
    let run = |env: &[(&str, &str)], extra: &[&str]| {
        let mut args = vec![
            "run",
            "--input",
            input.to_str().unwrap(),
            "--index",
            &index.name,
            "--from-start",
        ];
        args.extend_from_slice(extra);
        evtship_env(
            &args,
            dir.path(),
            &[&[("ES_URL", proxy.url.as_str())], env].concat(),
        )
    };
    // Elastic's documented example key.
    let r = run(
        &[],
        &["--api-key", "VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&[("ES_API_KEY", "essu_abcdef")], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&[("ES_USER", "elastic"), ("ES_PASSWORD", "changeme")], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let seen = proxy.authorizations.lock().unwrap().clone();
    assert!(
        seen.contains(
            &"ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==".to_owned()
        ),
        "{seen:?}"
    );
    assert!(seen.contains(&"ApiKey essu_abcdef".to_owned()), "{seen:?}");
    assert!(
        seen.contains(&"Basic ZWxhc3RpYzpjaGFuZ2VtZQ==".to_owned()),
        "{seen:?}"
    );
}

#[test]
fn a_secret_in_the_environment_appears_nowhere_evtship_writes() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("secret");
    let input = dir.path().join("r.json");
    write_records(&input, 5, "SECRET");
    let secret = "Sup3rS3cretPassw0rd";
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "inputs = [\"{}\"]\n[elasticsearch]\nurl = \"http://elastic:${{TEST_SECRET}}@127.0.0.1:9\"\nindex = \"{}\"\n",
            input.display(),
            index.name
        ),
    )
    .unwrap();
    let summary = dir.path().join("summary-secret.json");
    // Unreachable on purpose: errors are where secrets leak.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_evtship"))
        .current_dir(root())
        .env("TEST_SECRET", secret)
        .env("RUST_LOG", "debug")
        .env("EVTSHIP_CHECKPOINT_DIR", dir.path().join("cp"))
        .args([
            "run",
            pipeline.to_str().unwrap(),
            "--no-progress",
            "--summary-json",
            summary.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_evtship"))
        .current_dir(root())
        .env("TEST_SECRET", secret)
        .args(["check", pipeline.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0));
    let mut everything = String::new();
    for o in [&out, &check] {
        everything.push_str(&String::from_utf8_lossy(&o.stdout));
        everything.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    for entry in walk(dir.path()) {
        everything.push_str(&String::from_utf8_lossy(&std::fs::read(entry).unwrap()));
    }
    assert!(everything.contains("***@127.0.0.1:9"), "{everything}");
    assert!(
        !everything.contains(secret),
        "the secret leaked:\n{everything}"
    );

    // Unset, the variable is an error naming it and its line.
    let unset = evtship(&["check", pipeline.to_str().unwrap()], dir.path());
    assert_eq!(unset.code, 2);
    assert!(
        unset.stderr.contains("TEST_SECRET") && unset.stderr.contains("line 3"),
        "{}",
        unset.stderr
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if !p.ends_with("r.json") {
            out.push(p);
        }
    }
    out
}

#[test]
fn three_shards_run_one_after_the_other_index_exactly_one_full_run() {
    let dir = tempfile::tempdir().unwrap();
    let sharded = TestIndex::new("sharded");
    let full = TestIndex::new("full");
    let folder = data("otrf");
    let mut reads = 0;
    for i in 1..=3 {
        let shard = format!("{i}/3");
        let r = evtship(
            &[
                "run",
                "--input",
                folder.to_str().unwrap(),
                "--index",
                &sharded.name,
                "--shard",
                &shard,
            ],
            dir.path(),
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.n("duplicates"), 0, "shares are disjoint");
        reads += r.n("events_read");
    }
    let r = evtship(
        &[
            "run",
            "--input",
            folder.to_str().unwrap(),
            "--index",
            &full.name,
        ],
        dir.path(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(reads, r.n("events_read"));
    let ids = |index: &TestIndex| -> Vec<String> { index.documents().into_keys().collect() };
    assert_eq!(ids(&sharded), ids(&full));
}

#[test]
fn daily_indices_and_data_streams_receive_the_right_documents() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("evtship-test-daily-{}-", std::process::id());
    let input = dir.path().join("days.json");
    let lines: Vec<String> = [
        ("2020-05-01T23:59:59.999Z", 1),
        ("2020-05-02T00:00:00.000Z", 2),
        // 21:30 at UTC-4 is the next day in UTC.
        ("2020-05-02T21:30:00.000-04:00", 3),
    ]
    .iter()
    .map(|(t, n)| {
        json!({"@timestamp": t, "Hostname": "D", "Channel": "C", "RecordNumber": n}).to_string()
    })
    .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let pattern = format!("{prefix}%{{+yyyy.MM.dd}}");
    let r = evtship(
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--index",
            &pattern,
        ],
        dir.path(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let counts: Vec<u64> = ["2020.05.01", "2020.05.02", "2020.05.03"]
        .iter()
        .map(|d| {
            let index = TestIndex {
                name: format!("{prefix}{d}"),
            };
            let n = index.count();
            std::mem::forget(index);
            n
        })
        .collect();
    assert_eq!(counts, vec![1, 1, 1]);
    delete(&format!("/{prefix}*"));
    delete(&format!("/_index_template/evtship-{prefix}"));

    // A data stream: documents go in with op_type create; the template declares the stream.
    let stream = format!("evtship-test-stream-{}", std::process::id());
    let p = dir.path().join("ds.toml");
    std::fs::write(
        &p,
        format!("inputs = [\"{}\"]\n[elasticsearch]\nindex = \"{stream}\"\ndata_stream = true\n[template]\nreplicas = 0\n", input.display()),
    )
    .unwrap();
    let r = evtship(&["run", p.to_str().unwrap()], dir.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ds: Value = reqwest::blocking::get(format!("{}/_data_stream/{stream}", es_url()))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ds["data_streams"][0]["name"], stream.as_str(), "{ds}");
    let index = TestIndex {
        name: stream.clone(),
    };
    assert_eq!(index.count(), 3);
    std::mem::forget(index);
    delete(&format!("/_data_stream/{stream}"));
    delete(&format!("/_index_template/evtship-{stream}"));
}

#[test]
fn tls_with_the_right_ca_and_credentials_works_and_nothing_is_sent_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("tls");
    let front = common::tls::TlsFront::start(&es_url(), dir.path(), "elastic", "right-password");
    let input = dir.path().join("r.json");
    write_records(&input, 50, "TLS");
    let pipeline = |name: &str, ca: bool, password: &str| {
        let p = dir.path().join(name);
        let tls = if ca {
            format!(
                "[elasticsearch.tls]\nca_file = \"{}\"\n",
                front.ca_file.display()
            )
        } else {
            String::new()
        };
        std::fs::write(
            &p,
            format!(
                "inputs = [\"{}\"]\n[elasticsearch]\nurl = \"{}\"\nindex = \"{}\"\nuser = \"elastic\"\npassword = \"{password}\"\n[template]\nreplicas = 0\n{tls}",
                input.display(),
                front.url,
                index.name
            ),
        )
        .unwrap();
        p
    };
    let forwarded =
        |f: &common::tls::TlsFront| f.forwarded.load(std::sync::atomic::Ordering::SeqCst);

    // Without the CA: the certificate is refused before anything is sent.
    // (ES_URL, which the helper sets for other tests, would override the file's url.)
    let run = |p: std::path::PathBuf| {
        evtship_env(
            &["run", p.to_str().unwrap()],
            dir.path(),
            &[("ES_URL", front.url.as_str())],
        )
    };
    let no_ca = run(pipeline("no-ca.toml", false, "right-password"));
    assert_eq!(no_ca.code, 1, "{}", no_ca.stderr);
    assert!(
        no_ca.stderr.contains("cannot reach")
            && no_ca.stderr.to_lowercase().contains("certificate"),
        "{}",
        no_ca.stderr
    );
    assert_eq!(forwarded(&front), 0);

    // A wrong password: a clear 401, and no document sent.
    let wrong = run(pipeline("wrong.toml", true, "wrong-password"));
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("401"), "{}", wrong.stderr);
    assert!(!wrong.stderr.contains("wrong-password"));
    assert_eq!(forwarded(&front), 0);
    assert!(
        !index.exists(),
        "nothing may reach the engine with a wrong password"
    );

    // The right CA and credentials: delivered.
    let ok = run(pipeline("ok.toml", true, "right-password"));
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(ok.n("events_indexed"), 50);
    assert!(forwarded(&front) > 0);
    assert_eq!(index.count(), 50);
}
