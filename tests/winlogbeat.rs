//! Winlogbeat 7+ documents (the ECS `winlog.*` shape) go into one index with NXLog, PowerShell
//! and `.evtx` data: nothing rejected, counts per Channel and EventID as an independent count of
//! the files gives them, `Image.keyword` equal to what Winlogbeat sent (or what its sysmon
//! module moved to ECS), and `Message` wherever `message` was.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const WINLOGBEAT: &str = "winlogbeat8/constructed.json";
const OTHERS: [&str; 3] = [
    "otrf/covenant_persistwmi_2019-12-05044734.json",
    "otrf/psh_lsass_memory_dump_comsvcs_2020-10-18T19500924.json",
    "evtx/security.evtx",
];

fn lines(rel: &str) -> Vec<Value> {
    std::fs::read_to_string(data(rel))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l.trim_start_matches('\u{feff}')).unwrap())
        .collect()
}

/// Channel and EventID of a record, read the way each export writes them.
fn channel_and_id(d: &Value) -> (String, i64) {
    let w = &d["winlog"];
    let channel = d["Channel"].as_str().or(w["channel"].as_str()).unwrap();
    let id = match (&d["EventID"], &w["event_id"]) {
        (Value::Number(n), _) => n.as_i64().unwrap(),
        (_, Value::String(s)) => s.parse().unwrap(),
        other => panic!("no event id: {other:?}"),
    };
    (channel.to_owned(), id)
}

fn terms(index: &TestIndex, field: &str, filter: Value) -> BTreeMap<String, u64> {
    let v = index.search(json!({"size": 0, "query": filter,
        "aggs": {"t": {"terms": {"field": field, "size": 10000}}}}));
    v["aggregations"]["t"]["buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("no buckets in {v}"))
        .iter()
        .map(|b| {
            let key = match &b["key"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (key, b["doc_count"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn winlogbeat_8_events_share_one_index_with_every_other_export() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("winlogbeat8");
    let mut args = vec!["run".to_owned()];
    for rel in std::iter::once(WINLOGBEAT).chain(OTHERS) {
        args.push("--input".into());
        args.push(data(rel).display().to_string());
    }
    args.extend(["--index".into(), index.name.clone()]);
    let run = evtship(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        dir.path(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.n("dead_lettered"), 0);

    // The independent count: the JSON files as written, the .evtx file by its chunk headers
    // (every record of security.evtx is a Security event; the per-EventID check covers JSON).
    let winlog = lines(WINLOGBEAT);
    let mut json_records: Vec<Value> = winlog.clone();
    json_records.extend(lines(OTHERS[0]));
    json_records.extend(lines(OTHERS[1]));
    let mut channels: BTreeMap<String, u64> = BTreeMap::new();
    let mut ids: BTreeMap<String, u64> = BTreeMap::new();
    for r in &json_records {
        let (c, id) = channel_and_id(r);
        *channels.entry(c).or_default() += 1;
        *ids.entry(id.to_string()).or_default() += 1;
    }
    let evtx = 2261;
    *channels.entry("Security".into()).or_default() += evtx;
    assert_eq!(
        index.count(),
        json_records.len() as u64 + evtx,
        "every record is a document"
    );
    assert_eq!(
        terms(&index, "Channel.keyword", json!({"match_all": {}})),
        channels
    );
    // security.evtx's two hosts: its records are counted by channel above.
    let not_evtx = json!({"bool": {"must_not": {"terms":
        {"Hostname.keyword": ["37L4247F27-25", "WIN-03DLIIOFRRA"]}}}});
    let json_ids = terms(&index, "EventID", not_evtx);
    assert_eq!(json_ids, ids);

    // Image: what Winlogbeat sent in event_data, or what its sysmon module moved to ECS.
    let mut images: BTreeMap<String, u64> = BTreeMap::new();
    let mut messages = 0;
    let moved = ["1", "3", "7", "11", "12", "13", "22"];
    for r in &winlog {
        let w = &r["winlog"];
        let image = w["event_data"]["Image"].as_str().or_else(|| {
            moved
                .contains(&w["event_id"].as_str().unwrap())
                .then(|| r["process"]["executable"].as_str())
                .flatten()
        });
        if let Some(i) = image {
            *images.entry(i.to_owned()).or_default() += 1;
        }
        messages += u64::from(r.get("message").is_some());
    }
    assert!(images.len() > 5, "{images:?}");
    let from_winlogbeat = json!({"term": {"agent_type.keyword": "winlogbeat"}});
    assert_eq!(
        terms(&index, "Image.keyword", from_winlogbeat.clone()),
        images
    );
    assert!(messages > 100);
    assert_eq!(
        index.count_query(json!({"bool": {"filter": [from_winlogbeat.clone(),
            {"exists": {"field": "Message"}}]}})),
        messages
    );
    // The envelope under the names the other dialects use, as integers where they are numbers.
    let hit = index.search(
        json!({"size": 1, "query": {"bool": {"filter": [from_winlogbeat,
        {"term": {"EventID": 13}}, {"exists": {"field": "registry_path"}},
        {"exists": {"field": "Message"}}]}}}),
    );
    let doc = &hit["hits"]["hits"][0]["_source"];
    for key in [
        "Channel",
        "Hostname",
        "SourceName",
        "ProviderGuid",
        "UserID",
        "Message",
    ] {
        assert!(doc[key].is_string(), "{key}: {doc}");
    }
    for key in ["EventID", "RecordNumber", "ThreadID"] {
        assert!(doc[key].is_i64(), "{key}: {doc}");
    }
    // Restored from ECS (the rename mode took them out of event_data).
    assert_eq!(doc["TargetObject"], doc["registry_path"], "{doc}");
    assert_eq!(doc["Image"], doc["process_executable"], "{doc}");
    assert!(
        doc["host"].is_string() && doc.get("@metadata").is_none(),
        "{doc}"
    );

    // A second run adds nothing: the ids are stable.
    let again = evtship(
        &args
            .iter()
            .map(String::as_str)
            .chain(["--from-start"])
            .collect::<Vec<_>>(),
        dir.path(),
    );
    assert_eq!(again.n("events_indexed"), 0, "{}", again.stderr);
}
