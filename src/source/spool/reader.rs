//! The spool's reader (segments into the pipeline, chunk by chunk) and keeper (the settled
//! prefix of those chunks into the head file; segments wholly behind it deleted).

use super::head::{self, Pos};
use super::segment::{self, Frames, Loss, Next};
use super::Shared;
use crate::ack::{Ack, InOrder, Settle, Settled};
use crate::chunk::{Identity, RawChunk};
use crate::common::InputId;
use crate::source::intake::Intake;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A chunk read from the spool: where it ends, told to the keeper once it is settled.
struct Mark {
    ordinal: u64,
    end: Pos,
    keeper: flume::Sender<(u64, Pos, bool)>,
}

impl Settle for Mark {
    fn settled(self: Box<Self>, settled: Settled) {
        let _ = self
            .keeper
            .send((self.ordinal, self.end, settled.tally.failed == 0));
    }
}

/// What the reader does next.
enum Step {
    /// Read segment `segment` from the position up to `end`.
    Read { segment: u64, end: u64 },
    /// The segment read is whole and a later one exists.
    Next(u64),
    /// Nothing more will come.
    Done,
    /// Wait for the writer.
    Wait,
}

fn step(shared: &Shared, pos: Pos) -> Step {
    let st = shared.lock();
    if let Some(&end) = st.segments.get(&pos.segment) {
        if end > pos.offset {
            return Step::Read {
                segment: pos.segment,
                end,
            };
        }
    }
    let sealed = st.writing != Some(pos.segment);
    if let Some((&n, _)) = st.segments.range(pos.segment + 1..).next() {
        if sealed {
            return Step::Next(n);
        }
    }
    if st.writer_done {
        Step::Done
    } else {
        Step::Wait
    }
}

/// Hands the spool's records to the pipeline until the writer is done and all is read, or
/// `grace` after the run stops (what is left waits on disk for the next run).
pub(super) fn read(
    shared: &Shared,
    mut pos: Pos,
    intake: Intake,
    inputs: &[InputId],
    keeper: flume::Sender<(u64, Pos, bool)>,
    grace: Duration,
) {
    let origins = inputs
        .iter()
        .map(|&i| Arc::from(intake.stats.input_label(i)))
        .collect();
    let mut r = Reader {
        shared,
        intake,
        inputs,
        origins,
        keeper,
        grace,
        ordinal: 0,
        stopped_at: None,
    };
    loop {
        if r.over() {
            return;
        }
        match step(shared, pos) {
            Step::Done => return,
            Step::Next(n) => pos = Pos::default_at(n),
            Step::Wait => {
                let st = shared.lock();
                let _ = shared.data.wait_timeout(st, Duration::from_millis(100));
            }
            Step::Read { segment, end } => {
                if !r.read_range(pos, end) {
                    return;
                }
                pos = Pos {
                    segment,
                    offset: end,
                };
            }
        }
    }
}

struct Reader<'a> {
    shared: &'a Shared,
    intake: Intake,
    inputs: &'a [InputId],
    origins: Vec<Arc<str>>,
    keeper: flume::Sender<(u64, Pos, bool)>,
    grace: Duration,
    ordinal: u64,
    stopped_at: Option<Instant>,
}

impl Reader<'_> {
    /// Whether the run stopped more than the grace ago.
    fn over(&mut self) -> bool {
        if !self.shared.stop.load(Relaxed) {
            return false;
        }
        let since = *self.stopped_at.get_or_insert_with(Instant::now);
        let over = since.elapsed() >= self.grace;
        if over {
            tracing::info!(
                "spool {}: the run stops; records not sent yet wait there for the next run",
                self.shared.settings.dir.display()
            );
        }
        over
    }

    /// Sends a chunk ending at `end`; `false` when the pipeline takes no more. Without a
    /// chunk (a range of damage alone), `end` is settled at once, in its turn: the head can
    /// move past what was lost.
    fn send(&mut self, chunk: Option<(u16, RawChunk)>, end: Pos) -> bool {
        let Some((_, mut c)) = chunk else {
            let _ = self.keeper.send((self.ordinal, end, true));
            self.ordinal += 1;
            return true;
        };
        c.ack = Ack::new(
            c.lines.len(),
            Some(Box::new(Mark {
                ordinal: self.ordinal,
                end,
                keeper: self.keeper.clone(),
            })),
        );
        self.ordinal += 1;
        !self.over() && self.intake.send_blocking(c)
    }

    fn new_chunk(&self, source: u16) -> (u16, RawChunk) {
        let input = self.inputs.get(source as usize).copied().unwrap_or(0);
        let origin = self
            .origins
            .get(source as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from("spool"));
        let mut c = RawChunk::new(input, &origin);
        c.identity = Identity::Content;
        (source, c)
    }

    /// Reads one segment from `pos` to `end` into chunks (one listener's records each),
    /// reporting and counting what damage costs; `false` when the pipeline takes no more.
    fn read_range(&mut self, pos: Pos, end: u64) -> bool {
        let segment = pos.segment;
        let path = segment::path(&self.shared.settings.dir, segment);
        let mut frames = match Frames::open(&path, pos.offset, end) {
            Ok(f) => f,
            Err(e) => {
                self.lost_to_error(&path, pos.offset, end, &e);
                return self.send(None, Pos::new(segment, end));
            }
        };
        let mut chunk: Option<(u16, RawChunk)> = None;
        loop {
            let at = Pos::new(segment, frames.offset);
            let head = match frames.next_frame() {
                Ok(None) => break,
                Ok(Some(Next::Frame(head))) => head,
                // The crash case, a frame cut short at the end of the last segment, was cut
                // off when the spool was opened: a cut here is a loss too.
                Ok(Some(Next::Lost(loss) | Next::Cut(loss))) => {
                    self.lost(&path, &loss);
                    continue;
                }
                Err(e) => {
                    self.lost_to_error(&path, at.offset, end, &e);
                    break;
                }
            };
            let full = chunk
                .as_ref()
                .is_some_and(|(s, c)| *s != head.source || c.is_full());
            if full && !self.send(chunk.take(), at) {
                return false;
            }
            let (_, c) = chunk.get_or_insert_with(|| self.new_chunk(head.source));
            let number = c.lines.len() as u64 + 1;
            let mut read = Ok(None);
            c.push_record(number, |b| read = frames.read_into(&head, b));
            match read {
                Ok(None) => {}
                Ok(Some(loss)) => {
                    c.lines.pop();
                    self.lost(&path, &loss);
                }
                Err(e) => {
                    c.lines.pop();
                    self.lost_to_error(&path, at.offset, end, &e);
                    break;
                }
            }
        }
        self.send(chunk.take(), Pos::new(segment, end))
    }

    /// Reports and counts records lost to damage in the segment at `path`.
    fn lost(&self, path: &Path, loss: &Loss) {
        let records = match (loss.exact, loss.frames) {
            (true, 1) => "1 record".to_owned(),
            (true, n) => format!("{n} records"),
            (false, _) => "at least 1 record (a segment of the old format has no frame \
                           markers to find the next record by)"
                .to_owned(),
        };
        tracing::error!(
            "spool {}: bytes {}..{} ({} bytes) skipped: {}; {records} lost",
            path.display(),
            loss.start,
            loss.end,
            loss.end - loss.start,
            loss.why
        );
        self.intake.stats.spool_lost.fetch_add(loss.frames, Relaxed);
    }

    /// Reports and counts the rest of a segment, from `at` to `end`, that could not be read.
    fn lost_to_error(&self, path: &Path, at: u64, end: u64, e: &std::io::Error) {
        tracing::error!(
            "spool {}: bytes {at}..{end} ({} bytes) skipped: reading them failed: {e}; at \
             least 1 record lost",
            path.display(),
            end.saturating_sub(at)
        );
        self.intake.stats.spool_lost.fetch_add(1, Relaxed);
    }
}

/// Moves the head past the settled prefix of the chunks read, and deletes the segments behind
/// it; a chunk with a record that could not be delivered holds the head where it is, so that
/// a later run reads it again.
pub(super) fn keep(shared: &Shared, start: Pos, settled: flume::Receiver<(u64, Pos, bool)>) {
    let dir = shared.settings.dir.clone();
    let mut order: InOrder<(Pos, bool)> = InOrder::default();
    let (mut head, mut held, mut dirty) = (start, false, false);
    let mut written = Instant::now();
    loop {
        let got = settled.recv_timeout(Duration::from_millis(200));
        let done = matches!(got, Err(flume::RecvTimeoutError::Disconnected));
        if let Ok((ordinal, end, delivered)) = got {
            for (end, delivered) in order.settle(ordinal, (end, delivered)) {
                held |= !delivered;
                if !held {
                    head = end;
                    dirty = true;
                }
            }
        }
        if dirty && (done || written.elapsed() >= Duration::from_millis(200)) {
            if let Err(e) = head::write(&dir, head) {
                tracing::error!("spool {}: writing its head: {e}", dir.display());
            }
            reclaim(shared, head);
            dirty = false;
            written = Instant::now();
        }
        if done {
            // The writer has ended too: the segment it wrote last can go once read.
            reclaim(shared, head);
            return;
        }
        if !dirty && shared.full.load(Relaxed) {
            // A segment the writer sealed because the spool was full may be wholly settled.
            reclaim(shared, head);
        }
    }
}

/// Deletes the segments wholly behind `head`.
fn reclaim(shared: &Shared, head: Pos) {
    let behind: Vec<u64> = {
        let st = shared.lock();
        st.segments
            .iter()
            .filter(|(&n, &end)| {
                n < head.segment
                    || (n == head.segment && head.offset >= end && st.writing != Some(n))
            })
            .map(|(&n, _)| n)
            .collect()
    };
    let mut freed = 0;
    for n in &behind {
        let path = segment::path(&shared.settings.dir, *n);
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        match std::fs::remove_file(&path) {
            Ok(()) => freed += size,
            Err(e) => tracing::warn!("spool {}: {e}", path.display()),
        }
    }
    if !behind.is_empty() {
        let mut st = shared.lock();
        for n in &behind {
            st.segments.remove(n);
        }
        st.used = st.used.saturating_sub(freed);
        drop(st);
        shared.space.notify_all();
    }
}
