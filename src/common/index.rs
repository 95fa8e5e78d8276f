//! Index names: checked when parsed, possibly dated by each document's `@timestamp`.

use serde::Deserialize;
use std::fmt;

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
}
