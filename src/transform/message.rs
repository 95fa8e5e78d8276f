//! The rendered Sysmon `Message` text: a title line, then `Key: value` lines.
//!
//! NXLog and PowerShell exports separate lines with `\r\n` and may keep a bare `\n` inside a
//! value (`Details`); Winlogbeat uses `\n` only. A line that does not start with `Key:` (a key
//! being letters, digits and `_`) continues the previous value.

/// The parts of a rendered Sysmon message, borrowed from it.
#[derive(Debug, PartialEq, Eq)]
pub struct Rendered<'a> {
    /// The first line without its colon (`Process Create`, `Registry value set`, ...).
    pub title: &'a str,
    /// `Key: value` pairs in order.
    pub fields: Vec<(&'a str, &'a str)>,
}

fn is_key(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Splits a Sysmon message into its title and fields.
pub fn parse_sysmon(message: &str) -> Rendered<'_> {
    let sep = if message.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let mut lines = message.split(sep);
    let title = lines.next().unwrap_or_default();
    let title = title.strip_suffix(':').unwrap_or(title).trim();
    let base = message.as_ptr() as usize;
    let mut fields: Vec<(&str, &str)> = Vec::new();
    // Current value as a byte range of `message`, so continuation lines extend it in place.
    let mut current: Option<(&str, usize, usize)> = None;
    for line in lines {
        let line_start = line.as_ptr() as usize - base;
        let key = line.split_once(':').map(|(k, _)| k).filter(|k| is_key(k));
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

#[cfg(test)]
mod tests {
    use super::*;

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
