//! A strict reader of flat JSON objects: one pass over a line that finds each key and the JSON
//! text of its value, copying nothing but the `Message`, which it unescapes on the way.
//!
//! It accepts exactly the JSON grammar (RFC 8259) for an object whose keys have no escapes or
//! dots and whose values are strings, numbers, `true`, `false`, `null`, or arrays of those.
//! Anything else (invalid JSON included) is `None`, and the record goes to the general path,
//! which says what is wrong with it; so do `\u` escapes of surrogates, which the general path
//! checks. Lines holding control characters (raw tabs or line breaks between tokens too) are
//! left to the general path as well: then no string can hold one, and strings are crossed by
//! jumping from quote or backslash to the next, sixteen bytes at a time.

/// The fields of a flat record: `(key, value as JSON text)` in order, borrowed from `line`,
/// and the string its (first) `Message` holds, unescaped; returns the object's text (`line`
/// without the blanks around it).
pub(super) fn flat_object<'a>(
    line: &'a [u8],
    fields: &mut Vec<(&'a str, &'a str)>,
    message: &mut Option<String>,
) -> Option<&'a str> {
    let line = simdutf8::basic::from_utf8(line).ok()?.trim_ascii();
    if has_control(line.as_bytes()) {
        return None;
    }
    let mut s = Scanner { text: line, pos: 0 };
    s.byte(b'{')?;
    s.blanks();
    if s.peek()? == b'}' {
        return None;
    }
    loop {
        s.blanks();
        let key = s.string()?;
        let key = &key[1..key.len() - 1];
        // Escaped keys, and dotted ones (which the dialect rules rename), are left to the
        // general path.
        if key.bytes().any(|b| b == b'\\' || b == b'.') {
            return None;
        }
        s.blanks();
        s.byte(b':')?;
        s.blanks();
        let value = if key == "Message" && s.peek() == Some(b'"') && message.is_none() {
            // The rules read the Message unescaped: done while crossing it.
            let text = message.insert(String::with_capacity(line.len() - s.pos));
            s.string_into(text)?
        } else {
            s.flat_value()?
        };
        fields.push((key, value));
        s.blanks();
        match s.next()? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
    }
    (s.pos == line.len()).then_some(line)
}

/// Where the next quote or backslash is. Most strings, and most runs between two escapes, are
/// short: on x86-64 memchr's SSE2 searcher is called directly (SSE2 is part of every x86-64
/// CPU, so nothing is detected at run time, and the search is inlined here), which crosses a
/// short string in one or two compares of sixteen bytes. `memchr2` elsewhere.
#[cfg(target_arch = "x86_64")]
#[inline]
fn special(bytes: &[u8]) -> Option<usize> {
    memchr::arch::x86_64::sse2::memchr::Two::new(b'"', b'\\')
        .expect("SSE2 is part of x86-64")
        .find(bytes)
}

/// Where the next quote or backslash is.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn special(bytes: &[u8]) -> Option<usize> {
    memchr::memchr2(b'"', b'\\', bytes)
}

/// Whether a line holds a control character (in blocks the compiler turns into SIMD).
fn has_control(line: &[u8]) -> bool {
    line.chunks(64)
        .any(|block| block.iter().fold(false, |found, &b| found | (b < 0x20)))
}

/// The character an escape stands for, from the bytes after its backslash, and how many of
/// them it takes; `None` for an invalid escape, or a `\u` escape of a surrogate (`D800` to
/// `DFFF`, alone or in a pair), which the general path checks and decodes.
#[inline(always)]
fn escape(after: &[u8]) -> Option<(char, usize)> {
    let c = match *after.first()? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => return unicode_escape(after.get(1..5)?),
        _ => return None,
    };
    Some((c, 1))
}

/// The character of a `\u` escape from its four hex digits (see [`escape`]).
#[cold]
fn unicode_escape(hex: &[u8]) -> Option<(char, usize)> {
    if !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let code = hex.iter().fold(0, |code, &h| {
        code * 16 + char::from(h).to_digit(16).unwrap_or(0)
    });
    // `from_u32` refuses surrogates.
    char::from_u32(code).map(|c| (c, 5))
}

/// Appends the string that `inner` (a string's text between its quotes, as [`flat_object`]
/// found it) holds to `out`, escapes decoded.
pub(super) fn unescape(inner: &str, out: &mut String) -> Option<()> {
    let bytes = inner.as_bytes();
    let mut at = 0;
    while let Some(found) = memchr::memchr(b'\\', &bytes[at..]) {
        out.push_str(&inner[at..at + found]);
        let (c, len) = escape(&bytes[at + found + 1..])?;
        out.push(c);
        at += found + 1 + len;
    }
    out.push_str(&inner[at..]);
    Some(())
}

struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn blanks(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    /// The text from `start` to here.
    fn since(&self, start: usize) -> &'a str {
        &self.text[start..self.pos]
    }

    /// A string, quotes included. [`Self::string_into`] without the copy, inlined where keys
    /// and values are read: most are short, and the call cost as much as crossing them.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        let start = self.pos;
        self.byte(b'"')?;
        let bytes = self.text.as_bytes();
        loop {
            let at = self.pos + special(&bytes[self.pos..])?;
            self.pos = at + 1;
            if bytes[at] == b'"' {
                return Some(self.since(start));
            }
            self.pos += escape(&bytes[self.pos..])?.1;
        }
    }

    /// A string, quotes included; the string it holds is appended to `out` on the way
    /// (escapes decoded).
    fn string_into(&mut self, out: &mut String) -> Option<&'a str> {
        let start = self.pos;
        self.byte(b'"')?;
        let bytes = self.text.as_bytes();
        loop {
            let at = self.pos + special(&bytes[self.pos..])?;
            out.push_str(&self.text[self.pos..at]);
            self.pos = at + 1;
            if bytes[at] == b'"' {
                return Some(self.since(start));
            }
            // Escapes come in runs (`\r\n\t\t` in a rendered message): the whole run is
            // decoded before the next search.
            loop {
                let (c, len) = escape(&bytes[self.pos..])?;
                out.push(c);
                self.pos += len;
                if bytes.get(self.pos) != Some(&b'\\') {
                    break;
                }
                self.pos += 1;
            }
        }
    }

    fn digits(&mut self) -> Option<()> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        (self.pos > start).then_some(())
    }

    /// A number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<&'a str> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        if self.peek()? == b'0' {
            self.pos += 1;
        } else {
            self.digits()?;
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.digits()?;
        }
        Some(self.since(start))
    }

    fn literal(&mut self, word: &str) -> Option<&'a str> {
        let start = self.pos;
        self.text[start..].starts_with(word).then(|| {
            self.pos += word.len();
            self.since(start)
        })
    }

    /// A string, number or literal.
    fn scalar(&mut self) -> Option<&'a str> {
        match self.peek()? {
            b'"' => self.string(),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => None,
        }
    }

    /// A scalar, or an array of scalars.
    fn flat_value(&mut self) -> Option<&'a str> {
        if self.peek()? != b'[' {
            return self.scalar();
        }
        let start = self.pos;
        self.pos += 1;
        self.blanks();
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(self.since(start));
        }
        loop {
            self.blanks();
            self.scalar()?;
            self.blanks();
            match self.next()? {
                b',' => {}
                b']' => return Some(self.since(start)),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(line: &str) -> Option<Vec<(&str, &str)>> {
        let mut fields = Vec::new();
        flat_object(line.as_bytes(), &mut fields, &mut None).map(|text| {
            assert_eq!(text, line.trim());
            fields
        })
    }

    #[test]
    fn flat_objects_give_their_fields_as_text() {
        let line =
            r#" {"a" : "x\"y\\", "b":-1.5e+3,"c":true, "d":null,"e":[ 1 , "z" ],"f":[],"g":0} "#;
        assert_eq!(
            scan(line).unwrap(),
            [
                ("a", r#""x\"y\\""#),
                ("b", "-1.5e+3"),
                ("c", "true"),
                ("d", "null"),
                ("e", r#"[ 1 , "z" ]"#),
                ("f", "[]"),
                ("g", "0"),
            ]
        );
        assert_eq!(
            scan(r#"{"u":"\u00e9\/"}"#).unwrap(),
            [("u", r#""\u00e9\/""#)]
        );
    }

    #[test]
    fn the_next_quote_or_backslash_is_found_at_any_offset() {
        for len in 0..40 {
            for at in 0..=len {
                for special_byte in [b'"', b'\\'] {
                    // Filler of multi-byte UTF-8 and bytes next to the ones looked for.
                    let mut text: Vec<u8> = "é!#[]".bytes().cycle().take(len).collect();
                    let want = (at < len).then(|| {
                        text[at] = special_byte;
                        at
                    });
                    assert_eq!(special(&text), want, "{len} {at}");
                }
            }
        }
    }

    #[test]
    fn the_message_is_unescaped_on_the_way() {
        let line = r#"{"a":"\r","Message":"T:\r\nImage: C:\\a \"b\" \u00e9\/","Message":"x"}"#;
        let mut message = None;
        let mut fields = Vec::new();
        flat_object(line.as_bytes(), &mut fields, &mut message).unwrap();
        assert_eq!(message.as_deref(), Some("T:\r\nImage: C:\\a \"b\" é/"));
        assert_eq!(fields[1].1, r#""T:\r\nImage: C:\\a \"b\" \u00e9\/""#);
        let mut out = String::new();
        unescape(&fields[1].1[1..fields[1].1.len() - 1], &mut out).unwrap();
        assert_eq!(Some(out), message);
    }

    #[test]
    fn anything_else_is_left_to_the_general_path() {
        for line in [
            "",
            "{}",
            "[1]",
            "{",
            r#"{"a":1"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":1}x"#,
            r#"{"a":1}}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":1e}"#,
            r#"{"a":tru}"#,
            r#"{"a":nul}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12g4"}"#,
            r#"{"a":"b}"#,
            "{\"a\":\"\t\"}",
            "{\"a\":\t1}",
            r#"{"a":{"b":1}}"#,
            r#"{"a":[[1]]}"#,
            r#"{"a":[{"b":1}]}"#,
            r#"{"a.b":1}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[1 2]}"#,
            r#"{"k\u0041":1}"#,
            r#"{"a":"\ud83d\ude00"}"#,
            r#"{"a":"\uDC00"}"#,
            r#"{a:1}"#,
            r#"{"a":'b'}"#,
            r#"{"a":+1}"#,
        ] {
            assert_eq!(scan(line), None, "{line}");
        }
        assert_eq!(
            flat_object(b"{\"a\":\"\xff\"}", &mut Vec::new(), &mut None),
            None
        );
    }
}
