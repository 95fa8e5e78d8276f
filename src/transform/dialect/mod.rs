//! Export dialects, and the one flat shape they are all brought to.
//!
//! Detected per record (or forced with `dialect = "..."` in `[transform]`):
//! - **NXLog** (NXLog `im_msvistalog` → Logstash): `SourceModuleType`, `EventReceivedTime`, or
//!   `Hostname` with `RecordNumber`. Already flat; top-level string values are XML-unescaped.
//! - **PowerShell export**: `TimeCreated` and `Hostname`, no `RecordNumber`.
//! - **Winlogbeat 7, 8, 9 and Elastic Agent**: the ECS `winlog` object ([`winlog`] has its
//!   rules).
//! - **Winlogbeat 6.x**: `event_data`/`log_name`/`computer_name`.
//! - **Azure Log Analytics**: `EventData` as a JSON string, with `TimeGenerated` or `TenantId`.
//! - **evtx**: what evtship's own `.evtx` reader writes (NXLog-shaped already).
//!
//! Rules, applied in this order:
//! 1. Winlogbeat: `event_data.*` and `user_data.*` become top-level fields; `computer_name` →
//!    `Hostname`, `log_name` → `Channel`, `event_id` → `EventID`, `record_number` →
//!    `RecordNumber`, `source_name` → `SourceName`, `provider_guid` → `ProviderGuid`,
//!    `process_id` → `ExecutionProcessID`, `thread_id` → `ThreadID`, `task` → `Category`,
//!    `opcode` → `Opcode`, `level` → `LevelName`, `keywords` → `KeywordNames`, `message` →
//!    `Message`, `activity_id` → `ActivityID`, `version` → `Version`; `user.identifier` →
//!    `UserID`, `user.name` → `AccountName`, `user.domain` → `Domain`, `user.type` →
//!    `AccountType` (the logging account, as in NXLog); `host.name` → `host` (the collector, a
//!    string as in NXLog); `@metadata` is dropped (Logstash never indexes it).
//! 2. Azure: the `EventData` JSON string is expanded into top-level fields (and removed);
//!    `Computer` → `Hostname`, `Provider` → `SourceName`, `EventLevel` → `Level`,
//!    `EventLevelName` → `LevelName`.
//! 3. NXLog: XML entities left in top-level string values (`&lt;`, `&amp;`, ...) are decoded
//!    (`Message` is not escaped and stays as it is).
//! 4. All: an expanded field never overwrites one already present: it is kept as
//!    `EventData_<name>`.
//! 5. All: any object still left is flattened, its keys joined with `_` (`beat.name` →
//!    `beat_name`); arrays of objects become arrays of JSON strings; dots in keys become `_`. So
//!    no field is ever an object in one document and a value in another.
//! 6. All: the envelope numbers `EventID`, `RecordNumber`, `ExecutionProcessID`, `ThreadID`,
//!    `Task`, `Level`, `Version`, `OpcodeValue` and `SeverityValue` are integers (numeric
//!    strings are converted; anything else moves to `<name>Text`); `Keywords` is the 64-bit mask
//!    as `0x` and 16 hex digits in every dialect (NXLog writes it as a signed decimal); a numeric
//!    `Opcode` (`.evtx`) is `OpcodeValue`, as in NXLog, whose `Opcode` is the name.

pub mod evtx;
pub mod winlog;

use super::fields::Fields;
use serde::Deserialize;
use serde_json::{Map, Value};

/// A JSON export dialect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// Detect per record.
    #[default]
    Auto,
    /// NXLog → Logstash.
    Nxlog,
    /// PowerShell `Get-WinEvent` export.
    Powershell,
    /// Winlogbeat 6.x.
    Winlogbeat,
    /// Winlogbeat 7, 8 and 9, and Elastic Agent: the ECS `winlog.*` shape ([`winlog`]).
    Winlog,
    /// Azure Log Analytics.
    Azure,
}

/// Defines the integer envelope fields once, as a list and as the `match` the hot path uses.
macro_rules! integer_fields {
    ($($name:literal),* $(,)?) => {
        /// Integer envelope fields, the same type in every dialect.
        pub const INTEGER_FIELDS: &[&str] = &[$($name),*];

        /// Whether `key` is one of [`INTEGER_FIELDS`] (a `match`, for the hot path).
        pub fn is_integer_field(key: &str) -> bool {
            matches!(key, $($name)|*)
        }
    };
}

integer_fields!(
    "EventID",
    "RecordNumber",
    "ExecutionProcessID",
    "ThreadID",
    "Task",
    "Level",
    "Version",
    "OpcodeValue",
    "SeverityValue",
);

/// What the rules do with a top-level field of a flat record, by its key: the one statement
/// that both the general path ([`normalise`]) and the fast path (`transform::flat`) read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRule {
    /// Kept as it is (NXLog's XML entities in strings decoded).
    Plain,
    /// The rendered text: never unescaped; the Message rules read it.
    Message,
    /// The 64-bit keyword mask: `0x` and 16 hex digits in every dialect.
    Keywords,
    /// An envelope integer ([`INTEGER_FIELDS`]): a numeric string becomes the integer,
    /// anything else moves to `<key>Text`.
    Integer,
    /// A numeric `Opcode` (`.evtx`) is NXLog's `OpcodeValue`; NXLog's `Opcode` is its name.
    Opcode,
}

/// The rule of the field `key`.
pub fn rule(key: &str) -> FieldRule {
    match key {
        "Message" => FieldRule::Message,
        "Keywords" => FieldRule::Keywords,
        "Opcode" => FieldRule::Opcode,
        k if is_integer_field(k) => FieldRule::Integer,
        _ => FieldRule::Plain,
    }
}

impl Dialect {
    /// The dialect of `doc`: this one, or the detected one when this is `Auto`.
    pub fn of<D: Fields + ?Sized>(self, doc: &D) -> Dialect {
        match self {
            Dialect::Auto => detect(doc),
            other => other,
        }
    }

    /// Whether records of this dialect are flat already: only the field rules ([`rule`])
    /// apply to them, not a reshaping (the fast path takes only these).
    pub fn is_flat(self) -> bool {
        matches!(self, Dialect::Nxlog | Dialect::Powershell)
    }

    /// Whether XML entities left in string values are decoded (NXLog's exports hold them).
    pub fn decodes_entities(self) -> bool {
        self == Dialect::Nxlog
    }
}

/// Finds the dialect of one record.
pub fn detect<D: Fields + ?Sized>(doc: &D) -> Dialect {
    let has = |k: &str| doc.has(k);
    if has("winlog") {
        Dialect::Winlog
    } else if has("event_data") || (has("log_name") && has("computer_name")) {
        Dialect::Winlogbeat
    } else if doc.str("EventData").is_some() && (has("TimeGenerated") || has("TenantId")) {
        Dialect::Azure
    } else if has("SourceModuleType") || has("EventReceivedTime") || has("RecordNumber") {
        Dialect::Nxlog
    } else if has("TimeCreated") && has("Hostname") {
        Dialect::Powershell
    } else {
        Dialect::Nxlog
    }
}

/// Brings one record to the flat shape (rules in this module's documentation).
pub fn normalise(doc: &mut Map<String, Value>, forced: Dialect) {
    let dialect = forced.of(doc);
    match dialect {
        Dialect::Winlogbeat => winlogbeat(doc),
        Dialect::Winlog if winlog::is_winlog(doc) => winlog::normalise(doc),
        Dialect::Winlog => {}
        Dialect::Azure => azure(doc),
        Dialect::Nxlog | Dialect::Powershell | Dialect::Auto => {}
    }
    if dialect.decodes_entities() {
        unescape_values(doc);
    }
    flatten_objects(doc);
    canonical_types(doc);
}

/// Inserts `value` as `key`, or as `EventData_<key>` when `key` is taken.
fn insert_new(doc: &mut Map<String, Value>, key: &str, value: Value) {
    if doc.contains_key(key) {
        doc.insert(format!("EventData_{key}"), value);
    } else {
        doc.insert(key.to_owned(), value);
    }
}

fn rename(doc: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = doc.shift_remove(from) {
        insert_new(doc, to, v);
    }
}

fn winlogbeat(doc: &mut Map<String, Value>) {
    doc.shift_remove("@metadata");
    for (from, to) in [
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
    ] {
        rename(doc, from, to);
    }
    if let Some(Value::Object(user)) = doc.shift_remove("user") {
        for (from, to) in [
            ("identifier", "UserID"),
            ("name", "AccountName"),
            ("domain", "Domain"),
            ("type", "AccountType"),
        ] {
            if let Some(v) = user.get(from) {
                insert_new(doc, to, v.clone());
            }
        }
    }
    if let Some(Value::Object(host)) = doc.get("host") {
        if let Some(name) = host.get("name").cloned() {
            doc.insert("host".into(), name);
        }
    }
    for section in ["event_data", "user_data"] {
        if let Some(Value::Object(data)) = doc.shift_remove(section) {
            for (k, v) in data {
                insert_new(doc, &k, v);
            }
        }
    }
}

fn azure(doc: &mut Map<String, Value>) {
    if let Some(Value::String(text)) = doc.get("EventData") {
        if let Ok(Value::Object(data)) = serde_json::from_str::<Value>(text) {
            doc.shift_remove("EventData");
            for (k, v) in data {
                insert_new(doc, &k, v);
            }
        }
    }
    for (from, to) in [
        ("Computer", "Hostname"),
        ("Provider", "SourceName"),
        ("EventLevel", "Level"),
        ("EventLevelName", "LevelName"),
    ] {
        rename(doc, from, to);
    }
}

fn unescape_values(doc: &mut Map<String, Value>) {
    for (k, v) in doc.iter_mut() {
        if rule(k) == FieldRule::Message {
            continue;
        }
        if let Value::String(s) = v {
            if s.contains('&') {
                if let Some(decoded) = super::entities::decode(s) {
                    *s = decoded;
                }
            }
        }
    }
}

/// Flattens every object left at top level (keys joined with `_`), so that no field is an
/// object in one document and a value in another.
pub fn flatten_objects(doc: &mut Map<String, Value>) {
    let needs = doc
        .iter()
        .any(|(k, v)| v.is_object() || k.contains('.') || has_object_items(v));
    if !needs {
        return;
    }
    let old = std::mem::take(doc);
    for (k, v) in old {
        flatten_into(doc, &k.replace('.', "_"), v);
    }
}

fn has_object_items(v: &Value) -> bool {
    matches!(v, Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()))
}

fn flatten_into(doc: &mut Map<String, Value>, key: &str, v: Value) {
    match v {
        Value::Object(inner) => {
            for (k, v) in inner {
                flatten_into(doc, &format!("{key}_{}", k.replace('.', "_")), v);
            }
        }
        Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
            let items = items
                .into_iter()
                .map(|i| match i {
                    Value::Object(_) | Value::Array(_) => Value::String(i.to_string()),
                    other => other,
                })
                .collect();
            insert_new(doc, key, Value::Array(items));
        }
        other => insert_new(doc, key, other),
    }
}

fn canonical_types(doc: &mut Map<String, Value>) {
    if matches!(doc.get("Opcode"), Some(Value::Number(_))) && !doc.contains_key("OpcodeValue") {
        if let Some(v) = doc.shift_remove("Opcode") {
            doc.insert("OpcodeValue".into(), v);
        }
    }
    for field in INTEGER_FIELDS {
        let Some(v) = doc.get_mut(*field) else {
            continue;
        };
        match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => {}
            Value::String(s) => match parse_integer(s) {
                Some(n) => *v = Value::from(n),
                None => {
                    let text = v.take();
                    doc.shift_remove(*field);
                    insert_new(doc, &format!("{field}Text"), text);
                }
            },
            Value::Null => {
                doc.shift_remove(*field);
            }
            _ => {
                let text = v.take();
                doc.shift_remove(*field);
                insert_new(doc, &format!("{field}Text"), text);
            }
        }
    }
    if let Some(v) = doc.get_mut("Keywords") {
        let mask = match v {
            Value::Number(n) => n.as_i64().map(|i| i as u64).or_else(|| n.as_u64()),
            Value::String(s) => parse_mask(s),
            _ => None,
        };
        match mask {
            Some(m) => *v = Value::String(mask_text(m)),
            None if !v.is_string() => *v = Value::String(v.to_string()),
            None => {}
        }
    }
}

/// An envelope number from its text: decimal, or hex with `0x`.
pub(super) fn parse_integer(s: &str) -> Option<i64> {
    let t = s.trim();
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return i64::from_str_radix(hex, 16).ok();
    }
    t.parse().ok()
}

/// `Keywords` as written in every dialect: `0x` and 16 hex digits.
pub(super) fn mask_text(mask: u64) -> String {
    // By hand: `format!` took about 1,000 instructions here (callgrind), once per record.
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut text = String::with_capacity(18);
    text.push_str("0x");
    for shift in (0..16).rev() {
        text.push(char::from(HEX[(mask >> (shift * 4)) as usize & 0xF]));
    }
    text
}

/// A `Keywords` mask from its text: hex with `0x`, or decimal (NXLog writes it signed).
pub(super) fn parse_mask(s: &str) -> Option<u64> {
    let t = s.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t
            .parse::<i64>()
            .map(|i| i as u64)
            .ok()
            .or_else(|| t.parse::<u64>().ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn norm(v: Value) -> Map<String, Value> {
        let mut m = v.as_object().unwrap().clone();
        normalise(&mut m, Dialect::Auto);
        m
    }

    #[test]
    fn masks_are_written_as_16_upper_case_hex_digits() {
        for mask in [
            0,
            1,
            0xA,
            0x8020_0000_0000_0000,
            u64::MAX,
            0x0123_4567_89AB_CDEF,
        ] {
            assert_eq!(mask_text(mask), format!("0x{mask:016X}"));
        }
    }

    #[test]
    fn integer_fields_are_matched() {
        assert!(INTEGER_FIELDS.iter().all(|f| is_integer_field(f)));
        assert!(!is_integer_field("EventIDText") && !is_integer_field("Keywords"));
    }

    #[test]
    fn winlogbeat_record_becomes_nxlog_shaped() {
        // From empire_enable_rdp_2019-05-18203650.json (OTRF Security-Datasets, MIT), shortened.
        let d = norm(json!({"@timestamp":"2019-05-18T20:36:46.254Z",
            "@metadata":{"beat":"winlogbeat","type":"doc","version":"6.7.0","topic":"winlogbeat"},
            "message":"Network connection detected:\nRuleName: \nProcessId: 292","version":5,
            "thread_id":2660,"user":{"name":"SYSTEM","domain":"NT AUTHORITY","type":"User","identifier":"S-1-5-18"},
            "beat":{"name":"WECserver","hostname":"WECserver","version":"6.7.0"},"record_number":"5402080",
            "opcode":"Info","process_id":1368,"source_name":"Microsoft-Windows-Sysmon",
            "log_name":"Microsoft-Windows-Sysmon/Operational",
            "event_data":{"ProcessId":"292","Image":"C:\\Windows\\System32\\svchost.exe"},
            "host":{"name":"WECserver"},"level":"Information","event_id":3,
            "computer_name":"HFDC01.shire.com","task":"Network connection detected (rule: NetworkConnect)",
            "keywords":["Audit Success"],"type":"wineventlog"}));
        assert_eq!(d["Hostname"], "HFDC01.shire.com");
        assert_eq!(d["Channel"], "Microsoft-Windows-Sysmon/Operational");
        assert_eq!(d["EventID"], 3);
        assert_eq!(d["RecordNumber"], 5402080);
        assert_eq!(d["Image"], "C:\\Windows\\System32\\svchost.exe");
        assert_eq!(d["host"], "WECserver");
        assert_eq!(d["UserID"], "S-1-5-18");
        assert_eq!(d["beat_name"], "WECserver");
        assert_eq!(d["LevelName"], "Information");
        assert_eq!(
            d["Category"],
            "Network connection detected (rule: NetworkConnect)"
        );
        assert_eq!(d["KeywordNames"], json!(["Audit Success"]));
        assert!(d.get("@metadata").is_none());
        assert!(d.values().all(|v| !v.is_object()));
    }

    #[test]
    fn azure_event_data_string_is_expanded() {
        // From sysmon_log4shell_cve2021_44228_java_serialized_object (OTRF, MIT), shortened.
        let d = norm(
            json!({"TenantId":"redacted","TimeGenerated":"2022-05-13T08:54:06.347Z",
            "Provider":"Microsoft-Windows-Sysmon","Channel":"Microsoft-Windows-Sysmon/Operational",
            "Computer":"WORKSTATION5","Task":1,"EventLevel":4,"EventLevelName":"Information",
            "EventData":"{\"RuleName\":\"-\",\"ProcessId\":\"3936\",\"Image\":\"C:\\\\x\\\\tomcat9.exe\"}",
            "EventID":3}),
        );
        assert_eq!(d["Image"], "C:\\x\\tomcat9.exe");
        assert_eq!(d["ProcessId"], "3936");
        assert_eq!(d["Hostname"], "WORKSTATION5");
        assert_eq!(d["Level"], 4);
        assert!(d.get("EventData").is_none());
    }

    #[test]
    fn nxlog_entities_keywords_and_integers() {
        // PipeName from empire_launcher_vbs_2020-09-04160940.json; Keywords as NXLog writes it.
        let d = norm(
            json!({"SourceModuleType":"im_msvistalog","PipeName":"&lt;Anonymous Pipe&gt;",
            "Keywords":-9223372036854775808i64,"Task":"104","RecordNumber":12,
            "Message":"a &lt; b","Details":"?IsRetailOS=1&amp;expId=FX%%3A1190030E"}),
        );
        assert_eq!(d["PipeName"], "<Anonymous Pipe>");
        assert_eq!(d["Details"], "?IsRetailOS=1&expId=FX%%3A1190030E");
        assert_eq!(d["Message"], "a &lt; b");
        assert_eq!(d["Keywords"], "0x8000000000000000");
        assert_eq!(d["Task"], 104);
    }

    #[test]
    fn powershell_export_keywords_and_string_numbers() {
        let d = norm(
            json!({"TimeCreated":"2020-10-21T09:40:38.926Z","Hostname":"WORKSTATION5",
            "Task":"104","Level":"4","Keywords":"0x4020000000000000","EventID":1102}),
        );
        assert_eq!(d["Task"], 104);
        assert_eq!(d["Level"], 4);
        assert_eq!(d["Keywords"], "0x4020000000000000");
    }

    #[test]
    fn evtx_numeric_opcode_and_odd_values() {
        let d = norm(json!({"Opcode":0,"Level":"Information","Hostname":"h","RecordNumber":1}));
        assert_eq!(d["OpcodeValue"], 0);
        assert_eq!(d["LevelText"], "Information");
        assert!(d.get("Level").is_none());
    }
}
