//! The summary of a run: written with `--summary-json` and printed as a table.

use super::ListenerSummary;
use serde::Serialize;
use std::io::Write;

/// Per-input part of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct InputSummary {
    /// The input as resolved (a file path).
    pub input: String,
    /// Records read.
    pub events_read: u64,
    /// Documents created.
    pub events_indexed: u64,
    /// Documents already present.
    pub duplicates: u64,
    /// Records dead-lettered.
    pub dead_lettered: u64,
    /// Records neither delivered nor dead-lettered (the dead letter file failed, or the run
    /// aborted).
    pub failed: u64,
    /// Records read that have no outcome (yet, or at the end of an interrupted run: a later run
    /// reads them again).
    pub unsettled: u64,
    /// Decoded bytes read.
    pub bytes_read: u64,
    /// Unreadable parts of the input.
    pub input_errors: u64,
}

/// What a run did; written with `--summary-json` and printed as a table.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Records read from every input.
    pub events_read: u64,
    /// Documents newly created (or written, for file outputs).
    pub events_indexed: u64,
    /// Documents already present in the index.
    pub duplicates: u64,
    /// Records written to the dead letter queue.
    pub dead_lettered: u64,
    /// Records neither delivered nor dead-lettered (the dead letter file failed, or the run
    /// aborted).
    pub failed: u64,
    /// Records read without an outcome when the run ended: a signal stopped it before the
    /// engine answered for them; nothing was acknowledged for them, and a later run (or the
    /// sender) sends them again.
    pub unsettled: u64,
    /// Whether a signal stopped the run before it was done (exit code 4).
    pub interrupted: bool,
    /// Decoded bytes read.
    pub bytes_read: u64,
    /// Parts of inputs that could not be read.
    pub input_errors: u64,
    /// Warnings that lost nothing.
    pub warnings: u64,
    /// Records lost to damage in the disk spool (each loss is reported with its segment and
    /// byte range); not among `events_read`, since they could not be read.
    pub spool_lost: u64,
    /// Retried requests and items.
    pub retries: u64,
    /// Wall time of the run.
    pub elapsed_seconds: f64,
    /// Records read per second.
    pub events_per_second: f64,
    /// Decoded megabytes (10^6) read per second.
    pub megabytes_per_second: f64,
    /// Where the documents went.
    pub output: String,
    /// The dead letter file, when anything was written to it.
    pub dead_letter_path: Option<String>,
    /// Per-input figures.
    pub inputs: Vec<InputSummary>,
    /// Per-listener figures (connections, windows, ACKs, refusals), when the run listened.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerSummary>,
    /// The Kafka consumer's figures, when the run consumed from Kafka.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<super::KafkaSummary>,
    /// The `_bulk` requests (bytes before and after compression, concurrency), when any was
    /// sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bulk: Option<super::BulkSummary>,
    /// Seconds after the start when the engine first answered (`None`: it never did, or the
    /// run sent to no engine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_reached_after_seconds: Option<f64>,
}

impl Summary {
    /// Writes the human-readable table.
    pub fn write_table(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let width = self
            .inputs
            .iter()
            .map(|i| i.input.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, 60);
        writeln!(
            out,
            "{:<width$} {:>10} {:>10} {:>10} {:>8} {:>6} {:>9} {:>6}",
            "input", "read", "indexed", "duplicate", "dead", "failed", "unsettled", "errors"
        )?;
        let row = |out: &mut dyn Write, name: &str, i: &InputSummary| {
            let shown: String = if name.chars().count() > width {
                let skip = name.chars().count() - width + 1;
                format!("…{}", name.chars().skip(skip).collect::<String>())
            } else {
                name.to_owned()
            };
            writeln!(
                out,
                "{:<width$} {:>10} {:>10} {:>10} {:>8} {:>6} {:>9} {:>6}",
                shown,
                i.events_read,
                i.events_indexed,
                i.duplicates,
                i.dead_lettered,
                i.failed,
                i.unsettled,
                i.input_errors
            )
        };
        for i in &self.inputs {
            row(out, &i.input, i)?;
        }
        if self.inputs.len() > 1 {
            let total = InputSummary {
                input: "total".into(),
                events_read: self.events_read,
                events_indexed: self.events_indexed,
                duplicates: self.duplicates,
                dead_lettered: self.dead_lettered,
                failed: self.failed,
                unsettled: self.unsettled,
                bytes_read: self.bytes_read,
                input_errors: self.input_errors,
            };
            row(out, "total", &total)?;
        }
        writeln!(
            out,
            "{} events, {:.1} MB in {:.2} s ({:.0} events/s, {:.1} MB/s) to {}; {} retries, {} warnings",
            self.events_read,
            self.bytes_read as f64 / 1e6,
            self.elapsed_seconds,
            self.events_per_second,
            self.megabytes_per_second,
            self.output,
            self.retries,
            self.warnings
        )?;
        for l in &self.listeners {
            l.write_line(out)?;
        }
        if let Some(k) = &self.kafka {
            k.write_line(out)?;
        }
        if let Some(b) = &self.bulk {
            b.write_line(out)?;
        }
        if let Some(t) = self.engine_reached_after_seconds.filter(|t| *t >= 1.0) {
            writeln!(out, "the engine first answered {t:.1} s after the start")?;
        }
        if self.interrupted {
            writeln!(
                out,
                "interrupted before the end: {} records read have no outcome and were not \
                 acknowledged; running again resumes where the acknowledged records stop",
                self.unsettled
            )?;
        }
        if self.spool_lost > 0 {
            writeln!(
                out,
                "{} records lost to damage in the spool (the ERROR lines name each segment and \
                 byte range)",
                self.spool_lost
            )?;
        }
        if let Some(path) = &self.dead_letter_path {
            writeln!(
                out,
                "{} records dead-lettered to {path} (one JSON line each, with the reason)",
                self.dead_lettered
            )?;
        }
        Ok(())
    }

    /// Whether every record read is accounted for by exactly one outcome (or none yet).
    pub fn adds_up(&self) -> bool {
        self.events_read
            == self.events_indexed
                + self.duplicates
                + self.dead_lettered
                + self.failed
                + self.unsettled
    }
}
