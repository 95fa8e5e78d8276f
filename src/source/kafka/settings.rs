//! Kafka settings: `kafka://BROKER[,BROKER]/TOPIC[,TOPIC]?group=NAME` inputs and outputs, and
//! the `[kafka]` section (brokers, topics, group, offsets, fetch limits, TLS and SASL), made
//! into librdkafka properties.

use crate::common::ByteSize;
use rdkafka::ClientConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `[kafka]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSection {
    /// Bootstrap brokers, `HOST:PORT`.
    #[serde(default)]
    pub brokers: Vec<String>,
    /// Topics to consume (an input without a `kafka://` URI).
    #[serde(default)]
    pub topics: Vec<String>,
    /// The consumer group (default `evtship`).
    pub group_id: Option<String>,
    /// The client id brokers see (default `evtship`).
    pub client_id: Option<String>,
    /// Where a group without a committed offset starts: `earliest` (default) or `latest`.
    pub auto_offset_reset: Option<String>,
    /// Most bytes fetched ahead per consumer (librdkafka's `queued.max.messages.kbytes`;
    /// default 16MiB): what a paused pipeline holds in memory at most.
    pub fetch_max_bytes: Option<ByteSize>,
    /// The group's session timeout (default 10000 ms): how soon a dead consumer's partitions
    /// go to the others.
    pub session_timeout_ms: Option<u32>,
    /// Keep where each record came from: `KafkaTopic`, `KafkaPartition`, `KafkaOffset` and
    /// `KafkaKey` fields.
    #[serde(default)]
    pub metadata: bool,
    /// `plaintext` (default), `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub security_protocol: Option<String>,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub sasl_mechanism: Option<String>,
    /// SASL user.
    pub sasl_username: Option<String>,
    /// SASL password (`${ENV}` works), or `sasl_password_file`.
    pub sasl_password: Option<String>,
    /// A file holding the SASL password.
    pub sasl_password_file: Option<PathBuf>,
    /// TLS files.
    pub tls: Option<KafkaTls>,
    /// More librdkafka properties, as they are named there.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// `[kafka.tls]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTls {
    /// CA certificates (PEM).
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM).
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM).
    pub key_file: Option<PathBuf>,
}

/// What is wrong with the Kafka settings.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSettingsError {
    /// A `kafka://` URI that does not parse.
    #[error("`{uri}`: {problem}")]
    Uri {
        /// The URI (without credentials).
        uri: String,
        /// What is wrong.
        problem: String,
    },
    /// A setting out of its range.
    #[error("[kafka] {field}: {problem}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// The consumer's settings, resolved.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// Bootstrap brokers, comma-separated.
    pub brokers: String,
    /// Topics.
    pub topics: Vec<String>,
    /// The consumer group.
    pub group: String,
    /// Keep topic, partition, offset and key as fields.
    pub metadata: bool,
    /// Every librdkafka property (security and options included).
    pub properties: BTreeMap<String, String>,
}

/// A `kafka://BROKERS/TOPICS?query` URI, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaUri {
    /// Brokers, comma-separated.
    pub brokers: String,
    /// Topics.
    pub topics: Vec<String>,
    /// `?key=value` pairs.
    pub query: BTreeMap<String, String>,
}

impl KafkaUri {
    /// Parses `kafka://BROKER[,BROKER]/TOPIC[,TOPIC][?group=NAME&...]`.
    pub fn parse(uri: &str) -> Result<Self, KafkaSettingsError> {
        let bad = |problem: &str| KafkaSettingsError::Uri {
            uri: crate::redact::url(uri),
            problem: problem.to_owned(),
        };
        let rest = uri
            .strip_prefix("kafka://")
            .ok_or_else(|| bad("not a kafka:// URI"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (brokers, topics) = path
            .split_once('/')
            .ok_or_else(|| bad("no topic: use kafka://BROKER/TOPIC"))?;
        if brokers.is_empty() || brokers.split(',').any(|b| !b.contains(':')) {
            return Err(bad("brokers are HOST:PORT, comma-separated"));
        }
        let topics: Vec<String> = topics
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        if topics.is_empty() {
            return Err(bad("no topic: use kafka://BROKER/TOPIC"));
        }
        let mut pairs = BTreeMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad("query pairs are key=value"))?;
            pairs.insert(k.to_owned(), v.to_owned());
        }
        Ok(Self {
            brokers: brokers.to_owned(),
            topics,
            query: pairs,
        })
    }
}

impl KafkaSection {
    /// The librdkafka properties of the connection (brokers aside): client id, security,
    /// and the options given.
    pub fn connection(&self) -> Result<BTreeMap<String, String>, KafkaSettingsError> {
        let mut p = BTreeMap::new();
        p.insert(
            "client.id".to_owned(),
            self.client_id.clone().unwrap_or_else(|| "evtship".into()),
        );
        if let Some(proto) = &self.security_protocol {
            let proto = proto.to_ascii_lowercase();
            if !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&proto.as_str()) {
                return Err(KafkaSettingsError::Invalid {
                    field: "security_protocol",
                    problem: format!("`{proto}`: use plaintext, ssl, sasl_plaintext or sasl_ssl"),
                });
            }
            p.insert("security.protocol".into(), proto);
        }
        if let Some(m) = &self.sasl_mechanism {
            p.insert("sasl.mechanism".into(), m.clone());
        }
        if let Some(u) = &self.sasl_username {
            p.insert("sasl.username".into(), u.clone());
        }
        let password = match (&self.sasl_password, &self.sasl_password_file) {
            (Some(pw), _) => Some(pw.clone()),
            (None, Some(file)) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| KafkaSettingsError::Invalid {
                        field: "sasl_password_file",
                        problem: format!("{}: {e}", file.display()),
                    })?
                    .trim_end()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        if let Some(pw) = password {
            p.insert("sasl.password".into(), pw);
        }
        if let Some(tls) = &self.tls {
            for (key, file) in [
                ("ssl.ca.location", &tls.ca_file),
                ("ssl.certificate.location", &tls.cert_file),
                ("ssl.key.location", &tls.key_file),
            ] {
                if let Some(f) = file {
                    p.insert(key.into(), f.display().to_string());
                }
            }
        }
        for (k, v) in &self.options {
            p.insert(k.clone(), v.clone());
        }
        Ok(p)
    }

    /// The consumer's settings from this section and a `kafka://` input, if any.
    pub fn consumer(&self, uri: Option<&KafkaUri>) -> Result<KafkaSettings, KafkaSettingsError> {
        let brokers = match uri {
            Some(u) => u.brokers.clone(),
            None => self.brokers.join(","),
        };
        let topics = uri.map_or_else(|| self.topics.clone(), |u| u.topics.clone());
        if brokers.is_empty() || topics.is_empty() {
            return Err(KafkaSettingsError::Invalid {
                field: "brokers",
                problem: "a Kafka input needs brokers and topics".into(),
            });
        }
        let query = |k: &str| uri.and_then(|u| u.query.get(k).cloned());
        let group = query("group")
            .or_else(|| self.group_id.clone())
            .unwrap_or_else(|| "evtship".into());
        let reset = query("offset_reset")
            .or_else(|| self.auto_offset_reset.clone())
            .unwrap_or_else(|| "earliest".into());
        if !["earliest", "latest"].contains(&reset.as_str()) {
            return Err(KafkaSettingsError::Invalid {
                field: "auto_offset_reset",
                problem: format!("`{reset}`: use earliest or latest"),
            });
        }
        let mut p = self.connection()?;
        let fetch = self.fetch_max_bytes.map_or(16 << 20, |b| b.0).max(1 << 20);
        let session = query("session_timeout_ms")
            .and_then(|v| v.parse().ok())
            .or(self.session_timeout_ms)
            .unwrap_or(10_000);
        let defaults = [
            ("group.id", group.clone()),
            ("auto.offset.reset", reset),
            // Offsets are stored only once their records are settled; librdkafka commits the
            // stored ones in the background, and evtship synchronously on revoke and at the end.
            ("enable.auto.commit", "true".into()),
            ("enable.auto.offset.store", "false".into()),
            ("auto.commit.interval.ms", "1000".into()),
            ("queued.max.messages.kbytes", (fetch / 1024).to_string()),
            // librdkafka waits a whole second (its default) before fetching again once that
            // much is queued: with a pipeline faster than that, it is most of a run's time.
            ("fetch.queue.backoff.ms", "10".into()),
            ("session.timeout.ms", session.to_string()),
            ("heartbeat.interval.ms", (session / 4).max(250).to_string()),
            ("enable.partition.eof", "false".into()),
        ];
        for (k, v) in defaults {
            p.entry(k.to_owned()).or_insert(v);
        }
        p.insert("bootstrap.servers".into(), brokers.clone());
        Ok(KafkaSettings {
            brokers,
            topics,
            group,
            metadata: self.metadata || query("metadata").as_deref() == Some("true"),
            properties: p,
        })
    }
}

impl KafkaSettings {
    /// The librdkafka configuration.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// The input's name in the summary.
    pub fn label(&self) -> String {
        format!("kafka://{}/{}", self.brokers, self.topics.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_give_brokers_topics_and_a_group() {
        let u = KafkaUri::parse("kafka://a:9092,b:9092/winlogbeat,sysmon?group=helk").unwrap();
        assert_eq!(u.brokers, "a:9092,b:9092");
        assert_eq!(u.topics, vec!["winlogbeat", "sysmon"]);
        let s = KafkaSection::default().consumer(Some(&u)).unwrap();
        assert_eq!(s.group, "helk");
        assert_eq!(s.properties["enable.auto.offset.store"], "false");
        assert_eq!(s.properties["bootstrap.servers"], "a:9092,b:9092");
        for bad in [
            "kafka://a:9092",
            "kafka://a/t",
            "kafka://a:1/",
            "http://a:1/t",
        ] {
            assert!(KafkaUri::parse(bad).is_err(), "{bad}");
        }
        let section = KafkaSection {
            auto_offset_reset: Some("middle".into()),
            ..Default::default()
        };
        assert!(section.consumer(Some(&u)).is_err());
    }
}
