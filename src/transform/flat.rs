//! The fast path for flat records: the NXLog, PowerShell and `.evtx` shapes that make up
//! nearly every export, where each value is a string, number, boolean or null.
//!
//! Such a record is not built into a tree. Its fields are found in one strict pass over the line
//! ([`scan`]); the document is the record's own text where its fields are unchanged, and only
//! what the rules change or add is written anew. The rules themselves are the general path's
//! ([`super::Document`]), so both paths give the same documents; `tests/fast_path.rs` checks it
//! on every record of the test data.
//!
//! A record takes the general path instead (this returns `None`, having written nothing) when
//! it is anything else: invalid JSON (the general path says why), a Winlogbeat or Azure record,
//! objects, arrays of objects or arrays, control characters, keys with dots or escapes,
//! duplicate keys, a value the dialect rules would change (XML entities, an envelope number
//! that is neither an integer nor a numeric string, a numeric `Opcode`), a `\u` escape of a
//! surrogate, negative zero, or ECS fields being wanted.

use super::dialect::{self, Dialect, FieldRule};
use super::fields::Fields;
use super::id::DocId;
use super::keys::KeyIndex;
use super::{scan, Document, Encoder};
use chrono::{DateTime, Utc};
use std::borrow::Cow;

/// A value the rules gave a field.
enum Val<'a> {
    /// A string, escaped when written.
    Str(Cow<'a, str>),
    /// An integer made from a numeric string.
    Int(i64),
    /// `MessageData` (see [`Document::set_data`]).
    Data(Vec<(String, Vec<Cow<'a, str>>)>),
}

/// A field's value as the rules read it back ([`Fields`]).
enum Found<'v> {
    /// JSON text, as read from the record.
    Raw(&'v str),
    /// A string the rules set.
    Str(&'v str),
    /// An integer made from a numeric string.
    Int(i64),
}

/// A flat record on its way to becoming a document: the fields read from the record (as
/// JSON text), the values the rules gave some of them, and the fields they added after them.
struct Flat<'a> {
    /// The record's object text, which the fields read from it are slices of.
    text: &'a str,
    /// `(key, value text)` of each field read from the record, in order.
    read: &'a [(&'a str, &'a str)],
    /// New values of fields read from the record: `(index in read, value)`.
    changed: Vec<(usize, Val<'a>)>,
    /// Fields added after those read.
    added: Vec<(&'a str, Val<'a>)>,
    /// Where each key is: below `read.len()` in `read`, from there on in `added`.
    index: KeyIndex,
}

/// Appends the document line of a flat record to `buf`, as [`Encoder::encode`] does; returns
/// its id and time, or `None` (nothing written) when the record needs the general path.
///
/// `read` is scratch space for the record's fields, kept by the caller from one record to the
/// next.
pub(super) fn encode<'a>(
    enc: &Encoder,
    line: &'a [u8],
    number: u64,
    now: &str,
    read: &mut Vec<(&'a str, &'a str)>,
    buf: &mut Vec<u8>,
) -> Option<(DocId, Option<DateTime<Utc>>)> {
    if enc.settings.ecs {
        return None;
    }
    read.clear();
    read.reserve(super::RECORD_FIELDS);
    let mut message = None;
    let text = scan::flat_object(line, read, &mut message)?;
    if !no_negative_zero(read) {
        return None;
    }
    let mut doc = Flat::new(text, read, enc.settings.dialect)?;
    if let Some(message) = message.as_deref() {
        super::rendered_message(&mut doc, message);
    }
    super::stamp(&mut doc, now, &enc.settings);
    let identity = enc.identify(&doc, line, number);
    doc.write(buf);
    buf.push(b'\n');
    Some(identity)
}

/// Whether no value is negative zero, which the general path reads as a float and writes
/// `0.0` (an array holding `-0` in one of its strings counts too).
fn no_negative_zero(fields: &[(&str, &str)]) -> bool {
    fields.iter().all(|(_, raw)| match raw.as_bytes()[0] {
        b'-' => !raw.starts_with("-0"),
        b'[' => !raw.contains("-0"),
        _ => true,
    })
}

/// The string a JSON string's text holds, unescaped; `None` for other values. The text is as
/// [`scan`] found it.
fn string(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    let mut out = String::with_capacity(inner.len());
    scan::unescape(inner, &mut out)?;
    Some(Cow::Owned(out))
}

fn is_number(raw: &str) -> bool {
    raw.starts_with(|c: char| c == '-' || c.is_ascii_digit())
}

/// Whether a number's text is an integer that JSON writes back the same (`-0` is not).
fn plain_integer(raw: &str) -> bool {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !raw.starts_with("-0")
        && (raw.parse::<i64>().is_ok() || raw.parse::<u64>().is_ok())
}

impl<'a> Flat<'a> {
    /// The record's fields, with the dialect rules applied; `None` when they would change
    /// more than `Keywords` and numeric strings of envelope numbers.
    fn new(text: &'a str, read: &'a [(&'a str, &'a str)], forced: Dialect) -> Option<Self> {
        let mut doc = Flat {
            text,
            read,
            // Sized for a Sysmon record (the Message adds up to about 20 fields) so that
            // neither grows record after record.
            changed: Vec::with_capacity(4),
            added: Vec::with_capacity(32),
            index: KeyIndex::with_capacity(read.len() + 24),
        };
        for &(key, _) in read {
            doc.index.insert(key, |at| read[at].0).ok()?;
        }
        // Dialects that reshape records (Winlogbeat, Azure) take the general path.
        let dialect = forced.of(&doc);
        if !dialect.is_flat() {
            return None;
        }
        // XML entities are decoded by the general path.
        let entities =
            dialect.decodes_entities() && memchr::memchr(b'&', text.as_bytes()).is_some();
        for (i, &(key, raw)) in read.iter().enumerate() {
            let rule = dialect::rule(key);
            if entities && rule != FieldRule::Message && raw.starts_with('"') && raw.contains('&') {
                return None;
            }
            match rule {
                FieldRule::Plain | FieldRule::Message => {}
                FieldRule::Keywords => doc.changed.push((i, Val::Str(Cow::Owned(keywords(raw)?)))),
                // The general path renames a numeric opcode.
                FieldRule::Opcode if is_number(raw) => return None,
                FieldRule::Opcode => {}
                FieldRule::Integer if plain_integer(raw) => {}
                FieldRule::Integer => {
                    let n = dialect::parse_integer(&string(raw)?)?;
                    doc.changed.push((i, Val::Int(n)));
                }
            }
        }
        Some(doc)
    }

    /// The value of `key`; `None` without one, or for `MessageData` (an object).
    fn get(&self, key: &str) -> Option<Found<'_>> {
        let i = self.position(key)?;
        let set = match self.read.get(i) {
            Some(&(_, raw)) => match self.changed.iter().find(|(j, _)| *j == i) {
                Some((_, value)) => value,
                None => return Some(Found::Raw(raw)),
            },
            None => &self.added[i - self.read.len()].1,
        };
        match set {
            Val::Str(s) => Some(Found::Str(s)),
            Val::Int(n) => Some(Found::Int(*n)),
            Val::Data(_) => None,
        }
    }

    /// Writes the document as one line of JSON (without the newline): the record's own text
    /// where its fields are unchanged, then the fields added after them.
    fn write(&mut self, buf: &mut Vec<u8>) {
        let text = self.text.as_bytes();
        let base = text.as_ptr() as usize;
        let position = |raw: &str| raw.as_ptr() as usize - base;
        self.changed.sort_by_key(|(i, _)| *i);
        let mut copied = 0;
        for (i, value) in &self.changed {
            let raw = self.read[*i].1;
            buf.extend_from_slice(&text[copied..position(raw)]);
            write_value(buf, value);
            copied = position(raw) + raw.len();
        }
        let (_, last) = self.read[self.read.len() - 1];
        buf.extend_from_slice(&text[copied..position(last) + last.len()]);
        for (key, value) in &self.added {
            buf.push(b',');
            write_str(buf, key);
            buf.push(b':');
            write_value(buf, value);
        }
        buf.push(b'}');
    }
}

fn write_value(buf: &mut Vec<u8>, value: &Val<'_>) {
    match value {
        Val::Str(s) => write_str(buf, s),
        Val::Int(n) => buf.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Val::Data(data) => write_data(buf, data),
    }
}

/// `Keywords` as every dialect writes it, or `None` for a value the general path handles.
fn keywords(raw: &str) -> Option<String> {
    let mask = if is_number(raw) {
        let mask = raw
            .parse::<i64>()
            .map(|i| i as u64)
            .or_else(|_| raw.parse());
        Some(mask.ok()?)
    } else {
        dialect::parse_mask(&string(raw)?)
    };
    match mask {
        Some(m) => Some(dialect::mask_text(m)),
        None => string(raw).map(Cow::into_owned),
    }
}

fn write_str(buf: &mut Vec<u8>, s: &str) {
    sonic_rs::to_writer(&mut *buf, s).expect("writing a string to memory cannot fail");
}

fn write_data(buf: &mut Vec<u8>, data: &[(String, Vec<Cow<'_, str>>)]) {
    buf.push(b'{');
    for (i, (name, values)) in data.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_str(buf, name);
        buf.push(b':');
        match values.as_slice() {
            [one] => write_str(buf, one),
            many => {
                buf.push(b'[');
                for (j, value) in many.iter().enumerate() {
                    if j > 0 {
                        buf.push(b',');
                    }
                    write_str(buf, value);
                }
                buf.push(b']');
            }
        }
    }
    buf.push(b'}');
}

impl Fields for Flat<'_> {
    fn has(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    fn str(&self, key: &str) -> Option<Cow<'_, str>> {
        match self.get(key)? {
            Found::Raw(raw) => string(raw),
            Found::Str(s) => Some(Cow::Borrowed(s)),
            Found::Int(_) => None,
        }
    }

    fn text(&self, key: &str) -> Option<Cow<'_, str>> {
        match self.get(key)? {
            Found::Raw(raw) if raw.starts_with('"') => string(raw).filter(|s| !s.is_empty()),
            Found::Raw(raw) if raw.bytes().all(|b| b.is_ascii_digit()) => Some(Cow::Borrowed(raw)),
            // Other numbers as the general path writes them (`1.50` is `1.5`).
            Found::Raw(raw) if is_number(raw) => sonic_rs::from_str::<serde_json::Number>(raw)
                .ok()
                .map(|n| Cow::Owned(n.to_string())),
            Found::Raw(_) => None,
            Found::Str(s) => (!s.is_empty()).then_some(Cow::Borrowed(s)),
            Found::Int(n) => Some(Cow::Owned(itoa::Buffer::new().format(n).to_owned())),
        }
    }
}

impl<'a> Document<'a> for Flat<'a> {
    fn set(&mut self, key: &'a str, value: Cow<'a, str>) {
        self.put(key, Val::Str(value));
    }

    fn set_data(&mut self, data: Vec<(String, Vec<Cow<'a, str>>)>) {
        self.put("MessageData", Val::Data(data));
    }
}

/// The key at position `at`: among those read, then among those added.
fn key_at<'a>(read: &[(&'a str, &'a str)], added: &[(&'a str, Val<'a>)], at: usize) -> &'a str {
    match read.get(at) {
        Some(&(key, _)) => key,
        None => added[at - read.len()].0,
    }
}

impl<'a> Flat<'a> {
    /// Where `key` is: below `read.len()` in `read`, from there on in `added`.
    fn position(&self, key: &str) -> Option<usize> {
        self.index.get(key, |at| key_at(self.read, &self.added, at))
    }

    fn put(&mut self, key: &'a str, value: Val<'a>) {
        match self.position(key) {
            Some(i) if i < self.read.len() => {
                match self.changed.iter_mut().find(|(j, _)| *j == i) {
                    Some((_, old)) => *old = value,
                    None => self.changed.push((i, value)),
                }
            }
            Some(i) => self.added[i - self.read.len()].1 = value,
            None => {
                let (read, added) = (self.read, &self.added);
                let at = self.index.insert(key, |at| key_at(read, added, at));
                debug_assert_eq!(at, Ok(read.len() + added.len()));
                self.added.push((key, value));
            }
        }
    }
}
