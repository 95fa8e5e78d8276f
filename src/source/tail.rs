//! Tail mode: follow growing files and new files matching the inputs, until told to stop.
//!
//! - Only complete lines are read: a partial last line waits for its newline.
//! - A file is known by its identity (device and inode, see [`crate::checkpoint::Identity`]),
//!   not its name: a file renamed to a name that still matches is not read twice.
//! - Rotation by rename: the old file is read to its end (its last line taken even without a
//!   newline once it stops growing), then the new file at the name is read from its start.
//! - Copy-and-truncate: a file shorter than the position reached is read again from 0.
//! - Changes are noticed through file-system events (`notify`), with a periodic rescan as a
//!   fallback for file systems without them.
//! - Archives and `.evtx` files are read once, as in batch mode.

use super::context::{Cursor, StreamContext};
use super::read::read_path;
use super::{resolve, sniff, Decode, Format, Location, ReadOptions, ResolveError, READ_BUFFER};
use crate::checkpoint::{Checkpoints, Identity, Resume};
use crate::chunk::{Flow, RawChunk, StreamPos};
use crate::common::InputId;
use crate::metrics::Stats;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Longest wait between two looks at the files when no file-system event arrives.
const RESCAN: Duration = Duration::from_millis(500);
/// Most bytes read from one file per look, so that no file starves the others.
const MAX_READ: u64 = 8 << 20;
/// Looks without growth after which a rotated-away file is closed.
const ROTATED_IDLE_LOOKS: u32 = 2;

struct Tracked {
    id: InputId,
    path: PathBuf,
    label: Arc<str>,
    file: File,
    key: String,
    pos: StreamPos,
    cursor: Cursor,
    rotated: bool,
    /// The name cannot be opened now (its permissions changed): followed through the open
    /// file meanwhile, warned about once.
    unreadable: bool,
    idle_looks: u32,
}

impl Tracked {
    /// Notices that the file's name now holds another file (rotation) or none, from the
    /// name's device and inode (which `stat` gives even when the file cannot be read), and
    /// warns once while the name cannot be opened.
    fn check_name(&mut self, stats: &Stats) {
        match std::fs::metadata(&self.path) {
            Ok(meta) if crate::checkpoint::identity_key(&meta) == self.key => {}
            Ok(_) => self.rotate("rotated"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.rotate("removed"),
            Err(_) => {}
        }
        if self.rotated {
            return;
        }
        match File::open(&self.path) {
            Ok(_) if self.unreadable => {
                self.unreadable = false;
                tracing::info!("{}: readable again", self.label);
            }
            Err(e) if !self.unreadable => {
                self.unreadable = true;
                stats.warnings.fetch_add(1, Relaxed);
                tracing::warn!(
                    "{}: cannot be opened now ({e}); following the file already open, and \
                     trying the name again at every look",
                    self.label
                );
            }
            _ => {}
        }
    }

    fn rotate(&mut self, how: &str) {
        tracing::info!("{}: {how}; reading the old file to its end", self.label);
        self.rotated = true;
    }
}

/// Follows the inputs until `stop` is set, handing records to `emit`.
pub fn follow(
    patterns: &[String],
    stats: &Stats,
    opts: &ReadOptions,
    decode: &dyn Decode,
    checkpoints: Option<&Arc<Checkpoints>>,
    stop: &AtomicBool,
    emit: &mut dyn FnMut(RawChunk) -> Flow,
) {
    let (tx, rx) = mpsc::channel();
    let _watcher = watch(patterns, tx);
    let mut follower = Follower {
        patterns,
        stats,
        opts,
        decode,
        checkpoints,
        tracked: Vec::new(),
        seen: HashMap::new(),
        unopened: HashSet::new(),
    };
    while !stop.load(Relaxed) {
        follower.discover(emit);
        for i in 0..follower.tracked.len() {
            if follower.look(i, emit) == Flow::Stop {
                return;
            }
        }
        follower
            .tracked
            .retain(|t| !(t.rotated && t.idle_looks > ROTATED_IDLE_LOOKS));
        if stop.load(Relaxed) {
            break;
        }
        // Wake on a file-system event or after RESCAN; drain bursts of events.
        if rx.recv_timeout(RESCAN).is_ok() {
            while rx.try_recv().is_ok() {}
        }
    }
}

/// Watches the directories the patterns live in; `None` when the platform refuses (polling
/// alone then notices changes).
fn watch(
    patterns: &[String],
    tx: mpsc::Sender<notify::Result<notify::Event>>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher = match notify::recommended_watcher(tx) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("file-system events unavailable ({e}); polling every {RESCAN:?}");
            return None;
        }
    };
    let mut dirs: HashSet<PathBuf> = HashSet::new();
    for p in patterns {
        let fixed: PathBuf = Path::new(p)
            .components()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
            .collect();
        let dir = if fixed.is_dir() {
            fixed
        } else {
            fixed.parent().map(Path::to_owned).unwrap_or_default()
        };
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        if dirs.insert(dir.clone()) {
            if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::Recursive) {
                tracing::debug!("cannot watch {}: {e}", dir.display());
            }
        }
    }
    Some(watcher)
}

struct Follower<'a> {
    patterns: &'a [String],
    stats: &'a Stats,
    opts: &'a ReadOptions,
    decode: &'a dyn Decode,
    checkpoints: Option<&'a Arc<Checkpoints>>,
    tracked: Vec<Tracked>,
    /// Files already followed or read (tracked, rotated away, or one-shot archives), by key.
    seen: HashMap<String, Identity>,
    /// Files that match but could not be opened (warned about once).
    unopened: HashSet<PathBuf>,
}

impl Follower<'_> {
    /// Notices rotations and files that appeared.
    fn discover(&mut self, emit: &mut dyn FnMut(RawChunk) -> Flow) {
        for t in self.tracked.iter_mut().filter(|t| !t.rotated) {
            t.check_name(self.stats);
        }
        let mut files = Vec::new();
        for pattern in self.patterns {
            match resolve(std::slice::from_ref(pattern)) {
                Ok((found, _)) => files.extend(found),
                Err(ResolveError::Missing(_)) => {} // may appear later
                Err(e) => tracing::warn!("{e}"),
            }
        }
        for f in files {
            let Location::Path(path) = f.location else {
                continue;
            };
            let file = match File::open(&path) {
                Ok(file) => {
                    self.unopened.remove(&path);
                    file
                }
                Err(e) => {
                    if self.unopened.insert(path.clone()) {
                        self.stats.warnings.fetch_add(1, Relaxed);
                        tracing::warn!(
                            "{}: cannot be opened ({e}); tried again at every look",
                            path.display()
                        );
                    }
                    continue;
                }
            };
            let Ok(identity) = Identity::of_file(&file) else {
                continue;
            };
            // A followed file is the follower's business (it notices truncation itself). An
            // inode seen before with other first bytes is a new file that reuses a freed inode.
            let key = identity.key();
            if self.tracked.iter().any(|t| t.key == key && !t.rotated)
                || self.seen.get(&key).is_some_and(|old| old.matches(&path))
            {
                continue;
            }
            self.seen.insert(identity.key(), identity.clone());
            self.start(path, file, identity, emit);
        }
    }

    fn start(
        &mut self,
        path: PathBuf,
        mut file: File,
        identity: Identity,
        emit: &mut dyn FnMut(RawChunk) -> Flow,
    ) {
        let label = path.display().to_string();
        let id = self.stats.add_input(label.clone());
        let mut head = [0u8; 512];
        let n = file.read(&mut head).unwrap_or(0);
        if sniff(&head[..n]) != Format::Lines {
            // Archives and .evtx: read once.
            let ctx = StreamContext::new(id, self.stats, self.decode).sharded(self.opts.shard);
            let label: Arc<str> = Arc::from(label);
            read_path(&path, &label, ctx, self.opts, self.checkpoints, emit);
            return;
        }
        let mut pos = StreamPos::default();
        let mut cursor = Cursor::default();
        if let Some(cp) = self.checkpoints {
            match cp.start(id, &label, &path, true, self.opts.from_start) {
                Ok(Resume::From(e) | Resume::Finished(e)) => {
                    tracing::info!(
                        "{label}: following from line {} (byte {})",
                        e.position.line + 1,
                        e.position.offset
                    );
                    pos = e.position;
                    cursor.records = e.records;
                }
                Ok(Resume::Fresh) => {}
                Err(e) => tracing::warn!("{label}: no checkpoint ({e})"),
            }
        }
        tracing::info!("{label}: following");
        self.tracked.push(Tracked {
            id,
            path,
            label: Arc::from(label),
            file,
            key: identity.key(),
            pos,
            cursor,
            rotated: false,
            unreadable: false,
            idle_looks: 0,
        });
    }

    /// Reads what was appended to tracked file `i`: complete lines only, streamed from the
    /// file (a line longer than the decode stage's limit is cut there, never held).
    fn look(&mut self, i: usize, emit: &mut dyn FnMut(RawChunk) -> Flow) -> Flow {
        let stats = self.stats;
        let t = &mut self.tracked[i];
        let Ok(len) = t.file.metadata().map(|m| m.len()) else {
            return Flow::Continue;
        };
        if len < t.pos.offset {
            stats.warnings.fetch_add(1, Relaxed);
            tracing::warn!(
                "{}: truncated (now {len} bytes, was read to byte {}); reading it again from the start",
                t.label,
                t.pos.offset
            );
            t.pos = StreamPos::default();
        }
        if len == t.pos.offset {
            t.idle_looks += 1;
            return Flow::Continue;
        }
        let complete = match complete_lines_end(&mut t.file, t.pos.offset, len) {
            Ok(Some(end)) => end,
            // Only complete lines, unless the file was rotated away and has stopped growing.
            Ok(None) if t.rotated && t.idle_looks >= ROTATED_IDLE_LOOKS => len,
            Ok(None) => {
                t.idle_looks += 1;
                return Flow::Continue;
            }
            Err(e) => {
                tracing::error!("{}: read error at byte {}: {e}", t.label, t.pos.offset);
                return Flow::Continue;
            }
        };
        t.idle_looks = 0;
        if let Err(e) = t.file.seek(SeekFrom::Start(t.pos.offset)) {
            tracing::error!("{}: cannot seek to byte {}: {e}", t.label, t.pos.offset);
            return Flow::Continue;
        }
        let ctx = StreamContext::with_cursor(t.id, stats, self.decode, t.cursor)
            .sharded(self.opts.shard)
            .settling_into(self.checkpoints.cloned());
        let limited = (&mut t.file).take(complete - t.pos.offset);
        let mut reader = std::io::BufReader::with_capacity(READ_BUFFER, limited);
        let (flow, end) = ctx.lines_to(&mut reader, &t.label, t.pos, emit);
        t.cursor = ctx.cursor.get();
        if let Some(end) = end {
            t.pos = end;
        }
        flow
    }
}

/// Where the complete lines of `file` between `from` and `len` end (after the last newline of
/// the first [`MAX_READ`] bytes, or after the first newline beyond them when a line is that
/// long); `None` without a newline yet. Reads blocks, holding none of them.
fn complete_lines_end(file: &mut File, from: u64, len: u64) -> std::io::Result<Option<u64>> {
    let mut block = vec![0u8; 1 << 20];
    let mut at = from;
    let mut last = None;
    file.seek(SeekFrom::Start(from))?;
    while at < len {
        let want = ((len - at) as usize).min(block.len());
        let n = file.read(&mut block[..want])?;
        if n == 0 {
            break;
        }
        if let Some(nl) = memchr::memrchr(b'\n', &block[..n]) {
            last = Some(at + nl as u64 + 1);
        }
        at += n as u64;
        if last.is_some() && at - from >= MAX_READ {
            break;
        }
    }
    Ok(last)
}
