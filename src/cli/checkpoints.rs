//! `evtship checkpoints list|reset`: where state lives and what it holds; starting over.

use super::args::CheckpointAction;
use super::{report, Exit};
use evtship::checkpoint::{self, CheckpointError};
use std::path::Path;

/// Runs a `checkpoints` subcommand on the checkpoints in `dir`.
pub fn run(dir: &Path, action: CheckpointAction) -> Exit {
    let done = match action {
        CheckpointAction::List => list(dir),
        CheckpointAction::Reset { input } => reset(dir, input.as_deref()),
    };
    match done {
        Ok(()) => Exit::Delivered,
        Err(e) => {
            report(&e);
            Exit::Aborted
        }
    }
}

fn list(dir: &Path) -> Result<(), CheckpointError> {
    println!("checkpoint directory: {}", dir.display());
    let files = checkpoint::list(dir)?;
    if files.is_empty() {
        println!("(no checkpoints)");
    }
    for (path, file) in files {
        println!(
            "\n{} (pipeline {}, index {})",
            path.display(),
            file.pipeline,
            file.index
        );
        println!(
            "  {:<60} {:>10} {:>10} {:>12} {:>9}  updated",
            "input", "records", "line", "byte", "finished"
        );
        for e in file.entries.values() {
            let shown = |n: u64| {
                if e.seekable {
                    n.to_string()
                } else {
                    "-".into()
                }
            };
            println!(
                "  {:<60} {:>10} {:>10} {:>12} {:>9}  {}",
                e.input,
                e.records,
                shown(e.position.line),
                shown(e.position.offset),
                if e.finished { "yes" } else { "no" },
                e.updated
            );
        }
    }
    Ok(())
}

fn reset(dir: &Path, input: Option<&str>) -> Result<(), CheckpointError> {
    let n = checkpoint::reset(dir, input)?;
    match input {
        Some(i) => println!("removed {n} stored position(s) of {i} in {}", dir.display()),
        None => println!("removed all {n} stored position(s) in {}", dir.display()),
    }
    Ok(())
}
