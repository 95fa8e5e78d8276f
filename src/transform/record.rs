//! Reading one record: a JSON object into a map sized for a whole event at once (events have
//! dozens of fields; a map grown from empty is rehashed four times on the way).

use super::dialect::is_integer_field;
use super::RECORD_FIELDS;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// A line read as JSON: an object, or what else it was.
pub enum Record {
    /// A JSON object: a record.
    Object(Map<String, Value>),
    /// Valid JSON, but not an object (`"a number"`, `"an array"`, ...).
    Other(&'static str),
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Record;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        let mut out =
            Map::with_capacity(map.size_hint().unwrap_or(RECORD_FIELDS).max(RECORD_FIELDS));
        while let Some(k) = map.next_key::<String>()? {
            let v = if is_integer_field(&k) {
                map.next_value::<Envelope>()?.0
            } else {
                map.next_value::<Value>()?
            };
            out.insert(k, v);
        }
        Ok(Record::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Record, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Record::Other("an array"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Record, E> {
        Ok(Record::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Record, E> {
        Ok(Record::Other("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Record, E> {
        Ok(Record::Other("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Record, E> {
        Ok(Record::Other("a number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Record, E> {
        Ok(Record::Other("a string"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Record, E> {
        Ok(Record::Other("null"))
    }
}

/// The value of an envelope integer field, read so that no number silently becomes a float:
/// `-0` is the integer 0, and an integer too large for 64 bits (or any other number that is no
/// integer) keeps its exact text as a string, which the dialect rules then move to
/// `<field>Text`.
struct Envelope(Value);

/// `-0`, `-0.0`, `-0e5` and the like.
fn is_negative_zero(text: &str) -> bool {
    text.strip_prefix('-')
        .is_some_and(|t| t.parse::<f64>().is_ok_and(|f| f == 0.0))
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = sonic_rs::LazyValue::deserialize(d)?;
        let text = raw.as_raw_str();
        if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            return sonic_rs::from_str::<Value>(text)
                .map(Envelope)
                .map_err(de::Error::custom);
        }
        let value = match (text.parse::<i64>(), text.parse::<u64>()) {
            (Ok(n), _) => Value::from(n),
            (_, Ok(n)) => Value::from(n),
            _ if is_negative_zero(text) => Value::from(0),
            _ => Value::String(text.to_owned()),
        };
        Ok(Envelope(value))
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RecordVisitor)
    }
}
