//! Fidelity over the fixtures: every top-level input field reaches its document with the same
//! value, but for the normalisations documented in `src/transform/dialect.rs` and
//! `src/transform/mod.rs`; every Sysmon `Message` key is searchable in the real engine.

mod common;

use common::*;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

const FIXTURES: &[&str] = &[
    "otrf/covenant_persistwmi_2019-12-05044734.json",
    "otrf/covenant_copy_smb_CreateRequest_2020-09-22145302.json",
    "otrf/psh_lsass_memory_dump_comsvcs_2020-10-18T19500924.json",
    "otrf/winlogbeat_empire_enable_rdp_first100.json",
    "otrf/azure_sysmon_log4shell_first150.json",
];

const INTEGERS: &[&str] = &[
    "EventID",
    "RecordNumber",
    "ExecutionProcessID",
    "ThreadID",
    "Task",
    "Level",
    "Version",
    "OpcodeValue",
    "SeverityValue",
];

/// Winlogbeat field → flat name (the table in src/transform/dialect.rs).
const WINLOGBEAT: &[(&str, &str)] = &[
    ("computer_name", "Hostname"),
    ("log_name", "Channel"),
    ("event_id", "EventID"),
    ("record_number", "RecordNumber"),
    ("source_name", "SourceName"),
    ("provider_guid", "ProviderGuid"),
    ("process_id", "ExecutionProcessID"),
    ("thread_id", "ThreadID"),
    ("task", "Category"),
    ("opcode", "Opcode"),
    ("level", "LevelName"),
    ("keywords", "KeywordNames"),
    ("message", "Message"),
    ("activity_id", "ActivityID"),
    ("version", "Version"),
];

const AZURE: &[(&str, &str)] = &[
    ("Computer", "Hostname"),
    ("Provider", "SourceName"),
    ("EventLevel", "Level"),
    ("EventLevelName", "LevelName"),
];

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Whether `got` is `want` up to the documented normalisations of field `key`.
fn same(key: &str, want: &Value, got: &Value, nxlog: bool) -> bool {
    if want == got {
        return true;
    }
    match (key, want, got) {
        ("Keywords", Value::Number(n), Value::String(g)) => {
            *g == format!("0x{:016X}", n.as_i64().unwrap() as u64)
        }
        ("Keywords", Value::String(w), Value::String(g)) => w.eq_ignore_ascii_case(g),
        ("@timestamp", Value::String(w), Value::String(g)) => {
            chrono::DateTime::parse_from_rfc3339(w).ok()
                == chrono::DateTime::parse_from_rfc3339(g).ok()
        }
        (k, Value::String(w), Value::Number(g)) if INTEGERS.contains(&k) => {
            w.trim().parse::<i64>().ok() == g.as_i64()
        }
        (_, Value::String(w), Value::String(g)) if nxlog => xml_unescape(w) == *g,
        _ => false,
    }
}

fn check_record(rec: &Map<String, Value>, doc: &Map<String, Value>, errors: &mut Vec<String>) {
    let winlogbeat = rec.contains_key("event_data") || rec.contains_key("log_name");
    let azure = rec.get("EventData").is_some_and(Value::is_string);
    let nxlog = rec.contains_key("SourceModuleType");
    let mut expect: Vec<(String, Value)> = Vec::new();
    for (k, v) in rec {
        let renamed = if winlogbeat {
            WINLOGBEAT
                .iter()
                .find(|(from, _)| from == k)
                .map(|(_, to)| *to)
        } else if azure {
            AZURE.iter().find(|(from, _)| from == k).map(|(_, to)| *to)
        } else {
            None
        };
        match (k.as_str(), v) {
            ("@version", _) => expect.push((k.clone(), json!("1"))),
            ("@metadata", _) if winlogbeat => {}
            ("host", Value::Object(h)) => expect.push(("host".into(), h["name"].clone())),
            ("user", Value::Object(u)) if winlogbeat => {
                for (from, to) in [
                    ("identifier", "UserID"),
                    ("name", "AccountName"),
                    ("domain", "Domain"),
                    ("type", "AccountType"),
                ] {
                    if let Some(x) = u.get(from) {
                        expect.push((to.into(), x.clone()));
                    }
                }
            }
            ("event_data" | "user_data", Value::Object(inner)) => {
                for (ik, iv) in inner {
                    let name = if rec.contains_key(ik) {
                        format!("EventData_{ik}")
                    } else {
                        ik.clone()
                    };
                    expect.push((name, iv.clone()));
                }
            }
            ("EventData", Value::String(text)) if azure => {
                let inner: Map<String, Value> = serde_json::from_str(text).unwrap();
                for (ik, iv) in inner {
                    expect.push((ik, iv));
                }
            }
            (_, Value::Object(inner)) => {
                for (ik, iv) in inner {
                    expect.push((format!("{k}_{ik}"), iv.clone()));
                }
            }
            // Sysmon registry events: NXLog's INFO gives way to Sysmon's own EventType.
            ("EventType", Value::String(t))
                if t == "INFO"
                    && matches!(rec["EventID"].as_i64(), Some(12..=14))
                    && rec.contains_key("Message") => {}
            _ => expect.push((renamed.unwrap_or(k).to_owned(), v.clone())),
        }
    }
    for (k, want) in expect {
        match doc.get(&k) {
            Some(got) if same(&k, &want, got, nxlog) => {}
            got => errors.push(format!("{k}: input {want}, document {got:?}")),
        }
    }
}

#[test]
fn every_input_field_reaches_its_document_unchanged_but_for_documented_normalisations() {
    let dir = tempfile::tempdir().unwrap();
    for fixture in FIXTURES {
        let out = dir.path().join("docs.ndjson");
        let run = evtship(
            &[
                "run",
                "--input",
                data(fixture).to_str().unwrap(),
                "--output",
                &format!("ndjson:{}", out.display()),
            ],
            dir.path(),
        );
        assert_eq!(run.code, 0, "{fixture}: {}", run.stderr);
        let inputs = records(&data(fixture));
        let docs = records(&out);
        assert_eq!(inputs.len(), docs.len(), "{fixture}");
        let mut errors = Vec::new();
        for (i, (rec, doc)) in inputs.iter().zip(&docs).enumerate() {
            let mut e = Vec::new();
            check_record(rec, doc, &mut e);
            errors.extend(
                e.into_iter()
                    .map(|m| format!("{fixture} record {}: {m}", i + 1)),
            );
            assert!(
                doc.values()
                    .all(|v| !v.is_object() || doc.get("MessageData") == Some(v)),
                "{fixture}: nested object left"
            );
        }
        assert!(
            errors.is_empty(),
            "{} differences, first: {:#?}",
            errors.len(),
            &errors[..errors.len().min(10)]
        );
    }
}

#[test]
fn every_sysmon_message_key_is_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("msgkeys");
    let files = [FIXTURES[0], FIXTURES[1], FIXTURES[3]];
    let mut args = vec!["run".to_owned(), "--index".into(), index.name.clone()];
    for f in files {
        args.push("--input".into());
        args.push(data(f).to_str().unwrap().to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = evtship(&args, dir.path());
    assert_eq!(run.code, 0, "{}", run.stderr);

    // For each key of any Sysmon Message: the records holding it, at top level or rendered.
    let mut holders: BTreeMap<String, u64> = BTreeMap::new();
    let mut sysmon_records = Vec::new();
    for f in files {
        for rec in records(&data(f)) {
            let channel = rec
                .get("Channel")
                .or(rec.get("log_name"))
                .and_then(Value::as_str);
            if channel != Some("Microsoft-Windows-Sysmon/Operational") {
                continue;
            }
            let Some(message) = rec
                .get("Message")
                .or(rec.get("message"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            let mut keys: Vec<String> = message
                .split(['\r', '\n'])
                .skip(1)
                .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_owned()))
                .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()))
                .collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                holders.entry(k).or_default();
            }
            sysmon_records.push(rec);
        }
    }
    // Each key must be on exactly the records that carry it, rendered or structured.
    for (key, n) in holders.iter_mut() {
        *n = sysmon_records
            .iter()
            .filter(|rec| {
                let rendered = rec
                    .get("Message")
                    .or(rec.get("message"))
                    .and_then(Value::as_str)
                    .is_some_and(|m| {
                        m.split(['\r', '\n'])
                            .skip(1)
                            .any(|l| l.split_once(':').is_some_and(|(k, _)| k == key))
                    });
                let structured = rec.contains_key(key.as_str())
                    || rec
                        .get("event_data")
                        .is_some_and(|d| d.get(key.as_str()).is_some());
                rendered || structured
            })
            .count() as u64;
    }
    assert!(holders.len() > 30, "{holders:?}");
    for (key, n) in holders {
        let found = index.count_query(json!({"bool": {"filter": [
            {"exists": {"field": key}},
            {"term": {"Channel.keyword": "Microsoft-Windows-Sysmon/Operational"}},
            {"exists": {"field": "Message"}}
        ]}}));
        assert_eq!(found, n, "Sysmon Message key `{key}`");
    }
}
