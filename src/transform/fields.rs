//! Read access to a document's top-level fields, whichever form the document is held in: a
//! `serde_json` map (the general path) or a flat record being rewritten in place ([`super::flat`]).
//! The rules that only read fields (`@timestamp`, the document id) are written once against it.

use serde_json::{Map, Value};
use std::borrow::Cow;

/// The top-level fields of a document.
pub trait Fields {
    /// Whether the document has `key`.
    fn has(&self, key: &str) -> bool;

    /// The value of `key` when it is a JSON string.
    fn str(&self, key: &str) -> Option<Cow<'_, str>>;

    /// The text of `key` when it is a non-empty string, or a number as JSON writes it.
    fn text(&self, key: &str) -> Option<Cow<'_, str>>;
}

impl Fields for Map<String, Value> {
    fn has(&self, key: &str) -> bool {
        self.contains_key(key)
    }

    fn str(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key).and_then(Value::as_str).map(Cow::Borrowed)
    }

    fn text(&self, key: &str) -> Option<Cow<'_, str>> {
        match self.get(key)? {
            Value::String(s) if !s.is_empty() => Some(Cow::Borrowed(s)),
            Value::Number(n) => Some(Cow::Owned(n.to_string())),
            _ => None,
        }
    }
}
