//! The composable index template evtship installs for its index, so that searches written
//! against a Logstash-fed index (`Image.keyword`, ...) work unchanged.

use crate::config::{IndexName, TemplateSection};
use crate::transform::dialect::INTEGER_FIELDS;
use serde_json::{json, Map, Value};

/// Template priority: above the engine's built-in templates and most hand-made ones.
pub const PRIORITY: u64 = 200;

/// What the target engine offers for an object of arbitrary keys mapped as one field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Flavor {
    /// Elasticsearch: `flattened`.
    #[default]
    Elasticsearch,
    /// OpenSearch 2.7 and later: `flat_object`.
    OpenSearch,
    /// Older OpenSearch: no such type; the object is kept in `_source`, not searchable.
    OldOpenSearch,
}

impl Flavor {
    /// The flavor of a server, from `GET /`.
    pub fn of(distribution: &str, version: &str) -> Self {
        if distribution != "opensearch" {
            return Self::Elasticsearch;
        }
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if (major, minor) >= (2, 7) {
            Self::OpenSearch
        } else {
            Self::OldOpenSearch
        }
    }

    fn key_value_object(self, ignore_above: usize) -> Value {
        match self {
            Self::Elasticsearch => json!({ "type": "flattened", "ignore_above": ignore_above }),
            Self::OpenSearch => json!({ "type": "flat_object" }),
            Self::OldOpenSearch => json!({ "type": "object", "enabled": false }),
        }
    }
}

/// What the template must provide beyond the `[template]` section.
#[derive(Debug, Clone, Copy, Default)]
pub struct Features {
    /// ECS field mappings.
    pub ecs: bool,
    /// The engine family and version.
    pub flavor: Flavor,
    /// Declare a data stream.
    pub data_stream: bool,
}

/// The body of `PUT _index_template/<name>` for `index`.
///
/// - Strings are `text` with a `.keyword` sub-field (`ignore_above` as configured).
/// - Numbers and booleans whose field is not listed below are mapped the same way: dialects
///   disagree on them (`"ProcessId": "3124"` in one, `3124` in another), and a text field takes
///   both, where a number field would reject the text. Range queries need the listed fields.
/// - `MessageData` (fields of rendered Security-style messages) is one `flattened` field
///   (`flat_object` on OpenSearch): searchable as `MessageData.Subject_SecurityID`, yet one
///   field in the mapping whatever the messages hold.
/// - The envelope integers ([`INTEGER_FIELDS`]: `EventID`, `RecordNumber`, ...) are `long`;
///   evtship makes them integers in every dialect.
/// - `@timestamp` is a date, `@version` a keyword; date and numeric detection are off, so that a
///   date-looking string never fixes a field's type.
/// - The ECS fields evtship adds (`ecs = true`) get their ECS types: keywords, `long` ports and
///   pids, `ip` addresses.
pub fn body(index: &IndexName, t: &TemplateSection, features: Features) -> Value {
    let Features {
        ecs,
        flavor,
        data_stream,
    } = features;
    let string = json!({
        "type": "text",
        "fields": { "keyword": { "type": "keyword", "ignore_above": t.ignore_above.get() } }
    });
    let mut index_settings = json!({
        "number_of_shards": t.shards.get(),
        "mapping": { "total_fields": { "limit": t.total_fields_limit.get() } }
    });
    if let Some(replicas) = t.replicas {
        index_settings["number_of_replicas"] = json!(replicas);
    }
    if let Some(policy) = &t.ilm_policy {
        if flavor == Flavor::Elasticsearch {
            index_settings["lifecycle"] = json!({ "name": policy });
        }
    }
    let mut properties = Map::new();
    properties.insert("@timestamp".into(), json!({ "type": "date" }));
    properties.insert("@version".into(), json!({ "type": "keyword" }));
    for field in INTEGER_FIELDS {
        properties.insert((*field).into(), json!({ "type": "long" }));
    }
    // The rendered-message fields of every channel, as one field: they never grow the mapping.
    properties.insert(
        "MessageData".into(),
        flavor.key_value_object(t.ignore_above.get()),
    );
    if ecs {
        add_ecs(&mut properties, &string, t);
    }
    let dynamic = |name: &str, kind: &str| json!({ name: { "match_mapping_type": kind, "mapping": string.clone() } });
    let mut body = json!({
        "index_patterns": [index.pattern()],
        "priority": PRIORITY,
        "template": {
            "settings": { "index": index_settings },
            "mappings": {
                "date_detection": false,
                "numeric_detection": false,
                "dynamic_templates": [
                    dynamic("strings_as_text_and_keyword", "string"),
                    dynamic("integers_as_text_and_keyword", "long"),
                    dynamic("decimals_as_text_and_keyword", "double"),
                    dynamic("booleans_as_text_and_keyword", "boolean"),
                ],
                "properties": properties
            }
        },
        "_meta": { "managed_by": "evtship", "evtship_version": env!("CARGO_PKG_VERSION") }
    });
    if data_stream {
        body["data_stream"] = json!({});
    }
    body
}

/// ECS types of the fields [`crate::transform::ecs`] adds. Only with `ecs = true`: ECS `host`
/// is an object, where NXLog's `host` is a string.
fn add_ecs(properties: &mut Map<String, Value>, string: &Value, t: &TemplateSection) {
    let keyword = json!({ "type": "keyword", "ignore_above": t.ignore_above.get() });
    let long = json!({ "type": "long" });
    let ip = json!({ "type": "ip" });
    properties.insert(
        "event".into(),
        object(&[
            ("code", &keyword),
            ("provider", &keyword),
            ("module", &keyword),
            ("category", &keyword),
            ("type", &keyword),
            ("action", &keyword),
        ]),
    );
    let parent = object(&[
        ("executable", &keyword),
        ("name", &keyword),
        ("pid", &long),
        ("command_line", string),
        ("entity_id", &keyword),
    ]);
    let mut process = object(&[
        ("executable", &keyword),
        ("name", &keyword),
        ("pid", &long),
        ("command_line", string),
        ("entity_id", &keyword),
        ("working_directory", &keyword),
    ]);
    process["properties"]["parent"] = parent;
    properties.insert("process".into(), process);
    properties.insert("source".into(), object(&[("ip", &ip), ("port", &long)]));
    properties.insert(
        "destination".into(),
        object(&[("ip", &ip), ("port", &long)]),
    );
    properties.insert("host".into(), object(&[("name", &keyword)]));
    properties.insert("observer".into(), object(&[("hostname", &keyword)]));
    properties.insert(
        "user".into(),
        object(&[("name", &keyword), ("domain", &keyword)]),
    );
    properties.insert(
        "file".into(),
        object(&[
            ("path", &keyword),
            ("name", &keyword),
            ("directory", &keyword),
        ]),
    );
    let mut registry = object(&[
        ("path", &keyword),
        ("hive", &keyword),
        ("key", &keyword),
        ("value", &keyword),
    ]);
    registry["properties"]["data"] = object(&[("strings", &keyword)]);
    properties.insert("registry".into(), registry);
    properties.insert("network".into(), object(&[("transport", &keyword)]));
    let mut dns = object(&[]);
    dns["properties"]["question"] = object(&[("name", &keyword)]);
    properties.insert("dns".into(), dns);
}

fn object(fields: &[(&str, &Value)]) -> Value {
    let props: Map<String, Value> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).clone()))
        .collect();
    json!({ "properties": props })
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
            Features {
                ecs: true,
                flavor: Flavor::OpenSearch,
                data_stream: false,
            },
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
