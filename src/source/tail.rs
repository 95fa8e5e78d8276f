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
    idle_looks: u32,
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
}

impl Follower<'_> {
    /// Notices rotations and files that appeared.
    fn discover(&mut self, emit: &mut dyn FnMut(RawChunk) -> Flow) {
        for t in self.tracked.iter_mut().filter(|t| !t.rotated) {
            let now = Identity::of_path(&t.path).map(|i| i.key()).ok();
            if now.as_deref() != Some(t.key.as_str()) {
                tracing::info!(
                    "{}: rotated or removed; reading the old file to its end",
                    t.label
                );
                t.rotated = true;
            }
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
            let Ok(file) = File::open(&path) else {
                continue;
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
            idle_looks: 0,
        });
    }

    /// Reads what was appended to tracked file `i`.
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
        let want = (len - t.pos.offset).min(MAX_READ);
        let mut buf = Vec::with_capacity(want as usize);
        let read = t
            .file
            .seek(SeekFrom::Start(t.pos.offset))
            .and_then(|_| (&mut t.file).take(want).read_to_end(&mut buf));
        if let Err(e) = read {
            tracing::error!("{}: read error at byte {}: {e}", t.label, t.pos.offset);
            return Flow::Continue;
        }
        // Only complete lines, unless the file was rotated away and has stopped growing.
        let complete = match buf.iter().rposition(|b| *b == b'\n') {
            Some(nl) => nl + 1,
            None if t.rotated && t.idle_looks >= ROTATED_IDLE_LOOKS => buf.len(),
            None => {
                t.idle_looks += 1;
                return Flow::Continue;
            }
        };
        t.idle_looks = 0;
        let ctx = StreamContext::with_cursor(t.id, stats, self.decode, t.cursor)
            .sharded(self.opts.shard)
            .settling_into(self.checkpoints.cloned());
        let mut reader = std::io::BufReader::with_capacity(READ_BUFFER, &buf[..complete]);
        let (flow, end) = ctx.lines_to(&mut reader, &t.label, t.pos, emit);
        t.cursor = ctx.cursor.get();
        if let Some(end) = end {
            t.pos = end;
        }
        flow
    }
}
