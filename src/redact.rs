//! Keeps secrets out of messages.

/// A URL with any `user:password@` part replaced by `***@`, safe to print.
pub fn url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
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
    }
}
