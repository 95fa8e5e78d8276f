//! The HTTP listener, against the real engine: plain records (NDJSON, JSON arrays), an
//! Elasticsearch-compatible `_bulk` answering what the engine answers, authentication, and
//! Filebeat sending real exports through its Elasticsearch output and its Logstash output.

mod common;

use common::listen::*;
use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::time::{Duration, Instant};

fn http_table(port: u16, extra: &str) -> String {
    format!("[[listen]]\nuri = \"http://127.0.0.1:{port}\"\n{extra}")
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn post(url: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = client()
        .post(url)
        .header("Content-Type", "application/x-ndjson")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn plain_records_are_answered_after_they_settle_and_bad_bodies_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("httpplain");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let p = listen_pipeline(
        dir.path(),
        &index.name,
        &http_table(port, "[listen.auth]\nbearer_token = \"s3cret-token\""),
        "",
    );
    let mut evtship = Listening::start(&p, dir.path(), &engine(), &addr);
    let url = format!("http://{addr}/ingest");
    let auth = [("Authorization", "Bearer s3cret-token")];
    let lines = |from: u64, to: u64| -> Vec<u8> {
        (from..to)
            .map(|i| format!("{{\"Hostname\":\"HTTP\",\"Channel\":\"c\",\"EventID\":1,\"RecordNumber\":{i}}}\n"))
            .collect::<String>()
            .into_bytes()
    };
    let (status, _) = post(&url, lines(0, 10), &[]);
    assert_eq!(status, 401, "no token");
    let (status, _) = post(&url, lines(0, 10), &[("Authorization", "Bearer wrong")]);
    assert_eq!(status, 401, "a wrong token");
    let (status, body) = post(&url, lines(0, 100), &auth);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["indexed"], 100, "{body}");
    // Answered once settled: the documents are in the engine when the answer comes.
    assert_eq!(index.count(), 100);
    // A JSON array, gzipped.
    let array: Vec<Value> = (100..150)
        .map(|i| json!({"Hostname": "HTTP", "Channel": "c", "EventID": 1, "RecordNumber": i}))
        .collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(serde_json::to_string(&array).unwrap().as_bytes())
        .unwrap();
    let (status, body) = post(
        &url,
        gz.finish().unwrap(),
        &[auth[0], ("Content-Encoding", "gzip")],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["indexed"], 50);
    // The same records again: already present.
    let (_, body) = post(&url, lines(0, 100), &auth);
    assert_eq!(body["duplicates"], 100, "{body}");
    // A broken line: nothing taken, the line named.
    let mut bad = lines(150, 160);
    bad.extend_from_slice(b"{\"Hostname\":\n");
    let (status, body) = post(&url, bad, &auth);
    assert_eq!(status, 400);
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("line 11:"),
        "{body}"
    );
    let run = evtship.stop();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("s3cret-token"));
    assert_eq!(run.summary["listeners"][0]["refused"]["auth"], 2);
    assert_each_once(&index, "RecordNumber", 150);
}

/// A `_bulk` body: new documents, a duplicate `create`, a document the engine refuses (a string
/// where evtship's template has a `flat_object`, which evtship passes as it is), and an `index`
/// over an existing document.
fn bulk_body(index: &str) -> String {
    let doc = |i: u64| {
        json!({"Hostname": "BULK", "Channel": "c", "EventID": 1, "RecordNumber": i}).to_string()
    };
    [
        json!({"create": {"_index": index, "_id": "a"}}).to_string(),
        doc(1),
        json!({"create": {"_index": index, "_id": "b"}}).to_string(),
        doc(2),
        json!({"create": {"_index": index, "_id": "a"}}).to_string(),
        doc(1),
        json!({"create": {"_index": index, "_id": "c"}}).to_string(),
        json!({"Hostname": "BULK", "Channel": "c", "EventID": 1, "RecordNumber": 3,
            "MessageData": "a string"})
        .to_string(),
        json!({"index": {"_index": index, "_id": "b"}}).to_string(),
        doc(2),
    ]
    .join("\n")
        + "\n"
}

#[test]
fn bulk_items_get_the_statuses_the_engine_gives_for_the_same_body() {
    let dir = tempfile::tempdir().unwrap();
    let direct = TestIndex::new("bulkdirect");
    let through = TestIndex::new("bulkthrough");
    // Both indices get evtship's template first, so that the engine's answers can be compared.
    for idx in [&direct, &through] {
        let r = evtship(&["setup", "--index", &idx.name], dir.path());
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let statuses = |v: &Value| -> Vec<(String, u64)> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let (op, r) = i.as_object().unwrap().iter().next().unwrap();
                (op.clone(), r["status"].as_u64().unwrap())
            })
            .collect()
    };
    let (status, engine_answer) = post(
        &format!("{}/_bulk?refresh=wait_for", engine()),
        bulk_body(&direct.name).into_bytes(),
        &[],
    );
    assert_eq!(status, 200);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let p = listen_pipeline(
        dir.path(),
        &through.name,
        &http_table(port, "index = \"client\""),
        "",
    );
    let mut evtship = Listening::start(&p, dir.path(), &engine(), &addr);
    let (status, ours) = post(
        &format!("http://{addr}/_bulk"),
        bulk_body(&through.name).into_bytes(),
        &[],
    );
    assert_eq!(status, 200, "{ours}");
    let want = statuses(&engine_answer);
    assert_eq!(
        want.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [201, 201, 409, 400, 200]
    );
    assert_eq!(statuses(&ours), want, "{ours}\n{engine_answer}");
    assert_eq!(ours["errors"], engine_answer["errors"]);
    // A delete is answered 400 alone; the rest of the body is taken.
    let (_, with_delete) = post(
        &format!("http://{addr}/_bulk"),
        (json!({"delete": {"_index": through.name, "_id": "a"}}).to_string() + "\n").into_bytes(),
        &[],
    );
    assert_eq!(statuses(&with_delete), vec![("delete".to_owned(), 400)]);
    let run = evtship.stop();
    assert_eq!(
        run.code, 3,
        "one document was dead-lettered: {}",
        run.stderr
    );
    // The documents: the same ids in both indices, and evtship's the transformed record.
    direct.refresh();
    through.refresh();
    let ids = |idx: &TestIndex| -> Vec<String> {
        let v = idx.search(json!({"size": 10, "sort": [{"_id": "asc"}]}));
        v["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&direct), ids(&through));
    let doc = through.search(json!({"query": {"ids": {"values": ["a"]}}}));
    assert_eq!(doc["hits"]["hits"][0]["_source"]["@version"], "1");
}

/// Filebeat 7.17 reading a real NXLog export, sending with `output` (YAML).
fn wait_exactly(index: &TestIndex, n: u64, limit: Duration, why: impl Fn() -> String) {
    index.wait_for(n, limit, &why);
    // Nothing more arrives.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(index.count(), n, "{}", why());
}

#[test]
fn filebeat_sends_a_real_export_exactly_once_through_both_of_its_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let input = data("otrf/covenant_copy_smb_CreateRequest_2020-09-22145302.json");
    let records = 506u64;
    for (name, listen, output) in [
        (
            "es",
            "http",
            // Unchanged Beats defaults: template and ILM setup go to evtship, which takes them.
            "output.elasticsearch:\n  hosts: [\"http://{addr}\"]\n",
        ),
        (
            "logstash",
            "beats",
            "output.logstash:\n  hosts: [\"{addr}\"]\n",
        ),
    ] {
        let index = TestIndex::new(&format!("filebeat{name}"));
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let table = format!("[[listen]]\nuri = \"{listen}://{addr}\"\n");
        let p = listen_pipeline(dir.path(), &index.name, &table, "");
        let mut evtship = Listening::start(&p, dir.path(), &engine(), &addr);
        let output = output.replace("{addr}", &addr);
        let mut fb = filebeat(dir.path(), name, &input, &output).spawn().unwrap();
        let log = dir.path().join(name).join("filebeat.stderr");
        wait_exactly(&index, records, Duration::from_secs(120), || {
            std::fs::read_to_string(&log).unwrap_or_default() + &evtship.stderr()
        });
        fb.kill().unwrap();
        fb.wait().unwrap();
        // A Filebeat with no memory of what it sent sends it all again: nothing added.
        std::fs::remove_dir_all(dir.path().join(name).join("data")).unwrap();
        let mut again = filebeat(dir.path(), name, &input, &output).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let s = evtship.counter("evtship_events_duplicate_total");
            if s >= records {
                break;
            }
            assert!(Instant::now() < deadline, "the resend did not arrive: {s}");
            std::thread::sleep(Duration::from_millis(500));
        }
        again.kill().unwrap();
        again.wait().unwrap();
        let run = evtship.stop();
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert_eq!(run.n("events_indexed"), records, "{name}");
        assert_eq!(run.n("duplicates"), records, "{name}");
        assert_eq!(index.count(), records, "{name}");
    }
}
