//! The integrity of an `.evtx` file, checked before its records are read: the file header's
//! chunk count against what the file holds (a truncated copy), and every chunk's two CRC32s
//! (its header's, and its event records'), which the `evtx` crate does not check by default.
//!
//! A chunk that fails is still read (its records may be whole; the parser reads what it can),
//! and reported with the range of record ids it holds, so that its documents can be found.

use crate::chunk::StreamProblem;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Bytes of the file header block.
const FILE_HEADER: u64 = 4096;
/// Bytes of a chunk.
const CHUNK: u64 = 65536;
/// Bytes of a chunk's header, after which its event records start.
const CHUNK_HEADER: usize = 512;
/// Chunk flag: the chunk carries no CRC32s.
const NO_CRC32: u32 = 0x4;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("four bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"))
}

/// What is wrong with the file at `path` (named `origin` in messages): nothing, or one
/// problem for the truncation and one per damaged chunk.
pub(crate) fn check(path: &Path, origin: &str) -> Vec<StreamProblem> {
    match check_file(path, origin) {
        Ok(problems) => problems,
        Err(e) => vec![StreamProblem::Lost(format!(
            "{origin}: cannot read it to check its chunks: {e}"
        ))],
    }
}

fn check_file(path: &Path, origin: &str) -> std::io::Result<Vec<StreamProblem>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut header = [0u8; 128];
    let got = file.read(&mut header)?;
    if got < header.len() || !header.starts_with(b"ElfFile\0") {
        // The parser says what is wrong with a file that is no .evtx file at all.
        return Ok(Vec::new());
    }
    let mut problems = Vec::new();
    let declared = u64::from(u16_at(&header, 42));
    let held = len.saturating_sub(FILE_HEADER) / CHUNK;
    if declared > held || len < FILE_HEADER {
        let part = if len > FILE_HEADER && !(len - FILE_HEADER).is_multiple_of(CHUNK) {
            " and part of one"
        } else {
            ""
        };
        problems.push(StreamProblem::Lost(format!(
            "{origin}: truncated at byte {len}: its header declares {declared} chunks of 64 KiB, \
             the file holds {held}{part}; the records of the missing chunks are lost"
        )));
    }
    let mut chunk = vec![0u8; CHUNK as usize];
    for number in 0..held {
        file.seek(SeekFrom::Start(FILE_HEADER + number * CHUNK))?;
        file.read_exact(&mut chunk)?;
        if let Some(p) = check_chunk(&chunk, number, origin) {
            problems.push(p);
        }
    }
    Ok(problems)
}

/// The checksums of one chunk; `None` when they match, or when the chunk has none to check
/// (unused space, a bad magic the parser reports itself, the no-CRC32 flag).
fn check_chunk(chunk: &[u8], number: u64, origin: &str) -> Option<StreamProblem> {
    if !chunk.starts_with(b"ElfChnk\0") || u32_at(chunk, 120) & NO_CRC32 != 0 {
        return None;
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&chunk[..120]);
    hasher.update(&chunk[128..CHUNK_HEADER]);
    let header = (u32_at(chunk, 124), hasher.finalize());
    let free = (u32_at(chunk, 48) as usize).clamp(CHUNK_HEADER, chunk.len());
    let records = (
        u32_at(chunk, 52),
        crc32fast::hash(&chunk[CHUNK_HEADER..free]),
    );
    let what = if header.0 != header.1 {
        ("header", header)
    } else if records.0 != records.1 {
        ("event records", records)
    } else {
        return None;
    };
    let (first, last) = (u64_at(chunk, 24), u64_at(chunk, 32));
    Some(StreamProblem::Lost(format!(
        "{origin}: chunk {number}: its {} CRC32 does not match (stored {:#010x}, computed \
         {:#010x}); its records (EventRecordID {first} to {last}) were read as they are and \
         may hold damaged values",
        what.0, what.1 .0, what.1 .1
    )))
}
