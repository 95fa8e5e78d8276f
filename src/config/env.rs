//! `${NAME}` and `${NAME:-default}` in pipeline files, resolved from the environment before the
//! file is parsed; `$${` writes a literal `${`. An unset variable without a default is an error
//! naming it and its line. Comment lines (first non-blank character `#`) are left as written, so a
//! commented-out `password = "${ES_PASSWORD}"` needs no variable.

/// Replaces every `${...}` of `text` outside comment lines; `lookup` gives a variable's value.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, (usize, String)> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            let done = interpolate_line(line, &lookup).map_err(|e| (n + 1, e))?;
            out.push_str(&done);
        }
    }
    Ok(out)
}

fn interpolate_line(
    text: &str,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let Some(end) = rest[at..].find('}') else {
            return Err("`${` without a closing `}`".into());
        };
        let inner = &rest[at + 2..at + end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(format!("`${{{inner}}}` is not a variable name"));
        }
        match lookup(name)
            .filter(|v| !v.is_empty())
            .or(default.map(str::to_owned))
        {
            Some(value) => out.push_str(&value),
            None => {
                return Err(format!(
                "environment variable `{name}` is not set (use ${{{name}:-default}} for a default)"
            ))
            }
        }
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::interpolate;

    fn env(name: &str) -> Option<String> {
        (name == "ES_PASSWORD").then(|| "s3cret".to_owned())
    }

    #[test]
    fn variables_defaults_and_escapes() {
        assert_eq!(
            interpolate("password = \"${ES_PASSWORD}\"", env).unwrap(),
            "password = \"s3cret\""
        );
        assert_eq!(
            interpolate("u = \"${ES_URL:-http://h:1}\"", env).unwrap(),
            "u = \"http://h:1\""
        );
        assert_eq!(
            interpolate("x = \"$${HOME}\"", env).unwrap(),
            "x = \"${HOME}\""
        );
        let err = interpolate("a = 1\nb = \"${NOPE}\"\n", env).unwrap_err();
        assert_eq!(err.0, 2);
        assert!(err.1.contains("NOPE"));
        assert!(interpolate("a = \"${1x}\"", env).is_err());
        assert_eq!(
            interpolate("  # token = \"${NOPE}\"\nb = 1\n", env).unwrap(),
            "  # token = \"${NOPE}\"\nb = 1\n"
        );
    }
}
