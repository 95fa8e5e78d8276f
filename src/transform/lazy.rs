//! The fast path of [`super::Encoder`]: a record is parsed once into its top-level members as
//! raw JSON slices, without building the values nobody reads; the transformation runs on a
//! *view* of the record; the document is written by copying the untouched members' bytes.
//!
//! The view holds every key of the record, in order. The values the rules read or write (the
//! envelope, times, `Message`, anything that is not a plain scalar, any string an XML entity
//! may hide in) are real; every other value is a `null` placeholder. [`super::normalise`], the
//! very function of the reference path, runs on the view. Then a placeholder still standing is
//! written as the member's original bytes, and every other value is serialised.
//!
//! A record takes the reference path instead when the fast path could not reproduce it exactly:
//! Elastic Common Schema fields asked for, a dialect that renames or moves arbitrary fields
//! (Winlogbeat, Azure), objects or dotted keys to flatten, a key given twice, or anything that
//! is not a JSON object (the reference path then says why). A test compares both paths on every
//! fixture and on the shared datasets.

use super::dialect::{self, Dialect};
use super::Settings;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// A key as read: borrowed from the line unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// The top-level members of a record, in order, values as raw JSON.
pub(crate) struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(48));
                while let Some((Key(k), v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    members.push((k, v));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(MembersVisitor)
    }
}

/// Keys whose values the rules read or change: always real in the view.
fn needed(key: &str) -> bool {
    matches!(
        key,
        "Channel"
            | "SourceName"
            | "EventID"
            | "EventType"
            | "Hostname"
            | "RecordNumber"
            | "Computer"
            | "EventRecordID"
            | "@timestamp"
            | "@version"
            | "EventTime"
            | "UtcTime"
            | "TimeCreated"
            | "TimeGenerated"
            | "TenantId"
            | "EventReceivedTime"
            | "SourceModuleType"
            | "Message"
            | "MessageTitle"
            | "MessageData"
            | "Keywords"
            | "Opcode"
            | "OpcodeValue"
            | "ExecutionProcessID"
            | "ThreadID"
            | "Task"
            | "Level"
            | "Version"
            | "SeverityValue"
            | "EventData"
            | "event_data"
            | "log_name"
            | "computer_name"
    ) || super::dialect::INTEGER_FIELDS.contains(&key)
}

/// Whether a raw value can stand as a placeholder: a scalar no rule looks into.
fn plain(raw: &str) -> bool {
    match raw.as_bytes().first() {
        Some(b'{' | b'[') | None => false,
        // A string: unless an XML entity may hide in it (decoded in NXLog records).
        Some(b'"') => !raw.contains('&') && !raw.contains("\\u0026"),
        Some(_) => true,
    }
}

/// A record's view, transformed, and its members; `None` when the record must take the
/// reference path.
pub(crate) fn transform<'a>(
    line: &'a [u8],
    now: &str,
    settings: &Settings,
) -> Option<(Map<String, Value>, Members<'a>)> {
    let dialects = [Dialect::Auto, Dialect::Nxlog, Dialect::Powershell];
    if settings.ecs || !dialects.contains(&settings.dialect) {
        return None;
    }
    let members: Members<'a> = serde_json::from_slice(line).ok()?;
    let mut view = Map::with_capacity(members.0.len() + 24);
    for (key, raw) in &members.0 {
        let text = raw.get();
        // Flattening renames and moves fields: the reference path does it.
        let nested =
            text.starts_with('{') || (text.starts_with('[') && text[1..].contains(['{', '[']));
        if nested || key.contains('.') {
            return None;
        }
        let value = if needed(key) || !plain(text) {
            serde_json::from_str(text).ok()?
        } else {
            Value::Null
        };
        if view.insert(key.to_string(), value).is_some() {
            return None;
        }
    }
    if settings.dialect == Dialect::Auto
        && !matches!(dialect::detect(&view), Dialect::Nxlog | Dialect::Powershell)
    {
        return None;
    }
    super::normalise(&mut view, now, settings);
    Some((view, members))
}

/// Writes the document: placeholders as the members' original bytes, other values serialised.
pub(crate) fn write(view: &Map<String, Value>, members: &Members<'_>, out: &mut Vec<u8>) {
    let members = &members.0;
    let mut cursor = 0;
    out.push(b'{');
    for (i, (key, value)) in view.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key).expect("a string serialises");
        out.push(b':');
        // `Message` is read, never changed, by the rules of the fast path's dialects: its
        // original bytes are written (it is the largest value of a record).
        if value.is_null() || (key == "Message" && value.is_string()) {
            // Placeholders keep their relative order: the rules only remove keys or append.
            if let Some(at) = members[cursor..].iter().position(|(k, _)| k == key) {
                out.extend_from_slice(members[cursor + at].1.get().as_bytes());
                cursor += at + 1;
                continue;
            }
        }
        serde_json::to_writer(&mut *out, value).expect("a JSON value serialises");
    }
    out.push(b'}');
}
