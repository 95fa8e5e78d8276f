//! The spool's files: numbered segments of framed records, and the head file that says how far
//! the records are settled.
//!
//! A frame is `length (u32 LE) | CRC32 of source and record (u32 LE) | source (u16 LE) |
//! record`. A crash can leave the last frame of the last segment cut short; opening the spool
//! finds the last whole frame and goes on from there.

use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes of a frame before its record.
pub const FRAME_HEADER: usize = 10;

/// The path of segment `n`.
pub fn path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016}.seg"))
}

/// The number of a segment file, from its name.
pub fn number(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 16).then(|| digits.parse().ok()).flatten()
}

/// Every segment in `dir`, by number, with its size.
pub fn list(dir: &Path) -> io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(n) = entry.file_name().to_str().and_then(number) {
            out.push((n, entry.metadata()?.len()));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Appends the frame of `record` from `source` to `out`.
pub fn encode(out: &mut Vec<u8>, source: u16, record: &[u8]) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&source.to_le_bytes());
    crc.update(record);
    out.extend_from_slice(&(record.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&source.to_le_bytes());
    out.extend_from_slice(record);
}

/// What reading a frame found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A record and its source.
    Record(u16, Vec<u8>),
    /// The segment's bytes end before the frame does (a write cut short).
    Cut,
    /// The frame is damaged: its checksum does not match, or its length is past `limit`.
    Damaged(&'static str),
}

/// A frame's header: its source, and its record's length and checksum.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// The listener's number.
    pub source: u16,
    /// The record's length.
    pub len: u64,
    crc: u32,
}

/// Reads frames of one segment from an offset up to an end.
pub struct Frames {
    r: BufReader<std::fs::File>,
    /// Where the next frame starts.
    pub offset: u64,
    end: u64,
    limit: u64,
}

impl Frames {
    /// Frames of the segment at `path` from `offset` to `end`; records over `limit` bytes are
    /// taken as damage.
    pub fn open(path: &Path, offset: u64, end: u64, limit: u64) -> io::Result<Self> {
        let mut f = std::fs::File::open(path)?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(Self {
            r: BufReader::with_capacity(256 << 10, f),
            offset,
            end,
            limit,
        })
    }

    /// The next frame's header, `None` at the end; `Err(frame)` when the frame is cut short
    /// or damaged.
    pub fn next_head(&mut self) -> io::Result<Option<Result<Head, Frame>>> {
        if self.offset >= self.end {
            return Ok(None);
        }
        if self.end - self.offset < FRAME_HEADER as u64 {
            return Ok(Some(Err(Frame::Cut)));
        }
        let mut head = [0u8; FRAME_HEADER];
        self.r.read_exact(&mut head)?;
        let len = u64::from(u32::from_le_bytes(head[..4].try_into().expect("4")));
        let crc = u32::from_le_bytes(head[4..8].try_into().expect("4"));
        let source = u16::from_le_bytes(head[8..10].try_into().expect("2"));
        if len > self.limit {
            return Ok(Some(Err(Frame::Damaged("a length past any record"))));
        }
        if self.end - self.offset - (FRAME_HEADER as u64) < len {
            return Ok(Some(Err(Frame::Cut)));
        }
        Ok(Some(Ok(Head { source, len, crc })))
    }

    /// Appends the record of `head` to `out`; `false` (and nothing appended) when its checksum
    /// does not match.
    pub fn read_into(&mut self, head: &Head, out: &mut Vec<u8>) -> io::Result<bool> {
        let start = out.len();
        (&mut self.r).take(head.len).read_to_end(out)?;
        if ((out.len() - start) as u64) < head.len {
            out.truncate(start);
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&head.source.to_le_bytes());
        h.update(&out[start..]);
        if h.finalize() != head.crc {
            out.truncate(start);
            return Ok(false);
        }
        self.offset += FRAME_HEADER as u64 + head.len;
        Ok(true)
    }

    /// The next frame, `None` at the end.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        let head = match self.next_head()? {
            None => return Ok(None),
            Some(Err(bad)) => return Ok(Some(bad)),
            Some(Ok(h)) => h,
        };
        let mut record = Vec::with_capacity(head.len as usize);
        if !self.read_into(&head, &mut record)? {
            return Ok(Some(Frame::Damaged("a checksum that does not match")));
        }
        Ok(Some(Frame::Record(head.source, record)))
    }
}

/// Where a segment's whole frames end, and what was wrong after them, if anything.
pub fn scan(path: &Path, size: u64, limit: u64) -> io::Result<(u64, Option<Frame>)> {
    let mut frames = Frames::open(path, 0, size, limit)?;
    loop {
        match frames.next_frame()? {
            None => return Ok((frames.offset, None)),
            Some(Frame::Record(..)) => {}
            Some(bad) => return Ok((frames.offset, Some(bad))),
        }
    }
}

/// The settled position: segment and offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Segment number.
    pub segment: u64,
    /// Byte offset in it.
    pub offset: u64,
}

/// Reads the head file (`segment offset`), if any.
pub fn read_head(dir: &Path) -> Option<Pos> {
    let text = std::fs::read_to_string(dir.join("head")).ok()?;
    let mut parts = text.split_whitespace();
    Some(Pos {
        segment: parts.next()?.parse().ok()?,
        offset: parts.next()?.parse().ok()?,
    })
}

/// Writes the head file atomically (a new file, synced, renamed over the old).
pub fn write_head(dir: &Path, pos: Pos) -> io::Result<()> {
    let tmp = dir.join("head.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "{} {}", pos.segment, pos.offset)?;
    f.sync_data()?;
    std::fs::rename(&tmp, dir.join("head"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_and_a_cut_or_damaged_tail_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), 7);
        let mut buf = Vec::new();
        encode(&mut buf, 1, b"{\"a\":1}");
        encode(&mut buf, 2, b"{\"b\":2}");
        let whole = buf.len() as u64;
        encode(&mut buf, 1, b"{\"c\":3}");
        std::fs::write(&p, &buf[..buf.len() - 3]).unwrap();
        assert_eq!(number(p.file_name().unwrap().to_str().unwrap()), Some(7));
        let size = buf.len() as u64 - 3;
        let (end, bad) = scan(&p, size, 1 << 20).unwrap();
        assert_eq!((end, bad), (whole, Some(Frame::Cut)));
        let mut f = Frames::open(&p, 0, whole, 1 << 20).unwrap();
        assert_eq!(
            f.next_frame().unwrap(),
            Some(Frame::Record(1, b"{\"a\":1}".to_vec()))
        );
        buf[FRAME_HEADER + 2] ^= 1;
        std::fs::write(&p, &buf).unwrap();
        let (end, bad) = scan(&p, buf.len() as u64, 1 << 20).unwrap();
        assert_eq!(end, 0);
        assert!(matches!(bad, Some(Frame::Damaged(_))));
    }

    #[test]
    fn the_head_is_written_and_read() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_head(dir.path()), None);
        let pos = Pos {
            segment: 3,
            offset: 99,
        };
        write_head(dir.path(), pos).unwrap();
        assert_eq!(read_head(dir.path()), Some(pos));
    }
}
