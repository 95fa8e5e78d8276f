//! `.evtx` files: each record becomes a flat document shaped like the NXLog exports, so that the
//! same searches work on both.
//!
//! From `System`: `EventID`, `Channel`, `Hostname` (from `Computer`), `RecordNumber` (from
//! `EventRecordID`), `SourceName` and `ProviderGuid` (from `Provider`), `Version`, `Level`,
//! `Task`, `OpcodeValue` (the numeric opcode, as NXLog names it), `Keywords`,
//! `ExecutionProcessID`, `ThreadID`, `UserID`, `ActivityID`, `TimeCreated`, and `@timestamp`
//! (UTC, milliseconds). Every named `EventData/Data` item becomes
//! a top-level field holding a string, as NXLog writes them; `UtcTime` comes from `TimeCreated`
//! when the event has none of its own. Unnamed data items become the array `Data`. `UserData`
//! is flattened: the children of its element become fields, deeper levels joined with `_`.
//! A forwarded event's rendered `Message` (`RenderingInfo`) is kept.
//!
//! Records are numbered by their position in the file (1-based); damaged chunks are skipped with
//! an error naming the file and chunk, and counted in the summary.

use super::StreamContext;
use crate::decode::{Flow, RawChunk};
use chrono::{DateTime, SecondsFormat, Utc};
use evtx::err::{ChunkError, DeserializationError, EvtxError};
use evtx::{EvtxParser, ParserSettings};
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Reads every record of an `.evtx` file, parsing chunks on `threads` threads.
pub(crate) fn read_evtx(
    path: &Path,
    label: &Arc<str>,
    ctx: &StreamContext<'_>,
    threads: usize,
    emit: &mut dyn FnMut(RawChunk) -> Flow,
) -> Flow {
    let parser = match EvtxParser::from_path(path) {
        Ok(p) => p,
        Err(e) => {
            ctx.error(&format!(
                "{label}: not a readable .evtx file: {}",
                chain(&e)
            ));
            return Flow::Continue;
        }
    };
    let settings = ParserSettings::new().num_threads(threads).indent(false);
    let mut parser = parser.with_configuration(settings);
    let mut chunk = RawChunk::new(ctx.input, label);
    let mut ordinal = 0u64;
    for record in parser.records_json_value() {
        match record {
            Ok(r) => {
                ordinal += 1;
                let doc = flatten(r.data);
                chunk.push_record(ordinal, |buf| {
                    sonic_rs::to_writer(buf, &doc).expect("a JSON map serialises");
                });
                if chunk.is_full() {
                    let full = std::mem::replace(&mut chunk, RawChunk::new(ctx.input, label));
                    if ctx.hand_over(full, emit) == Flow::Stop {
                        return Flow::Stop;
                    }
                }
            }
            Err(e) => report(label, ctx, &e),
        }
    }
    if let Ok(meta) = std::fs::metadata(path) {
        ctx.counters.bytes.fetch_add(meta.len(), Relaxed);
        ctx.counters.position.store(meta.len(), Relaxed);
    }
    if !chunk.lines.is_empty() {
        return ctx.hand_over(chunk, emit);
    }
    Flow::Continue
}

fn report(label: &str, ctx: &StreamContext<'_>, e: &EvtxError) {
    match e {
        EvtxError::FailedToParseChunk { chunk_id, source } => {
            if let ChunkError::FailedToParseChunkHeader(
                DeserializationError::InvalidEvtxChunkMagic { magic },
            ) = source.as_ref()
            {
                if magic.iter().all(|b| *b == 0) {
                    // Never-used space at the end of the file: no records lost.
                    tracing::debug!("{label}: chunk {chunk_id} is empty");
                    return;
                }
            }
            ctx.error(&format!(
                "{label}: chunk {chunk_id} is damaged ({}); its records are skipped",
                chain(e)
            ));
        }
        other => ctx.error(&format!(
            "{label}: a record could not be read ({}); skipped",
            chain(other)
        )),
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn attr<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.get("#attributes")?.get(name)
}

/// A scalar or `#text` value as a string, the way NXLog writes EventData values.
fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(as_text)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Value::Object(o) => o.get("#text").and_then(as_text),
    }
}

/// A `System` value that may be `{"#attributes": ..., "#text": n}`, kept as a number if it is one.
fn plain(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(o) => o.get("#text").cloned(),
        other => Some(other.clone()),
    }
}

fn insert_new(doc: &mut Map<String, Value>, key: &str, value: Value) {
    if doc.contains_key(key) {
        doc.insert(format!("EventData_{key}"), value);
    } else {
        doc.insert(key.to_owned(), value);
    }
}

/// Turns the crate's JSON rendering of a record into a flat NXLog-shaped document.
pub fn flatten(record: Value) -> Map<String, Value> {
    let mut doc = Map::new();
    let event = record.get("Event").unwrap_or(&record);
    let system = &event["System"];
    let mut put = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            doc.insert(key.to_owned(), v);
        }
    };
    put("EventID", plain(&system["EventID"]));
    put("Channel", plain(&system["Channel"]));
    put("Hostname", plain(&system["Computer"]));
    put("RecordNumber", plain(&system["EventRecordID"]));
    put("SourceName", attr(&system["Provider"], "Name").cloned());
    put("ProviderGuid", attr(&system["Provider"], "Guid").cloned());
    put("Version", plain(&system["Version"]));
    put("Level", plain(&system["Level"]));
    put("Task", plain(&system["Task"]));
    // A numeric opcode is NXLog's `OpcodeValue` (NXLog's `Opcode` is its name): written under
    // that name here, the record is flat as the fast path reads it (`transform::flat`).
    let opcode = plain(&system["Opcode"]);
    let opcode_key = if opcode.as_ref().is_some_and(Value::is_number) {
        "OpcodeValue"
    } else {
        "Opcode"
    };
    put(opcode_key, opcode);
    put("Keywords", plain(&system["Keywords"]));
    put(
        "ExecutionProcessID",
        attr(&system["Execution"], "ProcessID").cloned(),
    );
    put("ThreadID", attr(&system["Execution"], "ThreadID").cloned());
    put("UserID", attr(&system["Security"], "UserID").cloned());
    put(
        "ActivityID",
        attr(&system["Correlation"], "ActivityID").cloned(),
    );
    put(
        "RelatedActivityID",
        attr(&system["Correlation"], "RelatedActivityID").cloned(),
    );
    let created = attr(&system["TimeCreated"], "SystemTime")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc));
    if let Some(t) = created {
        put(
            "TimeCreated",
            attr(&system["TimeCreated"], "SystemTime").cloned(),
        );
        put(
            "@timestamp",
            Some(t.to_rfc3339_opts(SecondsFormat::Millis, true).into()),
        );
    }
    if let Some(message) = event["RenderingInfo"]["Message"].as_str() {
        doc.insert("Message".into(), message.into());
    }

    match &event["EventData"] {
        Value::Object(data) => {
            let mut unnamed = Vec::new();
            for (key, value) in data {
                match key.as_str() {
                    "#attributes" => {}
                    "Data" => match value {
                        Value::Array(items) => unnamed.extend(items.iter().filter_map(as_text)),
                        Value::Object(o) => match o.get("#text") {
                            Some(Value::Array(items)) => {
                                unnamed.extend(items.iter().filter_map(as_text))
                            }
                            Some(other) => unnamed.extend(as_text(other)),
                            None => {}
                        },
                        other => unnamed.extend(as_text(other)),
                    },
                    _ => {
                        if let Some(text) = as_text(value) {
                            insert_new(&mut doc, key, text.into());
                        }
                    }
                }
            }
            if !unnamed.is_empty() {
                insert_new(
                    &mut doc,
                    "Data",
                    Value::Array(unnamed.into_iter().map(Value::String).collect()),
                );
            }
        }
        Value::Null => {}
        other => {
            if let Some(text) = as_text(other) {
                insert_new(&mut doc, "Data", text.into());
            }
        }
    }
    if let Value::Object(user_data) = &event["UserData"] {
        for (_, element) in user_data.iter().filter(|(k, _)| *k != "#attributes") {
            flatten_user_data(&mut doc, "", element);
        }
    }
    if !doc.contains_key("UtcTime") {
        if let Some(t) = created {
            doc.insert(
                "UtcTime".into(),
                t.format("%Y-%m-%d %H:%M:%S%.3f").to_string().into(),
            );
        }
    }
    doc
}

fn flatten_user_data(doc: &mut Map<String, Value>, prefix: &str, element: &Value) {
    let Value::Object(children) = element else {
        if let (false, Some(text)) = (prefix.is_empty(), as_text(element)) {
            insert_new(doc, prefix, text.into());
        }
        return;
    };
    for (key, value) in children {
        if key == "#attributes" {
            continue;
        }
        let name = if prefix.is_empty() {
            key.clone()
        } else if key == "#text" {
            prefix.to_owned()
        } else {
            format!("{prefix}_{key}")
        };
        match value {
            Value::Object(o) if !o.contains_key("#text") => flatten_user_data(doc, &name, value),
            other => {
                if let Some(text) = as_text(other) {
                    insert_new(doc, &name, text.into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sysmon_record_is_flat_and_nxlog_shaped() {
        let rec = json!({"Event":{"#attributes":{"xmlns":"x"},"System":{
            "Provider":{"#attributes":{"Name":"Microsoft-Windows-Sysmon","Guid":"{5770385f}"}},
            "EventID":1,"Version":5,"Level":4,"Task":1,"Opcode":0,"Keywords":"0x8000000000000000",
            "TimeCreated":{"#attributes":{"SystemTime":"2017-12-26T13:10:29.1368792Z"}},
            "EventRecordID":1742,"Correlation":null,
            "Execution":{"#attributes":{"ProcessID":2284,"ThreadID":5252}},
            "Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"DESKTOP-2KGM189",
            "Security":{"#attributes":{"UserID":"S-1-5-18"}}},
            "EventData":{"UtcTime":"2017-12-26 13:10:29.134","ProcessId":9112,
                "Image":"C:\\Windows\\SysWOW64\\PING.EXE"}}});
        let d = flatten(rec);
        assert_eq!(d["EventID"], 1);
        assert_eq!(d["Hostname"], "DESKTOP-2KGM189");
        assert_eq!(d["RecordNumber"], 1742);
        assert_eq!(d["SourceName"], "Microsoft-Windows-Sysmon");
        assert_eq!(d["ExecutionProcessID"], 2284);
        assert_eq!(d["OpcodeValue"], 0);
        assert!(!d.contains_key("Opcode"));
        assert_eq!(d["UserID"], "S-1-5-18");
        assert_eq!(d["@timestamp"], "2017-12-26T13:10:29.136Z");
        assert_eq!(d["UtcTime"], "2017-12-26 13:10:29.134");
        assert_eq!(d["ProcessId"], "9112");
        assert_eq!(d["Image"], "C:\\Windows\\SysWOW64\\PING.EXE");
        assert!(!d.contains_key("Computer"));
    }

    #[test]
    fn qualified_event_id_user_data_and_unnamed_data() {
        let rec = json!({"Event":{"System":{"EventID":{"#attributes":{"Qualifiers":16384},"#text":7045},
            "TimeCreated":{"#attributes":{"SystemTime":"2019-03-03T09:20:28.6214897Z"}},
            "Channel":"System","Computer":"H","EventRecordID":4480},
            "EventData":{"Data":["a", 5]},
            "UserData":{"LogFileCleared":{"#attributes":{"xmlns":"y"},"SubjectUserName":"bob",
                "Inner":{"X":1}}}}});
        let d = flatten(rec);
        assert_eq!(d["EventID"], 7045);
        assert_eq!(d["Data"], json!(["a", "5"]));
        assert_eq!(d["SubjectUserName"], "bob");
        assert_eq!(d["Inner_X"], "1");
        assert_eq!(d["UtcTime"], "2019-03-03 09:20:28.621");
    }
}
