//! Records to documents: dialects, the rendered `Message`, `@timestamp`, `@version`, optional
//! ECS fields, a stable id, and the `_bulk` encoding of each document.
//!
//! Rules, in order:
//! - the record is brought to one flat shape whatever its dialect ([`dialect`]);
//! - Sysmon `Message`: each `Key: value` line whose key the record lacks at top level becomes a
//!   field; a value present at top level is kept (the exporter's structured value is the
//!   faithful one), except on registry events (EventID 12, 13, 14) whose top-level `EventType`
//!   is the exporter's `INFO`, where Sysmon's value (`SetValue`, `CreateKey`, ...) replaces it;
//!   unexpanded inserts (`%9`) are never taken;
//! - other channels' `Message` (Security style: sections of `Key:\tvalue` lines) goes into the
//!   `MessageData` object, as `MessageData.<Section>_<Key>` (words joined: `Subject_SecurityID`),
//!   so it never overwrites a structured field; a key repeated in one section becomes an array;
//! - the first line of `Message` is `MessageTitle` (`Process Create`, `An account was ...`);
//! - `@version` is `"1"`; `@timestamp` as [`timestamp`] says;
//! - with `ecs = true`, Elastic Common Schema fields are added beside the originals ([`ecs`]).

pub mod depth;
pub mod dialect;
pub mod ecs;
pub mod entities;
pub mod fields;
mod flat;
pub mod id;
mod keys;
pub mod message;
mod record;
mod scan;
pub mod timestamp;

use crate::chunk::{Identity, RawChunk, Route};
use chrono::{DateTime, Utc};
use fields::Fields;
use id::DocId;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::ops::Range;

/// Fields a record is made ready for at once (events have dozens; growing a map or list from
/// empty would reallocate it several times on the way).
const RECORD_FIELDS: usize = 64;

/// Sysmon's event log channel.
pub const SYSMON_CHANNEL: &str = "Microsoft-Windows-Sysmon/Operational";

/// One document of a chunk.
#[derive(Debug, Clone)]
pub struct EncodedDoc {
    /// Index of the source line in the chunk's [`RawChunk::lines`].
    pub line: usize,
    /// The document line, newline-terminated, in [`EncodedChunk::buf`].
    pub doc: Range<usize>,
    /// Its stable id.
    pub id: DocId,
    /// Its `@timestamp`, when the encoder was asked for times (indices named by date).
    pub time: Option<DateTime<Utc>>,
    /// Where its sender asked it to go (a `_bulk` client's action), if anywhere.
    pub route: Option<Route>,
}

/// A record that could not become a document.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// Index of the source line in the chunk's [`RawChunk::lines`].
    pub line: usize,
    /// Why.
    pub reason: String,
}

/// A chunk of records turned into documents.
#[derive(Debug)]
pub struct EncodedChunk {
    /// The records as read, kept for the dead letter queue, with their acknowledgement.
    pub raw: RawChunk,
    /// Document lines of every document (the engine sink takes them once they are copied into
    /// request bodies).
    pub buf: Vec<u8>,
    /// The documents.
    pub docs: Vec<EncodedDoc>,
    /// Records that are not JSON objects.
    pub rejected: Vec<Rejected>,
}

impl EncodedChunk {
    /// The document line (with its newline) of document `i`.
    pub fn doc_line(&self, i: usize) -> &[u8] {
        &self.buf[self.docs[i].doc.clone()]
    }
}

/// How records are turned into documents (the `[transform]` section).
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    /// Dialect, or `Auto` to detect it per record.
    pub dialect: dialect::Dialect,
    /// Which time `@timestamp` holds.
    pub timestamp: timestamp::TimestampMode,
    /// Zone of `EventTime` values (local time without a zone mark).
    pub timezone: Option<chrono_tz::Tz>,
    /// Add Elastic Common Schema fields.
    pub ecs: bool,
}

/// Turns records into documents.
#[derive(Debug, Clone)]
pub struct Encoder {
    settings: Settings,
    /// Whether flat records take the fast path ([`flat`]).
    fast: bool,
    /// Whether each document's `@timestamp` is given with it ([`EncodedDoc::time`]).
    times: bool,
}

impl Encoder {
    /// An encoder with these settings.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            fast: true,
            times: false,
        }
    }

    /// Turns the fast path for flat records on (the default) or off. Off, every record is
    /// parsed into a tree: the same documents, more slowly (for checks and benchmarks).
    pub fn with_fast_path(mut self, on: bool) -> Self {
        self.fast = on;
        self
    }

    /// Gives each document's `@timestamp` with it, for a sink that names indices by date.
    pub fn with_times(mut self, on: bool) -> Self {
        self.times = on;
        self
    }

    /// Whether a record takes the fast path (see [`Encoder::with_fast_path`]; for checks and
    /// benchmarks).
    pub fn takes_fast_path(&self, line: &[u8]) -> bool {
        let mut fields = Vec::new();
        self.fast && flat::encode(self, line, 0, "", &mut fields, &mut Vec::new()).is_some()
    }

    /// Encodes every record of a chunk.
    pub fn encode(&self, raw: RawChunk) -> EncodedChunk {
        let now = timestamp::now();
        // Documents are their record and about 300 bytes more (`@version`, `@timestamp`,
        // `MessageTitle`, the fields the Message adds): growing the buffer instead would copy
        // the whole chunk again.
        let mut buf = Vec::with_capacity(raw.buf.len() + raw.lines.len() * 320);
        let mut docs = Vec::with_capacity(raw.lines.len());
        let mut rejected = Vec::new();
        // The fast path's list of a record's fields, kept from one record to the next.
        let mut fields = Vec::new();
        for i in 0..raw.lines.len() {
            if let Some(length) = raw.lines[i].cut {
                let reason = format!(
                    "line of {length} bytes is longer than [decode] max_line_bytes; not parsed \
                     (its first bytes are kept)"
                );
                rejected.push(Rejected { line: i, reason });
                continue;
            }
            let start = buf.len();
            let line = raw.line(i);
            // A record pushed by a sender is known by its content (see `chunk::Identity`).
            let number = match raw.identity {
                Identity::Position => raw.lines[i].number,
                Identity::Content => 0,
            };
            let route = raw.route(i);
            let encoded = match route.filter(|r| r.verbatim) {
                Some(r) => self.verbatim(line, r, &mut buf),
                None => self.encode_record(line, number, &now, &mut fields, &mut buf),
            };
            match encoded {
                Ok((id, time)) => docs.push(EncodedDoc {
                    line: i,
                    doc: start..buf.len(),
                    id,
                    time,
                    route: route.cloned(),
                }),
                Err(reason) => {
                    buf.truncate(start);
                    rejected.push(Rejected { line: i, reason });
                }
            }
        }
        EncodedChunk {
            raw,
            buf,
            docs,
            rejected,
        }
    }
}

impl Encoder {
    /// Appends a document that is final already (written by evtship's Kafka output) as it
    /// is; its id is the route's.
    fn verbatim(
        &self,
        line: &[u8],
        route: &Route,
        buf: &mut Vec<u8>,
    ) -> Result<(DocId, Option<DateTime<Utc>>), String> {
        /// The document's time; reading it checks that the document is one JSON object.
        #[derive(serde::Deserialize)]
        struct Stamp<'a> {
            #[serde(rename = "@timestamp", borrow)]
            timestamp: Option<Cow<'a, str>>,
        }
        let stamp: Stamp<'_> =
            serde_json::from_slice(line).map_err(|e| format!("not a JSON object document: {e}"))?;
        let id = route
            .id
            .as_deref()
            .and_then(DocId::from_hex)
            .unwrap_or_else(|| id::id_of(&Map::new(), line, 0));
        let time = if self.times {
            stamp
                .timestamp
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc))
        } else {
            None
        };
        buf.extend_from_slice(line);
        buf.push(b'\n');
        Ok((id, time))
    }

    /// Appends the document line of one record to `buf`; returns its id and time, or why the
    /// record is no document.
    fn encode_record<'a>(
        &self,
        line: &'a [u8],
        number: u64,
        now: &str,
        fields: &mut Vec<(&'a str, &'a str)>,
        buf: &mut Vec<u8>,
    ) -> Result<(DocId, Option<DateTime<Utc>>), String> {
        if self.fast {
            if let Some(identity) = flat::encode(self, line, number, now, fields, buf) {
                return Ok(identity);
            }
        }
        let doc = self.document(line, now)?;
        sonic_rs::to_writer(&mut *buf, &doc).expect("serialising a JSON map cannot fail");
        buf.push(b'\n');
        Ok(self.identify(&doc, line, number))
    }

    /// The document of one record: parsed whole and transformed (the caller serialises it).
    ///
    /// Records are read and written by sonic-rs (SIMD) through serde, into serde_json's
    /// `Value`, which the rules work on: 14% faster encoding than serde_json's own reader and
    /// writer, and the same values and bytes (`tests/json_engine.rs`).
    fn document(&self, line: &[u8], now: &str) -> Result<Map<String, Value>, String> {
        if depth::deeper_than(line, depth::MAX_DEPTH) {
            return Err(format!(
                "nested deeper than {} levels of objects and arrays; not parsed",
                depth::MAX_DEPTH
            ));
        }
        // sonic-rs checks the UTF-8 of the values it reads, but not of those it skips and reads
        // later (a lazy value panics on them), so the line is checked first, as a whole.
        if let Err(e) = simdutf8::compat::from_utf8(line) {
            return Err(format!(
                "not UTF-8: invalid byte at offset {} of the line",
                e.valid_up_to()
            ));
        }
        let mut doc = match sonic_rs::from_slice::<record::Record>(line) {
            Ok(record::Record::Object(map)) => map,
            Ok(record::Record::Other(kind)) => return Err(format!("not a JSON object but {kind}")),
            Err(e) => return Err(format!("invalid JSON: {e}")),
        };
        normalise(&mut doc, now, &self.settings);
        Ok(doc)
    }

    /// The id of a document, and its time when asked for.
    fn identify<D: Fields + ?Sized>(
        &self,
        doc: &D,
        line: &[u8],
        number: u64,
    ) -> (DocId, Option<DateTime<Utc>>) {
        let time = self.times.then(|| {
            doc.str("@timestamp")
                .as_deref()
                .and_then(timestamp::parse_utc)
                .unwrap_or_else(Utc::now)
        });
        (id::id_of(doc, line, number), time)
    }
}

/// The event id as a number, as a number or a numeric string.
fn event_id<D: Fields + ?Sized>(doc: &D) -> Option<i64> {
    doc.text("EventID")?.trim().parse().ok()
}

/// Whether a record is a Sysmon event.
pub fn is_sysmon<D: Fields + ?Sized>(doc: &D) -> bool {
    doc.str("Channel")
        .is_some_and(|c| c.eq_ignore_ascii_case(SYSMON_CHANNEL))
        || doc.str("SourceName").as_deref() == Some("Microsoft-Windows-Sysmon")
}

/// Applies the rules in this module's documentation to one record.
pub fn normalise(doc: &mut Map<String, Value>, now: &str, settings: &Settings) {
    dialect::normalise(doc, settings.dialect);
    if let Some(message) = doc
        .get("Message")
        .and_then(Value::as_str)
        .map(str::to_owned)
    {
        rendered_message(doc, &message);
    }
    stamp(doc, now, settings);
    if settings.ecs {
        ecs::add(doc);
    }
}

/// A document the rules below write to: the general path's map, or a flat record
/// ([`flat`]). The rules are written once, so both paths give the same documents.
trait Document<'m>: Fields {
    /// Sets `key` to a string: in place when the document has it, else after the others.
    fn set(&mut self, key: &'m str, value: Cow<'m, str>);
    /// Sets `MessageData`: names with their values, in order (one value is a string, more an
    /// array).
    fn set_data(&mut self, data: Vec<(String, Vec<Cow<'m, str>>)>);
}

impl<'m> Document<'m> for Map<String, Value> {
    fn set(&mut self, key: &'m str, value: Cow<'m, str>) {
        self.insert(key.to_owned(), Value::String(value.into_owned()));
    }

    fn set_data(&mut self, data: Vec<(String, Vec<Cow<'m, str>>)>) {
        let data = data
            .into_iter()
            .map(|(name, mut values)| {
                let value = match values.len() {
                    1 => Value::String(values.remove(0).into_owned()),
                    _ => Value::Array(
                        values
                            .into_iter()
                            .map(|v| Value::String(v.into_owned()))
                            .collect(),
                    ),
                };
                (name, value)
            })
            .collect();
        self.insert("MessageData".to_owned(), Value::Object(data));
    }
}

/// The rules on the rendered `Message` (Sysmon fields, or `MessageData`; `MessageTitle`).
fn rendered_message<'m, D: Document<'m>>(doc: &mut D, message: &'m str) {
    if is_sysmon(doc) {
        fill_from_message(doc, message);
    } else {
        message_data(doc, message);
    }
}

/// `@version`, then `@timestamp` (last, as it may come from fields the other rules set).
fn stamp<'m, D: Document<'m>>(doc: &mut D, now: &str, settings: &Settings) {
    doc.set("@version", Cow::Borrowed("1"));
    let ts = timestamp::choose(doc, settings.timestamp, settings.timezone, now);
    doc.set("@timestamp", Cow::Owned(ts));
}

/// Whether a rendered value is an insert Windows failed to expand (`%9`, `%%1833`).
fn unexpanded(v: &str) -> bool {
    let digits = v.trim_start_matches('%');
    v.starts_with('%') && !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

fn set_title<'m, D: Document<'m>>(doc: &mut D, title: &'m str) {
    let title = title.strip_suffix(':').unwrap_or(title).trim();
    if !title.is_empty() && !doc.has("MessageTitle") {
        doc.set("MessageTitle", Cow::Borrowed(title));
    }
}

fn fill_from_message<'m, D: Document<'m>>(doc: &mut D, message: &'m str) {
    let registry = matches!(event_id(doc), Some(12..=14));
    let rendered = message::parse_sysmon(message);
    let updates: Vec<(&str, &str)> = rendered
        .fields
        .into_iter()
        .filter(|(_, value)| !unexpanded(value))
        .filter(|(key, _)| {
            !doc.has(key)
                || (*key == "EventType" && registry && doc.str(key).as_deref() == Some("INFO"))
        })
        .collect();
    for (key, value) in updates {
        doc.set(key, Cow::Borrowed(value));
    }
    set_title(doc, rendered.title);
}

fn message_data<'m, D: Document<'m>>(doc: &mut D, message: &'m str) {
    let parsed = message::parse_sectioned(message);
    let mut data: Vec<(String, Vec<Cow<'m, str>>)> = Vec::new();
    for (section, key, value) in parsed.fields {
        if unexpanded(&value) {
            continue;
        }
        let name = message::field_name(section, key);
        if name.is_empty() {
            continue;
        }
        match data.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => data.push((name, vec![value])),
        }
    }
    if !data.is_empty() {
        doc.set_data(data);
    }
    set_title(doc, parsed.title);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::Flow;
    use crate::decode::read_lines;
    use serde_json::json;
    use std::sync::Arc;

    fn encode(text: &str) -> EncodedChunk {
        encode_bytes(text.as_bytes())
    }

    fn encode_bytes(text: &[u8]) -> EncodedChunk {
        let origin: Arc<str> = Arc::from("t");
        let mut chunks = Vec::new();
        read_lines(
            text,
            0,
            &origin,
            crate::chunk::StreamPos::default(),
            &mut |c| {
                chunks.push(c);
                Flow::Continue
            },
        )
        .unwrap();
        Encoder::new(Settings::default()).encode(chunks.remove(0))
    }

    fn doc(c: &EncodedChunk, i: usize) -> Map<String, Value> {
        serde_json::from_slice(c.doc_line(i)).unwrap()
    }

    /// Found by the ndjson fuzz target: a broken UTF-8 sequence in the value of an envelope
    /// integer field made sonic-rs panic; the line is refused instead, and the others go on.
    #[test]
    fn a_line_that_is_not_utf8_is_refused_not_a_panic() {
        let c = encode_bytes(
            b"{\"EventID\":\"\xc2iniDump\"}\n{\"ProcessId\":\"7\xc2\"}\n{\"EventID\":1}\n",
        );
        assert_eq!(c.docs.len(), 1);
        assert_eq!(c.rejected.len(), 2);
        assert!(
            c.rejected[0]
                .reason
                .contains("not UTF-8: invalid byte at offset 12"),
            "{}",
            c.rejected[0].reason
        );
    }

    #[test]
    fn message_fills_missing_fields_and_keeps_present_ones() {
        let rec = json!({
            "Channel": SYSMON_CHANNEL, "EventID": 13, "EventType": "INFO",
            "TargetObject": "HKLM\\a%5Cb", "@timestamp": "2019-12-05T04:47:35.000Z",
            "Message": "Registry value set:\r\nRuleName: -\r\nEventType: SetValue\r\nUtcTime: 2019-12-05 04:47:33.003\r\nTargetObject: HKLM\\a10080Cb\r\nDetails: DWORD (0x00000001)"
        });
        let c = encode(&rec.to_string());
        let d = doc(&c, 0);
        assert_eq!(d["EventType"], "SetValue");
        assert_eq!(d["TargetObject"], "HKLM\\a%5Cb");
        assert_eq!(d["Details"], "DWORD (0x00000001)");
        assert_eq!(d["RuleName"], "-");
        assert_eq!(d["@version"], "1");
        assert_eq!(d["@timestamp"], "2019-12-05T04:47:35.000Z");
    }

    #[test]
    fn info_is_kept_outside_registry_events_and_other_channels_are_left_alone() {
        let rec = json!({"Channel": SYSMON_CHANNEL, "EventID": 1, "EventType": "INFO",
            "Message": "Process Create:\r\nEventType: X\r\nImage: C:\\a.exe"});
        let d = doc(&encode(&rec.to_string()), 0);
        assert_eq!(d["EventType"], "INFO");
        assert_eq!(d["Image"], "C:\\a.exe");
        // Security: the rendered fields go to their own namespace; nothing top-level changes.
        let sec = json!({"Channel": "Security", "EventID": 4624, "SubjectUserSid": "S-1-5-18",
            "Message": "An account was logged on.\r\n\r\nSubject:\r\n\tSecurity ID:\t\tS-1-5-18\r\n\tLogon ID:\t\t%9"});
        let d = doc(&encode(&sec.to_string()), 0);
        assert_eq!(d["MessageData"], json!({"Subject_SecurityID": "S-1-5-18"}));
        assert_eq!(d["MessageTitle"], "An account was logged on.");
        assert_eq!(d["SubjectUserSid"], "S-1-5-18");
        assert_eq!(d.len(), 8);
    }

    #[test]
    fn timestamp_from_utc_time_then_now() {
        let c =
            encode("{\"UtcTime\":\"2020-05-02 02:55:56.157\",\"@timestamp\":\"bad\"}\n{\"a\":1}\n");
        assert_eq!(doc(&c, 0)["@timestamp"], "2020-05-02T02:55:56.157Z");
        assert!(timestamp::parse_utc(doc(&c, 1)["@timestamp"].as_str().unwrap()).is_some());
    }

    #[test]
    fn broken_lines_are_rejected_with_a_reason() {
        let c = encode("{\"a\":1}\n{\"a\":\n[1]\n");
        assert_eq!(c.docs.len(), 1);
        assert_eq!(c.rejected.len(), 2);
        assert!(c.rejected[0].reason.starts_with("invalid JSON"));
        assert_eq!(c.raw.lines[c.rejected[0].line].number, 2);
        assert!(c.rejected[1].reason.contains("array"));
    }
}
