//! Value types of pipeline settings that check themselves when parsed.

use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// An Elasticsearch index name that the engine will accept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct IndexName(String);

impl IndexName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IndexName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for IndexName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        if name.is_empty() || name.len() > 255 {
            return Err(format!("index name `{name}` must be 1 to 255 bytes long"));
        }
        if name != name.to_lowercase() {
            return Err(format!("index name `{name}` must be lowercase"));
        }
        if name.starts_with(['-', '_', '+']) || name == "." || name == ".." {
            return Err(format!(
                "index name `{name}` must not start with `-`, `_` or `+`"
            ));
        }
        if let Some(c) = name.chars().find(|c| {
            matches!(
                c,
                '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':'
            )
        }) {
            return Err(format!("index name `{name}` must not contain `{c}`"));
        }
        Ok(Self(name))
    }
}

/// A size in bytes, written as a number or with a unit (`"512KiB"`, `"5MiB"`, `"10MB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SizeText")]
pub struct ByteSize(pub usize);

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeText {
    Number(i64),
    Text(String),
}

impl TryFrom<SizeText> for ByteSize {
    type Error = String;

    fn try_from(value: SizeText) -> Result<Self, String> {
        let bytes = match value {
            SizeText::Number(n) => {
                usize::try_from(n).map_err(|_| format!("size {n} must not be negative"))?
            }
            SizeText::Text(text) => parse_size(&text)?,
        };
        if bytes == 0 {
            return Err("size must be greater than 0".into());
        }
        Ok(Self(bytes))
    }
}

fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 512KiB or 5MiB"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" | "k" => 1024,
        "mb" => 1000 * 1000,
        "mib" | "m" => 1024 * 1024,
        "gb" => 1000 * 1000 * 1000,
        "gib" | "g" => 1024 * 1024 * 1024,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit (use B, KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{text}` is too large"))
}

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
        match s.split_once(':') {
            None if matches!(s, "es" | "elasticsearch" | "opensearch") => Ok(Self::Elasticsearch),
            Some(("ndjson", p)) => Ok(Self::Ndjson(path(p)?)),
            Some(("bulk", p)) => Ok(Self::Bulk(path(p)?)),
            _ => Err(format!(
                "unknown output `{s}`: use es, ndjson:PATH or bulk:PATH (`-` is standard output)"
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names() {
        assert!(IndexName::try_from("logstashindex".to_owned()).is_ok());
        assert!(IndexName::try_from("Logs".to_owned()).is_err());
        assert!(IndexName::try_from("_x".to_owned()).is_err());
        assert!(IndexName::try_from("a b".to_owned()).is_err());
        assert!(IndexName::try_from(String::new()).is_err());
    }

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

    #[test]
    fn sizes() {
        assert_eq!(parse_size("5MiB"), Ok(5 * 1024 * 1024));
        assert_eq!(parse_size("10 MB"), Ok(10_000_000));
        assert!(parse_size("5 parsecs").is_err());
    }
}
