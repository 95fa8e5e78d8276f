//! Reading the frames of one segment, and finding the way past damage in them (the formats
//! are described in [`super::segment`]).

use super::segment::{header_crc, FRAME_HEADER, FRAME_MAGIC, LEGACY_FRAME_HEADER, SEGMENT_HEADER};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Bytes read at a time while looking for the next frame past damage.
const SEARCH_BLOCK: usize = 64 << 10;

/// A frame's header, once it holds: its source, and its record's length and checksum.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// The listener's number.
    pub source: u16,
    /// The record's length.
    pub len: u64,
    crc: u32,
}

/// Bytes of a segment that hold no record that can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// Where they start.
    pub start: u64,
    /// Where they end (exclusive).
    pub end: u64,
    /// The frames they held: the damaged frame and every other frame marker among them.
    pub frames: u64,
    /// Whether `frames` is exact: in a segment of the old format nothing marks a frame, and
    /// `frames` is then 1, the least the bytes held.
    pub exact: bool,
    /// What is wrong with them.
    pub why: &'static str,
}

/// What the frames of a segment hold next.
#[derive(Debug)]
pub enum Next {
    /// A frame whose header holds; its record follows ([`Frames::read_into`]).
    Frame(Head),
    /// Damaged bytes, skipped: the next frame starts at their end.
    Lost(Loss),
    /// The bytes end inside a frame: a write cut short, or a truncated segment.
    Cut(Loss),
}

/// One whole step of [`Frames::next_item`].
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// A record, from the frame starting at `start`, of listener `source`.
    Record {
        /// Where its frame starts.
        start: u64,
        /// The listener's number.
        source: u16,
    },
    /// Damaged bytes, skipped.
    Lost(Loss),
    /// The bytes end inside a frame.
    Cut(Loss),
}

/// The two formats of segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Segments with a header, frames with a magic and a header checksum.
    Framed,
    /// Segments of the old format: no header, no magic.
    Legacy,
}

/// Reads the frames of one segment from an offset up to an end; the reader's position is
/// always at [`Frames::offset`] between calls.
pub struct Frames<R> {
    r: R,
    /// Where the next frame starts.
    pub offset: u64,
    end: u64,
    format: Format,
}

impl Frames<BufReader<std::fs::File>> {
    /// Frames of the segment at `path` from `offset` (a frame boundary, or 0) to `end`.
    pub fn open(path: &Path, offset: u64, end: u64) -> io::Result<Self> {
        let f = std::fs::File::open(path)?;
        Frames::new(BufReader::with_capacity(256 << 10, f), offset, end)
    }
}

impl<R: Read + Seek> Frames<R> {
    /// Frames of the segment that `r` reads, from `offset` to `end`; its format is told by
    /// its first bytes.
    pub fn new(mut r: R, offset: u64, end: u64) -> io::Result<Self> {
        r.seek(SeekFrom::Start(0))?;
        let mut first = [0u8; SEGMENT_HEADER.len()];
        let n = read_up_to(&mut r, &mut first, end)?;
        let (format, data) = if first[..n] == SEGMENT_HEADER[..n] {
            (Format::Framed, n as u64)
        } else {
            (Format::Legacy, 0)
        };
        let offset = offset.max(data);
        r.seek(SeekFrom::Start(offset))?;
        Ok(Self {
            r,
            offset,
            end,
            format,
        })
    }

    /// What comes next, `None` at the end. After [`Next::Frame`], its record must be read
    /// with [`Frames::read_into`] before the next call.
    pub fn next_frame(&mut self) -> io::Result<Option<Next>> {
        if self.offset >= self.end {
            return Ok(None);
        }
        match self.format {
            Format::Framed => self.next_framed().map(Some),
            Format::Legacy => self.next_legacy().map(Some),
        }
    }

    /// The next record into `out` (appended), or what was in its way; `None` at the end.
    pub fn next_item(&mut self, out: &mut Vec<u8>) -> io::Result<Option<Item>> {
        let start = self.offset;
        let item = match self.next_frame()? {
            None => return Ok(None),
            Some(Next::Frame(head)) => match self.read_into(&head, out)? {
                None => Item::Record {
                    start,
                    source: head.source,
                },
                Some(lost) => Item::Lost(lost),
            },
            Some(Next::Lost(lost)) => Item::Lost(lost),
            Some(Next::Cut(cut)) => Item::Cut(cut),
        };
        Ok(Some(item))
    }

    /// Appends the record of `head` (just read by [`Frames::next_frame`]) to `out`; when its
    /// checksum does not match, nothing is appended and its frame is skipped (the rest of the
    /// segment, in the old format) and told as lost.
    pub fn read_into(&mut self, head: &Head, out: &mut Vec<u8>) -> io::Result<Option<Loss>> {
        let start = out.len();
        (&mut self.r).take(head.len).read_to_end(out)?;
        if ((out.len() - start) as u64) < head.len {
            out.truncate(start);
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let at = self.offset;
        let header = self.header_len();
        self.offset += header + head.len;
        let crc = match self.format {
            Format::Framed => crc32fast::hash(&out[start..]),
            Format::Legacy => {
                let mut h = crc32fast::Hasher::new();
                h.update(&head.source.to_le_bytes());
                h.update(&out[start..]);
                h.finalize()
            }
        };
        if crc == head.crc {
            return Ok(None);
        }
        out.truncate(start);
        let why = "a record whose checksum does not match";
        Ok(Some(match self.format {
            Format::Framed => Loss {
                start: at,
                end: self.offset,
                frames: 1,
                exact: true,
                why,
            },
            Format::Legacy => self.rest_lost(at, why),
        }))
    }

    fn header_len(&self) -> u64 {
        match self.format {
            Format::Framed => FRAME_HEADER as u64,
            Format::Legacy => LEGACY_FRAME_HEADER as u64,
        }
    }

    fn next_framed(&mut self) -> io::Result<Next> {
        let at = self.offset;
        let left = self.end - at;
        let mut bytes = [0u8; FRAME_HEADER];
        let n = left.min(FRAME_HEADER as u64) as usize;
        self.r.read_exact(&mut bytes[..n])?;
        let magic = n.min(FRAME_MAGIC.len());
        if n < FRAME_HEADER {
            let cut = bytes[..magic] == FRAME_MAGIC[..magic];
            return self.skip(at, cut, "a frame header cut short");
        }
        match parse_head(&bytes) {
            Some(head) if FRAME_HEADER as u64 + head.len <= left => Ok(Next::Frame(head)),
            Some(_) => self.skip(at, true, "a frame cut short"),
            None if bytes[..magic] != FRAME_MAGIC => {
                self.skip(at, false, "no frame marker where a frame starts")
            }
            None => self.skip(at, false, "a frame header whose checksum does not match"),
        }
    }

    /// Skips the damaged frame at `at` up to the next frame whose header holds (or to the
    /// end, as a cut frame when `cut`).
    fn skip(&mut self, at: u64, cut: bool, why: &'static str) -> io::Result<Next> {
        let (found, markers) = self.find_frame(at + 1)?;
        let end = found.unwrap_or(self.end);
        self.offset = end;
        self.r.seek(SeekFrom::Start(end))?;
        let loss = Loss {
            start: at,
            end,
            frames: 1 + markers,
            exact: true,
            why,
        };
        Ok(if cut && found.is_none() {
            Next::Cut(loss)
        } else {
            Next::Lost(loss)
        })
    }

    /// From `from` on: where the next frame whose header holds starts (or a magic too close
    /// to the end to hold a header, the start of a frame cut short), and how many frame
    /// markers whose header does not hold come before it.
    fn find_frame(&mut self, from: u64) -> io::Result<(Option<u64>, u64)> {
        if from >= self.end {
            return Ok((None, 0));
        }
        self.r.seek(SeekFrom::Start(from))?;
        let (mut buf, mut base, mut markers) = (Vec::new(), from, 0);
        loop {
            let old = buf.len();
            let want = (self.end - base - old as u64).min(SEARCH_BLOCK as u64) as usize;
            buf.resize(old + want, 0);
            self.r.read_exact(&mut buf[old..])?;
            let at_end = base + buf.len() as u64 == self.end;
            // Positions a header could start at with all its bytes in `buf` (or the end).
            let limit = if at_end {
                buf.len()
            } else {
                buf.len().saturating_sub(FRAME_HEADER - 1)
            };
            for p in 0..limit {
                if !buf[p..].starts_with(&FRAME_MAGIC) {
                    continue;
                }
                let whole = buf.get(p..p + FRAME_HEADER);
                if whole.is_none_or(|h| parse_head(h.try_into().expect("a header")).is_some()) {
                    return Ok((Some(base + p as u64), markers));
                }
                markers += 1;
            }
            if at_end {
                return Ok((None, markers));
            }
            buf.drain(..limit);
            base += limit as u64;
        }
    }

    fn next_legacy(&mut self) -> io::Result<Next> {
        let at = self.offset;
        let left = self.end - at;
        if left < LEGACY_FRAME_HEADER as u64 {
            return Ok(Next::Cut(self.rest_lost(at, "a frame header cut short")));
        }
        let mut b = [0u8; LEGACY_FRAME_HEADER];
        self.r.read_exact(&mut b)?;
        let head = Head {
            len: u64::from(u32::from_le_bytes(b[..4].try_into().expect("4"))),
            crc: u32::from_le_bytes(b[4..8].try_into().expect("4")),
            source: u16::from_le_bytes(b[8..10].try_into().expect("2")),
        };
        if left - (LEGACY_FRAME_HEADER as u64) < head.len {
            return Ok(Next::Cut(self.rest_lost(at, "a frame cut short")));
        }
        Ok(Next::Frame(head))
    }

    /// The rest of a segment of the old format, from `at`: nothing marks where its next frame
    /// would start.
    fn rest_lost(&mut self, at: u64, why: &'static str) -> Loss {
        self.offset = self.end;
        Loss {
            start: at,
            end: self.end,
            frames: 1,
            exact: false,
            why,
        }
    }
}

/// The header in `b`, if its magic and checksum hold.
fn parse_head(b: &[u8; FRAME_HEADER]) -> Option<Head> {
    let len = u32::from_le_bytes(b[4..8].try_into().expect("4"));
    let source = u16::from_le_bytes(b[8..10].try_into().expect("2"));
    let crc = u32::from_le_bytes(b[10..14].try_into().expect("4"));
    (b[..4] == FRAME_MAGIC && crc == header_crc(len, source)).then(|| Head {
        source,
        len: u64::from(len),
        crc: u32::from_le_bytes(b[14..18].try_into().expect("4")),
    })
}

/// Reads into `buf` until it is full, the stream ends, or `limit` bytes are read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8], limit: u64) -> io::Result<usize> {
    let want = buf.len().min(usize::try_from(limit).unwrap_or(usize::MAX));
    let mut n = 0;
    while n < want {
        match r.read(&mut buf[n..want]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::spool::segment::{encode, encode_legacy};
    use std::io::Cursor;

    /// A segment of records `{"n":i}` (one of them `big` bytes long, when asked), and where
    /// each frame starts.
    fn segment(n: usize, big: Option<(usize, usize)>) -> (Vec<u8>, Vec<u64>) {
        let mut buf = SEGMENT_HEADER.to_vec();
        let mut starts = Vec::new();
        for i in 0..n {
            starts.push(buf.len() as u64);
            let mut rec = format!("{{\"n\":{i}}}").into_bytes();
            if let Some((_, len)) = big.filter(|&(at, _)| at == i) {
                rec.resize(len, b' ');
                rec[len - 1] = b'}';
            }
            encode(&mut buf, i as u16, &rec);
        }
        (buf, starts)
    }

    /// Every item of `bytes`, with the records as text.
    fn items(bytes: &[u8]) -> (Vec<String>, Vec<Item>) {
        let mut f = Frames::new(Cursor::new(bytes), 0, bytes.len() as u64).unwrap();
        let (mut records, mut all) = (Vec::new(), Vec::new());
        loop {
            let mut out = Vec::new();
            match f.next_item(&mut out).unwrap() {
                None => return (records, all),
                Some(item) => {
                    if matches!(item, Item::Record { .. }) {
                        records.push(String::from_utf8(out).unwrap());
                    }
                    all.push(item);
                }
            }
        }
    }

    fn losses(all: &[Item]) -> Vec<(u64, u64, u64)> {
        all.iter()
            .filter_map(|i| match i {
                Item::Lost(l) | Item::Cut(l) => Some((l.start, l.end, l.frames)),
                Item::Record { .. } => None,
            })
            .collect()
    }

    fn numbers(records: &[String]) -> Vec<usize> {
        records
            .iter()
            .map(|r| r[5..r.find('}').unwrap()].trim().parse().unwrap())
            .collect()
    }

    #[test]
    fn whole_frames_read_back() {
        let (buf, starts) = segment(5, None);
        let (records, all) = items(&buf);
        assert_eq!(numbers(&records), [0, 1, 2, 3, 4]);
        assert_eq!(
            all[3],
            Item::Record {
                start: starts[3],
                source: 3
            }
        );
        assert!(items(&SEGMENT_HEADER).1.is_empty());
        assert!(items(&SEGMENT_HEADER[..3]).1.is_empty());
        assert!(items(&[]).1.is_empty());
    }

    #[test]
    fn a_damaged_record_costs_its_frame_alone() {
        let (mut buf, starts) = segment(5, None);
        buf[starts[2] as usize + FRAME_HEADER + 2] ^= 0x20;
        let (records, all) = items(&buf);
        assert_eq!(numbers(&records), [0, 1, 3, 4]);
        assert_eq!(losses(&all), [(starts[2], starts[3], 1)]);
    }

    #[test]
    fn a_damaged_header_is_skipped_to_the_next_frame_that_holds() {
        // Any byte of the header: magic, length, source, either checksum.
        for byte in 0..FRAME_HEADER {
            let (mut buf, starts) = segment(5, None);
            buf[starts[2] as usize + byte] ^= 0x04;
            let (records, all) = items(&buf);
            assert_eq!(numbers(&records), [0, 1, 3, 4], "byte {byte}");
            assert_eq!(losses(&all), [(starts[2], starts[3], 1)], "byte {byte}");
        }
    }

    #[test]
    fn damaged_frames_in_a_row_are_counted_by_their_markers() {
        let (mut buf, starts) = segment(6, None);
        for k in [1, 2, 3] {
            buf[starts[k] as usize + 5] ^= 0x01;
        }
        let (records, all) = items(&buf);
        assert_eq!(numbers(&records), [0, 4, 5]);
        assert_eq!(losses(&all), [(starts[1], starts[4], 3)]);
    }

    #[test]
    fn the_search_goes_across_its_blocks() {
        // A damaged header before a record of 200 KB, with the next frame's start at every
        // place around the end of a search block.
        for len in [
            200_000,
            SEARCH_BLOCK - 40,
            SEARCH_BLOCK - 20,
            SEARCH_BLOCK - 9,
        ] {
            for shift in 0..20 {
                let (mut buf, starts) = segment(4, Some((1, len + shift)));
                buf[starts[1] as usize + 4] ^= 0x80;
                let (records, all) = items(&buf);
                assert_eq!(numbers(&records), [0, 2, 3], "{len}+{shift}");
                assert_eq!(losses(&all), [(starts[1], starts[2], 1)], "{len}+{shift}");
            }
        }
    }

    #[test]
    fn a_frame_cut_short_is_told_from_damage() {
        let (buf, starts) = segment(3, None);
        for cut in [1, 3, 4, 10, FRAME_HEADER, FRAME_HEADER + 2] {
            let end = starts[2] as usize + cut;
            let (records, all) = items(&buf[..end]);
            assert_eq!(numbers(&records), [0, 1], "cut {cut}");
            assert!(
                matches!(all.last(), Some(Item::Cut(l)) if l.start == starts[2] && l.frames == 1),
                "cut {cut}: {all:?}"
            );
        }
        // Bytes that are no frame at the end are damage, not a cut.
        let mut junk = buf.clone();
        junk.extend_from_slice(b"xyz");
        let (_, all) = items(&junk);
        assert!(matches!(all.last(), Some(Item::Lost(l)) if l.start == buf.len() as u64));
    }

    #[test]
    fn a_damaged_frame_before_a_cut_one_leaves_the_cut_its_own() {
        let (mut buf, starts) = segment(3, None);
        buf[starts[1] as usize + 6] ^= 0x01;
        let end = starts[2] as usize + 7;
        let (records, all) = items(&buf[..end]);
        assert_eq!(numbers(&records), [0]);
        assert_eq!(
            losses(&all),
            [(starts[1], starts[2], 1), (starts[2], end as u64, 1)]
        );
        assert!(matches!(all.last(), Some(Item::Cut(_))));
    }

    #[test]
    fn old_segments_are_read_and_their_damage_costs_the_rest() {
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for i in 0..4 {
            starts.push(buf.len() as u64);
            encode_legacy(&mut buf, 0, format!("{{\"n\":{i}}}").as_bytes());
        }
        let (records, _) = items(&buf);
        assert_eq!(numbers(&records), [0, 1, 2, 3]);
        buf[starts[1] as usize + LEGACY_FRAME_HEADER + 1] ^= 0x01;
        let (records, all) = items(&buf);
        assert_eq!(numbers(&records), [0]);
        let end = buf.len() as u64;
        assert!(
            matches!(&all[1], Item::Lost(l) if (l.start, l.end, l.exact) == (starts[1], end, false))
        );
    }

    #[test]
    fn reading_starts_after_the_segment_header() {
        let (buf, starts) = segment(3, None);
        let f = Frames::new(Cursor::new(&buf), 0, buf.len() as u64).unwrap();
        assert_eq!(f.offset, starts[0]);
        let mut f = Frames::new(Cursor::new(&buf), starts[1], buf.len() as u64).unwrap();
        let mut out = Vec::new();
        f.next_item(&mut out).unwrap();
        assert_eq!(out, b"{\"n\":1}");
    }
}
