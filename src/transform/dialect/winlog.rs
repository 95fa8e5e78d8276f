//! The ECS `winlog.*` dialect: what Winlogbeat 7, 8 and 9 and Elastic Agent's Windows
//! integration send (through Beats, Kafka, `output.file` exports or an Elasticsearch output),
//! brought to the flat, NXLog-shaped document every other dialect becomes.
//!
//! - `winlog.event_data.*` and `winlog.user_data.*` become top-level fields (strings, as
//!   Winlogbeat writes them);
//! - the envelope under the names the other dialects use: `winlog.channel` → `Channel`,
//!   `winlog.event_id` → `EventID` (an integer, though 8.x writes a string), `winlog.computer_name`
//!   → `Hostname`, `winlog.record_id` → `RecordNumber`, `winlog.provider_name` → `SourceName`,
//!   `winlog.provider_guid` → `ProviderGuid`, `winlog.process.pid` → `ExecutionProcessID`,
//!   `winlog.process.thread.id` → `ThreadID`, `winlog.user.identifier` → `UserID` (with
//!   `user.name` → `AccountName`, `user.domain` → `Domain`, `user.type` → `AccountType`: the
//!   logging account, as NXLog names it), `winlog.task` → `Category`, `winlog.opcode` →
//!   `Opcode`, `winlog.keywords` → `KeywordNames`, `winlog.version` → `Version`,
//!   `winlog.activity_id` → `ActivityID`, `winlog.related_activity_id` → `RelatedActivityID`;
//!   `log.level` → `LevelName`; `event.code` → `EventID` when `winlog.event_id` is missing;
//! - the rendered text, lowercase `message`, is the `Message` the Message rules read (structured
//!   values win over it, as in every dialect);
//! - `host.name` is the string `host` (the collector, as NXLog has it); `@metadata` is dropped;
//! - when Winlogbeat's sysmon module moved a field out of `event_data` into ECS (its `rename`
//!   mode), the Sysmon name is restored from the ECS field ([`SYSMON_FROM_ECS`]), so that
//!   `Image`, `TargetObject`, `CommandLine`, `User`, ... are there as in every other export;
//! - everything else (ECS `event.*`, `agent.*`, `ecs.version`, `process.*`, ...) is kept,
//!   flattened like any object (`agent_version`, `process_executable`), so that no field is an
//!   object in one document and a string in another.

use super::insert_new;
use serde_json::{Map, Value};

/// `winlog.<key>` → the top-level name the other dialects use.
const ENVELOPE: &[(&str, &str)] = &[
    ("channel", "Channel"),
    ("event_id", "EventID"),
    ("computer_name", "Hostname"),
    ("record_id", "RecordNumber"),
    ("provider_name", "SourceName"),
    ("provider_guid", "ProviderGuid"),
    ("task", "Category"),
    ("opcode", "Opcode"),
    ("keywords", "KeywordNames"),
    ("version", "Version"),
    ("activity_id", "ActivityID"),
    ("related_activity_id", "RelatedActivityID"),
];

/// `winlog.user.<key>` → the name of the logging account's field.
const LOGGING_USER: &[(&str, &str)] = &[
    ("identifier", "UserID"),
    ("name", "AccountName"),
    ("domain", "Domain"),
    ("type", "AccountType"),
];

/// How a Sysmon field is restored from what the sysmon module made of it.
#[derive(Debug, Clone, Copy)]
pub enum From {
    /// The value at this ECS path, as text.
    Path(&'static str),
    /// The first of these ECS paths present (`process.command_line`, else `process.args`
    /// joined with spaces).
    Either(&'static str, &'static str),
    /// `user.domain` and `user.name` as `DOMAIN\name` (the module split `User`).
    User,
    /// The `hash.*` fields as Sysmon writes them: `SHA1=..,MD5=..,SHA256=..,IMPHASH=..`.
    Hashes,
    /// A `true`/`false` flag from an ECS value: (path, the value that means `true`, the one
    /// that means `false`).
    Flag(&'static str, &'static str, &'static str),
}

/// Sysmon's names restored from ECS, by the event ids the sysmon module moves them for (a
/// table of facts about Winlogbeat's sysmon module, written for evtship).
pub const SYSMON_FROM_ECS: &[(&[i64], &str, From)] = &[
    (
        &[1, 2, 3, 5, 7, 9, 11, 12, 13, 14, 15, 17, 18, 22],
        "ProcessGuid",
        From::Path("process.entity_id"),
    ),
    (
        &[1, 2, 3, 5, 7, 9, 11, 12, 13, 14, 15, 17, 18, 22],
        "ProcessId",
        From::Path("process.pid"),
    ),
    (
        &[1, 2, 3, 5, 7, 9, 11, 12, 13, 14, 15, 17, 18, 22],
        "Image",
        From::Path("process.executable"),
    ),
    (
        &[1],
        "CommandLine",
        From::Either("process.command_line", "process.args"),
    ),
    (
        &[1],
        "CurrentDirectory",
        From::Path("process.working_directory"),
    ),
    (
        &[1],
        "ParentProcessGuid",
        From::Path("process.parent.entity_id"),
    ),
    (&[1], "ParentProcessId", From::Path("process.parent.pid")),
    (&[1], "ParentImage", From::Path("process.parent.executable")),
    (
        &[1],
        "ParentCommandLine",
        From::Either("process.parent.command_line", "process.parent.args"),
    ),
    (&[1, 3, 19, 20, 21], "User", From::User),
    (&[1, 6, 7], "Hashes", From::Hashes),
    (&[15], "Hash", From::Hashes),
    (&[2, 11, 15], "TargetFilename", From::Path("file.path")),
    (&[6, 7], "ImageLoaded", From::Path("file.path")),
    (&[9], "Device", From::Path("file.path")),
    (&[3], "Protocol", From::Path("network.transport")),
    (&[3], "SourceIp", From::Path("source.ip")),
    (&[3], "SourceHostname", From::Path("source.domain")),
    (&[3], "SourcePort", From::Path("source.port")),
    (&[3], "DestinationIp", From::Path("destination.ip")),
    (
        &[3],
        "DestinationHostname",
        From::Path("destination.domain"),
    ),
    (&[3], "DestinationPort", From::Path("destination.port")),
    (&[3], "DestinationPortName", From::Path("network.protocol")),
    (
        &[3],
        "Initiated",
        From::Flag("network.direction", "outbound", "inbound"),
    ),
    (
        &[3],
        "SourceIsIpv6",
        From::Flag("network.type", "ipv6", "ipv4"),
    ),
    (
        &[3],
        "DestinationIsIpv6",
        From::Flag("network.type", "ipv6", "ipv4"),
    ),
    (
        &[8, 10],
        "SourceProcessGuid",
        From::Path("process.entity_id"),
    ),
    (&[8, 10], "SourceProcessId", From::Path("process.pid")),
    (&[8, 10], "SourceImage", From::Path("process.executable")),
    (&[10], "SourceThreadId", From::Path("process.thread.id")),
    (&[12, 13, 14], "TargetObject", From::Path("registry.path")),
    (&[13], "Details", From::Path("registry.data.strings")),
    (&[17, 18], "PipeName", From::Path("file.name")),
    (&[20], "Destination", From::Path("process.executable")),
    (&[22], "QueryName", From::Path("dns.question.name")),
    (&[255], "ID", From::Path("error.code")),
];

/// Whether a record has the ECS `winlog` object of Winlogbeat 7 and later.
pub fn is_winlog(doc: &Map<String, Value>) -> bool {
    doc.get("winlog")
        .and_then(Value::as_object)
        .is_some_and(|w| w.contains_key("channel") || w.contains_key("event_id"))
}

/// Brings a Winlogbeat 7+ record to the flat shape (rules in this module's documentation);
/// the objects left are flattened by the rule every dialect ends with.
pub fn normalise(doc: &mut Map<String, Value>) {
    doc.shift_remove("@metadata");
    if let Some(Value::Object(mut winlog)) = doc.shift_remove("winlog") {
        envelope(doc, &mut winlog);
        for section in ["event_data", "user_data"] {
            if let Some(Value::Object(data)) = winlog.shift_remove(section) {
                for (k, v) in data {
                    insert_new(doc, &k, v);
                }
            }
        }
        if !winlog.is_empty() {
            insert_new(doc, "winlog", Value::Object(winlog));
        }
    }
    if let Some(m) = doc.shift_remove("message") {
        insert_new(doc, "Message", m);
    }
    if let Some(level) = take_path(doc, "log.level") {
        insert_new(doc, "LevelName", level);
    }
    if !doc.contains_key("EventID") {
        if let Some(code) = get_path(doc, "event.code").cloned() {
            doc.insert("EventID".into(), code);
        }
    }
    if let Some(name) = take_path(doc, "host.name") {
        // The rest of `host` keeps the names flattening would give it (`host_os_family`).
        let rest = doc.shift_remove("host");
        doc.insert("host".into(), name);
        if let Some(Value::Object(rest)) = rest {
            for (k, v) in rest {
                insert_new(doc, &format!("host_{k}"), v);
            }
        }
    }
    restore_sysmon_names(doc);
}

/// `winlog.*` envelope fields under their NXLog names.
fn envelope(doc: &mut Map<String, Value>, winlog: &mut Map<String, Value>) {
    for (from, to) in ENVELOPE {
        if let Some(v) = winlog.shift_remove(*from) {
            insert_new(doc, to, v);
        }
    }
    if let Some(Value::Object(mut process)) = winlog.shift_remove("process") {
        if let Some(pid) = process.shift_remove("pid") {
            insert_new(doc, "ExecutionProcessID", pid);
        }
        if let Some(Value::Object(mut thread)) = process.shift_remove("thread") {
            if let Some(id) = thread.shift_remove("id") {
                insert_new(doc, "ThreadID", id);
            }
        }
    }
    if let Some(Value::Object(user)) = winlog.shift_remove("user") {
        for (from, to) in LOGGING_USER {
            if let Some(v) = user.get(*from) {
                insert_new(doc, to, v.clone());
            }
        }
    }
}

/// The value at a dotted path of nested objects.
fn get_path<'a>(doc: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut v = doc.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

/// Removes and returns the value at a dotted path (emptied objects are left for the flattening,
/// which drops them).
fn take_path(doc: &mut Map<String, Value>, path: &str) -> Option<Value> {
    let (parent, last) = match path.rsplit_once('.') {
        Some((parent, last)) => (Some(parent), last),
        None => (None, path),
    };
    let map = match parent {
        None => doc,
        Some(parent) => {
            let mut m = doc;
            for p in parent.split('.') {
                m = m.get_mut(p)?.as_object_mut()?;
            }
            m
        }
    };
    map.shift_remove(last)
}

/// A value as the text Sysmon writes in its event data.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(text).collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        }
        _ => None,
    }
}

fn restored(doc: &Map<String, Value>, from: From) -> Option<String> {
    match from {
        From::Path(p) => get_path(doc, p).and_then(text),
        From::Either(a, b) => get_path(doc, a)
            .and_then(text)
            .or_else(|| get_path(doc, b).and_then(text)),
        From::User => {
            let name = get_path(doc, "user.name").and_then(text)?;
            Some(match get_path(doc, "user.domain").and_then(text) {
                Some(domain) => format!("{domain}\\{name}"),
                None => name,
            })
        }
        From::Hashes => {
            let hash = get_path(doc, "hash")?.as_object()?;
            let parts: Vec<String> = ["sha1", "md5", "sha256", "imphash"]
                .iter()
                .filter_map(|k| {
                    let v = hash.get(*k)?.as_str()?;
                    Some(format!("{}={}", k.to_uppercase(), v.to_uppercase()))
                })
                .collect();
            (!parts.is_empty()).then(|| parts.join(","))
        }
        From::Flag(p, yes, no) => match get_path(doc, p).and_then(Value::as_str) {
            Some(v) if v == yes => Some("true".into()),
            Some(v) if v == no => Some("false".into()),
            _ => None,
        },
    }
}

/// The Sysmon names the sysmon module took out of `event_data`, back from their ECS fields.
fn restore_sysmon_names(doc: &mut Map<String, Value>) {
    let sysmon = doc
        .get("Channel")
        .and_then(Value::as_str)
        .is_some_and(|c| c.eq_ignore_ascii_case(crate::transform::SYSMON_CHANNEL));
    let event = doc.get("EventID").and_then(|v| match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    let (true, Some(event)) = (sysmon, event) else {
        return;
    };
    let mut found = Vec::new();
    for (events, name, from) in SYSMON_FROM_ECS {
        if events.contains(&event) && !doc.contains_key(*name) {
            if let Some(v) = restored(doc, *from) {
                found.push((*name, v));
            }
        }
    }
    for (name, v) in found {
        doc.insert(name.to_owned(), Value::String(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_renamed_sysmon_field_is_restored_and_a_copied_one_kept() {
        let mut doc = json!({
            "@timestamp": "2023-05-02T10:00:00.123Z",
            "@metadata": {"beat": "winlogbeat", "version": "8.12.0"},
            "message": "Process Create:\nImage: C:\\Windows\\a.exe",
            "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": "1",
                "computer_name": "WS1", "record_id": 42, "provider_name": "Microsoft-Windows-Sysmon",
                "process": {"pid": 1234, "thread": {"id": 99}},
                "user": {"identifier": "S-1-5-18", "name": "SYSTEM", "domain": "NT AUTHORITY", "type": "User"},
                "event_data": {"RuleName": "-", "ParentImage": "C:\\p.exe"}},
            "process": {"executable": "C:\\Windows\\a.exe", "pid": 777, "args": ["a.exe", "/c"],
                "parent": {"executable": "C:\\ignored.exe"}},
            "user": {"name": "bob", "domain": "CORP"},
            "hash": {"sha1": "ab12", "md5": "cd34"},
            "host": {"name": "ws1.corp", "os": {"family": "windows"}},
            "log": {"level": "information"},
            "agent": {"type": "winlogbeat", "version": "8.12.0"},
            "ecs": {"version": "8.0.0"}
        })
        .as_object()
        .unwrap()
        .clone();
        normalise(&mut doc);
        assert_eq!(doc["Channel"], "Microsoft-Windows-Sysmon/Operational");
        assert_eq!(doc["EventID"], "1");
        assert_eq!(doc["Hostname"], "WS1");
        assert_eq!(doc["RecordNumber"], 42);
        assert_eq!(doc["ExecutionProcessID"], 1234);
        assert_eq!(doc["ThreadID"], 99);
        assert_eq!(doc["UserID"], "S-1-5-18");
        assert_eq!(doc["AccountName"], "SYSTEM");
        assert_eq!(doc["Image"], "C:\\Windows\\a.exe");
        assert_eq!(doc["ProcessId"], "777");
        assert_eq!(doc["CommandLine"], "a.exe /c");
        assert_eq!(doc["User"], "CORP\\bob");
        assert_eq!(doc["Hashes"], "SHA1=AB12,MD5=CD34");
        // Still in event_data: kept, not replaced by the ECS copy.
        assert_eq!(doc["ParentImage"], "C:\\p.exe");
        assert_eq!(doc["host"], "ws1.corp");
        assert_eq!(doc["LevelName"], "information");
        assert!(doc["Message"]
            .as_str()
            .unwrap()
            .starts_with("Process Create"));
        assert!(!doc.contains_key("@metadata") && !doc.contains_key("message"));
        assert!(
            doc.contains_key("agent"),
            "agent.* is kept (flattened later)"
        );
    }

    #[test]
    fn only_a_winlog_object_with_channel_or_event_id_is_the_shape() {
        let yes = json!({"winlog": {"channel": "Security"}});
        let no = json!({"winlog": "x", "Channel": "Security"});
        assert!(is_winlog(yes.as_object().unwrap()));
        assert!(!is_winlog(no.as_object().unwrap()));
    }
}
