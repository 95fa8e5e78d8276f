//! The composable index template evtship installs for its index, so that searches written
//! against a Logstash-fed index (`Image.keyword`, ...) work unchanged.

use crate::config::{IndexName, TemplateSection};
use serde_json::{json, Value};

/// Template priority: above the engine's built-in templates and most hand-made ones.
pub const PRIORITY: u64 = 200;

/// The body of `PUT _index_template/<name>` for `index`.
///
/// Strings are `text` with a `.keyword` sub-field (`ignore_above` as configured), `@timestamp` is
/// a date, `@version` a keyword, date detection is off (so that a date-looking string never fixes
/// a field's type). `Keywords` (a number in NXLog exports, a hex string in PowerShell ones and
/// `.evtx`) and `Opcode` (a name in NXLog exports, a number in `.evtx`) are mapped as strings, so
/// that every dialect fits in one index whichever comes first.
pub fn body(index: &IndexName, t: &TemplateSection) -> Value {
    let string = json!({
        "type": "text",
        "fields": { "keyword": { "type": "keyword", "ignore_above": t.ignore_above.get() } }
    });
    let mut index_settings = json!({ "number_of_shards": t.shards.get() });
    if let Some(replicas) = t.replicas {
        index_settings["number_of_replicas"] = json!(replicas);
    }
    json!({
        "index_patterns": [index.as_str()],
        "priority": PRIORITY,
        "template": {
            "settings": { "index": index_settings },
            "mappings": {
                "date_detection": false,
                "numeric_detection": false,
                "dynamic_templates": [
                    { "strings_as_text_and_keyword": {
                        "match_mapping_type": "string",
                        "mapping": string.clone()
                    } }
                ],
                "properties": {
                    "@timestamp": { "type": "date" },
                    "@version": { "type": "keyword" },
                    "Keywords": string.clone(),
                    "Opcode": string
                }
            }
        },
        "_meta": { "managed_by": "evtship", "evtship_version": env!("CARGO_PKG_VERSION") }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_index_and_maps_keywords() {
        let t = TemplateSection {
            replicas: Some(0),
            ..Default::default()
        };
        let b = body(
            &IndexName::try_from("logstashindex".to_owned()).unwrap(),
            &t,
        );
        assert_eq!(b["index_patterns"][0], "logstashindex");
        assert_eq!(b["template"]["mappings"]["date_detection"], false);
        assert_eq!(b["template"]["settings"]["index"]["number_of_replicas"], 0);
        let dynamic =
            &b["template"]["mappings"]["dynamic_templates"][0]["strings_as_text_and_keyword"];
        assert_eq!(
            dynamic["mapping"]["fields"]["keyword"]["ignore_above"],
            1024
        );
        assert_eq!(
            b["template"]["mappings"]["properties"]["@version"]["type"],
            "keyword"
        );
    }
}
