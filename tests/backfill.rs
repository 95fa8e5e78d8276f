//! The backfill path end to end, against the real engine.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;

const PERSISTWMI: &str = "otrf/covenant_persistwmi_2019-12-05044734.json";
const COPY_SMB: &str = "otrf/covenant_copy_smb_CreateRequest_2020-09-22145302.json";
const WINLOGBEAT: &str = "otrf/winlogbeat_empire_enable_rdp_first100.json";
const AZURE: &str = "otrf/azure_sysmon_log4shell_first150.json";
const PSH_EXPORT: &str = "otrf/psh_lsass_memory_dump_comsvcs_2020-10-18T19500924.json";
/// What `pipelines/sample.toml` reads: every file of tests/data/otrf.
const SAMPLE: [&str; 5] = [PERSISTWMI, COPY_SMB, PSH_EXPORT, WINLOGBEAT, AZURE];

fn fixture_records() -> usize {
    SAMPLE.iter().map(|f| records(&data(f)).len()).sum()
}

/// `Image` of a record in any dialect, found without evtship's code.
fn image_of(rec: &serde_json::Map<String, Value>) -> Option<String> {
    if let Some(Value::String(s)) = rec.get("Image") {
        return Some(s.clone());
    }
    if let Some(Value::String(s)) = rec.get("event_data").and_then(|d| d.get("Image")) {
        return Some(s.clone());
    }
    if let Some(Value::String(text)) = rec.get("EventData") {
        let inner: Value = serde_json::from_str(text).ok()?;
        return inner["Image"].as_str().map(str::to_owned);
    }
    message_value(rec, "Image")
}

/// A value of a Sysmon `Message` line `Key: value`, found without evtship's parser.
fn message_value(rec: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    let channel = rec.get("Channel")?.as_str()?;
    if channel != "Microsoft-Windows-Sysmon/Operational" {
        return None;
    }
    let prefix = format!("{key}: ");
    rec.get("Message")?
        .as_str()?
        .split("\r\n")
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
}

#[test]
fn count_equals_records_read_and_a_second_run_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("rerun");
    let expected = fixture_records() as u64;
    assert_eq!(expected, 1001 + 506 + 184 + 100 + 150);

    let first = evtship(
        &["run", "pipelines/sample.toml", "--index", &index.name],
        dir.path(),
    );
    assert_eq!(first.code, 0, "stderr:\n{}", first.stderr);
    assert_eq!(first.n("events_read"), expected);
    assert_eq!(first.n("events_indexed"), expected);
    assert_eq!(first.n("duplicates"), 0);
    assert_eq!(first.n("dead_lettered"), 0);
    assert_eq!(first.n("failed"), 0);
    assert!(first.n("bytes_read") > 3_000_000);
    assert!(first.summary["elapsed_seconds"].as_f64().is_some());
    assert_eq!(index.count(), expected);

    // Read again from the start: the engine already has every record.
    let second = evtship(
        &[
            "run",
            "pipelines/sample.toml",
            "--index",
            &index.name,
            "--from-start",
        ],
        dir.path(),
    );
    assert_eq!(second.code, 0, "stderr:\n{}", second.stderr);
    assert_eq!(second.n("events_read"), expected);
    assert_eq!(second.n("events_indexed"), 0);
    assert_eq!(second.n("duplicates"), expected);
    assert_eq!(index.count(), expected);

    // Without --from-start, finished inputs are skipped, and the run says so.
    let third = evtship(
        &["run", "pipelines/sample.toml", "--index", &index.name],
        dir.path(),
    );
    assert_eq!(third.code, 0, "stderr:\n{}", third.stderr);
    assert_eq!(third.n("events_read"), 0);
    assert_eq!(
        third.stderr.matches("already shipped to its end").count(),
        SAMPLE.len(),
        "{}",
        third.stderr
    );
    assert_eq!(index.count(), expected);
}

#[test]
fn image_keyword_terms_equal_the_counts_in_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("terms");
    let run = evtship(
        &["run", "pipelines/sample.toml", "--index", &index.name],
        dir.path(),
    );
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);

    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for f in SAMPLE {
        for rec in records(&data(f)) {
            if let Some(image) = image_of(&rec) {
                *expected.entry(image).or_default() += 1;
            }
        }
    }
    assert!(expected.len() > 20, "fixtures should hold many images");

    let v = index.search(json!({
        "size": 0,
        "aggs": { "images": { "terms": { "field": "Image.keyword", "size": 10000 } } }
    }));
    let got: BTreeMap<String, u64> = v["aggregations"]["images"]["buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("no buckets in {v}"))
        .iter()
        .map(|b| {
            (
                b["key"].as_str().unwrap().to_owned(),
                b["doc_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn fields_missing_at_top_level_are_filled_from_message() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("message");
    let input = data(PERSISTWMI);
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
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    let recs = records(&input);

    // Sysmon network events (EID 3) of this 2019 export lack ProcessId and RuleName at top level.
    let eid3: Vec<_> = recs
        .iter()
        .filter(|r| r["EventID"] == 3 && r.get("Message").is_some())
        .collect();
    assert!(!eid3.is_empty());
    assert!(eid3.iter().all(|r| r.get("ProcessId").is_none()));
    let with_pid = index.count_query(json!({"bool": {"filter": [
        {"term": {"EventID": 3}}, {"exists": {"field": "ProcessId"}}, {"exists": {"field": "RuleName"}}
    ]}}));
    assert_eq!(with_pid, eid3.len() as u64);

    // One document checked field by field against its Message, parsed here independently.
    let sample = eid3[0];
    let pid = message_value(sample, "ProcessId").unwrap();
    let hits = index.search(json!({"query": {"bool": {"filter": [
        {"term": {"RecordNumber": sample["RecordNumber"]}},
        {"term": {"Hostname.keyword": sample["Hostname"]}}
    ]}}}));
    let doc = &hits["hits"]["hits"][0]["_source"];
    assert_eq!(doc["ProcessId"], pid.as_str());
    assert_eq!(doc["@version"], "1");
    assert_eq!(doc["@timestamp"], sample["@timestamp"]);

    // Registry events: the exporter's `INFO` is replaced by Sysmon's own EventType.
    let registry_info = recs
        .iter()
        .filter(|r| {
            matches!(r["EventID"].as_i64(), Some(12..=14))
                && r["EventType"] == "INFO"
                && r.get("Message").is_some()
        })
        .count() as u64;
    assert!(registry_info > 0);
    let still_info = index.count_query(json!({"bool": {"filter": [
        {"range": {"EventID": {"gte": 12, "lte": 14}}}, {"term": {"EventType.keyword": "INFO"}}
    ]}}));
    assert_eq!(still_info, 0);
    let sysmon_types = index.count_query(json!({"bool": {"filter": [
        {"range": {"EventID": {"gte": 12, "lte": 14}}},
        {"terms": {"EventType.keyword": ["SetValue", "CreateKey", "DeleteKey", "DeleteValue", "RenameKey"]}}
    ]}}));
    assert!(sysmon_types >= registry_info);
}

#[test]
fn archives_give_the_same_documents_as_the_plain_file() {
    let dir = tempfile::tempdir().unwrap();
    let plain = TestIndex::new("plain");
    let run = evtship(
        &[
            "run",
            "--input",
            data(COPY_SMB).to_str().unwrap(),
            "--index",
            &plain.name,
        ],
        dir.path(),
    );
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    let expected = plain.documents();
    assert_eq!(expected.len(), 506);

    for (name, archive) in [
        ("zip", "archives/covenant_copy_smb_CreateRequest.zip"),
        ("targz", "archives/covenant_copy_smb_CreateRequest.tar.gz"),
        ("gz", "archives/covenant_copy_smb_CreateRequest.json.gz"),
    ] {
        let index = TestIndex::new(name);
        let run = evtship(
            &[
                "run",
                "--input",
                data(archive).to_str().unwrap(),
                "--index",
                &index.name,
            ],
            dir.path(),
        );
        assert_eq!(run.code, 0, "{archive}: stderr:\n{}", run.stderr);
        assert_eq!(run.n("events_read"), 506, "{archive}");
        assert_eq!(index.documents(), expected, "{archive}");
        if name == "targz" {
            assert!(run.stderr.contains("stray byte"), "{}", run.stderr);
            assert_eq!(run.n("warnings"), 1);
        }
    }
}

#[test]
fn a_broken_line_is_dead_lettered_with_its_position_and_the_rest_is_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("broken");
    let input = dir.path().join("broken.json");
    let dlq = dir.path().join("dlq.ndjson");
    let lines: Vec<String> = std::fs::read_to_string(data(COPY_SMB))
        .unwrap()
        .lines()
        .take(20)
        .map(str::to_owned)
        .collect();
    let mut f = std::fs::File::create(&input).unwrap();
    for (i, l) in lines.iter().enumerate() {
        if i == 7 {
            // Line 8: a record cut in the middle.
            writeln!(f, "{}", &l[..l.len() / 2]).unwrap();
        } else {
            writeln!(f, "{l}").unwrap();
        }
    }
    drop(f);
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
    assert_eq!(run.code, 3, "stderr:\n{}", run.stderr);
    assert_eq!(run.n("events_read"), 20);
    assert_eq!(run.n("events_indexed"), 19);
    assert_eq!(run.n("dead_lettered"), 1);
    assert_eq!(index.count(), 19);
    assert!(run.stderr.contains("line 8"), "{}", run.stderr);
    assert_eq!(run.summary["dead_letter_path"], dlq.to_str().unwrap());

    let dead: Vec<Value> = std::fs::read_to_string(&dlq)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["line"], 8);
    assert_eq!(dead[0]["input"], input.to_str().unwrap());
    assert!(dead[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("invalid JSON"));
    assert_eq!(dead[0]["record_text"], &lines[7][..lines[7].len() / 2]);
}

#[test]
fn documents_the_engine_rejects_are_dead_lettered_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("rejected");
    let input = dir.path().join("conflict.json");
    let dlq = dir.path().join("dlq.ndjson");
    // The index exists already with the user's own strict mapping: a record with a field it
    // does not know is refused by the engine (evtship itself keeps dialects free of conflicts).
    let status = put_json(
        &format!("/{}", index.name),
        json!({"settings": {"number_of_replicas": 0},
               "mappings": {"dynamic": "strict", "properties": {
                   "n": {"type": "long"}, "@timestamp": {"type": "date"}, "@version": {"type": "keyword"}}}}),
    );
    assert_eq!(status, 200);
    std::fs::write(
        &input,
        "{\"n\":1}\n{\"n\":2}\n{\"n\":3,\"Port\":{\"a\":1}}\n{\"n\":4}\n",
    )
    .unwrap();
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
    assert_eq!(run.code, 3, "stderr:\n{}", run.stderr);
    assert_eq!(run.n("events_indexed"), 3);
    assert_eq!(run.n("dead_lettered"), 1);
    assert_eq!(index.count(), 3);
    let dead: Value = serde_json::from_str(
        std::fs::read_to_string(&dlq)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(dead["status"], 400);
    assert_eq!(dead["line"], 3);
    assert_eq!(dead["record"], json!({"n": 3, "Port": {"a": 1}}));
    assert!(
        dead["reason"]
            .as_str()
            .unwrap()
            .contains("strict_dynamic_mapping_exception"),
        "{dead}"
    );
}

#[test]
fn the_template_gives_keyword_sub_fields_and_dates() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("mapping");
    let run = evtship(
        &["run", "pipelines/sample.toml", "--index", &index.name],
        dir.path(),
    );
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    let props = index.properties();
    for field in [
        "Image",
        "TargetObject",
        "Details",
        "CommandLine",
        "Message",
        "Keywords",
    ] {
        assert_eq!(props[field]["type"], "text", "{field}: {}", props[field]);
        assert_eq!(
            props[field]["fields"]["keyword"]["type"], "keyword",
            "{field}"
        );
        assert_eq!(
            props[field]["fields"]["keyword"]["ignore_above"], 1024,
            "{field}"
        );
    }
    assert_eq!(props["@timestamp"]["type"], "date");
    assert_eq!(props["@version"]["type"], "keyword");
    // Date detection is off: a date-looking string stays a string.
    assert_eq!(props["UtcTime"]["type"], "text");
}

#[test]
fn the_index_refreshes_as_the_engine_does_unless_the_pipeline_says_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("refresh-default");
    let run = evtship(
        &["run", "pipelines/sample.toml", "--index", &index.name],
        dir.path(),
    );
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    assert!(
        index.settings()["refresh_interval"].is_null(),
        "{}",
        index.settings()
    );

    let set = TestIndex::new("refresh-set");
    let path = dir.path().join("refresh.toml");
    let pipeline = |interval: &str| {
        format!(
            "inputs = [\"{}\"]\n[elasticsearch]\nindex = \"{}\"\n[template]\nreplicas = 0\n\
             refresh_interval = \"{interval}\"\n",
            data("otrf").display(),
            set.name
        )
    };
    std::fs::write(&path, pipeline("30s")).unwrap();
    let run = evtship(&["run", path.to_str().unwrap()], dir.path());
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    assert_eq!(set.settings()["refresh_interval"], "30s");
    // Every event is there once a refresh is asked for, whatever the interval.
    assert_eq!(set.count(), run.n("events_indexed"));

    std::fs::write(&path, pipeline("5 seconds")).unwrap();
    let run = evtship(&["check", path.to_str().unwrap()], dir.path());
    assert_eq!(run.code, 2, "{}", run.stderr);
    for part in ["refresh.toml", "line 6", "refresh_interval", "5 seconds"] {
        assert!(run.stderr.contains(part), "{part}: {}", run.stderr);
    }
}

#[test]
fn file_outputs_write_documents_and_replayable_bulk_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs.ndjson");
    let bulk = dir.path().join("bulk.ndjson");
    let index = TestIndex::new("replay");
    let expected = fixture_records();

    let out = format!("ndjson:{}", docs.display());
    let run = evtship(
        &["run", "pipelines/sample.toml", "--output", &out],
        dir.path(),
    );
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    let written = records(&docs);
    assert_eq!(written.len(), expected);
    assert!(written.iter().all(|d| d["@version"] == "1"));

    let out = format!("bulk:{}", bulk.display());
    let run = evtship(
        &[
            "run",
            "pipelines/sample.toml",
            "--output",
            &out,
            "--index",
            &index.name,
        ],
        dir.path(),
    );
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    assert_eq!(run.n("events_indexed"), expected as u64);
    // As a user would: install the template `evtship template` prints, then replay the bodies.
    let template = evtship(
        &["template", "--index", &index.name, "--opensearch"],
        dir.path(),
    );
    let template: Value = serde_json::from_str(&template.stdout).unwrap();
    let name = format!("/_index_template/evtship-{}", index.name);
    assert_eq!(put_json(&name, template), 200);
    let body = std::fs::read(&bulk).unwrap();
    let (status, answer) = post_raw("/_bulk", "application/x-ndjson", body);
    assert_eq!(status, 200);
    let refused: Vec<&Value> = answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["create"]["status"].as_u64() != Some(201))
        .take(3)
        .collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
    assert_eq!(index.count(), expected as u64);
}

#[test]
fn an_invalid_pipeline_file_exits_2_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "inputs = [\"tests/data/otrf\"]\n\n[bulk]\nmax_events = 0\n",
    )
    .unwrap();
    for cmd in ["check", "run"] {
        let run = evtship(&[cmd, path.to_str().unwrap()], dir.path());
        assert_eq!(run.code, 2, "{cmd}: {}", run.stderr);
        assert!(run.stderr.contains("line 4"), "{cmd}: {}", run.stderr);
        assert!(run.stderr.contains("bad.toml"), "{cmd}: {}", run.stderr);
    }
    std::fs::write(&path, "inputs = [\"tests/data/otrf\"]\noutptu = \"es\"\n").unwrap();
    let run = evtship(&["check", path.to_str().unwrap()], dir.path());
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("line 2") && run.stderr.contains("outptu"),
        "{}",
        run.stderr
    );

    let run = evtship(&["check", "pipelines/sample.toml"], dir.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = evtship(&["run", "--input", "no/such/file.json"], dir.path());
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("no/such/file.json"), "{}", run.stderr);
}

#[test]
fn an_unreachable_engine_aborts_with_exit_1_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = evtship(
        &[
            "run",
            "pipelines/sample.toml",
            "--es-url",
            "http://user:hunter2@127.0.0.1:9",
        ],
        dir.path(),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot reach http://***@127.0.0.1:9"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("hunter2"));
}

#[test]
fn template_command_prints_what_run_installs() {
    let dir = tempfile::tempdir().unwrap();
    let index = format!("evtship-test-template-{}", std::process::id());
    let run = evtship(&["template", "--index", &index, "--opensearch"], dir.path());
    assert_eq!(run.code, 0);
    let body: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(body["index_patterns"], json!([index]));
    assert_eq!(body["template"]["mappings"]["date_detection"], false);
    // The engine accepts it as a composable template.
    assert_eq!(put_json(&format!("/_index_template/{index}"), body), 200);
    delete(&format!("/_index_template/{index}"));
}

#[test]
fn logs_can_be_json_lines_for_collectors() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("one-bad.json");
    std::fs::write(&input, "{\"a\":1}\n{\"a\":\n").unwrap();
    let out = dir.path().join("out.ndjson");
    let run = evtship(
        &[
            "--log-format",
            "json",
            "run",
            "--input",
            input.to_str().unwrap(),
            "--output",
            &format!("ndjson:{}", out.display()),
            "--dead-letter",
            dir.path().join("dlq.ndjson").to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    let logs: Vec<Value> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let warning = logs
        .iter()
        .find(|l| l["level"] == "WARN")
        .unwrap_or_else(|| panic!("no JSON warning in {}", run.stderr));
    assert!(
        warning["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("line 2"),
        "{warning}"
    );
    assert!(warning["timestamp"].is_string());
}
