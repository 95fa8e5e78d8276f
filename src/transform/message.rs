//! The rendered Sysmon `Message` text: a title line, then `Key: value` lines.
//!
//! NXLog and PowerShell exports separate lines with `\r\n` and may keep a bare `\n` inside a
//! value (`Details`); Winlogbeat uses `\n` only. A line that does not start with `Key:` (a key
//! being letters, digits and `_`) continues the previous value.

use memchr::memmem::Finder;
use std::borrow::Cow;
use std::sync::LazyLock;

/// The parts of a rendered Sysmon message, borrowed from it.
#[derive(Debug, PartialEq, Eq)]
pub struct Rendered<'a> {
    /// The first line without its colon (`Process Create`, `Registry value set`, ...).
    pub title: &'a str,
    /// `Key: value` pairs in order.
    pub fields: Vec<(&'a str, &'a str)>,
}

/// The lines of a message: split at `\r\n` when it has one (a bare `\n` then stays inside its
/// line), else at `\n`.
fn lines(message: &str) -> impl Iterator<Item = &str> {
    /// Searchers built once (building one costs more than searching a message).
    static CRLF: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\r\n"));
    static LF: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n"));
    let sep: &Finder = if CRLF.find(message.as_bytes()).is_some() {
        &CRLF
    } else {
        &LF
    };
    let len = sep.needle().len();
    let mut ends = sep.find_iter(message.as_bytes());
    let mut start = Some(0);
    std::iter::from_fn(move || {
        let from = start?;
        match ends.next() {
            Some(end) => {
                start = Some(end + len);
                Some(&message[from..end])
            }
            None => {
                start = None;
                Some(&message[from..])
            }
        }
    })
}

/// The key of a `Key: value` line: letters, digits and `_` up to the first colon, a letter
/// first (one pass, stopping at the first byte that cannot be in a key).
fn line_key(line: &str) -> Option<&str> {
    let bytes = line.as_bytes();
    let end = bytes
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_'))?;
    (bytes[end] == b':' && bytes[0].is_ascii_alphabetic()).then(|| &line[..end])
}

/// Splits a Sysmon message into its title and fields.
pub fn parse_sysmon(message: &str) -> Rendered<'_> {
    let mut lines = lines(message);
    let title = lines.next().unwrap_or_default();
    let title = title.strip_suffix(':').unwrap_or(title).trim();
    let base = message.as_ptr() as usize;
    let mut fields: Vec<(&str, &str)> = Vec::with_capacity(32);
    // Current value as a byte range of `message`, so continuation lines extend it in place.
    let mut current: Option<(&str, usize, usize)> = None;
    for line in lines {
        let line_start = line.as_ptr() as usize - base;
        let key = line_key(line);
        match key {
            Some(key) => {
                if let Some((k, s, e)) = current.take() {
                    fields.push((k, &message[s..e]));
                }
                let after = &line[key.len() + 1..];
                let value = after.strip_prefix(' ').unwrap_or(after);
                let start = value.as_ptr() as usize - base;
                current = Some((key, start, start + value.len()));
            }
            None => {
                if let Some((_, _, end)) = current.as_mut() {
                    *end = line_start + line.len();
                }
            }
        }
    }
    if let Some((k, s, e)) = current {
        fields.push((k, &message[s..e]));
    }
    Rendered { title, fields }
}

/// A rendered message of the Security log and other channels: a title, then sections
/// (`Subject:`) of tab-indented `Key:\t\tvalue` lines, separated by blank lines.
#[derive(Debug, PartialEq, Eq)]
pub struct Sectioned<'a> {
    /// The first line.
    pub title: &'a str,
    /// `(section, key, value)`, the section being the heading above the line, if any (a
    /// value is borrowed unless continuation lines were joined to it).
    pub fields: Vec<(Option<&'a str>, &'a str, Cow<'a, str>)>,
}

/// Longest label taken as a key or section heading.
const MAX_LABEL: usize = 48;

/// Whether `s` is a label: a letter, then letters, digits and ` -_()/'.`, in at most six
/// words (one pass over its bytes; any other byte, non-ASCII ones included, ends it).
fn is_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.len() > MAX_LABEL || !bytes.first().is_some_and(u8::is_ascii_alphabetic) {
        return false;
    }
    let mut spaces = 0;
    for &b in bytes {
        match b {
            b' ' => spaces += 1,
            b'-' | b'_' | b'(' | b')' | b'/' | b'\'' | b'.' => {}
            _ if b.is_ascii_alphanumeric() => {}
            _ => return false,
        }
    }
    spaces <= 5
}

/// Splits a Security-style rendered message into its title and keyed values.
///
/// A line `Heading:` (no indent, nothing after the colon) opens a section; a line
/// `\tKey:<tabs or spaces>value` is a field of the current section (or of none); an indented
/// line without a label continues the previous value (privilege lists); anything else is prose
/// and skipped.
pub fn parse_sectioned(message: &str) -> Sectioned<'_> {
    let mut lines = lines(message);
    let title = lines.next().unwrap_or_default().trim();
    let mut section: Option<&str> = None;
    let mut fields: Vec<(Option<&str>, &str, Cow<str>)> = Vec::with_capacity(32);
    for line in lines {
        if line.trim().is_empty() {
            section = None;
            continue;
        }
        let indented = line.starts_with(['\t', ' ']);
        let body = line.trim_start_matches(['\t', ' ']);
        // A label is at most MAX_LABEL bytes: its colon is no further.
        let head = &body.as_bytes()[..body.len().min(MAX_LABEL + 1)];
        let labelled = head
            .iter()
            .position(|&b| b == b':')
            .map(|colon| (&body[..colon], &body[colon + 1..]))
            .filter(|(label, rest)| {
                is_label(label) && (rest.is_empty() || rest.starts_with(['\t', ' ']))
            });
        match labelled {
            Some((label, rest)) => {
                let value = rest.trim_matches(['\t', ' ']);
                if value.is_empty() && !indented {
                    section = Some(label);
                } else {
                    fields.push((section, label, Cow::Borrowed(value)));
                }
            }
            None if indented => {
                if let Some((_, _, value)) = fields.last_mut() {
                    let value = value.to_mut();
                    if !value.is_empty() {
                        value.push('\n');
                    }
                    value.push_str(body.trim_end());
                }
            }
            None => {}
        }
    }
    Sectioned { title, fields }
}

/// Appends a label as a field-name part: its words joined without spaces or punctuation
/// (`Security ID` → `SecurityID`, `Filter Run-Time ID` → `FilterRunTimeID`).
fn push_field_part(out: &mut Vec<u8>, label: &str) {
    out.extend(label.bytes().filter(u8::is_ascii_alphanumeric));
}

/// The `MessageData` name of a field: `<Section>_<Key>`, or `<Key>` outside sections, each
/// part its words joined without spaces or punctuation.
pub fn field_name(section: Option<&str>, key: &str) -> String {
    // Built as bytes: only ASCII letters and digits, and `_`, go in.
    let mut name = Vec::with_capacity(section.map_or(0, |s| s.len() + 1) + key.len());
    if let Some(section) = section {
        push_field_part(&mut name, section);
        name.push(b'_');
    }
    push_field_part(&mut name, key);
    String::from_utf8(name).expect("ASCII is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_keys_are_what_precedes_the_first_colon_when_it_is_a_key() {
        fn oracle(line: &str) -> Option<&str> {
            line.split_once(':').map(|(k, _)| k).filter(|k| {
                let mut chars = k.chars();
                chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        }
        for line in [
            "Image: C:\\a.exe",
            "Image:",
            "RuleName: a: b",
            "_x: 1",
            "1x: 1",
            ": v",
            "",
            "no colon",
            "Key",
            "Two words: v",
            "Ké: v",
            "Key_2:v",
            "Key:\tv",
            "\tKey: v",
        ] {
            assert_eq!(line_key(line), oracle(line), "{line:?}");
        }
    }

    #[test]
    fn labels_are_short_words_of_letters_digits_and_some_punctuation() {
        fn oracle(s: &str) -> bool {
            !s.is_empty()
                && s.len() <= MAX_LABEL
                && s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || " -_()/'.".contains(c))
                && s.split(' ').count() <= 6
        }
        let long = "A".repeat(MAX_LABEL);
        for label in [
            "",
            "Security ID",
            "Filter Run-Time ID",
            "Caller's Process (ID)",
            "a/b.c_d",
            "1st",
            " Lead",
            "One two three four five six",
            "One two three four five six seven",
            "Tab\there",
            "Ké",
            "Colon:",
            long.as_str(),
            &format!("{long}B"),
        ] {
            assert_eq!(is_label(label), oracle(label), "{label:?}");
        }
    }

    #[test]
    fn security_message_sections_and_repeated_keys() {
        // From covenant_copy_smb_CreateRequest_2020-09-22145302.json (OTRF, MIT), EventID 5158.
        let m = "The Windows Filtering Platform has permitted a bind to a local port.\r\n\r\nApplication Information:\r\n\tProcess ID:\t\t3260\r\n\tApplication Name:\t\\device\\x.exe\r\n\r\nNetwork Information:\r\n\tSource Address:\t\t0.0.0.0\r\n\tSource Port:\t\t62779\r\n\r\nFilter Information:\r\n\tFilter Run-Time ID:\t0\r\n\tLayer Name:\t\tResource Assignment";
        let r = parse_sectioned(m);
        assert_eq!(
            r.title,
            "The Windows Filtering Platform has permitted a bind to a local port."
        );
        assert_eq!(
            r.fields[0],
            (Some("Application Information"), "Process ID", "3260".into())
        );
        assert_eq!(
            r.fields[2],
            (
                Some("Network Information"),
                "Source Address",
                "0.0.0.0".into()
            )
        );
        assert_eq!(
            r.fields[4],
            (Some("Filter Information"), "Filter Run-Time ID", "0".into())
        );
        assert_eq!(field_name(None, "Filter Run-Time ID"), "FilterRunTimeID");
        assert_eq!(
            field_name(Some("Subject :"), "Security ID"),
            "Subject_SecurityID"
        );
        assert_eq!(field_name(None, "Logon ID"), "LogonID");
    }

    #[test]
    fn same_key_under_two_headings_and_continuations() {
        let m = "An account was successfully logged on.\r\n\r\nSubject:\r\n\tSecurity ID:\t\tS-1-5-18\r\n\r\nNew Logon:\r\n\tSecurity ID:\t\tS-1-5-21-1\r\n\tPrivileges:\t\tSeSecurityPrivilege\r\n\t\t\tSeBackupPrivilege\r\n\r\nThis event is generated when a logon session is created.";
        let r = parse_sectioned(m);
        assert_eq!(
            r.fields[0],
            (Some("Subject"), "Security ID", "S-1-5-18".into())
        );
        assert_eq!(
            r.fields[1],
            (Some("New Logon"), "Security ID", "S-1-5-21-1".into())
        );
        assert_eq!(
            r.fields[2],
            (
                Some("New Logon"),
                "Privileges",
                "SeSecurityPrivilege\nSeBackupPrivilege".into()
            )
        );
        assert_eq!(r.fields.len(), 3);
    }

    #[test]
    fn nxlog_registry_event() {
        // From covenant_persistwmi_2019-12-05044734.json (OTRF Security-Datasets, MIT).
        let m = "Registry value set:\r\nRuleName: -\r\nEventType: SetValue\r\nUtcTime: 2019-12-05 04:47:33.003\r\nProcessGuid: {3fe8e1a9-8a3b-5de8-0b00-000000000900}\r\nProcessId: 1332\r\nImage: C:\\Windows\\system32\\svchost.exe\r\nTargetObject: HKLM\\System\\x\r\nDetails: DWORD (0x00000000)";
        let r = parse_sysmon(m);
        assert_eq!(r.title, "Registry value set");
        assert_eq!(r.fields[0], ("RuleName", "-"));
        assert_eq!(r.fields[1], ("EventType", "SetValue"));
        assert_eq!(r.fields[5], ("Image", "C:\\Windows\\system32\\svchost.exe"));
        assert_eq!(r.fields[7], ("Details", "DWORD (0x00000000)"));
    }

    #[test]
    fn bare_newline_stays_in_the_value_and_empty_values_are_kept() {
        let m = "Registry value set:\r\nRuleName: \r\nDetails: line one\nline two\r\nUser:";
        let r = parse_sysmon(m);
        assert_eq!(
            r.fields,
            vec![
                ("RuleName", ""),
                ("Details", "line one\nline two"),
                ("User", "")
            ]
        );
    }

    #[test]
    fn lf_only_with_continuation_lines() {
        let m = "Process Create:\nRuleName: \nCommandLine: cmd /c echo a\n  and more\nUser: X\\y";
        let r = parse_sysmon(m);
        assert_eq!(r.title, "Process Create");
        assert_eq!(
            r.fields,
            vec![
                ("RuleName", ""),
                ("CommandLine", "cmd /c echo a\n  and more"),
                ("User", "X\\y")
            ]
        );
    }

    #[test]
    fn values_may_hold_colons() {
        let r = parse_sysmon("Dns query:\r\nQueryResults: type:  5 a.b;::ffff:1.2.3.4;");
        assert_eq!(
            r.fields,
            vec![("QueryResults", "type:  5 a.b;::ffff:1.2.3.4;")]
        );
    }
}
