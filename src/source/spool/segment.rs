//! The spool's segment files: numbered files of framed records.
//!
//! A segment begins with the 8 bytes of [`SEGMENT_HEADER`], then holds frames:
//!
//! ```text
//! magic FF 45 56 46 | length (u32 LE) | source (u16 LE) | header CRC32 (u32 LE) |
//! record CRC32 (u32 LE) | record
//! ```
//!
//! The header checksum covers the magic, the length and the source; the record's checksum
//! covers the record alone. A reader can therefore find its way past damage ([`Frames`]): a
//! frame whose header holds but whose record does not is skipped by its length (one record
//! lost); a frame whose header does not hold (a flipped length byte, say) is skipped by
//! looking forward for the next magic whose header checksum holds. The magic begins with 0xFF,
//! a byte that UTF-8 text (and so a JSON record) never holds.
//!
//! Segments without that header are of the format evtship wrote before it (frames of
//! `length | CRC32 of source and record | source | record`, no magic): they are still read,
//! but past damage in them there is no frame to find, and the rest of such a segment is lost.
//!
//! A crash can leave the last frame of the last segment cut short: it was never synced, so
//! never counted received; opening the spool finds it and cuts it off.

pub use super::frames::{Frames, Head, Item, Loss, Next};
use std::io;
use std::path::{Path, PathBuf};

/// The first bytes of a segment of the current format.
pub const SEGMENT_HEADER: [u8; 8] = [0xFF, b'E', b'V', b'S', b'P', b'O', b'O', 2];
/// The first bytes of every frame of the current format.
pub const FRAME_MAGIC: [u8; 4] = [0xFF, b'E', b'V', b'F'];
/// Bytes of a frame before its record: magic, length, source and the two checksums.
pub const FRAME_HEADER: usize = 18;
/// Bytes of a frame of the old format before its record: length, checksum, source.
pub const LEGACY_FRAME_HEADER: usize = 10;

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

/// The header checksum of a frame: over its magic, length and source.
pub(super) fn header_crc(len: u32, source: u16) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&FRAME_MAGIC);
    crc.update(&len.to_le_bytes());
    crc.update(&source.to_le_bytes());
    crc.finalize()
}

/// Appends the frame of `record` from `source` to `out` (a segment's bytes after its
/// [`SEGMENT_HEADER`]).
pub fn encode(out: &mut Vec<u8>, source: u16, record: &[u8]) {
    let len = record.len() as u32;
    out.extend_from_slice(&FRAME_MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&source.to_le_bytes());
    out.extend_from_slice(&header_crc(len, source).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(record).to_le_bytes());
    out.extend_from_slice(record);
}

/// Appends the frame of `record` in the old format (segments without [`SEGMENT_HEADER`]), as
/// evtship wrote it before; for tests of the reading of old spools.
pub fn encode_legacy(out: &mut Vec<u8>, source: u16, record: &[u8]) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&source.to_le_bytes());
    crc.update(record);
    out.extend_from_slice(&(record.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&source.to_le_bytes());
    out.extend_from_slice(record);
}

/// The start of the frame (or of the unreadable bytes) that holds byte `offset` of a segment
/// of `size` bytes: `offset` itself when a frame starts there, 0 when it falls in the
/// segment header. `offset` must not be past `size`.
pub fn boundary(path: &Path, size: u64, offset: u64) -> io::Result<u64> {
    let mut frames = Frames::open(path, 0, size)?;
    if offset < frames.offset {
        return Ok(0);
    }
    let mut scratch = Vec::new();
    loop {
        let start = frames.offset;
        if start >= offset {
            return Ok(start);
        }
        scratch.clear();
        if frames.next_item(&mut scratch)?.is_none() || frames.offset > offset {
            return Ok(start);
        }
    }
}

/// The frame cut short at the end of a segment of `size` bytes, read from `offset` (a frame
/// boundary), if its bytes end inside one.
pub fn cut_tail(path: &Path, size: u64, offset: u64) -> io::Result<Option<Loss>> {
    let mut frames = Frames::open(path, offset, size)?;
    let mut scratch = Vec::new();
    let mut last = None;
    loop {
        scratch.clear();
        match frames.next_item(&mut scratch)? {
            None => return Ok(last),
            Some(Item::Cut(cut)) => last = Some(cut),
            Some(_) => last = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[&[u8]]) -> (Vec<u8>, Vec<u64>) {
        let mut buf = SEGMENT_HEADER.to_vec();
        let mut starts = Vec::new();
        for (i, r) in records.iter().enumerate() {
            starts.push(buf.len() as u64);
            encode(&mut buf, i as u16, r);
        }
        (buf, starts)
    }

    #[test]
    fn names_are_numbered() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), 7);
        assert_eq!(number(p.file_name().unwrap().to_str().unwrap()), Some(7));
        assert_eq!(number("0000000000000007.tmp"), None);
    }

    #[test]
    fn a_frame_is_its_header_then_its_record() {
        let mut buf = Vec::new();
        encode(&mut buf, 3, b"{}");
        assert_eq!(buf.len(), FRAME_HEADER + 2);
        assert_eq!(buf[..4], FRAME_MAGIC);
        assert_eq!(u32::from_le_bytes(buf[4..8].try_into().unwrap()), 2);
        assert_eq!(u16::from_le_bytes(buf[8..10].try_into().unwrap()), 3);
        assert_eq!(&buf[FRAME_HEADER..], b"{}");
    }

    #[test]
    fn a_boundary_is_the_start_of_the_frame_an_offset_falls_in() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), 1);
        let (buf, starts) = segment(&[b"{\"a\":1}", b"{\"b\":22}", b"{\"c\":333}"]);
        std::fs::write(&p, &buf).unwrap();
        let size = buf.len() as u64;
        assert_eq!(boundary(&p, size, 0).unwrap(), 0);
        assert_eq!(boundary(&p, size, 3).unwrap(), 0);
        assert_eq!(boundary(&p, size, 8).unwrap(), 8);
        assert_eq!(boundary(&p, size, starts[1]).unwrap(), starts[1]);
        assert_eq!(boundary(&p, size, starts[1] + 5).unwrap(), starts[1]);
        assert_eq!(boundary(&p, size, size - 1).unwrap(), starts[2]);
        assert_eq!(boundary(&p, size, size).unwrap(), size);
    }

    #[test]
    fn a_cut_tail_is_found_and_a_whole_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), 1);
        let (buf, starts) = segment(&[b"{\"a\":1}", b"{\"b\":22}"]);
        std::fs::write(&p, &buf).unwrap();
        assert_eq!(cut_tail(&p, buf.len() as u64, 0).unwrap(), None);
        for cut in [1, 5, FRAME_HEADER + 3] {
            let size = starts[1] + cut as u64;
            std::fs::write(&p, &buf[..size as usize]).unwrap();
            let tail = cut_tail(&p, size, 0).unwrap().expect("a cut frame");
            assert_eq!((tail.start, tail.end, tail.frames), (starts[1], size, 1));
        }
    }

    #[test]
    fn legacy_frames_read_back_and_a_cut_tail_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), 1);
        let mut buf = Vec::new();
        encode_legacy(&mut buf, 1, b"{\"a\":1}");
        let whole = buf.len() as u64;
        encode_legacy(&mut buf, 2, b"{\"b\":2}");
        std::fs::write(&p, &buf[..buf.len() - 3]).unwrap();
        let size = buf.len() as u64 - 3;
        let tail = cut_tail(&p, size, 0).unwrap().expect("a cut frame");
        assert_eq!((tail.start, tail.end, tail.exact), (whole, size, false));
        assert_eq!(boundary(&p, size, 4).unwrap(), 0);
    }
}
