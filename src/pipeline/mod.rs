//! Wiring: readers, parsing workers and the sink, joined by bounded channels.
//!
//! ```text
//! reader thread ──RawChunk──▶ N worker threads ──EncodedChunk──▶ sink (async, K requests in flight)
//!   (source + decode)              (transform)                     (engine or file)
//!        ▲                                                                 │
//!        └──────── each chunk's Ack settles its source (checkpoints) ◀────┘
//! ```
//! Every channel is bounded, so a slow engine slows the readers and memory stays flat.
//! A run is [`build`] (inputs, sink, checkpoints), [`spawn`] (threads and tasks), then
//! [`finish`] (waiting, teardown, summary).

mod report;
mod sinks;
mod workers;

pub use report::{Exit, Report, RunError};

use crate::checkpoint::Checkpoints;
use crate::common::InputId;
use crate::config::{Mode, Pipeline};
use crate::exporter::{Exporter, QueueProbe};
use crate::metrics::Stats;
use crate::sink::dlq::DeadLetter;
use crate::sink::Accounting;
use crate::source::listen::{Bound, Intake};
use crate::source::spool::{self, Spool};
use crate::source::{self, InputFile};
use sinks::Sink;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often checkpoints are written while a run goes on.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Options that do not belong in a pipeline file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Set to stop reading; what was read is still delivered and checkpointed.
    pub stop: Arc<AtomicBool>,
    /// Show a progress line on a terminal.
    pub progress: bool,
    /// Ignore stored positions and read every input from its start.
    pub from_start: bool,
    /// Keep checkpoints (the default for deliveries to the engine).
    pub checkpoints: bool,
    /// Serve Prometheus metrics and health on this address while the run goes on.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl RunOptions {
    /// Options for a run from the command line: checkpoints kept, no progress line.
    pub fn new() -> Self {
        Self {
            checkpoints: true,
            ..Self::default()
        }
    }
}

/// What a run needs before anything is read.
struct Built {
    inputs: Vec<InputFile>,
    /// Listeners, bound, with their input ids and their numbers in the spool.
    listeners: Vec<(Bound, InputId, Option<u16>)>,
    /// The spool, when a listener needs it, and the input of each of its sources.
    spool: Option<(Spool, Vec<InputId>)>,
    sink: Sink,
    checkpoints: Option<Arc<Checkpoints>>,
    acct: Arc<Accounting>,
}

/// A run under way: its threads and tasks.
struct Running {
    acct: Arc<Accounting>,
    checkpoints: Option<Arc<Checkpoints>>,
    workers: workers::Workers,
    listeners: Vec<tokio::task::JoinHandle<()>>,
    spool: Option<spool::Running>,
    kafka: Option<crate::source::kafka::Running>,
    sink: tokio::task::JoinHandle<Result<(), RunError>>,
    background: Vec<tokio::task::JoinHandle<()>>,
    progress: Option<crate::progress::ProgressTask>,
}

/// Runs a pipeline to the end of its inputs (or, tailing, until stopped).
///
/// Errors before anything is read (bad inputs, unreachable engine) are returned as `Err`;
/// once reading started, a report with the summary is always returned.
pub async fn run(p: &Pipeline, opts: RunOptions) -> Result<Report, RunError> {
    let built = build(p, &opts).await?;
    let running = spawn(p, &opts, built).await?;
    Ok(finish(p, &opts.stop, running).await)
}

/// Resolves the inputs, connects the sink and opens the checkpoints.
async fn build(p: &Pipeline, opts: &RunOptions) -> Result<Built, RunError> {
    // In tail mode inputs are found while following (they may not exist yet).
    let inputs = if p.mode == Mode::Tail || p.inputs.is_empty() {
        Vec::new()
    } else {
        let (inputs, unmatched) = source::resolve_until(&p.inputs, &opts.stop)?;
        for pattern in &unmatched {
            tracing::warn!("input `{pattern}` matched no file");
        }
        if inputs.is_empty() {
            return Err(RunError::NothingToRead(p.inputs.join(", ")));
        }
        inputs
    };
    let mut bound = Vec::new();
    for l in &p.listen {
        bound.push(Bound::bind(l.clone()).await?);
    }
    let (sink, reached) = sinks::connect(p, &opts.stop).await?;
    // Positions are kept for deliveries to the engine; a file output is written anew each run.
    let checkpoints = if p.keeps_positions() && opts.checkpoints {
        // Each share of a split backfill keeps its own positions.
        let name = match p.shard {
            Some(s) => format!("{}#{s}", p.name),
            None => p.name.clone(),
        };
        Some(Arc::new(Checkpoints::open(
            &p.checkpoint_dir,
            &name,
            p.index.as_str(),
        )?))
    } else {
        None
    };
    let stats = Stats::new(inputs.iter().map(InputFile::label).collect());
    if let Some(after) = reached {
        stats.engine.mark(after);
    }
    for input in &inputs {
        if let source::Location::Path(path) = &input.location {
            let size = std::fs::metadata(path).map_or(0, |m| m.len());
            stats
                .input(input.id)
                .size
                .store(size, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let spool = open_spool(p, opts, &bound)?;
    let listeners: Vec<(Bound, InputId, Option<u16>)> = bound
        .into_iter()
        .map(|b| {
            let label = b.label();
            let id = stats.add_input(label.clone());
            let source = spool
                .as_ref()
                .filter(|_| b.settings.kind.spooled())
                .and_then(|s| s.source_of(&label));
            (b, id, source)
        })
        .collect();
    // Records spooled by listeners of earlier runs count under their own names.
    let spool = spool.map(|s| {
        let inputs = s
            .sources
            .iter()
            .map(|label| {
                listeners
                    .iter()
                    .find(|(b, _, _)| &b.label() == label)
                    .map_or_else(
                        || stats.add_input(format!("{label} (spooled before)")),
                        |l| l.1,
                    )
            })
            .collect();
        if !s.warnings.is_empty() {
            stats
                .warnings
                .fetch_add(s.warnings.len() as u64, Ordering::Relaxed);
        }
        (s, inputs)
    });
    let acct = Arc::new(Accounting {
        stats: Arc::new(stats),
        dlq: DeadLetter::new(&p.dead_letter),
    });
    Ok(Built {
        inputs,
        listeners,
        spool,
        sink,
        checkpoints,
        acct,
    })
}

/// The spool, when a listener needs it.
fn open_spool(p: &Pipeline, opts: &RunOptions, bound: &[Bound]) -> Result<Option<Spool>, RunError> {
    let labels: Vec<String> = bound
        .iter()
        .filter(|b| b.settings.kind.spooled())
        .map(Bound::label)
        .collect();
    if labels.is_empty() {
        return Ok(None);
    }
    Ok(Some(Spool::open(
        p.spool.clone(),
        &labels,
        opts.stop.clone(),
    )?))
}

/// Starts the exporter, the reader and parsing threads, the sink, progress and the
/// checkpoint saver.
async fn spawn(p: &Pipeline, opts: &RunOptions, built: Built) -> Result<Running, RunError> {
    let Built {
        inputs,
        listeners,
        spool,
        sink,
        checkpoints,
        acct,
    } = built;
    let started = workers::start(p, opts, inputs, &acct, checkpoints.clone());
    let (workers, enc_rx) = (started.workers, started.encoded);
    let intake = Intake {
        tx: started.listeners,
        stats: acct.stats.clone(),
        order: started.order,
        stop: stop_watch(opts.stop.clone()),
    };
    let grace = Duration::from_millis(p.bulk.shutdown_grace_ms.get() as u64);
    let budget = crate::common::Budget::new(p.listen_budget);
    let (spool_tx, spool) = match spool {
        Some((s, inputs)) => {
            let (tx, running) = s.start(intake.clone(), inputs, grace);
            (Some(tx), Some(running))
        }
        None => (None, None),
    };
    let mut listeners: Vec<tokio::task::JoinHandle<()>> = listeners
        .into_iter()
        .map(|(bound, id, source)| {
            let (intake, index) = (intake.clone(), p.index.to_string());
            let spool = spool_tx.clone().zip(source);
            let budget = budget.clone();
            // Counters are made here, in the config's order, so that the summary lists the
            // listeners in that order whichever task starts first.
            intake.stats.listener(&bound.label());
            tokio::spawn(async move { bound.serve(intake, id, grace, &index, spool, budget).await })
        })
        .collect();
    let kafka = match &p.kafka {
        Some(k) => {
            let (task, running) =
                crate::source::kafka::start(k, p.mode != Mode::Tail, intake.clone())?;
            listeners.push(task);
            Some(running)
        }
        None => None,
    };
    drop((intake, spool_tx));
    let mut background = Vec::new();
    if let Some(addr) = opts.metrics_addr {
        let bound = Exporter::bind(addr)
            .await
            .map_err(|source| RunError::Metrics { addr, source })?;
        tracing::info!(
            "metrics at http://{}/metrics, health at /health",
            bound.addr
        );
        let queues: Vec<(&'static str, QueueProbe)> = workers.queue_probes();
        background.push(tokio::spawn(bound.serve(acct.clone(), queues)));
    }
    let progress = (opts.progress && std::io::stderr().is_terminal())
        .then(|| crate::progress::spawn(acct.clone(), p.mode != Mode::Tail));
    if let Some(cp) = &checkpoints {
        background.push(tokio::spawn(save_checkpoints(cp.clone())));
    }
    let sink = tokio::spawn(sinks::run(sink, enc_rx, acct.clone()));
    Ok(Running {
        acct,
        checkpoints,
        workers,
        listeners,
        spool,
        kafka,
        sink,
        background,
        progress,
    })
}

/// The stop flag as a watch that async tasks (listeners) can wait on.
fn stop_watch(stop: Arc<AtomicBool>) -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(stop.load(Ordering::Relaxed));
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = tx.send(true);
    });
    rx
}

/// Writes the checkpoints every [`CHECKPOINT_INTERVAL`] until aborted.
async fn save_checkpoints(cp: Arc<Checkpoints>) {
    let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
    loop {
        tick.tick().await;
        let cp = cp.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || cp.save()).await {
            tracing::error!("{e}");
        }
    }
}

/// Waits for the sink, stops the rest, writes the last checkpoints and makes the report.
async fn finish(p: &Pipeline, stop: &AtomicBool, running: Running) -> Report {
    let Running {
        acct,
        checkpoints,
        workers,
        listeners,
        spool,
        kafka,
        sink,
        background,
        progress,
    } = running;
    // The sink ends once every source is done: the reader, and the listeners (which end after
    // a stop, once what they received is settled and answered).
    let mut result = sink.await.expect("the sink panicked");
    for l in listeners {
        let _ = l.await;
    }
    if let Some(s) = spool {
        // The keeper writes the last settled position once the last chunk is gone.
        let _ = tokio::task::spawn_blocking(move || s.join()).await;
    }
    if let Some(k) = kafka {
        // The last commit, once every chunk is settled.
        let _ = tokio::task::spawn_blocking(move || k.join()).await;
    }
    for task in background {
        task.abort();
    }
    if let Some(p) = progress {
        p.finish();
    }
    // On an error the receivers are gone: workers and the reader stop at their next send.
    let read_everything = workers.join();
    if let Err(e) = acct.dlq.flush() {
        tracing::error!(
            "cannot flush the dead letter file {}: {e}",
            acct.dlq.path().display()
        );
    }
    if let Some(cp) = &checkpoints {
        if let Err(e) = cp.save() {
            tracing::error!("{e}");
            if result.is_ok() {
                result = Err(e.into());
            }
        }
    }
    if result.is_err() {
        acct.stats.mark_unsettled_as_failed();
    }
    let mut summary = acct.stats.summary();
    summary.interrupted =
        stop.load(Ordering::Relaxed) && (!read_everything || summary.unsettled > 0);
    summary.output = p.output_for_display();
    if acct.dlq.written() > 0 {
        summary.dead_letter_path = Some(acct.dlq.path().display().to_string());
    }
    Report {
        summary,
        error: result.err(),
    }
}
