//! What the targets hold evtship's JSON output to: JSON text by RFC 8259's grammar. The grammar
//! puts no bound on numbers, and evtship keeps them as they were written (`1e400` included: the
//! engine reads such a value as text, or rejects it for a numeric field, and that document is
//! dead-lettered with the reason); serde_json's `Value` refuses what an `f64` cannot hold, so
//! only that refusal falls back to a check of the syntax alone.

use serde::de::IgnoredAny;
use std::collections::HashMap;

/// One JSON value, nothing after it.
pub fn is_json(text: &[u8]) -> bool {
    match serde_json::from_slice::<serde_json::Value>(text) {
        Ok(_) => true,
        Err(e) if out_of_range(&e) => {
            std::str::from_utf8(text).is_ok() && serde_json::from_slice::<IgnoredAny>(text).is_ok()
        }
        Err(_) => false,
    }
}

/// One JSON object, nothing after it.
pub fn is_json_object(text: &[u8]) -> bool {
    match serde_json::from_slice::<serde_json::Value>(text) {
        Ok(v) => v.is_object(),
        Err(e) if out_of_range(&e) => {
            std::str::from_utf8(text).is_ok()
                && serde_json::from_slice::<HashMap<String, IgnoredAny>>(text).is_ok()
        }
        Err(_) => false,
    }
}

fn out_of_range(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("number out of range")
}
