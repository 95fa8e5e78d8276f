//! XML entities left by exporters in top-level values (`&lt;unknown process&gt;`).
//!
//! XML has five named entities and numeric character references; this decodes exactly those,
//! and leaves any other `&` sequence as it is.

/// Decodes the XML entities of `s`; `None` when there are none.
pub fn decode(s: &str) -> Option<String> {
    if !s.contains('&') {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut changed = false;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let entity = tail
            .find(';')
            .filter(|end| *end <= 10)
            .and_then(|end| Some((end, entity(&tail[1..end])?)));
        match entity {
            Some((end, c)) => {
                out.push(c);
                rest = &tail[end + 1..];
                changed = true;
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    changed.then_some(out)
}

fn entity(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let code = match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => name.strip_prefix('#')?.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn named_and_numeric() {
        assert_eq!(
            decode("&lt;unknown process&gt;").as_deref(),
            Some("<unknown process>")
        );
        assert_eq!(
            decode("a&amp;b&#65;&#x42;&quot;&apos;").as_deref(),
            Some("a&bAB\"'")
        );
        assert_eq!(decode("AT&T & co"), None);
        assert_eq!(decode("&bogus; &amp"), None);
        assert_eq!(decode("plain"), None);
    }
}
