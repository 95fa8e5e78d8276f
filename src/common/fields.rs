//! Fields added to a record given as JSON text, without parsing it into a tree: the record's
//! own text, then the fields it does not have already, before its closing brace.

use serde::de::IgnoredAny;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;

/// `object` (the text of one JSON object) with each of `fields` whose name it lacks appended;
/// `None` when `object` is not a JSON object.
pub fn append_missing(object: &[u8], fields: &[(&str, Value)]) -> Option<Vec<u8>> {
    let body = object.trim_ascii();
    if !(body.starts_with(b"{") && body.ends_with(b"}")) {
        return None;
    }
    let keys: HashMap<Cow<'_, str>, IgnoredAny> = serde_json::from_slice(body).ok()?;
    let mut out = Vec::with_capacity(body.len() + 40 * fields.len());
    out.extend_from_slice(&body[..body.len() - 1]);
    let mut first = keys.is_empty();
    for (k, v) in fields {
        if keys.contains_key(*k) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut out, k).expect("a string");
        out.push(b':');
        serde_json::to_writer(&mut out, v).expect("a JSON value");
    }
    out.push(b'}');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::append_missing;
    use serde_json::{json, Value};

    #[test]
    fn missing_fields_are_appended_and_present_ones_left() {
        let fields = [("a", json!(9)), ("b", json!("x"))];
        let out = append_missing(br#" {"a":1} "#, &fields).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap(),
            json!({"a": 1, "b": "x"})
        );
        let out = append_missing(b"{}", &fields).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a":9,"b":"x"}"#);
        assert!(append_missing(b"[1]", &fields).is_none());
        assert!(append_missing(b"{\"a\":", &fields).is_none());
    }
}
