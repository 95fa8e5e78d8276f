//! The Lumberjack (Beats) wire format, versions 2 and 1, as logstash-input-beats' `PROTOCOL.md`
//! describes it. Every integer is big-endian.
//!
//! ```text
//! W  window:      version 'W' count:u32                 events the sender sends before it waits
//! J  JSON event:  version 'J' seq:u32 len:u32 json      (version 2)
//! D  data event:  version 'D' seq:u32 pairs:u32 (klen:u32 key vlen:u32 value)*   (legacy)
//! C  compressed:  version 'C' len:u32 zlib(frames)      whole frames inside, never another C
//! A  ACK:         version 'A' seq:u32                   from the server; 0 is a keep-alive
//! ```
//!
//! Sequence numbers restart at 1 in every window; an ACK is cumulative within its window.

use std::io::Read;
use thiserror::Error;

/// What a frame was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A new window of this many events.
    Window(u32),
    /// An event: its sequence number and its JSON object.
    Event(u32, Vec<u8>),
    /// Frames that came compressed (already inflated and parsed).
    Compressed(Vec<Frame>),
}

/// Why a stream is not Lumberjack, or too large to take.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    /// A version byte other than `2` or `1`.
    #[error("unknown protocol version byte {0:#04x}")]
    Version(u8),
    /// A frame type this server does not know.
    #[error("unknown frame type {0:#04x}")]
    FrameType(u8),
    /// A frame larger than the listener's limit.
    #[error("a frame of {size} bytes is larger than the limit of {limit}")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A compressed frame inside a compressed frame.
    #[error("a compressed frame inside a compressed frame")]
    Nested,
    /// A compressed frame that does not inflate, or holds a cut frame.
    #[error("a compressed frame that does not inflate: {0}")]
    Inflate(String),
    /// A data frame whose key or value is not UTF-8.
    #[error("a data frame whose pairs are not UTF-8")]
    NotUtf8,
}

/// The protocol version a sender speaks (ACKs are sent in the same).
pub fn version(byte: u8) -> Result<u8, CodecError> {
    match byte {
        b'2' | b'1' => Ok(byte),
        other => Err(CodecError::Version(other)),
    }
}

/// The header of a frame after its version and type bytes: how many more bytes to read before
/// [`body`] can parse it (the payload lengths come in the header itself).
pub fn header_len(kind: u8) -> Result<usize, CodecError> {
    match kind {
        b'W' => Ok(4),
        b'J' | b'D' => Ok(8),
        b'C' => Ok(4),
        other => Err(CodecError::FrameType(other)),
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("four bytes"))
}

/// The payload length a header announces (`J`, `C`), within `limit`; `None` for frames whose
/// payload is not one length (`W` has none, `D` is read pair by pair).
pub fn payload_len(kind: u8, header: &[u8], limit: u64) -> Result<Option<usize>, CodecError> {
    let size = match kind {
        b'J' => u64::from(u32_at(header, 4)),
        b'C' => u64::from(u32_at(header, 0)),
        _ => return Ok(None),
    };
    if size > limit {
        return Err(CodecError::TooLarge { size, limit });
    }
    Ok(Some(size as usize))
}

/// Bytes a `D` frame's pair takes on the wire besides its key and value (their lengths).
pub const PAIR_WIRE_BYTES: u64 = 8;

/// Bytes of the JSON string `s` as serde_json writes it (quotes and escapes included).
fn json_str_len(s: &[u8]) -> usize {
    2 + s
        .iter()
        .map(|&b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// One key or value of a `D` frame's pairs, and the bytes after it.
fn pair_part(b: &[u8]) -> Result<(&[u8], &[u8]), CodecError> {
    let cut = || CodecError::Inflate("a frame is cut short".into());
    let len = u32_at(b.get(..4).ok_or_else(cut)?, 0) as usize;
    let part = b.get(4..4 + len).ok_or_else(cut)?;
    Ok((part, &b[4 + len..]))
}

/// The size of the JSON object that `count` pairs at the start of `pairs` make, and how many
/// bytes of `pairs` they take; refused past `limit` (JSON bytes) or when a key or value is not
/// UTF-8. Nothing is allocated: the caller charges the size before [`write_data`] builds it.
pub fn data_len(pairs: &[u8], count: u32, limit: u64) -> Result<(usize, usize), CodecError> {
    let (mut json, mut rest) = (2usize, pairs);
    for i in 0..count {
        for _ in 0..2 {
            let (part, after) = pair_part(rest)?;
            std::str::from_utf8(part).map_err(|_| CodecError::NotUtf8)?;
            json += json_str_len(part);
            rest = after;
        }
        json += usize::from(i > 0) + 1;
        if json as u64 > limit {
            return Err(CodecError::TooLarge {
                size: json as u64,
                limit,
            });
        }
    }
    Ok((json, pairs.len() - rest.len()))
}

/// Appends the JSON object of `count` pairs (checked by [`data_len`]) to `out`, in their
/// order. A key given twice (no sender does this: the pairs come from a map) is written twice,
/// and the record's parser takes one of them; keeping a set of keys would cost memory per pair.
pub fn write_data(pairs: &[u8], count: u32, out: &mut Vec<u8>) {
    let mut rest = pairs;
    out.push(b'{');
    for i in 0..count {
        let (k, after) = pair_part(rest).expect("checked by data_len");
        let (v, after) = pair_part(after).expect("checked by data_len");
        rest = after;
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, as_str(k)).expect("writing to a Vec");
        out.push(b':');
        serde_json::to_writer(&mut *out, as_str(v)).expect("writing to a Vec");
    }
    out.push(b'}');
}

fn as_str(b: &[u8]) -> &str {
    std::str::from_utf8(b).expect("checked by data_len")
}

/// A frame inside an inflated payload, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inner<'a> {
    /// A new window of this many events.
    Window(u32),
    /// A `J` event: its sequence number and JSON.
    Json(u32, &'a [u8]),
    /// A `D` event: its sequence number, its pairs, how many, and the size of their JSON.
    Data {
        /// Sequence number.
        seq: u32,
        /// The pairs' bytes.
        pairs: &'a [u8],
        /// How many pairs.
        count: u32,
        /// Bytes of the JSON object they make.
        json_len: usize,
    },
}

/// The frames of an inflated payload, one at a time, without copying them.
pub struct Cursor<'a> {
    b: &'a [u8],
    limit: u64,
}

impl<'a> Cursor<'a> {
    /// The frames of `b`; an event over `limit` bytes is refused.
    pub fn new(b: &'a [u8], limit: u64) -> Self {
        Self { b, limit }
    }

    /// The next frame, `None` at the end.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Inner<'a>>, CodecError> {
        let cut = || CodecError::Inflate("a frame is cut short".into());
        let b = self.b;
        if b.is_empty() {
            return Ok(None);
        }
        if b.len() < 2 {
            return Err(cut());
        }
        version(b[0])?;
        let kind = b[1];
        let header = header_len(kind)?;
        let head = b.get(2..2 + header).ok_or_else(cut)?;
        let rest = &b[2 + header..];
        let (frame, rest) = match kind {
            b'W' => (Inner::Window(u32_at(head, 0)), rest),
            b'J' => {
                let len = payload_len(kind, head, self.limit)?.expect("J has a length");
                let json = rest.get(..len).ok_or_else(cut)?;
                (Inner::Json(u32_at(head, 0), json), &rest[len..])
            }
            b'D' => {
                let (seq, count) = (u32_at(head, 0), u32_at(head, 4));
                let (json_len, used) = data_len(rest, count, self.limit)?;
                let pairs = &rest[..used];
                let frame = Inner::Data {
                    seq,
                    pairs,
                    count,
                    json_len,
                };
                (frame, &rest[used..])
            }
            b'C' => return Err(CodecError::Nested),
            other => return Err(CodecError::FrameType(other)),
        };
        self.b = rest;
        Ok(Some(frame))
    }
}

/// Inflates a `C` frame's payload (at most `limit` bytes once inflated) and parses the frames
/// inside it, which must be whole and must not be compressed again.
pub fn inflate(payload: &[u8], limit: u64) -> Result<Vec<Frame>, CodecError> {
    let mut inflated = Vec::with_capacity(payload.len() * 4);
    let mut z = flate2::read::ZlibDecoder::new(payload).take(limit + 1);
    z.read_to_end(&mut inflated)
        .map_err(|e| CodecError::Inflate(e.to_string()))?;
    if inflated.len() as u64 > limit {
        return Err(CodecError::TooLarge {
            size: inflated.len() as u64,
            limit,
        });
    }
    parse_all(&inflated, limit)
}

/// Every frame of an inflated payload (or of any buffer holding whole frames).
pub fn parse_all(b: &[u8], limit: u64) -> Result<Vec<Frame>, CodecError> {
    let mut cursor = Cursor::new(b, limit);
    let mut frames = Vec::new();
    while let Some(inner) = cursor.next()? {
        frames.push(match inner {
            Inner::Window(n) => Frame::Window(n),
            Inner::Json(seq, json) => Frame::Event(seq, json.to_vec()),
            Inner::Data {
                seq,
                pairs,
                count,
                json_len,
            } => {
                let mut json = Vec::with_capacity(json_len);
                write_data(pairs, count, &mut json);
                Frame::Event(seq, json)
            }
        });
    }
    Ok(frames)
}

/// The ACK of `seq` in `version` (`A` with sequence 0 is a keep-alive).
pub fn ack(version: u8, seq: u32) -> [u8; 6] {
    let s = seq.to_be_bytes();
    [version, b'A', s[0], s[1], s[2], s[3]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn json_frame(seq: u32, json: &[u8]) -> Vec<u8> {
        let mut f = vec![b'2', b'J'];
        f.extend(seq.to_be_bytes());
        f.extend((json.len() as u32).to_be_bytes());
        f.extend(json);
        f
    }

    #[test]
    fn compressed_frames_inflate_into_events_and_nesting_is_refused() {
        let mut inner = json_frame(1, br#"{"a":1}"#);
        inner.extend([
            b'1', b'D', 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, b'k', 0, 0, 0, 1, b'v',
        ]);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&inner).unwrap();
        let payload = z.finish().unwrap();
        let frames = inflate(&payload, 1 << 20).unwrap();
        assert_eq!(
            frames,
            vec![
                Frame::Event(1, br#"{"a":1}"#.to_vec()),
                Frame::Event(2, br#"{"k":"v"}"#.to_vec())
            ]
        );
        let mut nested = vec![b'2', b'C', 0, 0, 0, 0];
        nested.extend(&payload);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&nested).unwrap();
        assert_eq!(
            inflate(&z.finish().unwrap(), 1 << 20),
            Err(CodecError::Nested)
        );
        assert!(matches!(
            inflate(&payload, 4),
            Err(CodecError::TooLarge { .. })
        ));
        assert_eq!(ack(b'2', 7), [b'2', b'A', 0, 0, 0, 7]);
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (k, v) in list {
            for s in [k, v] {
                b.extend((s.len() as u32).to_be_bytes());
                b.extend(s.as_bytes());
            }
        }
        b
    }

    #[test]
    fn data_pairs_make_the_json_a_map_of_strings_would_and_cost_what_they_make() {
        let list = [
            ("message", "a \"quoted\"\n\u{1}line"),
            ("host", "ws-01"),
            ("", ""),
        ];
        let b = pairs(&list);
        let (len, used) = data_len(&b, 3, 1 << 20).unwrap();
        assert_eq!(used, b.len());
        let mut out = Vec::new();
        write_data(&b, 3, &mut out);
        let map: serde_json::Map<String, serde_json::Value> = list
            .iter()
            .map(|(k, v)| (k.to_string(), (*v).into()))
            .collect();
        assert_eq!(out, serde_json::to_vec(&map).unwrap());
        assert_eq!(out.len(), len);
        // Zero-length pairs cost their JSON against the limit: four billion are refused early.
        let zeros = vec![0u8; 8 * 1000];
        assert!(matches!(
            data_len(&zeros, u32::MAX, 4096),
            Err(CodecError::TooLarge { .. })
        ));
        assert!(matches!(
            data_len(&pairs(&[("k", "\u{0}")])[..5], 1, 4096),
            Err(CodecError::Inflate(_))
        ));
    }
}
