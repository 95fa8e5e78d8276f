//! `evtship run`: runs a pipeline, prints (and writes) the summary, and says how it ended.

use super::{report, Exit};
use anyhow::Context;
use evtship::config::Pipeline;
use evtship::pipeline::{self, RunOptions};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Runs `p`; the summary goes to standard error, and as JSON to `summary_json` if given.
pub fn run(p: &Pipeline, summary_json: Option<&Path>, opts: RunOptions) -> Exit {
    match run_to_end(p, summary_json, opts) {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Aborted
        }
    }
}

fn run_to_end(p: &Pipeline, summary_json: Option<&Path>, opts: RunOptions) -> anyhow::Result<Exit> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.spawn(stop_on_signals(opts.stop.clone()));
    let outcome = match runtime.block_on(pipeline::run(p, opts)) {
        Ok(r) => r,
        Err(e) => {
            report(&e);
            return Ok(e.exit());
        }
    };
    let summary = &outcome.summary;
    let _ = summary.write_table(&mut std::io::stderr());
    if let Some(path) = summary_json {
        let json = serde_json::to_string_pretty(summary).context("encoding the summary")?;
        if path == Path::new("-") {
            println!("{json}");
        } else {
            std::fs::write(path, json + "\n")
                .with_context(|| format!("writing the summary to {}", path.display()))?;
        }
    }
    if let Some(e) = &outcome.error {
        report(e);
    }
    Ok(outcome.exit())
}

/// First SIGINT or SIGTERM: stop reading, deliver what is in flight, write checkpoints, print
/// the summary. Second: exit at once (checkpoints only ever hold acknowledged positions).
async fn stop_on_signals(stop: Arc<AtomicBool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return;
    };
    for round in 0..2 {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        if round == 0 {
            stop.store(true, Ordering::SeqCst);
            eprintln!(
                "evtship: stopping: delivering what is in flight and writing checkpoints \
                 (signal again to stop at once)"
            );
        }
    }
    eprintln!("evtship: stopped at once; checkpoints hold what was acknowledged");
    std::process::exit(130);
}
