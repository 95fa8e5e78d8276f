//! The disk spool between the listeners that cannot acknowledge (TCP, UDP, syslog) and the
//! pipeline: what they receive is appended to segment files and synced in groups, read back into
//! the pipeline, and leaves the disk only once every record of it has an outcome. After a crash
//! or a restart the spool is read again from the last settled position.
//!
//! ```text
//! listeners --(bounded queue)--> writer: append, fdatasync per group --> segments on disk
//! segments --> reader: chunks into the pipeline --> sink --> keeper: settled prefix -> head,
//!                                                           whole segments deleted
//! ```
//!
//! The spool is bounded by `max_bytes`: when it is full the writer waits, its queue fills, TCP
//! listeners stop reading (the sender is pushed back) and UDP listeners drop what comes, counted.
//! A group is what arrived while the previous one was written and synced, at most
//! [`GROUP_BYTES`]: one `fdatasync` per group, so a record waits at most one sync for the disk.
//! Records carry no position identity: their document ids come from their content (or their
//! Windows record identity), so a record read twice after a crash finds its document.

mod reader;
pub mod segment;
mod writer;

use crate::common::{ByteSize, InputId};
use crate::metrics::ListenerCounters;
use crate::source::intake::Intake;
use segment::{Frame, Pos};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Most bytes of records written and synced as one group.
pub const GROUP_BYTES: usize = 4 << 20;
/// Default bound of the spool.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// `[spool]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolSection {
    /// Where the segments go (default: `spool/<pipeline name>` in the checkpoint directory).
    pub dir: Option<PathBuf>,
    /// The most the spool holds on disk (default 1GiB).
    pub max_bytes: Option<ByteSize>,
}

/// The spool's settings, resolved.
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    /// Its directory.
    pub dir: PathBuf,
    /// Its bound in bytes.
    pub max_bytes: u64,
}

impl SpoolSettings {
    /// The size of one segment: a sixteenth of the bound, within 256 KiB and 64 MiB.
    pub fn segment_bytes(&self) -> u64 {
        (self.max_bytes / 16).clamp(256 << 10, 64 << 20)
    }
}

/// What can go wrong opening the spool.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file operation failed.
    #[error("spool {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// Another evtship holds it.
    #[error("spool {}: another evtship is using it (its lock file is held)", .0.display())]
    Locked(PathBuf),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Records from one listener, on their way to the disk, framed as they will be written.
pub struct Batch {
    source: u16,
    frames: Vec<u8>,
    records: u64,
    counters: Arc<ListenerCounters>,
}

impl Batch {
    /// An empty batch of listener `source` (its number in the spool); `counters` count what
    /// reaches the disk as received.
    pub fn new(source: u16, counters: Arc<ListenerCounters>) -> Self {
        Self {
            source,
            frames: Vec::new(),
            records: 0,
            counters,
        }
    }

    /// Adds one record (one JSON object).
    pub fn push(&mut self, record: &[u8]) {
        segment::encode(&mut self.frames, self.source, record);
        self.records += 1;
    }

    /// Records in it.
    pub fn len(&self) -> u64 {
        self.records
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Its bytes on disk.
    pub fn bytes(&self) -> usize {
        self.frames.len()
    }
}

/// State shared by the writer, the reader and the keeper.
struct Shared {
    settings: SpoolSettings,
    state: Mutex<State>,
    /// The writer waits here for space.
    space: Condvar,
    /// The reader waits here for records.
    data: Condvar,
    /// Set while the writer waits for space: UDP listeners drop rather than queue.
    full: AtomicBool,
    stop: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct State {
    /// Segments on disk: number and where their synced frames end.
    segments: BTreeMap<u64, u64>,
    /// The segment being written.
    writing: Option<u64>,
    /// The writer has ended: nothing more will come.
    writer_done: bool,
    /// Bytes of the segments on disk.
    used: u64,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where listeners hand their records to the spool.
#[derive(Clone)]
pub struct SpoolSender {
    tx: flume::Sender<Batch>,
    shared: Arc<Shared>,
}

impl SpoolSender {
    /// Queues a batch for the disk, waiting while the spool is full; `false` once the spool
    /// takes no more (the run is ending).
    pub async fn send(&self, batch: Batch) -> bool {
        self.tx.send_async(batch).await.is_ok()
    }

    /// Queues a batch if there is room now (UDP); gives it back when the spool is full.
    pub fn try_send(&self, batch: Batch) -> Result<(), Batch> {
        if self.shared.full.load(Relaxed) {
            return Err(batch);
        }
        self.tx.try_send(batch).map_err(|e| e.into_inner())
    }
}

/// An open spool, before its threads start.
pub struct Spool {
    shared: Arc<Shared>,
    /// The listeners that wrote to it, by number (this run's listeners among them).
    pub sources: Vec<String>,
    start: Pos,
    next_segment: u64,
    lock: std::fs::File,
    /// Damage found while opening it, for the summary.
    pub damage: Vec<String>,
}

/// The spool's threads, running.
pub struct Running {
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Waits for the writer, reader and keeper to end (they end with the run's sources).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

impl Spool {
    /// Opens (or creates) the spool, taking its lock, checking its segments, and giving every
    /// listener in `labels` a number.
    pub fn open(
        settings: SpoolSettings,
        labels: &[String],
        stop: Arc<AtomicBool>,
    ) -> Result<Self, SpoolError> {
        let dir = settings.dir.clone();
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let lock_path = dir.join("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(SpoolError::Locked(dir));
        }
        let sources = sources(&dir, labels)?;
        let mut start = segment::read_head(&dir).unwrap_or_default();
        let mut state = State::default();
        let mut damage = Vec::new();
        let limit = u64::from(u32::MAX);
        for (n, size) in segment::list(&dir).map_err(io_error(&dir))? {
            let path = segment::path(&dir, n);
            if n < start.segment {
                std::fs::remove_file(&path).map_err(io_error(&path))?;
                continue;
            }
            let (end, bad) = segment::scan(&path, size, limit).map_err(io_error(&path))?;
            match bad {
                None => {}
                Some(Frame::Cut) => tracing::warn!(
                    "spool {}: the last record is cut short at byte {end} (evtship stopped \
                     while writing it); the records before it are kept",
                    path.display()
                ),
                Some(Frame::Damaged(why)) => {
                    let m = format!(
                        "spool {}: byte {end}: {why}; the {} bytes after it are skipped",
                        path.display(),
                        size - end
                    );
                    tracing::error!("{m}");
                    damage.push(m);
                }
                Some(Frame::Record(..)) => unreachable!("scan stops only at damage"),
            }
            state.segments.insert(n, end);
            state.used += size;
        }
        match state.segments.keys().next() {
            Some(&first) if first > start.segment => start = Pos::default_at(first),
            None => start = Pos::default(),
            _ => {}
        }
        let next_segment = state.segments.keys().last().map_or(1, |n| n + 1);
        let held: u64 = state
            .segments
            .values()
            .sum::<u64>()
            .saturating_sub(start.offset);
        if held > 0 {
            tracing::info!(
                "spool {}: {held} bytes of records from before are sent first",
                dir.display()
            );
        }
        Ok(Self {
            shared: Arc::new(Shared {
                settings,
                state: Mutex::new(state),
                space: Condvar::new(),
                data: Condvar::new(),
                full: AtomicBool::new(false),
                stop,
            }),
            sources,
            start,
            next_segment,
            lock,
            damage,
        })
    }

    /// The number of the listener named `label`.
    pub fn source_of(&self, label: &str) -> Option<u16> {
        self.sources
            .iter()
            .position(|s| s == label)
            .map(|i| i as u16)
    }

    /// Starts the writer, reader and keeper; records of source `i` count as input
    /// `inputs[i]`. `grace` bounds how long after a stop the reader still hands records over.
    pub fn start(
        self,
        intake: Intake,
        inputs: Vec<InputId>,
        grace: Duration,
    ) -> (SpoolSender, Running) {
        let (tx, rx) = flume::bounded(64);
        let (settled_tx, settled_rx) = flume::unbounded();
        let shared = self.shared.clone();
        let next = self.next_segment;
        let lock = self.lock;
        let threads = vec![
            spawn("evtship-spool-writer", {
                let shared = shared.clone();
                move || writer::run(&shared, rx, next)
            }),
            spawn("evtship-spool-reader", {
                let shared = shared.clone();
                let start = self.start;
                move || reader::read(&shared, start, intake, &inputs, settled_tx, grace)
            }),
            spawn("evtship-spool-keeper", {
                let shared = shared.clone();
                let start = self.start;
                move || {
                    reader::keep(&shared, start, settled_rx);
                    drop(lock);
                }
            }),
        ];
        (SpoolSender { tx, shared }, Running { threads })
    }
}

impl Pos {
    fn default_at(segment: u64) -> Self {
        Self { segment, offset: 0 }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("spawning a spool thread")
}

/// The `sources` file: one listener label per line, numbered by line; `labels` not in it yet
/// are added.
fn sources(dir: &Path, labels: &[String]) -> Result<Vec<String>, SpoolError> {
    let path = dir.join("sources");
    let mut known: Vec<String> = match std::fs::read_to_string(&path) {
        Ok(text) => text.lines().map(str::to_owned).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_error(&path)(e)),
    };
    let before = known.len();
    for l in labels {
        if !known.contains(l) {
            known.push(l.clone());
        }
    }
    if known.len() != before {
        let tmp = dir.join("sources.tmp");
        std::fs::write(&tmp, known.join("\n") + "\n").map_err(io_error(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_error(&path))?;
    }
    Ok(known)
}
