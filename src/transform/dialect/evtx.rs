//! The `.evtx` dialect: the `evtx` crate's JSON rendering of a record (`Event.System`,
//! `EventData`, `UserData`, `RenderingInfo`) as a flat document shaped like the NXLog exports,
//! so that the same searches work on both.
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

use super::insert_new;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

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

/// Turns the crate's JSON rendering of a record into a flat NXLog-shaped document.
pub fn flatten(record: Value) -> Map<String, Value> {
    let mut doc = Map::new();
    let event = record.get("Event").unwrap_or(&record);
    let created = system_fields(&mut doc, &event["System"]);
    if let Some(message) = event["RenderingInfo"]["Message"].as_str() {
        doc.insert("Message".into(), message.into());
    }
    event_data(&mut doc, &event["EventData"]);
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

/// The `System` fields under their NXLog names; returns when the record was created.
fn system_fields(doc: &mut Map<String, Value>, system: &Value) -> Option<DateTime<Utc>> {
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
    let execution = &system["Execution"];
    put("ExecutionProcessID", attr(execution, "ProcessID").cloned());
    put("ThreadID", attr(execution, "ThreadID").cloned());
    put("UserID", attr(&system["Security"], "UserID").cloned());
    let correlation = &system["Correlation"];
    put("ActivityID", attr(correlation, "ActivityID").cloned());
    put(
        "RelatedActivityID",
        attr(correlation, "RelatedActivityID").cloned(),
    );
    let time = attr(&system["TimeCreated"], "SystemTime");
    let created = time
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc));
    if let Some(t) = created {
        put("TimeCreated", time.cloned());
        put(
            "@timestamp",
            Some(t.to_rfc3339_opts(SecondsFormat::Millis, true).into()),
        );
    }
    created
}

/// Named `EventData/Data` items as string fields; unnamed ones as the array `Data`.
fn event_data(doc: &mut Map<String, Value>, data: &Value) {
    let data = match data {
        Value::Object(data) => data,
        Value::Null => return,
        other => {
            if let Some(text) = as_text(other) {
                insert_new(doc, "Data", text.into());
            }
            return;
        }
    };
    let mut unnamed = Vec::new();
    for (key, value) in data {
        match key.as_str() {
            "#attributes" => {}
            "Data" => match value {
                Value::Array(items) => unnamed.extend(items.iter().filter_map(as_text)),
                Value::Object(o) => match o.get("#text") {
                    Some(Value::Array(items)) => unnamed.extend(items.iter().filter_map(as_text)),
                    Some(other) => unnamed.extend(as_text(other)),
                    None => {}
                },
                other => unnamed.extend(as_text(other)),
            },
            _ => {
                if let Some(text) = as_text(value) {
                    insert_new(doc, key, text.into());
                }
            }
        }
    }
    if !unnamed.is_empty() {
        insert_new(
            doc,
            "Data",
            Value::Array(unnamed.into_iter().map(Value::String).collect()),
        );
    }
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
