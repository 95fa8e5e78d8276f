//! The composable index template evtship installs for its index, so that searches written
//! against a Logstash-fed index (`Image.keyword`, ...) work unchanged.

use super::{EsClient, EsError, ServerInfo};
use crate::common::IndexName;
use crate::transform::dialect::INTEGER_FIELDS;
use elasticsearch::indices::IndicesPutIndexTemplateParts;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::num::NonZeroUsize;

/// How the index template is made (the `[template]` section): the composable template
/// installed at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplateSettings {
    /// Install or update the template at start.
    pub install: bool,
    /// Template name; default `evtship-<index>`.
    pub name: Option<String>,
    /// Primary shards of the index.
    pub shards: NonZeroUsize,
    /// Replicas; the cluster default (1) when unset.
    pub replicas: Option<usize>,
    /// Strings longer than this are not indexed in the `.keyword` sub-field.
    pub ignore_above: NonZeroUsize,
    /// Elasticsearch ILM policy attached to the index (ignored, with a warning, on OpenSearch).
    pub ilm_policy: Option<String>,
    /// The index's field limit (`index.mapping.total_fields.limit`). Every string field counts
    /// twice (text and `.keyword`): all of ../shared/datasets makes 956 fields.
    pub total_fields_limit: NonZeroUsize,
    /// How often the engine makes new documents searchable (`index.refresh_interval`); the
    /// engine's default (1 s) when unset.
    pub refresh_interval: Option<RefreshInterval>,
}

/// An `index.refresh_interval`: a whole number with a time unit (`"5s"`, `"500ms"`, `"1m"`),
/// or `"-1"` (only an explicit `_refresh` makes documents searchable).
///
/// Unset, the engine's 1 s applies, which tailed files and listeners need (a line appended is
/// searchable within 2 s). A backfill gains from a longer one: into the local engine the 170 MB
/// bench input indexed 1.29x faster with 5 s, 1.38x with 30 s (medians of 3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RefreshInterval(String);

impl RefreshInterval {
    /// The interval as the engine reads it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RefreshInterval {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        const UNITS: [&str; 7] = ["nanos", "micros", "ms", "s", "m", "h", "d"];
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let valid = t == "-1" || (!digits.is_empty() && UNITS.contains(&unit));
        if valid {
            Ok(Self(t.to_owned()))
        } else {
            Err(format!(
                "refresh_interval `{text}` is not a duration such as \"5s\", \"500ms\" or \"1m\" \
                 (or \"-1\": only on request)"
            ))
        }
    }
}

impl Default for TemplateSettings {
    fn default() -> Self {
        Self {
            install: true,
            name: None,
            shards: NonZeroUsize::MIN,
            replicas: None,
            ignore_above: NonZeroUsize::new(1024).expect("non-zero"),
            total_fields_limit: NonZeroUsize::new(2000).expect("non-zero"),
            ilm_policy: None,
            refresh_interval: None,
        }
    }
}

impl TemplateSettings {
    /// The template's name for `index`: as set, else `evtship-<index>` (a dated index's
    /// pattern without its `*`).
    pub fn name_for(&self, index: &IndexName) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("evtship-{}", index.pattern().replace('*', "")))
    }
}

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
/// - New documents become searchable every `refresh_interval` when it is set.
/// - `@timestamp` is a date, `@version` a keyword; date and numeric detection are off, so that a
///   date-looking string never fixes a field's type.
/// - The ECS fields evtship adds (`ecs = true`) get their ECS types: keywords, `long` ports and
///   pids, `ip` addresses.
pub fn body(index: &IndexName, t: &TemplateSettings, features: Features) -> Value {
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
    if let Some(interval) = &t.refresh_interval {
        index_settings["refresh_interval"] = json!(interval.as_str());
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
fn add_ecs(properties: &mut Map<String, Value>, string: &Value, t: &TemplateSettings) {
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

/// What the documents need of the template beyond its settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted {
    /// ECS field mappings.
    pub ecs: bool,
    /// Declare a data stream.
    pub data_stream: bool,
}

/// Installs or updates the template for `index`, for the server `info` describes; returns its
/// name.
pub async fn install(
    client: &EsClient,
    index: &IndexName,
    t: &TemplateSettings,
    wanted: Wanted,
    info: &ServerInfo,
) -> Result<String, EsError> {
    let name = t.name_for(index);
    let flavor = Flavor::of(&info.distribution, &info.version);
    if t.ilm_policy.is_some() && flavor != Flavor::Elasticsearch {
        tracing::warn!(
            "ILM is an Elasticsearch feature: ilm_policy is not applied on {} (use an ISM policy there)",
            info.distribution
        );
    }
    let features = Features {
        ecs: wanted.ecs,
        flavor,
        data_stream: wanted.data_stream,
    };
    let body = body(index, t, features);
    let (_, node) = client.pick();
    let response = node
        .client
        .indices()
        .put_index_template(IndicesPutIndexTemplateParts::Name(&name))
        .body(body)
        .send()
        .await
        .map_err(|source| EsError::Unreachable {
            url: node.shown_url.clone(),
            source,
        })?;
    let status = response.status_code().as_u16();
    if !(200..300).contains(&status) {
        let body = response.text().await.unwrap_or_default();
        return Err(EsError::refused(
            &format!("installing index template {name}"),
            status,
            &body,
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_index_and_maps_keywords() {
        let t = TemplateSettings {
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
        assert!(b["template"]["settings"]["index"]["refresh_interval"].is_null());
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

    #[test]
    fn refresh_interval_takes_durations_and_minus_one_only() {
        for ok in ["5s", "500ms", "1m", "30s", "-1", " 2h "] {
            assert!(RefreshInterval::try_from(ok.to_owned()).is_ok(), "{ok}");
        }
        for bad in ["", "5", "s", "5 s", "five seconds", "-5s", "1.5s", "5sec"] {
            let e = RefreshInterval::try_from(bad.to_owned()).unwrap_err();
            assert!(e.contains("refresh_interval"), "{bad}: {e}");
        }
        assert_eq!(
            RefreshInterval::try_from(" 2h ".to_owned())
                .unwrap()
                .as_str(),
            "2h"
        );
    }
}
