//! Framing of records on a byte stream: one per line (NXLog's `om_tcp`, syslog's traditional
//! framing), or octet-counted (`LEN SP MESSAGE`, RFC 6587 section 3.4.1), which syslog senders
//! choose per connection and [`Framer::detect`] recognises from the first byte.
//!
//! A [`Framer`] is fed bytes as they arrive and gives back whole records; a record over the
//! limit is refused (and, for lines, skipped up to its end) without holding more than the limit.

use std::ops::Range;

/// How records are delimited on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Each record ends with LF (a CR before it is dropped).
    Lines,
    /// Each record is preceded by its length in ASCII digits and a space.
    OctetCounted,
}

/// What is wrong with the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A record longer than the limit.
    #[error("a record of {size} bytes or more at byte {at} of the connection is over the limit of {limit} bytes")]
    TooLarge {
        /// Its size (or the size seen so far).
        size: u64,
        /// The limit.
        limit: u64,
        /// Where it starts.
        at: u64,
    },
    /// The connection ended inside a record.
    #[error(
        "a record cut short at byte {at} of the connection by its end ({size} bytes of it came)"
    )]
    Cut {
        /// The bytes of it that came.
        size: u64,
        /// Where it starts.
        at: u64,
    },
    /// An octet count that is no number.
    #[error("byte {at} of the connection: `{found}` is no octet count (RFC 6587 framing)")]
    BadCount {
        /// What was found instead.
        found: String,
        /// Where.
        at: u64,
    },
}

/// One framed record, or a record refused for its size (skipped: the stream goes on) or cut
/// by the end of the stream. An octet-counted stream cannot be trusted after a bad count and
/// ends.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed<'a> {
    /// A record's bytes.
    Record(&'a [u8]),
    /// A record over the limit, skipped (or, at the end, one cut short).
    Skipped(FramingError),
}

/// Cuts records out of the bytes of one connection.
#[derive(Debug)]
pub struct Framer {
    framing: Framing,
    limit: usize,
    buf: Vec<u8>,
    /// Where the bytes not taken yet start in `buf`.
    start: usize,
    /// Where those bytes start in the connection.
    offset: u64,
    /// Skipping the rest of an oversize line.
    skipping: bool,
    /// Bytes still to skip of an oversize octet-counted record.
    to_skip: u64,
}

impl Framer {
    /// A framer for `framing`, refusing records over `limit` bytes.
    pub fn new(framing: Framing, limit: usize) -> Self {
        Self {
            framing,
            limit: limit.max(1),
            buf: Vec::new(),
            start: 0,
            offset: 0,
            skipping: false,
            to_skip: 0,
        }
    }

    /// The framing a syslog sender chose, from the first byte it sent: a digit starts an
    /// octet count, anything else (`<` of a PRI) a line.
    pub fn detect(first: u8) -> Framing {
        if first.is_ascii_digit() {
            Framing::OctetCounted
        } else {
            Framing::Lines
        }
    }

    /// The framing in use.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Appends bytes received.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that are not a whole record yet.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether the stream is inside a record: some of it came, or the rest of an oversize
    /// one is being skipped.
    pub fn inside_record(&self) -> bool {
        self.skipping || self.to_skip > 0 || self.pending() > 0
    }

    /// Bytes of memory it holds.
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }

    /// Gives back memory a large record left behind once it is taken.
    pub fn compact(&mut self) {
        if self.buf.capacity() > (1 << 20) && self.pending() < self.buf.capacity() / 4 {
            self.buf.drain(..self.start);
            self.start = 0;
            self.buf.shrink_to(self.buf.len().max(64 << 10));
        }
    }

    fn live(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The next whole record, `None` when more bytes are needed; an error when the stream
    /// cannot go on.
    pub fn next_record(&mut self) -> Result<Option<Framed<'_>>, FramingError> {
        match self.framing {
            Framing::Lines => Ok(self.next_line()),
            Framing::OctetCounted => self.next_counted(),
        }
    }

    /// What is left at the end of the stream: a last line without its LF is a record (the
    /// sender closed after it); an octet-counted record not whole is cut short.
    pub fn finish(&mut self) -> Option<Framed<'_>> {
        if self.framing == Framing::OctetCounted {
            let blank = self
                .live()
                .iter()
                .all(|b| matches!(b, b'\n' | b'\r' | b' '));
            if self.to_skip > 0 || blank {
                return None;
            }
            let (size, at) = (self.pending() as u64, self.offset);
            self.consume(self.pending());
            return Some(Framed::Skipped(FramingError::Cut { size, at }));
        }
        if self.skipping || self.pending() == 0 {
            return None;
        }
        let start = std::mem::replace(&mut self.start, self.buf.len());
        let mut line = &self.buf[start..];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        (!line.is_empty()).then_some(Framed::Record(line))
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    fn next_line(&mut self) -> Option<Framed<'_>> {
        loop {
            let Some(end) = memchr::memchr(b'\n', self.live()) else {
                if self.pending() > self.limit {
                    let size = self.pending() as u64;
                    let at = self.offset;
                    self.consume(self.pending());
                    if !std::mem::replace(&mut self.skipping, true) {
                        return Some(Framed::Skipped(self.too_large(size, at)));
                    }
                }
                return None;
            };
            if self.skipping {
                self.skipping = false;
                self.consume(end + 1);
                continue;
            }
            let mut range: Range<usize> = 0..end;
            if end > 0 && self.live()[end - 1] == b'\r' {
                range.end -= 1;
            }
            if range.is_empty() {
                self.consume(end + 1);
                continue;
            }
            if range.len() > self.limit {
                let at = self.offset;
                self.consume(end + 1);
                return Some(Framed::Skipped(self.too_large(range.len() as u64, at)));
            }
            let at = self.start;
            self.consume(end + 1);
            return Some(Framed::Record(&self.buf[at + range.start..at + range.end]));
        }
    }

    fn next_counted(&mut self) -> Result<Option<Framed<'_>>, FramingError> {
        if self.to_skip > 0 {
            let n = self.to_skip.min(self.pending() as u64);
            self.consume(n as usize);
            self.to_skip -= n;
            if self.to_skip > 0 {
                return Ok(None);
            }
        }
        // Blank lines between frames (some senders end frames with LF too) are skipped.
        let blank = self
            .live()
            .iter()
            .take_while(|b| matches!(b, b'\n' | b'\r' | b' '))
            .count();
        self.consume(blank);
        let digits = self
            .live()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == self.pending() {
            if digits > 10 {
                return Err(self.bad_count(digits));
            }
            return Ok(None);
        }
        if digits == 0 || digits > 10 || self.live()[digits] != b' ' {
            return Err(self.bad_count(digits + 1));
        }
        let len: u64 = std::str::from_utf8(&self.live()[..digits])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| self.bad_count(digits))?;
        let start = digits + 1;
        if len > self.limit as u64 {
            // Its count is trusted: the declared bytes are skipped as they come, and the
            // stream goes on after them.
            let error = self.too_large(len, self.offset);
            self.consume(start);
            self.to_skip = len;
            return Ok(Some(Framed::Skipped(error)));
        }
        let end = start + len as usize;
        if self.pending() < end {
            return Ok(None);
        }
        let at = self.start;
        self.consume(end);
        let mut record = &self.buf[at + start..at + end];
        while let [rest @ .., b'\n' | b'\r'] = record {
            record = rest;
        }
        Ok(Some(Framed::Record(record)))
    }

    fn too_large(&self, size: u64, at: u64) -> FramingError {
        FramingError::TooLarge {
            size,
            limit: self.limit as u64,
            at,
        }
    }

    fn bad_count(&self, upto: usize) -> FramingError {
        let shown = &self.live()[..upto.min(self.pending()).min(24)];
        FramingError::BadCount {
            found: crate::common::printable(&String::from_utf8_lossy(shown)).into_owned(),
            at: self.offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records as strings; a skip as `!`.
    fn all(f: &mut Framer) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(Some(r)) = f.next_record() {
            out.push(shown(r));
        }
        out
    }

    fn shown(r: Framed<'_>) -> String {
        match r {
            Framed::Record(r) => String::from_utf8_lossy(r).into_owned(),
            Framed::Skipped(_) => "!".into(),
        }
    }

    fn rec(s: &str) -> String {
        s.to_owned()
    }

    #[test]
    fn lines_come_whole_whatever_the_pieces() {
        let mut f = Framer::new(Framing::Lines, 100);
        f.push(b"{\"a\":1}\r\n{\"b\"");
        assert_eq!(all(&mut f), vec![rec("{\"a\":1}")]);
        f.push(b":2}\n\n{\"c\":3}");
        assert_eq!(all(&mut f), vec![rec("{\"b\":2}")]);
        assert_eq!(f.finish().map(shown), Some(rec("{\"c\":3}")));
    }

    #[test]
    fn an_oversize_line_is_skipped_and_the_next_one_taken() {
        let mut f = Framer::new(Framing::Lines, 8);
        f.push(b"0123456789abc");
        assert!(matches!(
            f.next_record(),
            Ok(Some(Framed::Skipped(FramingError::TooLarge { at: 0, .. })))
        ));
        f.push(b"def\nok\n");
        assert_eq!(all(&mut f), vec![rec("ok")]);
        assert!(f.pending() == 0);
    }

    #[test]
    fn octet_counts_frame_messages_with_newlines_inside() {
        assert_eq!(Framer::detect(b'5'), Framing::OctetCounted);
        assert_eq!(Framer::detect(b'<'), Framing::Lines);
        let mut f = Framer::new(Framing::OctetCounted, 100);
        f.push(b"7 <13>a\nb11 <13>hello");
        assert_eq!(all(&mut f), vec![rec("<13>a\nb")]);
        f.push(b"!\n");
        assert_eq!(all(&mut f), vec![rec("<13>hello!")]);
        f.push(b"x1 y");
        assert!(matches!(
            f.next_record(),
            Err(FramingError::BadCount { .. })
        ));
    }

    #[test]
    fn an_oversize_octet_count_skips_its_bytes_and_the_stream_goes_on() {
        let mut f = Framer::new(Framing::OctetCounted, 10);
        f.push(b"11 <13>abc");
        assert!(matches!(
            f.next_record(),
            Ok(Some(Framed::Skipped(FramingError::TooLarge {
                size: 11,
                ..
            })))
        ));
        assert_eq!(all(&mut f), Vec::<String>::new());
        f.push(b"defg5 <13>x4 <13");
        assert_eq!(all(&mut f), vec![rec("<13>x")]);
        // The connection ends inside a record: cut, not a record.
        assert!(matches!(
            f.finish(),
            Some(Framed::Skipped(FramingError::Cut { size: 5, .. }))
        ));
        assert!(f.finish().is_none());
    }
}
