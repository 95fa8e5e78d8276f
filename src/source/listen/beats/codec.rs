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

/// A `D` frame's pairs as a JSON object of strings.
pub fn data_pairs(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<u8>, CodecError> {
    let mut map = serde_json::Map::with_capacity(pairs.len());
    for (k, v) in pairs {
        let k = String::from_utf8(k).map_err(|_| CodecError::NotUtf8)?;
        let v = String::from_utf8(v).map_err(|_| CodecError::NotUtf8)?;
        map.insert(k, serde_json::Value::String(v));
    }
    Ok(serde_json::to_vec(&map).expect("a map of strings serialises"))
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
pub fn parse_all(mut b: &[u8], limit: u64) -> Result<Vec<Frame>, CodecError> {
    let cut = || CodecError::Inflate("a frame is cut short".into());
    let mut frames = Vec::new();
    while !b.is_empty() {
        if b.len() < 2 {
            return Err(cut());
        }
        version(b[0])?;
        let kind = b[1];
        let header = header_len(kind)?;
        let head = b.get(2..2 + header).ok_or_else(cut)?;
        b = &b[2 + header..];
        match kind {
            b'W' => frames.push(Frame::Window(u32_at(head, 0))),
            b'J' => {
                let len = payload_len(kind, head, limit)?.expect("J has a length");
                let json = b.get(..len).ok_or_else(cut)?;
                frames.push(Frame::Event(u32_at(head, 0), json.to_vec()));
                b = &b[len..];
            }
            b'D' => {
                let (seq, count) = (u32_at(head, 0), u32_at(head, 4));
                let mut pairs = Vec::new();
                for _ in 0..count {
                    let mut take = || -> Result<Vec<u8>, CodecError> {
                        let len = u32_at(b.get(..4).ok_or_else(cut)?, 0) as usize;
                        let v = b.get(4..4 + len).ok_or_else(cut)?.to_vec();
                        b = &b[4 + len..];
                        Ok(v)
                    };
                    let k = take()?;
                    let v = take()?;
                    pairs.push((k, v));
                }
                frames.push(Frame::Event(seq, data_pairs(pairs)?));
            }
            b'C' => return Err(CodecError::Nested),
            other => return Err(CodecError::FrameType(other)),
        }
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
}
