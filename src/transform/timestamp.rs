//! `@timestamp`: which time a document is filed under, always stored as UTC with milliseconds.
//!
//! - `timestamp = "source"` (the default, as Logstash does): the record's `@timestamp` (when
//!   the original pipeline received it); without a valid one, the event time below; then
//!   `TimeGenerated` (Azure); then the time of reading.
//! - `timestamp = "event"`: when the event happened: Sysmon's `UtcTime`, else `TimeCreated`,
//!   else `EventTime` in the configured IANA `timezone` (NXLog writes local time without a
//!   zone); then as in `source`.
//!
//! Times without a zone (`UtcTime`, `2020-05-02 02:55:56.157`) are UTC, except `EventTime`.

use super::fields::Fields;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde::Deserialize;

/// Which time `@timestamp` holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimestampMode {
    /// When the original pipeline received the event (the record's `@timestamp`).
    #[default]
    Source,
    /// When the event happened.
    Event,
}

/// Parses RFC 3339, or a time without a zone (`2020-05-02 02:55:56.157`, `T` or space) as UTC.
pub fn parse_utc(s: &str) -> Option<DateTime<Utc>> {
    let t = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    naive(t).map(|n| n.and_utc())
}

fn naive(t: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
}

/// RFC 3339 UTC with milliseconds.
pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// When the event happened, from the fields that say so.
pub fn event_time<D: Fields + ?Sized>(
    doc: &D,
    zone: Option<chrono_tz::Tz>,
) -> Option<DateTime<Utc>> {
    let utc = |key| doc.str(key).as_deref().and_then(parse_utc);
    utc("UtcTime").or_else(|| utc("TimeCreated")).or_else(|| {
        let zone = zone?;
        let local = naive(doc.str("EventTime")?.as_ref())?;
        zone.from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    })
}

/// The `@timestamp` of a document under `mode`; `now` when nothing else is known.
pub fn choose<D: Fields + ?Sized>(
    doc: &D,
    mode: TimestampMode,
    zone: Option<chrono_tz::Tz>,
    now: &str,
) -> String {
    let source = || {
        doc.str("@timestamp")
            .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
            .map(|d| d.with_timezone(&Utc))
    };
    let generated = || doc.str("TimeGenerated").as_deref().and_then(parse_utc);
    let chosen = match mode {
        TimestampMode::Source => source().or_else(|| event_time(doc, zone)),
        TimestampMode::Event => event_time(doc, zone).or_else(source),
    };
    chosen
        .or_else(generated)
        .map_or_else(|| now.to_owned(), format)
}

pub use crate::common::now;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    #[test]
    fn utc_time() {
        let t = |s| parse_utc(s).map(format);
        assert_eq!(
            t("2020-05-02 02:55:56.157").as_deref(),
            Some("2020-05-02T02:55:56.157Z")
        );
        assert_eq!(
            t("2019-12-05 04:47:33").as_deref(),
            Some("2019-12-05T04:47:33.000Z")
        );
        assert_eq!(
            t("2020-09-22T18:53:04+02:00").as_deref(),
            Some("2020-09-22T16:53:04.000Z")
        );
        assert!(t("yesterday").is_none());
        assert!(t("").is_none());
    }

    #[test]
    fn modes() {
        let doc: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "@timestamp": "2020-05-02T02:55:58.001+00:00",
            "UtcTime": "2020-05-02 02:55:56.157",
            "EventTime": "2020-05-01 22:55:56"
        }))
        .unwrap();
        let now = "2030-01-01T00:00:00.000Z";
        assert_eq!(
            choose(&doc, TimestampMode::Source, None, now),
            "2020-05-02T02:55:58.001Z"
        );
        assert_eq!(
            choose(&doc, TimestampMode::Event, None, now),
            "2020-05-02T02:55:56.157Z"
        );
        let local: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"EventTime": "2020-05-01 22:55:56"}))
                .unwrap();
        let ny: chrono_tz::Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            choose(&local, TimestampMode::Event, Some(ny), now),
            "2020-05-02T02:55:56.000Z"
        );
        assert_eq!(choose(&local, TimestampMode::Event, None, now), now);
        let azure: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"TimeGenerated": "2022-05-13T08:54:06.46Z"}))
                .unwrap();
        assert_eq!(
            choose(&azure, TimestampMode::Source, None, now),
            "2022-05-13T08:54:06.460Z"
        );
    }
}
