//! The dead letter queue, acted on: `evtship dlq list` summarises it, `evtship dlq replay`
//! sends its records again (once the cause is fixed) and keeps only what still fails.
//!
//! Replay reads the records (`record`) of the file, runs them through the same pipeline as
//! `run` (same transformation, same ids, so anything already indexed is answered as present),
//! and rewrites the file atomically with the lines that could not be replayed (`record_text`:
//! the line was not JSON) and the records that failed again, each with its new reason and its
//! original input and line.

use crate::config::Pipeline;
use crate::pipeline::{self, Report, RunError, RunOptions};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why the dead letter file could not be used.
#[derive(Debug, Error)]
pub enum DlqError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The replay run failed.
    #[error(transparent)]
    Run(#[from] RunError),
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> DlqError + '_ {
    move |source| DlqError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A line of a dead letter file, and its JSON object when it is one.
type Entry = (String, Option<Map<String, Value>>);

/// The lines of a dead letter file.
fn entries(path: &Path) -> Result<Vec<Entry>, DlqError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| (l.to_owned(), serde_json::from_str(l).ok()))
        .collect())
}

/// What a dead letter file holds.
#[derive(Debug, Default)]
pub struct DlqSummary {
    /// Lines in the file.
    pub total: usize,
    /// Lines whose record can be sent again.
    pub replayable: usize,
    /// Count per reason.
    pub reasons: BTreeMap<String, usize>,
    /// Count per HTTP status (`-` when the engine never answered).
    pub statuses: BTreeMap<String, usize>,
    /// Count per original input.
    pub inputs: BTreeMap<String, usize>,
}

/// Summarises a dead letter file.
pub fn summarize(path: &Path) -> Result<DlqSummary, DlqError> {
    let mut s = DlqSummary::default();
    for (_, entry) in entries(path)? {
        s.total += 1;
        let Some(e) = entry else {
            *s.reasons.entry("(unreadable line)".into()).or_default() += 1;
            continue;
        };
        if e.get("record").is_some() {
            s.replayable += 1;
        }
        let reason = e["reason"].as_str().unwrap_or("?");
        // Reasons name documents (`... in document with id '...'`): group by the kind of error.
        let reason: String = reason
            .split(" in document with id")
            .next()
            .unwrap_or(reason)
            .chars()
            .take(160)
            .collect();
        *s.reasons.entry(reason).or_default() += 1;
        let status = e
            .get("status")
            .and_then(Value::as_u64)
            .map_or("-".to_owned(), |s| s.to_string());
        *s.statuses.entry(status).or_default() += 1;
        *s.inputs
            .entry(e["input"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    Ok(s)
}

/// The outcome of a replay.
#[derive(Debug)]
pub struct ReplayReport {
    /// The run over the replayable records.
    pub report: Report,
    /// Lines kept because they hold no JSON record.
    pub unreplayable: usize,
    /// Records that failed again (kept in the file).
    pub still_failing: usize,
}

/// Sends the records of the dead letter file `dlq` again through pipeline `p`, and rewrites the
/// file with what could not be delivered.
pub async fn replay(
    p: &Pipeline,
    dlq: &Path,
    mut opts: RunOptions,
) -> Result<ReplayReport, DlqError> {
    let lines = entries(dlq)?;
    let work = tempfile::tempdir_in(
        dlq.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
    .map_err(io_err(dlq))?;
    let records_path = work.path().join("records.ndjson");
    let failed_path = work.path().join("failed.ndjson");
    let mut kept: Vec<String> = Vec::new();
    let mut origins: Vec<(Value, Value)> = Vec::new();
    {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&records_path).map_err(io_err(&records_path))?,
        );
        for (line, entry) in &lines {
            match entry.as_ref().and_then(|e| e.get("record").map(|r| (e, r))) {
                Some((e, record)) => {
                    serde_json::to_writer(&mut out, record).expect("serialisable");
                    out.write_all(b"\n").map_err(io_err(&records_path))?;
                    origins.push((e["input"].clone(), e["line"].clone()));
                }
                None => kept.push(line.clone()),
            }
        }
        out.flush().map_err(io_err(&records_path))?;
    }
    let mut p = p.clone();
    p.inputs = vec![records_path.display().to_string()];
    p.dead_letter = failed_path.clone();
    opts.checkpoints = false;
    let report = pipeline::run(&p, opts).await?;

    // Failures point at the temporary file: give them back their original input and line.
    let mut still_failing = 0;
    if failed_path.exists() {
        for (_, entry) in entries(&failed_path)? {
            let Some(mut e) = entry else { continue };
            let at = e["line"].as_u64().unwrap_or(0) as usize;
            if let Some((input, line)) = at.checked_sub(1).and_then(|i| origins.get(i)) {
                e.insert("input".into(), input.clone());
                e.insert("line".into(), line.clone());
            }
            kept.push(serde_json::to_string(&e).expect("serialisable"));
            still_failing += 1;
        }
    }
    let unreplayable = lines.len() - origins.len();
    if report.error.is_none() {
        if kept.is_empty() {
            std::fs::remove_file(dlq).map_err(io_err(dlq))?;
        } else {
            let tmp = work.path().join("dlq.ndjson");
            std::fs::write(&tmp, kept.join("\n") + "\n").map_err(io_err(&tmp))?;
            std::fs::copy(&tmp, dlq).map_err(io_err(dlq))?;
        }
    }
    Ok(ReplayReport {
        report,
        unreplayable,
        still_failing,
    })
}
