//! Progress on a terminal (`indicatif`): a bar per input being read (bytes of its size on
//! disk; compressed bytes for archives) and an overall line with rates, outcomes and the time
//! left. Nothing is drawn when standard error is not a terminal.
//!
//! Log lines go through [`LogWriter`], which lifts the bars while a line is written, so that
//! logs and bars never mix.

use crate::metrics::Stats;
use indicatif::{HumanBytes, HumanCount, HumanDuration, MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The bars being drawn, for [`LogWriter`].
static ACTIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Per-input bars shown at once; more inputs read together (tail mode) show only the total.
const MAX_BARS: usize = 6;

/// Writes log lines to standard error, lifting the progress bars around each line.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match active {
            Some(multi) => multi.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A [`LogWriter`], for `tracing_subscriber::fmt().with_writer(...)`.
pub fn log_writer() -> LogWriter {
    LogWriter
}

/// The bars of one run.
pub struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
    bars: HashMap<usize, ProgressBar>,
    /// Inputs read to their end.
    done: usize,
    /// Whether the run has ended (every input done).
    finished: bool,
    per_input: bool,
}

fn input_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:<40!} {bar:30.cyan/blue} {binary_bytes:>10}/{binary_total_bytes:<10} {percent:>3}%",
    )
    .expect("a valid template")
    .progress_chars("━━─")
}

/// The last `width` characters of a path, for a bar's label.
fn shorten(label: &str, width: usize) -> String {
    let n = label.chars().count();
    if n <= width {
        return label.to_owned();
    }
    let tail: String = label.chars().skip(n - width + 1).collect();
    format!("…{tail}")
}

impl Progress {
    /// Starts drawing; `per_input` bars are left out when inputs grow (tail mode).
    pub fn start(per_input: bool) -> Self {
        let multi = MultiProgress::new();
        let overall = multi.add(ProgressBar::new_spinner());
        overall.set_style(
            ProgressStyle::with_template("{spinner:.green} [{elapsed_precise}] {msg}")
                .expect("a valid template"),
        );
        overall.enable_steady_tick(Duration::from_millis(250));
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(multi.clone());
        Self {
            multi,
            overall,
            bars: HashMap::new(),
            done: 0,
            finished: false,
            per_input,
        }
    }

    /// Redraws from the counters.
    ///
    /// A batch run reads its inputs one after the other: the input being read is the last one
    /// with a position, and those before it are done. (A position alone cannot say it: a zip
    /// is read at its end first, for its directory.)
    pub fn update(&mut self, stats: &Stats) {
        let positions = stats.positions();
        let current = positions.iter().rposition(|(_, _, pos)| *pos > 0);
        self.done = if self.finished {
            positions.len()
        } else {
            current.unwrap_or(0)
        };
        if self.per_input {
            for (id, (label, size, pos)) in positions.iter().enumerate() {
                let reading = Some(id) == current && !self.finished && *size > 0;
                if !reading {
                    if let Some(bar) = self.bars.remove(&id) {
                        bar.finish_and_clear();
                    }
                    continue;
                }
                if !self.bars.contains_key(&id) && self.bars.len() < MAX_BARS {
                    let bar = self
                        .multi
                        .insert_before(&self.overall, ProgressBar::new(*size));
                    bar.set_style(input_style());
                    bar.set_prefix(shorten(label, 40));
                    self.bars.insert(id, bar);
                }
                if let Some(bar) = self.bars.get(&id) {
                    bar.set_length(*size);
                    bar.set_position((*pos).min(*size));
                }
            }
        }
        let s = stats.summary();
        let (total, at): (u64, u64) = positions.iter().fold((0, 0), |(t, a), (_, size, pos)| {
            (t + size, a + pos.min(size))
        });
        let elapsed = stats.elapsed().as_secs_f64();
        let eta = if self.per_input && at > 0 && total > at && elapsed > 0.5 {
            let left = (total - at) as f64 / (at as f64 / elapsed);
            format!(" · ETA {}", HumanDuration(Duration::from_secs_f64(left)))
        } else {
            String::new()
        };
        let inputs = if self.per_input {
            format!(" · {}/{} inputs", self.done, positions.len())
        } else {
            String::new()
        };
        self.overall.set_message(format!(
            "{} events ({:.0}/s, {}/s) · indexed {} · duplicate {} · retried {} · dead-lettered {}{inputs}{eta}",
            HumanCount(s.events_read),
            s.events_per_second,
            HumanBytes((s.megabytes_per_second * 1e6) as u64),
            HumanCount(s.events_indexed),
            HumanCount(s.duplicates),
            HumanCount(s.retries),
            HumanCount(s.dead_lettered),
        ));
    }

    /// Draws the final state of the overall line and removes the input bars.
    pub fn finish(mut self, stats: &Stats) {
        self.finished = true;
        self.update(stats);
        for (_, bar) in self.bars.drain() {
            bar.finish_and_clear();
        }
        self.overall.finish();
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Draws progress every quarter second until aborted; then call [`Progress::finish`].
pub fn spawn(stats_of: Arc<crate::sink::Accounting>, per_input: bool) -> ProgressTask {
    let progress = Arc::new(Mutex::new(Some(Progress::start(per_input))));
    let p = progress.clone();
    let acct = stats_of.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            if let Some(p) = p.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                p.update(&acct.stats);
            }
        }
    });
    ProgressTask {
        task,
        progress,
        acct: stats_of,
    }
}

/// A running progress display.
pub struct ProgressTask {
    task: tokio::task::JoinHandle<()>,
    progress: Arc<Mutex<Option<Progress>>>,
    acct: Arc<crate::sink::Accounting>,
}

impl ProgressTask {
    /// Stops redrawing and leaves the final overall line on the terminal.
    pub fn finish(self) {
        self.task.abort();
        let taken = self
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(p) = taken {
            p.finish(&self.acct.stats);
        }
    }
}
