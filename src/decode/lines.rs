//! NDJSON framing: bytes to records, one record a line.
//!
//! A record is one line. Line ends may be LF or CRLF, a UTF-8 byte order mark at the start of a
//! stream is dropped, and blank lines are skipped. Lines are gathered into [`RawChunk`]s so that
//! the parsing stage receives work in pieces large enough to keep every core busy.

use crate::chunk::{Flow, RawChunk, RawLine, StreamError, StreamPos, StreamTotals};
use crate::common::InputId;
use std::io::BufRead;
use std::sync::Arc;

/// Longest line kept whole by default (`[decode] max_line_bytes`): far above real records
/// (the largest Sysmon and PowerShell records are tens of kilobytes).
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// Bytes kept of a line longer than the limit, for its dead letter.
pub const CUT_LINE_KEPT: usize = 1024;

/// One line read: the bytes consumed (line end included) and, when the line was longer than
/// the limit, its full length (only its first [`CUT_LINE_KEPT`] bytes were kept).
struct Line {
    consumed: usize,
    cut: Option<u64>,
}

/// Appends the next line of `reader` (through its `\n`, or to the end of the stream) to `buf`,
/// as [`BufRead::read_until`] does, but finds the newline with the memchr crate (SIMD; the
/// standard library's search took a tenth of a core at 600 MB/s). A line longer than `max`
/// is not held: its first bytes are kept, the rest is consumed and dropped as it is read.
fn read_line<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>, max: usize) -> std::io::Result<Line> {
    let start = buf.len();
    let mut line = Line {
        consumed: 0,
        cut: None,
    };
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let (used, done) = match memchr::memchr(b'\n', available) {
            Some(at) => (at + 1, true),
            None => (available.len(), available.is_empty()),
        };
        if line.cut.is_none() {
            buf.extend_from_slice(&available[..used]);
            if buf.len() - start > max {
                buf.truncate(start + CUT_LINE_KEPT.min(max));
                line.cut = Some(0);
            }
        }
        reader.consume(used);
        line.consumed += used;
        if done {
            if let Some(len) = line.cut.as_mut() {
                *len = line.consumed as u64;
            }
            return Ok(line);
        }
    }
}

/// Splits `reader` into lines and hands them over in chunks; `emit` returns whether to go on.
/// `start` is where `reader` begins in its stream (line numbers and offsets continue from it).
/// Lines longer than [`MAX_LINE_BYTES`] are cut (see [`read_lines_limited`]).
///
/// On a read error the lines before it have been handed over; the error names the stream and
/// the line reached.
pub fn read_lines<R: BufRead>(
    reader: R,
    input: InputId,
    origin: &Arc<str>,
    start: StreamPos,
    emit: &mut dyn FnMut(RawChunk) -> Flow,
) -> Result<(StreamTotals, Flow), StreamError> {
    read_lines_limited(reader, input, origin, start, MAX_LINE_BYTES, emit)
}

/// [`read_lines`], with lines longer than `max_line` bytes cut: such a line is handed over
/// with only its first bytes and its full length ([`crate::chunk::RawLine::cut`]), so that it
/// is dead-lettered as too long while the rest of the stream goes on; it is never held whole.
pub fn read_lines_limited<R: BufRead>(
    mut reader: R,
    input: InputId,
    origin: &Arc<str>,
    start: StreamPos,
    max_line: usize,
    emit: &mut dyn FnMut(RawChunk) -> Flow,
) -> Result<(StreamTotals, Flow), StreamError> {
    let mut chunk = RawChunk::new(input, origin);
    let mut totals = StreamTotals::default();
    let mut number = start.line;
    let mut offset = start.offset;
    let first_line = start.line + 1;
    loop {
        let start = chunk.buf.len();
        let line = match read_line(&mut reader, &mut chunk.buf, max_line) {
            Ok(line) => line,
            Err(source) => {
                chunk.buf.truncate(start);
                if !chunk.lines.is_empty() {
                    chunk.end = StreamPos {
                        line: number,
                        offset,
                    };
                    emit(chunk);
                }
                return Err(StreamError {
                    origin: origin.clone(),
                    line: number + 1,
                    source,
                });
            }
        };
        let n = line.consumed;
        if n == 0 {
            break;
        }
        number += 1;
        offset += n as u64;
        totals.bytes += n as u64;
        let mut end = chunk.buf.len();
        while end > start && matches!(chunk.buf[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        let mut begin = start;
        if number == 1 && first_line == 1 && chunk.buf[begin..end].starts_with(b"\xEF\xBB\xBF") {
            begin += 3;
        }
        if line.cut.is_none() && chunk.buf[begin..end].iter().all(u8::is_ascii_whitespace) {
            chunk.buf.truncate(start);
            continue;
        }
        chunk.buf.truncate(end);
        totals.records += 1;
        chunk.lines.push(RawLine {
            number,
            range: begin..end,
            cut: line.cut,
        });
        if chunk.is_full() {
            chunk.end = StreamPos {
                line: number,
                offset,
            };
            totals.end = chunk.end;
            let full = std::mem::replace(&mut chunk, RawChunk::new(input, origin));
            if emit(full) == Flow::Stop {
                return Ok((totals, Flow::Stop));
            }
        }
    }
    chunk.end = StreamPos {
        line: number,
        offset,
    };
    totals.end = chunk.end;
    if !chunk.lines.is_empty() && emit(chunk) == Flow::Stop {
        return Ok((totals, Flow::Stop));
    }
    Ok((totals, Flow::Continue))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(data: &[u8]) -> Vec<(u64, String)> {
        let origin: Arc<str> = Arc::from("t");
        let mut out = Vec::new();
        read_lines(data, 0, &origin, StreamPos::default(), &mut |c| {
            for (i, l) in c.lines.iter().enumerate() {
                out.push((l.number, String::from_utf8_lossy(c.line(i)).into_owned()));
            }
            Flow::Continue
        })
        .unwrap();
        out
    }

    #[test]
    fn crlf_bom_blank_lines_and_no_final_newline() {
        let got = lines(b"\xEF\xBB\xBF{\"a\":1}\r\n\r\n{\"b\":2}\n  \n{\"c\":3}");
        assert_eq!(
            got,
            vec![
                (1, "{\"a\":1}".to_owned()),
                (3, "{\"b\":2}".to_owned()),
                (5, "{\"c\":3}".to_owned())
            ]
        );
    }

    #[test]
    fn reading_resumes_from_a_position() {
        let origin: Arc<str> = Arc::from("t");
        let mut got = Vec::new();
        let start = StreamPos {
            line: 10,
            offset: 500,
        };
        read_lines(&b"a\n\nb\n"[..], 0, &origin, start, &mut |c| {
            got.push((c.lines[0].number, c.lines[1].number, c.end));
            Flow::Continue
        })
        .unwrap();
        assert_eq!(
            got,
            vec![(
                11,
                13,
                StreamPos {
                    line: 13,
                    offset: 505
                }
            )]
        );
    }

    #[test]
    fn a_line_over_the_limit_is_cut_without_being_held_and_the_rest_goes_on() {
        let origin: Arc<str> = Arc::from("t");
        let long = "x".repeat(5000);
        let data = format!("{{\"a\":1}}\n{long}\n{{\"b\":2}}\n{long}");
        let mut lines = Vec::new();
        let (totals, _) = read_lines_limited(
            data.as_bytes(),
            0,
            &origin,
            StreamPos::default(),
            2000,
            &mut |c| {
                for (i, l) in c.lines.iter().enumerate() {
                    lines.push((l.number, l.cut, c.line(i).len()));
                }
                Flow::Continue
            },
        )
        .unwrap();
        assert_eq!(
            lines,
            vec![
                (1, None, 7),
                (2, Some(5001), CUT_LINE_KEPT),
                (3, None, 7),
                (4, Some(5000), CUT_LINE_KEPT)
            ]
        );
        assert_eq!(totals.end.offset, data.len() as u64);
    }

    #[test]
    fn large_inputs_are_split_into_chunks() {
        let line = format!("{{\"x\":\"{}\"}}\n", "y".repeat(1000));
        let data = line.repeat(3000);
        let origin: Arc<str> = Arc::from("t");
        let mut chunks = 0;
        let mut records = 0;
        let (totals, _) = read_lines(
            data.as_bytes(),
            0,
            &origin,
            StreamPos::default(),
            &mut |c| {
                chunks += 1;
                records += c.lines.len();
                Flow::Continue
            },
        )
        .unwrap();
        assert!(chunks > 1);
        assert_eq!(records, 3000);
        assert_eq!(totals.bytes, data.len() as u64);
    }
}
