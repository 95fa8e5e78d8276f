//! Value types of pipeline settings that check themselves when parsed.

use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// An Elasticsearch index name that the engine will accept, possibly dated by the UTC day of
/// each document's `@timestamp`: `logstash-%{+yyyy.MM.dd}` (the Logstash notation; `yyyy`,
/// `yy`, `MM`, `dd` and `HH` are understood).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct IndexName {
    raw: String,
    dated: Option<Dated>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Dated {
    prefix: String,
    format: String,
    suffix: String,
}

impl IndexName {
    /// The name as written (with its date pattern, if any).
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether each document's index depends on its `@timestamp`.
    pub fn is_dated(&self) -> bool {
        self.dated.is_some()
    }

    /// The index pattern matching every index this name gives (`logstash-*`).
    pub fn pattern(&self) -> String {
        match &self.dated {
            Some(d) => format!("{}*{}", d.prefix, d.suffix),
            None => self.raw.clone(),
        }
    }

    /// The index of a document whose `@timestamp` is `time` (UTC); the fixed name when not dated.
    pub fn for_time(&self, time: chrono::DateTime<chrono::Utc>) -> String {
        match &self.dated {
            Some(d) => format!("{}{}{}", d.prefix, time.format(&d.format), d.suffix),
            None => self.raw.clone(),
        }
    }
}

impl fmt::Display for IndexName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn check_plain(name: &str, shown: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err(format!("index name `{shown}` must be 1 to 255 bytes long"));
    }
    if name != name.to_lowercase() {
        return Err(format!("index name `{shown}` must be lowercase"));
    }
    if name.starts_with(['-', '_', '+']) || name == "." || name == ".." {
        return Err(format!(
            "index name `{shown}` must not start with `-`, `_` or `+`"
        ));
    }
    if let Some(c) = name.chars().find(|c| {
        matches!(
            c,
            '\\' | '/'
                | '*'
                | '?'
                | '"'
                | '<'
                | '>'
                | '|'
                | ' '
                | ','
                | '#'
                | ':'
                | '{'
                | '}'
                | '%'
        )
    }) {
        return Err(format!("index name `{shown}` must not contain `{c}`"));
    }
    Ok(())
}

fn joda_to_chrono(pattern: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = pattern;
    while !rest.is_empty() {
        let (token, len) = [
            ("yyyy", "%Y"),
            ("yy", "%y"),
            ("MM", "%m"),
            ("dd", "%d"),
            ("HH", "%H"),
        ]
        .iter()
        .find(|(t, _)| rest.starts_with(t))
        .map(|(t, c)| (*c, t.len()))
        .unwrap_or(("", 0));
        if len > 0 {
            out.push_str(token);
            rest = &rest[len..];
        } else {
            let c = rest.chars().next()?;
            if !matches!(c, '.' | '-' | '_') {
                return None;
            }
            out.push(c);
            rest = &rest[1..];
        }
    }
    Some(out)
}

impl TryFrom<String> for IndexName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        let Some(open) = name.find("%{+") else {
            check_plain(&name, &name)?;
            return Ok(Self {
                raw: name,
                dated: None,
            });
        };
        let close = name[open..]
            .find('}')
            .map(|c| open + c)
            .ok_or_else(|| format!("index name `{name}`: `%{{+` without `}}`"))?;
        let format = joda_to_chrono(&name[open + 3..close]).ok_or_else(|| {
            format!("index name `{name}`: use yyyy, yy, MM, dd, HH and . - _ in the date pattern")
        })?;
        let dated = Dated {
            prefix: name[..open].to_owned(),
            format,
            suffix: name[close + 1..].to_owned(),
        };
        let sample = format!(
            "{}{}{}",
            dated.prefix,
            chrono::DateTime::UNIX_EPOCH.format(&dated.format),
            dated.suffix
        );
        check_plain(&sample, &name)?;
        Ok(Self {
            raw: name,
            dated: Some(dated),
        })
    }
}

/// One of N disjoint shares of the records (`--shard I/N`): records whose line (or record)
/// number, counted from 0, is `I-1` modulo `N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which share, from 0.
    pub index: u64,
    /// How many shares.
    pub count: u64,
}

impl Shard {
    /// Whether the record numbered `number` (1-based) belongs to this share.
    pub fn takes(&self, number: u64) -> bool {
        number.saturating_sub(1) % self.count == self.index
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not I/N with 1 <= I <= N (e.g. 2/3)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (i, n): (u64, u64) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if n == 0 || i == 0 || i > n {
            return Err(bad());
        }
        Ok(Self {
            index: i - 1,
            count: n,
        })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}of{}", self.index + 1, self.count)
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
    fn dated_index_names() {
        let n = IndexName::try_from("logstash-%{+yyyy.MM.dd}".to_owned()).unwrap();
        assert!(n.is_dated());
        assert_eq!(n.pattern(), "logstash-*");
        let t = chrono::DateTime::parse_from_rfc3339("2020-05-02T23:59:59.999-04:00").unwrap();
        assert_eq!(
            n.for_time(t.with_timezone(&chrono::Utc)),
            "logstash-2020.05.03"
        );
        assert!(IndexName::try_from("Logs-%{+yyyy}".to_owned()).is_err());
        assert!(IndexName::try_from("logs-%{+yyyy".to_owned()).is_err());
        assert!(IndexName::try_from("logs-%{+EEE}".to_owned()).is_err());
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
    fn shards() {
        let s: Shard = "2/3".parse().unwrap();
        assert!(s.takes(2) && s.takes(5) && !s.takes(1) && !s.takes(3));
        assert!("0/3".parse::<Shard>().is_err());
        assert!("4/3".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("5MiB"), Ok(5 * 1024 * 1024));
        assert_eq!(parse_size("10 MB"), Ok(10_000_000));
        assert!(parse_size("5 parsecs").is_err());
    }
}
