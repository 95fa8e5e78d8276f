//! Inputs: resolving paths, directories, globs, URLs and `-` (standard input) to inputs, and
//! reading each input's records.
//!
//! The format of an input is found from its first bytes, not its name: gzip (which may hold a
//! tar archive), zip, tar, `.evtx`, or plain NDJSON. Archives are streamed; nothing is unpacked
//! to disk. A zip or `.evtx` on standard input, which needs random access, is first spooled to a
//! temporary file.

mod archive;
mod evtx;
mod gzip;
mod tail;
pub mod url;

pub use evtx::flatten as flatten_evtx;
pub use tail::follow;

use crate::checkpoint::{Checkpoints, Resume};
use crate::decode::{read_lines, Flow, RawChunk, StreamPos};
use crate::metrics::{InputCounters, InputId, Stats};
use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use thiserror::Error;

pub use gzip::GzipStream;

/// A file whose reads and seeks move its input's [`InputCounters::position`] (progress).
pub(crate) struct Counted<R> {
    inner: R,
    at: u64,
    counters: Arc<InputCounters>,
}

impl<R> Counted<R> {
    pub(crate) fn new(inner: R, counters: Arc<InputCounters>) -> Self {
        counters.position.store(0, Relaxed);
        Self {
            inner,
            at: 0,
            counters,
        }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.at += n as u64;
        self.counters.position.store(self.at, Relaxed);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counted<R> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.at = self.inner.seek(pos)?;
        self.counters.position.store(self.at, Relaxed);
        Ok(self.at)
    }
}

/// Size of read buffers.
pub const READ_BUFFER: usize = 256 * 1024;

/// Where an input's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A local file.
    Path(PathBuf),
    /// Standard input (`-`).
    Stdin,
    /// An `http://` or `https://` URL, downloaded into the cache first.
    Url(String),
}

/// An input to read, resolved from the pipeline's inputs.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Position in the run's list of inputs.
    pub id: InputId,
    /// Where it is.
    pub location: Location,
}

impl InputFile {
    /// The name used in messages and the summary (credentials in URLs hidden).
    pub fn label(&self) -> String {
        match &self.location {
            Location::Path(p) => p.display().to_string(),
            Location::Stdin => "-".to_owned(),
            Location::Url(u) => crate::redact::url(u),
        }
    }
}

/// Settings of the reading stage.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Where URL inputs are downloaded.
    pub cache_dir: PathBuf,
    /// Threads for `.evtx` chunk parsing.
    pub threads: usize,
    /// Ignore stored positions and read every input from its start.
    pub from_start: bool,
    /// Take only this share of the records.
    pub shard: Option<crate::config::Shard>,
}

/// Why the inputs could not be resolved.
#[derive(Debug, Error)]
pub enum ResolveError {
    /// A named file or directory does not exist.
    #[error("input `{0}` does not exist")]
    Missing(String),
    /// A glob pattern is malformed.
    #[error("input `{pattern}` is not a valid glob: {message}")]
    BadGlob {
        /// The pattern.
        pattern: String,
        /// The parser's message.
        message: String,
    },
    /// A directory could not be listed.
    #[error("cannot list directory {path}: {source}")]
    ListDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// File names taken from directories and globs (explicitly named files are always read).
const EXTENSIONS: &[&str] = &[
    ".json", ".ndjson", ".jsonl", ".log", ".gz", ".tgz", ".zip", ".tar", ".evtx",
];

fn wanted(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    !name.starts_with('.') && EXTENSIONS.iter().any(|e| name.ends_with(e))
}

/// Expands paths, directories (recursively, sorted) and globs into a list of distinct files.
///
/// A named file or directory that does not exist is an error; a glob that matches nothing
/// is returned in the second list, for a warning.
pub fn resolve(patterns: &[String]) -> Result<(Vec<InputFile>, Vec<String>), ResolveError> {
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut others: Vec<(usize, Location)> = Vec::new();
    let mut unmatched = Vec::new();
    for pattern in patterns {
        if pattern == "-" {
            others.push((paths.len(), Location::Stdin));
        } else if pattern.starts_with("http://") || pattern.starts_with("https://") {
            others.push((paths.len(), Location::Url(pattern.clone())));
        } else if pattern.contains(['*', '?', '[']) {
            let entries = glob::glob(pattern).map_err(|e| ResolveError::BadGlob {
                pattern: pattern.clone(),
                message: e.to_string(),
            })?;
            let mut found: Vec<PathBuf> = entries.filter_map(Result::ok).collect();
            found.sort();
            let before = paths.len();
            for p in found {
                if p.is_dir() {
                    walk(&p, &mut paths)?;
                } else if wanted(&p) {
                    paths.push(p);
                }
            }
            if paths.len() == before {
                unmatched.push(pattern.clone());
            }
        } else {
            let p = PathBuf::from(pattern);
            if p.is_dir() {
                walk(&p, &mut paths)?;
            } else if p.exists() {
                paths.push(p);
            } else {
                return Err(ResolveError::Missing(pattern.clone()));
            }
        }
    }
    // Keep the order given, with stdin and URLs where they were named.
    let mut locations: Vec<Location> = Vec::new();
    let mut others = others.into_iter().peekable();
    for (i, p) in paths.into_iter().enumerate() {
        while let Some((_, loc)) = others.next_if(|(at, _)| *at <= i) {
            locations.push(loc);
        }
        locations.push(Location::Path(p));
    }
    locations.extend(others.map(|(_, loc)| loc));
    let mut seen = std::collections::HashSet::new();
    locations.retain(|loc| match loc {
        Location::Path(p) => seen.insert(Location::Path(
            p.canonicalize().unwrap_or_else(|_| p.clone()),
        )),
        other => seen.insert(other.clone()),
    });
    let files = locations
        .into_iter()
        .enumerate()
        .map(|(id, location)| InputFile { id, location })
        .collect();
    Ok((files, unmatched))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ResolveError> {
    let list = |dir: &Path| -> io::Result<Vec<PathBuf>> {
        let mut v = std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<io::Result<Vec<_>>>()?;
        v.sort();
        Ok(v)
    };
    let entries = list(dir).map_err(|source| ResolveError::ListDir {
        path: dir.to_owned(),
        source,
    })?;
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if wanted(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// The kinds of content recognised by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// gzip-compressed; may hold a tar archive.
    Gzip,
    /// A zip archive.
    Zip,
    /// An uncompressed tar archive.
    Tar,
    /// A Windows `.evtx` file.
    Evtx,
    /// Anything else: JSON lines.
    Lines,
}

/// Recognises a format from the first bytes of a stream (at least 262 for tar).
pub fn sniff(head: &[u8]) -> Format {
    if head.starts_with(&[0x1f, 0x8b]) {
        Format::Gzip
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Format::Zip
    } else if head.starts_with(b"ElfFile\0") {
        Format::Evtx
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Format::Tar
    } else {
        Format::Lines
    }
}

/// Reads one input to its end, handing records to `emit`.
///
/// Problems are reported (an error naming the input and position) and counted in `stats`;
/// whatever could be read is handed over. Returns [`Flow::Stop`] when `emit` asked to stop.
pub fn read_input(
    input: &InputFile,
    stats: &Stats,
    opts: &ReadOptions,
    checkpoints: Option<&Checkpoints>,
    emit: &mut dyn FnMut(RawChunk) -> Flow,
) -> Flow {
    let label: Arc<str> = Arc::from(input.label());
    let ctx = StreamContext::new(input.id, stats).sharded(opts.shard);
    match &input.location {
        Location::Path(path) => read_path(path, &label, &ctx, opts, checkpoints, emit),
        Location::Url(url) => match url::fetch(url, &opts.cache_dir) {
            Ok((path, _)) => read_path(&path, &label, &ctx, opts, checkpoints, emit),
            Err(e) => {
                ctx.error(&format!("cannot download {e}"));
                Flow::Continue
            }
        },
        Location::Stdin => {
            let mut reader = BufReader::with_capacity(READ_BUFFER, io::stdin().lock());
            let format = match reader.fill_buf() {
                Ok(head) => sniff(head),
                Err(e) => {
                    ctx.error(&format!("{label}: cannot read standard input: {e}"));
                    return Flow::Continue;
                }
            };
            if matches!(format, Format::Zip | Format::Evtx) {
                // Both need random access: spool to a temporary file first.
                let spooled = tempfile::NamedTempFile::new().and_then(|mut tmp| {
                    io::copy(&mut reader, tmp.as_file_mut())?;
                    Ok(tmp)
                });
                return match spooled {
                    // Standard input has no identity to keep a checkpoint under.
                    Ok(tmp) => read_path(tmp.path(), &label, &ctx, opts, None, emit),
                    Err(e) => {
                        ctx.error(&format!("{label}: cannot spool standard input: {e}"));
                        Flow::Continue
                    }
                };
            }
            read_stream(reader, format, &label, &ctx, emit)
        }
    }
}

pub(crate) fn read_path(
    path: &Path,
    label: &Arc<str>,
    ctx: &StreamContext<'_>,
    opts: &ReadOptions,
    checkpoints: Option<&Checkpoints>,
    emit: &mut dyn FnMut(RawChunk) -> Flow,
) -> Flow {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            ctx.error(&format!("{label}: cannot open: {e}"));
            return Flow::Continue;
        }
    };
    if let Ok(meta) = file.metadata() {
        ctx.counters.size.store(meta.len(), Relaxed);
    }
    let file = Counted::new(file, ctx.counters.clone());
    let mut reader = BufReader::with_capacity(READ_BUFFER, file);
    let format = match reader.fill_buf() {
        Ok(head) => sniff(head),
        Err(e) => {
            ctx.error(&format!("{label}: cannot read: {e}"));
            return Flow::Continue;
        }
    };
    let seekable = format == Format::Lines;
    let mut start = StreamPos::default();
    if let Some(cp) = checkpoints {
        match cp.start(ctx.input, label, path, seekable, opts.from_start) {
            Ok(Resume::Fresh) => {}
            Ok(Resume::Finished(e)) => {
                tracing::info!(
                    "{label}: already shipped to its end ({} records; checkpoint {}); skipped. \
                     Use --from-start or `evtship checkpoints reset` to read it again",
                    e.records,
                    cp.path().display()
                );
                return Flow::Continue;
            }
            Ok(Resume::From(e)) if seekable => {
                let len = std::fs::metadata(path).map_or(0, |m| m.len());
                if len >= e.position.offset
                    && reader.seek(io::SeekFrom::Start(e.position.offset)).is_ok()
                {
                    tracing::info!(
                        "{label}: resuming at line {} (byte {}), after {} acknowledged records",
                        e.position.line + 1,
                        e.position.offset,
                        e.records
                    );
                    start = e.position;
                    let mut c = ctx.cursor.get();
                    c.records = e.records;
                    ctx.cursor.set(c);
                } else {
                    ctx.warn(&format!(
                        "{label}: shorter than its checkpoint (truncated?); reading it from the start"
                    ));
                    let _ = reader.seek(io::SeekFrom::Start(0));
                }
            }
            Ok(Resume::From(e)) => {
                tracing::info!(
                    "{label}: resuming after {} acknowledged records (skipping them)",
                    e.records
                );
                let mut c = ctx.cursor.get();
                c.skip = e.records;
                ctx.cursor.set(c);
            }
            Err(e) => ctx.warn(&format!(
                "{label}: cannot identify the file for its checkpoint ({e}); reading it without one"
            )),
        }
    }
    let flow = match format {
        Format::Zip => {
            drop(reader);
            archive::read_zip(path, label, ctx, emit)
        }
        Format::Evtx => {
            drop(reader);
            evtx::read_evtx(path, label, ctx, opts.threads, emit)
        }
        Format::Lines => ctx.lines(&mut reader, label, start, emit),
        other => read_stream(reader, other, label, ctx, emit),
    };
    if flow == Flow::Continue {
        if let Some(cp) = checkpoints {
            let c = ctx.cursor.get();
            cp.reader_done(ctx.input, c.seq, c.errors == 0);
        }
    }
    flow
}

/// Reads a stream that needs no random access: gzip (maybe of a tar), tar, or lines.
pub(crate) fn read_stream<R: BufRead>(
    mut reader: R,
    format: Format,
    label: &Arc<str>,
    ctx: &StreamContext<'_>,
    emit: &mut dyn FnMut(RawChunk) -> Flow,
) -> Flow {
    match format {
        Format::Gzip => {
            let mut gz = GzipStream::new(reader);
            let mut head = Vec::with_capacity(512);
            if let Err(e) = (&mut gz).take(512).read_to_end(&mut head) {
                ctx.error(&format!("{label}: not a readable gzip stream: {e}"));
                return Flow::Continue;
            }
            let is_tar = sniff(&head) == Format::Tar;
            let mut inner = BufReader::with_capacity(READ_BUFFER, io::Cursor::new(head).chain(gz));
            let flow = if is_tar {
                archive::read_tar(&mut inner, label, ctx, emit)
            } else {
                ctx.lines(&mut inner, label, StreamPos::default(), emit)
            };
            if flow == Flow::Continue {
                // Read to the very end so that the gzip trailer is checked and stray bytes seen.
                if let Err(e) = io::copy(&mut inner, &mut io::sink()) {
                    ctx.warn(&format!("{label}: after the last record: {e}"));
                }
                if let Some(stray) = inner.get_ref().get_ref().1.stray_bytes() {
                    ctx.warn(&format!(
                        "{label}: {stray} stray byte(s) after the end of the gzip stream, ignored"
                    ));
                }
            }
            flow
        }
        Format::Tar => archive::read_tar(&mut reader, label, ctx, emit),
        Format::Zip | Format::Evtx => {
            ctx.error(&format!("{label}: this format needs a seekable file"));
            Flow::Continue
        }
        Format::Lines => ctx.lines(&mut reader, label, StreamPos::default(), emit),
    }
}

/// Where the reader stands in one input: chunks handed over, records passed, records still to
/// skip (when resuming an input that cannot be sought), errors met.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cursor {
    seq: u64,
    records: u64,
    skip: u64,
    errors: u64,
}

pub(crate) struct StreamContext<'a> {
    pub input: InputId,
    pub stats: &'a Stats,
    pub counters: Arc<InputCounters>,
    cursor: Cell<Cursor>,
    shard: Option<crate::config::Shard>,
}

impl<'a> StreamContext<'a> {
    fn new(input: InputId, stats: &'a Stats) -> Self {
        Self::with_cursor(input, stats, Cursor::default())
    }

    fn with_cursor(input: InputId, stats: &'a Stats, cursor: Cursor) -> Self {
        Self {
            input,
            stats,
            counters: stats.input(input),
            cursor: Cell::new(cursor),
            shard: None,
        }
    }

    fn sharded(mut self, shard: Option<crate::config::Shard>) -> Self {
        self.shard = shard;
        self
    }

    /// Hands a chunk over, numbering it for checkpoints and dropping records to skip.
    pub fn hand_over(&self, mut chunk: RawChunk, emit: &mut dyn FnMut(RawChunk) -> Flow) -> Flow {
        let mut c = self.cursor.get();
        let n = chunk.lines.len() as u64;
        if c.skip > 0 {
            let k = c.skip.min(n);
            chunk.lines.drain(..k as usize);
            c.skip -= k;
        }
        c.records += n;
        chunk.records_end = c.records;
        if let Some(shard) = self.shard {
            chunk.lines.retain(|l| shard.takes(l.number));
        }
        if chunk.lines.is_empty() {
            self.cursor.set(c);
            return Flow::Continue;
        }
        chunk.seq = c.seq;
        c.seq += 1;
        self.cursor.set(c);
        self.counters
            .read
            .fetch_add(chunk.lines.len() as u64, Relaxed);
        emit(chunk)
    }

    /// Reads NDJSON lines from one stream, starting at `start`, counting what was read.
    pub fn lines(
        &self,
        reader: &mut dyn BufRead,
        origin: &Arc<str>,
        start: StreamPos,
        emit: &mut dyn FnMut(RawChunk) -> Flow,
    ) -> Flow {
        self.lines_to(reader, origin, start, emit).0
    }

    /// Like [`Self::lines`], also returning where the stream ended.
    pub fn lines_to(
        &self,
        reader: &mut dyn BufRead,
        origin: &Arc<str>,
        start: StreamPos,
        emit: &mut dyn FnMut(RawChunk) -> Flow,
    ) -> (Flow, Option<StreamPos>) {
        let mut hand_over = |chunk: RawChunk| self.hand_over(chunk, emit);
        match read_lines(reader, self.input, origin, start, &mut hand_over) {
            Ok((totals, flow)) => {
                self.counters.bytes.fetch_add(totals.bytes, Relaxed);
                (flow, Some(totals.end))
            }
            Err(e) => {
                self.error(&format!("{e}; the rest of this stream is skipped"));
                (Flow::Continue, None)
            }
        }
    }

    /// A problem that lost nothing.
    pub fn warn(&self, message: &str) {
        self.stats.warnings.fetch_add(1, Relaxed);
        tracing::warn!("{message}");
    }

    /// A part of the input that could not be read.
    pub fn error(&self, message: &str) {
        let mut c = self.cursor.get();
        c.errors += 1;
        self.cursor.set(c);
        self.counters.errors.fetch_add(1, Relaxed);
        tracing::error!("{message}");
    }
}
