//! Value types of pipeline settings that check themselves when parsed.

use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where the documents go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum OutputTarget {
    /// Bulk-index into Elasticsearch or OpenSearch.
    Elasticsearch,
    /// Each final document as one JSON line; `None` is standard output.
    Ndjson(Option<PathBuf>),
    /// The exact `_bulk` request bodies; `None` is standard output.
    Bulk(Option<PathBuf>),
    /// Each final document produced to a Kafka topic (`kafka://BROKER[,BROKER]/TOPIC`).
    Kafka {
        /// Brokers, comma-separated.
        brokers: String,
        /// The topic.
        topic: String,
    },
}

impl FromStr for OutputTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        fn path(p: &str) -> Result<Option<PathBuf>, String> {
            match p {
                "" => Err("a path is required after the colon (`-` for standard output)".into()),
                "-" => Ok(None),
                p => Ok(Some(PathBuf::from(p))),
            }
        }
        if s.starts_with("kafka://") {
            let uri = crate::source::kafka::KafkaUri::parse(s).map_err(|e| e.to_string())?;
            let [topic] = uri.topics.as_slice() else {
                return Err(format!("`{s}`: the Kafka output writes to one topic"));
            };
            return Ok(Self::Kafka {
                brokers: uri.brokers.clone(),
                topic: topic.clone(),
            });
        }
        match s.split_once(':') {
            None if matches!(s, "es" | "elasticsearch" | "opensearch") => Ok(Self::Elasticsearch),
            Some(("ndjson", p)) => Ok(Self::Ndjson(path(p)?)),
            Some(("bulk", p)) => Ok(Self::Bulk(path(p)?)),
            _ => Err(format!(
                "unknown output `{s}`: use es, ndjson:PATH, bulk:PATH (`-` is standard output) \
                 or kafka://BROKER/TOPIC"
            )),
        }
    }
}

impl TryFrom<String> for OutputTarget {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for OutputTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |p: &Option<PathBuf>| {
            p.as_ref()
                .map_or_else(|| "-".to_owned(), |p| p.display().to_string())
        };
        match self {
            Self::Elasticsearch => f.write_str("es"),
            Self::Ndjson(p) => write!(f, "ndjson:{}", show(p)),
            Self::Bulk(p) => write!(f, "bulk:{}", show(p)),
            Self::Kafka { brokers, topic } => write!(f, "kafka://{brokers}/{topic}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs() {
        assert_eq!("es".parse(), Ok(OutputTarget::Elasticsearch));
        assert_eq!("ndjson:-".parse(), Ok(OutputTarget::Ndjson(None)));
        assert_eq!(
            "bulk:/tmp/x".parse(),
            Ok(OutputTarget::Bulk(Some(PathBuf::from("/tmp/x"))))
        );
        assert!("ndjson:".parse::<OutputTarget>().is_err());
        assert!("kafka".parse::<OutputTarget>().is_err());
    }
}
