//! What the targets hold evtship's JSON output to: JSON text by RFC 8259's grammar, checked for
//! its syntax alone (UTF-8, then serde's `IgnoredAny`). Not by parsing into serde_json's
//! `Value`, which refuses JSON that evtship rightly passes on:
//! - numbers beyond an `f64` (`1e400`): the grammar puts no bound on them, and the engine reads
//!   them as text (or refuses them for a numeric field, and the document is dead-lettered with
//!   the reason);
//! - an object whose first key is serde_json's private `RawValue` token (with its `raw_value`
//!   feature, which evtship uses).

use serde::de::IgnoredAny;
use std::collections::HashMap;

/// One JSON value, nothing after it.
pub fn is_json(text: &[u8]) -> bool {
    std::str::from_utf8(text).is_ok() && serde_json::from_slice::<IgnoredAny>(text).is_ok()
}

/// One JSON object, nothing after it.
pub fn is_json_object(text: &[u8]) -> bool {
    std::str::from_utf8(text).is_ok()
        && serde_json::from_slice::<HashMap<String, IgnoredAny>>(text).is_ok()
}
