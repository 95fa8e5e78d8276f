//! Syslog messages (RFC 5424 and RFC 3164, as rsyslog, syslog-ng, NXLog and Snare send them)
//! into records.
//!
//! A message whose MSG part is a JSON object (an event forwarded with a JSON template) becomes
//! that object, with the header's fields added where the object does not have them already;
//! any other MSG becomes `Message`, beside the header's fields. Those fields:
//!
//! ```text
//! SyslogFacility        kern, user, ..., local7 (from PRI)
//! SyslogSeverity        emerg, alert, crit, err, warning, notice, info, debug (from PRI)
//! SyslogTimestamp       the header's timestamp as sent
//! SyslogHostname        HOSTNAME
//! SyslogAppName         APP-NAME (RFC 5424) or the TAG (RFC 3164)
//! SyslogProcID          PROCID, or the TAG's [pid]
//! SyslogMsgID           MSGID (RFC 5424)
//! SyslogStructuredData  STRUCTURED-DATA as sent (RFC 5424)
//! ```
//!
//! A field the header leaves out (`-` in RFC 5424) is absent. rsyslog writes control characters
//! of a plain MSG as `#012` (LF) and `#011` (TAB); those two come back as the characters. A
//! message without a `<PRI>` is all `Message`.

use serde_json::{Map, Value};
use std::borrow::Cow;

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A message's header, as far as it has one.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Header<'a> {
    /// Facility and severity, from PRI.
    pub pri: Option<(u8, u8)>,
    /// The timestamp as sent.
    pub timestamp: Option<&'a str>,
    /// HOSTNAME.
    pub hostname: Option<&'a str>,
    /// APP-NAME or TAG.
    pub app: Option<&'a str>,
    /// PROCID or the TAG's pid.
    pub procid: Option<&'a str>,
    /// MSGID.
    pub msgid: Option<&'a str>,
    /// STRUCTURED-DATA.
    pub structured: Option<&'a str>,
}

/// Splits a message into its header and MSG.
pub fn split(text: &str) -> (Header<'_>, &str) {
    let mut h = Header::default();
    let Some((pri, rest)) = pri(text) else {
        return (h, text);
    };
    h.pri = Some(pri);
    // RFC 5424: a version (1) and a space after PRI.
    if let Some(rest) = rest.strip_prefix("1 ") {
        let mut fields = rest.splitn(6, ' ');
        let mut take = || fields.next().filter(|f| *f != "-" && !f.is_empty());
        h.timestamp = take();
        h.hostname = take();
        h.app = take();
        h.procid = take();
        h.msgid = take();
        let after = fields.next().unwrap_or("");
        let (sd, msg) = structured_data(after);
        h.structured = sd.filter(|s| *s != "-");
        return (h, msg.strip_prefix('\u{feff}').unwrap_or(msg));
    }
    // RFC 3164: TIMESTAMP HOSTNAME TAG[pid]: MSG; the timestamp is `Mmm dd hh:mm:ss`, or
    // RFC 3339 as rsyslog's forwarding templates write it.
    let mut rest = rest;
    if rest.len() >= 16
        && rest.get(..3).is_some_and(|m| MONTHS.contains(&m))
        && rest.as_bytes()[15] == b' '
    {
        h.timestamp = Some(&rest[..15]);
        rest = &rest[16..];
    } else if rest.starts_with(|c: char| c.is_ascii_digit()) {
        if let Some((ts, after)) = rest.split_once(' ') {
            h.timestamp = Some(ts);
            rest = after;
        }
    }
    if h.timestamp.is_none() {
        return (h, rest);
    }
    if let Some((host, after)) = rest.split_once(' ') {
        h.hostname = Some(host).filter(|s| !s.is_empty());
        rest = after;
    }
    let tag_end = rest.find([':', '[', ' ']).unwrap_or(rest.len());
    if tag_end > 0 && tag_end <= 48 {
        h.app = Some(&rest[..tag_end]);
        rest = &rest[tag_end..];
        if let Some(after) = rest.strip_prefix('[') {
            if let Some((pid, after)) = after.split_once(']') {
                h.procid = Some(pid);
                rest = after;
            }
        }
        rest = rest.strip_prefix(':').unwrap_or(rest);
        rest = rest.strip_prefix(' ').unwrap_or(rest);
    }
    (h, rest)
}

/// `<PRI>` at the start: facility and severity.
fn pri(text: &str) -> Option<((u8, u8), &str)> {
    let rest = text.strip_prefix('<')?;
    let end = rest.find('>')?;
    if end == 0 || end > 3 {
        return None;
    }
    let value: u16 = rest[..end].parse().ok()?;
    if value > 191 {
        return None;
    }
    Some((((value / 8) as u8, (value % 8) as u8), &rest[end + 1..]))
}

/// RFC 5424 STRUCTURED-DATA (`-`, or `[...]` elements, `\]` escaped inside values) and what
/// follows it.
fn structured_data(text: &str) -> (Option<&str>, &str) {
    if let Some(rest) = text.strip_prefix('-') {
        return (Some("-"), rest.strip_prefix(' ').unwrap_or(rest));
    }
    if !text.starts_with('[') {
        return (None, text);
    }
    let bytes = text.as_bytes();
    let (mut i, mut quoted) = (0, false);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b']' if !quoted && bytes.get(i + 1) != Some(&b'[') => {
                let rest = &text[i + 1..];
                return (Some(&text[..=i]), rest.strip_prefix(' ').unwrap_or(rest));
            }
            _ => {}
        }
        i += 1;
    }
    (Some(text), "")
}

impl Header<'_> {
    /// The header's fields, named as the module says.
    pub fn fields(&self) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        if let Some((facility, severity)) = self.pri {
            let name = FACILITIES
                .get(facility as usize)
                .copied()
                .unwrap_or("unknown");
            out.push(("SyslogFacility", Value::from(name)));
            out.push(("SyslogSeverity", Value::from(SEVERITIES[severity as usize])));
        }
        for (name, v) in [
            ("SyslogTimestamp", self.timestamp),
            ("SyslogHostname", self.hostname),
            ("SyslogAppName", self.app),
            ("SyslogProcID", self.procid),
            ("SyslogMsgID", self.msgid),
            ("SyslogStructuredData", self.structured),
        ] {
            if let Some(v) = v {
                out.push((name, Value::from(v)));
            }
        }
        out
    }
}

/// The record of one syslog message, as one line of JSON.
pub fn record(message: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(message);
    let (header, msg) = split(&text);
    let fields = header.fields();
    let body = msg.trim_matches(|c: char| c == ' ' || c == '\r' || c == '\n');
    if body.starts_with('{') {
        if let Some(record) = crate::common::fields::append_missing(body.as_bytes(), &fields) {
            return record;
        }
    }
    let mut obj = Map::new();
    obj.insert("Message".into(), Value::from(unescape(msg)));
    for (k, v) in fields {
        obj.insert(k.into(), v);
    }
    serde_json::to_vec(&Value::Object(obj)).expect("a map of strings")
}

/// rsyslog's `#012` and `#011` back to LF and TAB.
fn unescape(msg: &str) -> Cow<'_, str> {
    if msg.contains("#01") {
        Cow::Owned(msg.replace("#012", "\n").replace("#011", "\t"))
    } else {
        Cow::Borrowed(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn a_json_msg_keeps_numbers_beyond_an_f64_as_written() {
        // JSON's grammar puts no bound on numbers; the record is passed on as it came.
        let m = br#"<134>1 2020-05-02T02:55:56.157Z WORKSTATION5 nxlog 4242 - - {"big":1000e000200000000,"small":-1e400}"#;
        let rec = String::from_utf8(record(m)).unwrap();
        assert!(
            rec.starts_with(r#"{"big":1000e000200000000,"small":-1e400,"#),
            "{rec}"
        );
        assert!(rec.contains(r#""SyslogHostname":"WORKSTATION5""#), "{rec}");
    }

    #[test]
    fn rfc5424_with_a_json_msg_keeps_the_record_and_adds_the_header() {
        let m = br#"<134>1 2020-05-02T02:55:56.157Z WORKSTATION5 nxlog 4242 - [x@1 a="b\]c"] {"EventID":1,"Hostname":"WORKSTATION5.theshire.local"}"#;
        let v = json(&record(m));
        assert_eq!(v["EventID"], 1);
        assert_eq!(v["Hostname"], "WORKSTATION5.theshire.local");
        assert_eq!(v["SyslogFacility"], "local0");
        assert_eq!(v["SyslogSeverity"], "info");
        assert_eq!(v["SyslogHostname"], "WORKSTATION5");
        assert_eq!(v["SyslogAppName"], "nxlog");
        assert_eq!(v["SyslogProcID"], "4242");
        assert_eq!(v["SyslogStructuredData"], r#"[x@1 a="b\]c"]"#);
        assert!(v.get("SyslogMsgID").is_none());
        assert_eq!(v["SyslogTimestamp"], "2020-05-02T02:55:56.157Z");
    }

    #[test]
    fn a_field_the_record_has_is_not_added_twice() {
        let v = record(br#"<13>1 - host app - - - {"SyslogHostname":"mine"}"#);
        let text = String::from_utf8(v).unwrap();
        assert_eq!(text.matches("SyslogHostname").count(), 1);
        assert_eq!(json(text.as_bytes())["SyslogHostname"], "mine");
    }

    #[test]
    fn rfc3164_plain_text_becomes_message() {
        let v = json(&record(
            b"<38>May  2 02:55:56 dc01 sshd[911]: Accepted key#012second line",
        ));
        assert_eq!(v["Message"], "Accepted key\nsecond line");
        assert_eq!(v["SyslogFacility"], "auth");
        assert_eq!(v["SyslogSeverity"], "info");
        assert_eq!(v["SyslogTimestamp"], "May  2 02:55:56");
        assert_eq!(v["SyslogHostname"], "dc01");
        assert_eq!(v["SyslogAppName"], "sshd");
        assert_eq!(v["SyslogProcID"], "911");
        let v = json(&record(
            br#"<14>2020-05-02T02:55:56.157+00:00 wks5 evt: {"EventID":4624}"#,
        ));
        assert_eq!(v["EventID"], 4624);
        assert_eq!(v["SyslogAppName"], "evt");
    }

    #[test]
    fn no_pri_is_all_message_and_nonsense_is_no_panic() {
        let v = json(&record(b"hello world"));
        assert_eq!(v["Message"], "hello world");
        for m in [
            &b"<"[..],
            b"<999>x",
            b"<1>1 ",
            b"<1>1 - - - - - [",
            b"<1>Jan",
            b"\xff{",
        ] {
            let _ = json(&record(m));
        }
    }
}
