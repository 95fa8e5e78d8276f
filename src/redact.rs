//! Keeps secrets out of messages: the one place that turns a user-given URL, or a text that may
//! quote one (a parser's message showing a line of a pipeline file), into a displayable form.

/// Keys of settings that hold secrets.
const SECRET_KEYS: &[&str] = &["password", "api_key", "bearer_token", "token", "secret"];

/// A URL safe to print: any `user:password@` part becomes `***@`, and every query value
/// `***` (`?user=***&password=***`). Without a scheme, everything before the last `@` is
/// hidden, so `user:pass@host:9200` prints as `***@host:9200`.
pub fn url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = match scheme {
        Some(_) => rest.find(['/', '?', '#']).unwrap_or(rest.len()),
        None => rest.find(['?', '#']).unwrap_or(rest.len()),
    };
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("***@{}", &authority[at + 1..]),
        None => authority.to_owned(),
    };
    let shown = match scheme {
        Some(s) => format!("{s}://{authority}"),
        None => authority,
    };
    shown + &mask_query(tail)
}

/// The path of a URL tail kept, each query value and the fragment hidden.
fn mask_query(tail: &str) -> String {
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((t, _)) => (t, Some("***")),
        None => (tail, None),
    };
    let mut out = match before_fragment.split_once('?') {
        Some((path, query)) => {
            let masked: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) => format!("{k}=***"),
                    None => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", masked.join("&"))
        }
        None => before_fragment.to_owned(),
    };
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// A text that may quote settings (a TOML parser's message shows the line at fault), with
/// every URL's credentials hidden and the value of every secret setting (`password = ...`,
/// `api_key: ...`) replaced by `***`.
pub fn text(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            let line = hide_secret_value(line);
            hide_urls(&line)
        })
        .collect()
}

/// `password = "x"` (or `:`) becomes `password = ***` when the key is a secret one.
fn hide_secret_value(line: &str) -> String {
    let lower = line.to_ascii_lowercase();
    for key in SECRET_KEYS {
        let Some(at) = lower.find(key) else { continue };
        let after = &line[at + key.len()..];
        let Some(sep) = after.find(['=', ':']) else {
            continue;
        };
        if !after[..sep]
            .chars()
            .all(|c| c.is_whitespace() || c == '"' || c == '_' || c.is_alphanumeric())
        {
            continue;
        }
        let value_start = at + key.len() + sep + 1;
        let end = line.trim_end_matches(['\n', '\r']).len();
        if value_start < end {
            let mut out = line[..value_start].to_owned();
            out.push_str(" ***");
            out.push_str(&line[end..]);
            return out;
        }
    }
    line.to_owned()
}

/// Every `scheme://user:pass@host` in a line with its credentials hidden.
fn hide_urls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("://") {
        let start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.'))
            .map_or(0, |i| i + 1);
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ',' | ')'))
            .map_or(rest.len(), |i| at + i);
        out.push_str(&rest[..start]);
        out.push_str(&url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn hides_credentials() {
        assert_eq!(
            super::url("https://elastic:s3cret@host:9243/x"),
            "https://***@host:9243/x"
        );
        assert_eq!(super::url("http://h:1/a@b"), "http://h:1/a@b");
        assert_eq!(
            super::url("user:S3cretPW@127.0.0.1:19200"),
            "***@127.0.0.1:19200"
        );
        assert_eq!(
            super::url("https://h:9200/?user=u&password=S3cretPW#frag"),
            "https://h:9200/?user=***&password=***#***"
        );
        assert_eq!(
            super::url("http://127.0.0.1:19200"),
            "http://127.0.0.1:19200"
        );
    }

    #[test]
    fn hides_secrets_quoted_in_a_text() {
        let shown = super::text(
            "TOML parse error at line 3\n3 | password = \"S3cretPW\n  | url = \"https://u:S3cretPW@h:9200\"\n",
        );
        assert!(!shown.contains("S3cretPW"), "{shown}");
        assert!(shown.contains("password = ***") && shown.contains("https://***@h:9200"));
        assert_eq!(super::text("no secret here\n"), "no secret here\n");
    }
}
