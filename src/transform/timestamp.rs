//! `@timestamp`: kept when valid, else derived from Sysmon's `UtcTime`, else the time of reading.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

/// Whether `s` is an RFC 3339 timestamp with a zone, as Elasticsearch's default date format takes.
pub fn is_valid(s: &str) -> bool {
    DateTime::parse_from_rfc3339(s).is_ok()
}

/// Sysmon's `UtcTime` (`2020-05-02 02:55:56.157`, UTC without a zone mark) as RFC 3339 UTC
/// with milliseconds.
pub fn from_utc_time(s: &str) -> Option<String> {
    let t = NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S%.f").ok()?;
    Some(t.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// The current time as RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_time() {
        assert_eq!(
            from_utc_time("2020-05-02 02:55:56.157").as_deref(),
            Some("2020-05-02T02:55:56.157Z")
        );
        assert_eq!(
            from_utc_time("2019-12-05 04:47:33").as_deref(),
            Some("2019-12-05T04:47:33.000Z")
        );
        assert!(from_utc_time("yesterday").is_none());
    }

    #[test]
    fn validity() {
        assert!(is_valid("2020-09-22T18:53:04.182Z"));
        assert!(is_valid("2020-09-22T18:53:04+02:00"));
        assert!(!is_valid("2020-09-22 18:53:04"));
        assert!(!is_valid(""));
    }
}
