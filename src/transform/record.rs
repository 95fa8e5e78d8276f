//! Reading one record: a JSON object into a map sized for a whole event at once (events have
//! dozens of fields; a map grown from empty is rehashed four times on the way).

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
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
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

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RecordVisitor)
    }
}
