//! The head file: how far the spool's records are settled (`SEGMENT OFFSET`), and its checks at
//! open. A head that cannot be right (it does not parse, it names a segment that does not
//! exist while segments below it do, or an offset past its segment's end) refuses the spool:
//! nothing is deleted on its word. A head inside a frame is moved back to the frame's start
//! (records may be sent again, which their ids make harmless), and said loudly.

use super::{io_error, segment, SpoolError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The settled position: segment and offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Segment number.
    pub segment: u64,
    /// Byte offset in it.
    pub offset: u64,
}

impl Pos {
    /// Byte `offset` of segment `segment`.
    pub fn new(segment: u64, offset: u64) -> Self {
        Self { segment, offset }
    }

    /// The start of segment `segment`.
    pub fn default_at(segment: u64) -> Self {
        Self { segment, offset: 0 }
    }
}

/// What to do about a head that cannot be right, told with the refusal.
const WHAT_TO_DO: &str = "nothing was deleted. If every record in the spool was delivered, \
    delete its segments; otherwise delete the head file to read every segment from its start \
    (records delivered before are found again by their ids), or write into it the first \
    segment not delivered as `SEGMENT 0`";

/// The head file of the spool in `dir`.
pub fn file(dir: &Path) -> PathBuf {
    dir.join("head")
}

/// Reads the head file, `None` when there is none (a new spool).
pub fn read(dir: &Path) -> Result<Option<Pos>, SpoolError> {
    let path = file(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Err(refused(&path, "it is not text".into()))
        }
        Err(e) => return Err(io_error(&path)(e)),
    };
    parse(&text).map(Some).ok_or_else(|| {
        let shown: String = text.trim().chars().take(40).collect();
        refused(&path, format!("`{shown}` is not `SEGMENT OFFSET`"))
    })
}

fn parse(text: &str) -> Option<Pos> {
    let mut parts = text.split_whitespace();
    let pos = Pos {
        segment: parts.next()?.parse().ok()?,
        offset: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(pos)
}

fn refused(path: &Path, problem: String) -> SpoolError {
    SpoolError::Head {
        path: path.to_owned(),
        problem,
        what_to_do: WHAT_TO_DO,
    }
}

/// Writes the head file atomically (a new file, synced, renamed over the old).
pub fn write(dir: &Path, pos: Pos) -> io::Result<()> {
    let tmp = dir.join("head.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "{} {}", pos.segment, pos.offset)?;
    f.sync_data()?;
    std::fs::rename(&tmp, file(dir))
}

/// Where the spool's reading starts, as the head file says once checked.
#[derive(Debug, PartialEq, Eq)]
pub struct Start {
    /// The settled position (it may name a segment deleted since).
    pub pos: Pos,
    /// Segments wholly behind it, settled, to delete.
    pub behind: Vec<u64>,
    /// What was repaired, said as an ERROR and counted as a warning.
    pub repaired: Option<String>,
}

/// Checks the head `head` against the segments on disk (number and size); a head inside a
/// frame is moved back to the frame's start, in the file too.
pub fn check(dir: &Path, head: Option<Pos>, segments: &[(u64, u64)]) -> Result<Start, SpoolError> {
    let Some(head) = head else {
        return Ok(Start {
            pos: Pos::default(),
            behind: Vec::new(),
            repaired: None,
        });
    };
    let behind: Vec<u64> = segments
        .iter()
        .map(|&(n, _)| n)
        .filter(|&n| n < head.segment)
        .collect();
    let Some(&(_, size)) = segments.iter().find(|&&(n, _)| n == head.segment) else {
        if let (Some(first), Some(last)) = (behind.first(), behind.last()) {
            return Err(refused(
                &file(dir),
                format!(
                    "it names segment {}, which does not exist, while segments below it do \
                     ({} of them, {first} to {last})",
                    head.segment,
                    behind.len()
                ),
            ));
        }
        // Every segment left is above it (they were reclaimed, then evtship stopped), or
        // there is none.
        return Ok(Start {
            pos: head,
            behind,
            repaired: None,
        });
    };
    let path = segment::path(dir, head.segment);
    if head.offset > size {
        return Err(refused(
            &file(dir),
            format!(
                "offset {} is past the end of segment {} ({}, {size} bytes)",
                head.offset,
                head.segment,
                path.display()
            ),
        ));
    }
    let at = segment::boundary(&path, size, head.offset).map_err(io_error(&path))?;
    let pos = Pos {
        segment: head.segment,
        offset: at,
    };
    let repaired = (at != head.offset)
        .then(|| repair(dir, head, pos, &path))
        .transpose()?;
    Ok(Start {
        pos,
        behind,
        repaired,
    })
}

/// Moves the head back from `head` (inside a frame of `path`) to `pos`, the frame's start.
fn repair(dir: &Path, head: Pos, pos: Pos, path: &Path) -> Result<String, SpoolError> {
    let m = format!(
        "spool head file {}: offset {} is inside a frame of segment {} ({}); moved back to \
         the frame's start at byte {}: records from there may be sent again (their ids make \
         that harmless)",
        file(dir).display(),
        head.offset,
        head.segment,
        path.display(),
        pos.offset
    );
    tracing::error!("{m}");
    write(dir, pos).map_err(io_error(&file(dir)))?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool(records: usize) -> (tempfile::TempDir, Vec<(u64, u64)>, Vec<u64>) {
        let dir = tempfile::tempdir().unwrap();
        let mut buf = segment::SEGMENT_HEADER.to_vec();
        let mut starts = Vec::new();
        for i in 0..records {
            starts.push(buf.len() as u64);
            segment::encode(&mut buf, 0, format!("{{\"n\":{i}}}").as_bytes());
        }
        for n in [3, 4] {
            std::fs::write(segment::path(dir.path(), n), &buf).unwrap();
        }
        let size = buf.len() as u64;
        (dir, vec![(3, size), (4, size)], starts)
    }

    #[test]
    fn the_head_is_written_and_read() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let pos = Pos {
            segment: 3,
            offset: 99,
        };
        write(dir.path(), pos).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(pos));
    }

    #[test]
    fn a_head_that_does_not_parse_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for text in ["", "7", "x 1", "1 -2", "1 2 3"] {
            std::fs::write(file(dir.path()), text).unwrap();
            let e = read(dir.path()).unwrap_err().to_string();
            assert!(e.contains(&file(dir.path()).display().to_string()), "{e}");
            assert!(e.contains("is not `SEGMENT OFFSET`"), "{e}");
            assert!(e.contains("delete the head file"), "{e}");
        }
    }

    #[test]
    fn a_head_naming_a_missing_segment_above_others_is_refused() {
        let (dir, segs, _) = spool(3);
        let head = Some(Pos::default_at(99));
        let e = check(dir.path(), head, &segs).unwrap_err().to_string();
        assert!(e.contains("names segment 99, which does not exist"), "{e}");
        assert!(e.contains("3 to 4"), "{e}");
    }

    #[test]
    fn a_head_past_its_segment_is_refused() {
        let (dir, segs, _) = spool(3);
        let head = Some(Pos {
            segment: 3,
            offset: segs[0].1 + 1,
        });
        let e = check(dir.path(), head, &segs).unwrap_err().to_string();
        assert!(e.contains("is past the end of segment 3"), "{e}");
    }

    #[test]
    fn legit_heads_are_taken_as_they_are() {
        let (dir, segs, starts) = spool(3);
        let at = Pos {
            segment: 4,
            offset: starts[2],
        };
        let s = check(dir.path(), Some(at), &segs).unwrap();
        assert_eq!((s.pos, s.behind, s.repaired), (at, vec![3], None));
        // Segment 2 was settled and reclaimed, then evtship stopped.
        let gone = Pos {
            segment: 2,
            offset: 500,
        };
        let s = check(dir.path(), Some(gone), &segs).unwrap();
        assert_eq!((s.pos, s.behind), (gone, vec![]));
        let s = check(dir.path(), Some(gone), &[]).unwrap();
        assert_eq!(s.pos, gone);
        let s = check(dir.path(), None, &segs).unwrap();
        assert_eq!(s.pos, Pos::default());
    }

    #[test]
    fn a_head_inside_a_frame_is_moved_back_to_its_start() {
        let (dir, segs, starts) = spool(3);
        let inside = Pos {
            segment: 3,
            offset: starts[1] + 7,
        };
        let s = check(dir.path(), Some(inside), &segs).unwrap();
        let back = Pos {
            segment: 3,
            offset: starts[1],
        };
        assert_eq!(s.pos, back);
        let m = s.repaired.expect("said");
        assert!(m.contains(&format!(
            "moved back to the frame's start at byte {}",
            starts[1]
        )));
        assert_eq!(read(dir.path()).unwrap(), Some(back));
    }
}
