//! `evtship dlq list|replay`: what a dead letter file holds, and sending it again.

use super::args::{load, DlqAction};
use super::{report, runtime, Exit};
use evtship::pipeline::RunOptions;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Runs a `dlq` subcommand.
pub fn run(action: DlqAction) -> Exit {
    match action {
        DlqAction::List { path } => {
            list(&path.unwrap_or_else(|| PathBuf::from(evtship::config::DEFAULT_DEAD_LETTER)))
        }
        DlqAction::Replay {
            path,
            pipeline,
            mut source,
        } => {
            // The records go where the pipeline says; its own inputs are not read.
            source.inputs = vec![path.display().to_string()];
            match load(pipeline.as_deref(), *source) {
                Ok(p) => replay(&p, &path),
                Err(e) => {
                    report(&e);
                    Exit::Usage
                }
            }
        }
    }
}

fn list(path: &Path) -> Exit {
    let s = match evtship::replay::summarize(path) {
        Ok(s) => s,
        Err(e) => {
            report(&e);
            return Exit::Aborted;
        }
    };
    println!(
        "{}: {} records, {} replayable",
        path.display(),
        s.total,
        s.replayable
    );
    let show = |title: &str, m: &BTreeMap<String, usize>| {
        println!("by {title}:");
        let mut v: Vec<_> = m.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1));
        for (k, n) in v {
            println!("  {n:>8}  {k}");
        }
    };
    show("reason", &s.reasons);
    show("status", &s.statuses);
    show("input", &s.inputs);
    Exit::Delivered
}

fn replay(p: &evtship::config::Pipeline, path: &Path) -> Exit {
    let runtime = match runtime(2) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let r = match runtime.block_on(evtship::replay::replay(p, path, RunOptions::new())) {
        Ok(r) => r,
        Err(e) => {
            report(&e);
            return Exit::Aborted;
        }
    };
    let summary = &r.report.summary;
    let _ = summary.write_table(&mut std::io::stderr());
    eprintln!(
        "replayed {} records from {}: {} indexed, {} already present; \
         {} failed again and {} unreplayable lines stay in the file",
        summary.events_read,
        path.display(),
        summary.events_indexed,
        summary.duplicates,
        r.still_failing,
        r.unreplayable
    );
    if let Some(e) = &r.report.error {
        report(e);
        return Exit::Aborted;
    }
    if r.still_failing + r.unreplayable > 0 {
        Exit::Partial
    } else {
        Exit::Delivered
    }
}
