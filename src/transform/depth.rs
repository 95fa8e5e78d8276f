//! How deep a JSON text nests, found in one pass that does not recurse: the general path
//! refuses a record nested deeper than [`MAX_DEPTH`] before any parser recurses into it (a
//! line of twenty thousand `[` would overflow a parser's stack and kill the run).

/// Deepest nesting of objects and arrays a record may have. Real records nest four or five
/// levels (Winlogbeat, ECS); serde_json's own limit is 128.
pub const MAX_DEPTH: usize = 128;

/// Whether `text` opens more than `limit` objects or arrays inside one another (brackets inside
/// strings do not count).
pub fn deeper_than(text: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                // Skip the string: to the next quote that no backslash escapes.
                i += 1;
                while i < text.len() {
                    match memchr::memchr2(b'"', b'\\', &text[i..]) {
                        Some(at) if text[i + at] == b'\\' => i += at + 2,
                        Some(at) => {
                            i += at;
                            break;
                        }
                        None => return false,
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        assert!(!deeper_than(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(deeper_than(br#"{"a":[1,{"b":[2]}]}"#, 3));
        assert!(!deeper_than(br#"{"a":"[[[[[[\"[[[["}"#, 1));
        assert!(deeper_than("[".repeat(20_000).as_bytes(), MAX_DEPTH));
        assert!(!deeper_than(b"[[]][[]][[]]", 2));
        assert!(!deeper_than(br#"{"unterminated":"[[[["#, 1));
    }
}
