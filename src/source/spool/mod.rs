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

mod frames;
mod head;
mod reader;
pub mod segment;
mod writer;

use crate::common::{ByteSize, InputId};
use crate::metrics::ListenerCounters;
use crate::source::intake::Intake;
use head::Pos;
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
    /// Its head file cannot be right: the spool is not opened, and nothing is deleted.
    #[error("spool head file {}: {problem}; {what_to_do}", path.display())]
    Head {
        /// The head file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// What the operator can do.
        what_to_do: &'static str,
    },
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
    /// What it holds of the listeners' memory budget, given back once it is on disk.
    charge: Option<crate::common::Charge>,
}

impl Batch {
    /// Makes the batch carry `charge` (its bytes of the listeners' memory budget) until the
    /// writer has written it.
    pub fn hold(&mut self, charge: crate::common::Charge) {
        self.charge = Some(charge);
    }

    /// An empty batch of listener `source` (its number in the spool); `counters` count what
    /// reaches the disk as received.
    pub fn new(source: u16, counters: Arc<ListenerCounters>) -> Self {
        Self {
            source,
            frames: Vec::new(),
            records: 0,
            counters,
            charge: None,
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
    /// What opening it repaired that loses nothing (a head moved back to a frame's start),
    /// for the summary's warnings. Damaged frames are reported and counted as lost where the
    /// reader skips them.
    pub warnings: Vec<String>,
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
    /// Opens (or creates) the spool, taking its lock, checking its head file and its last
    /// segment, and giving every listener in `labels` a number.
    pub fn open(
        settings: SpoolSettings,
        labels: &[String],
        stop: Arc<AtomicBool>,
    ) -> Result<Self, SpoolError> {
        let dir = settings.dir.clone();
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let lock = take_lock(&dir)?;
        let sources = sources(&dir, labels)?;
        let on_disk = segment::list(&dir).map_err(io_error(&dir))?;
        let head = head::check(&dir, head::read(&dir)?, &on_disk)?;
        let mut state = State::default();
        for (n, size) in on_disk {
            let path = segment::path(&dir, n);
            if head.behind.contains(&n) {
                std::fs::remove_file(&path).map_err(io_error(&path))?;
                continue;
            }
            state.segments.insert(n, size);
            state.used += size;
        }
        let mut start = head.pos;
        if let Some(&first) = state.segments.keys().next() {
            if first > start.segment {
                start = Pos::default_at(first);
            }
        }
        cut_crash_tail(&dir, &mut state, start)?;
        // Numbers go on above the head's: a segment written next is never behind the head.
        let last = state.segments.keys().next_back().copied().unwrap_or(0);
        let next_segment = last.max(start.segment) + 1;
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
            warnings: head.repaired.into_iter().collect(),
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

/// Takes the spool's lock file, held for as long as the spool is open.
fn take_lock(dir: &Path) -> Result<std::fs::File, SpoolError> {
    let lock_path = dir.join("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_error(&lock_path))?;
    if lock.try_lock().is_err() {
        return Err(SpoolError::Locked(dir.to_owned()));
    }
    Ok(lock)
}

/// Cuts off the frame that a crash left cut short at the end of the last segment: it was
/// never synced, so never counted received; a warning, not a loss. (In any other segment a
/// frame cut short is a loss, reported and counted by the reader.)
fn cut_crash_tail(dir: &Path, state: &mut State, start: Pos) -> Result<(), SpoolError> {
    let Some((&n, &size)) = state.segments.iter().next_back() else {
        return Ok(());
    };
    let path = segment::path(dir, n);
    let from = if n == start.segment { start.offset } else { 0 };
    let Some(cut) = segment::cut_tail(&path, size, from).map_err(io_error(&path))? else {
        return Ok(());
    };
    tracing::warn!(
        "spool {}: the last record is cut short at byte {} ({} bytes: evtship stopped while \
         writing it, before it was synced, so it was never counted received); it is cut off, \
         the records before it are kept",
        path.display(),
        cut.start,
        cut.end - cut.start
    );
    let cut_off = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(cut.start).and_then(|()| f.sync_all()));
    match cut_off {
        Ok(()) => state.used -= size - cut.start,
        Err(e) => tracing::warn!(
            "spool {}: cutting off its last record: {e}; its bytes are left, unread",
            path.display()
        ),
    }
    state.segments.insert(n, cut.start);
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> SpoolSettings {
        SpoolSettings {
            dir: dir.to_owned(),
            max_bytes: 1 << 20,
        }
    }

    fn open(dir: &Path) -> Result<Spool, SpoolError> {
        Spool::open(settings(dir), &["tcp://x".into()], Arc::default())
    }

    /// Writes segment `n` of `records` records; where each frame starts.
    fn write_segment(dir: &Path, n: u64, records: usize) -> Vec<u64> {
        let mut buf = segment::SEGMENT_HEADER.to_vec();
        let mut starts = Vec::new();
        for i in 0..records {
            starts.push(buf.len() as u64);
            segment::encode(&mut buf, 0, format!("{{\"n\":{i}}}").as_bytes());
        }
        std::fs::write(segment::path(dir, n), buf).unwrap();
        starts
    }

    fn segments(dir: &Path) -> Vec<u64> {
        segment::list(dir)
            .unwrap()
            .into_iter()
            .map(|s| s.0)
            .collect()
    }

    #[test]
    fn segments_are_numbered_above_the_head_when_none_is_left() {
        let dir = tempfile::tempdir().unwrap();
        head::write(dir.path(), Pos::new(7, 1234)).unwrap();
        let s = open(dir.path()).unwrap();
        assert_eq!((s.start, s.next_segment), (Pos::new(7, 1234), 8));
        drop(s);
        // What a run wrote next is kept by the next open, the head still naming segment 7.
        write_segment(dir.path(), 8, 2);
        let s = open(dir.path()).unwrap();
        assert_eq!((s.start, s.next_segment), (Pos::default_at(8), 9));
        assert_eq!(segments(dir.path()), [8]);
    }

    #[test]
    fn a_head_naming_no_segment_deletes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for n in 1..=3 {
            write_segment(dir.path(), n, 2);
        }
        std::fs::write(dir.path().join("head"), "99 0\n").unwrap();
        let e = open(dir.path()).err().expect("refused").to_string();
        assert!(e.contains("head"), "{e}");
        assert!(e.contains("names segment 99"), "{e}");
        assert_eq!(segments(dir.path()), [1, 2, 3]);
    }

    #[test]
    fn segments_behind_a_valid_head_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        for n in 1..=3 {
            write_segment(dir.path(), n, 2);
        }
        let starts = write_segment(dir.path(), 2, 2);
        head::write(dir.path(), Pos::new(2, starts[1] + 3)).unwrap();
        let s = open(dir.path()).unwrap();
        assert_eq!(segments(dir.path()), [2, 3]);
        assert_eq!((s.start, s.next_segment), (Pos::new(2, starts[1]), 4));
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    }

    #[test]
    fn a_crash_cut_tail_of_the_last_segment_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        write_segment(dir.path(), 1, 3);
        let starts = write_segment(dir.path(), 2, 3);
        let path = segment::path(dir.path(), 2);
        let size = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(size - 2)
            .unwrap();
        // A segment that is not the last keeps its cut frame, for the reader to report.
        let first = segment::path(dir.path(), 1);
        let first_size = std::fs::metadata(&first).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&first)
            .unwrap()
            .set_len(first_size - 2)
            .unwrap();
        let s = open(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), starts[2]);
        assert_eq!(std::fs::metadata(&first).unwrap().len(), first_size - 2);
        let st = s.shared.lock();
        assert_eq!(st.segments.get(&2), Some(&starts[2]));
        assert_eq!(st.used, starts[2] + first_size - 2);
        assert!(s.warnings.is_empty());
    }
}
