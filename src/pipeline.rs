//! Wiring: readers, parsing workers and the sink, joined by bounded channels.
//!
//! ```text
//! reader thread ──RawChunk──▶ N worker threads ──EncodedChunk──▶ sink (async, K requests in flight)
//! ```
//! Every channel is bounded, so a slow engine slows the readers and memory stays flat.

use crate::checkpoint::{CheckpointError, Checkpoints};
use crate::config::{ConfigError, Mode, OutputTarget, Pipeline};
use crate::decode::{Flow, RawChunk};
use crate::exporter::{Exporter, QueueProbe};
use crate::metrics::{Stats, Summary};
use crate::sink::dlq::DeadLetter;
use crate::sink::elasticsearch::{BulkSink, EsClient, EsError};
use crate::sink::file::{self, FileFormat, FileSinkError};
use crate::sink::Accounting;
use crate::source::{self, ResolveError};
use crate::transform::{EncodedChunk, Encoder};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// How often checkpoints are written while a run goes on.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Why a run could not start or had to stop.
#[derive(Debug, Error)]
pub enum RunError {
    /// Invalid settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Inputs could not be resolved.
    #[error(transparent)]
    Inputs(#[from] ResolveError),
    /// Nothing matched the inputs.
    #[error("no input files matched {0}")]
    NothingToRead(String),
    /// The engine refused or could not be reached.
    #[error(transparent)]
    Engine(#[from] EsError),
    /// The output file could not be written.
    #[error(transparent)]
    Output(#[from] FileSinkError),
    /// Checkpoints could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The metrics address could not be bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

impl RunError {
    /// Whether the fault is in the settings or the command line (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::Config(_) | Self::Inputs(_) | Self::NothingToRead(_) | Self::Metrics { .. }
        )
    }
}

/// The result of a run that got as far as reading.
#[derive(Debug)]
pub struct Report {
    /// What happened.
    pub summary: Summary,
    /// Why the run stopped early, if it did.
    pub error: Option<RunError>,
}

impl Report {
    /// Exit code per the contract: 0 all delivered, 3 some records dead-lettered (or input
    /// unreadable), 1 aborted.
    pub fn exit_code(&self) -> i32 {
        match &self.error {
            Some(e) if e.is_usage() => 2,
            Some(_) => 1,
            None if self.summary.failed > 0 => 1,
            None if self.summary.dead_lettered > 0 || self.summary.input_errors > 0 => 3,
            None => 0,
        }
    }
}

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

enum Sink {
    Engine(Box<BulkSink>),
    File(Option<std::path::PathBuf>, FileFormat),
}

/// Runs a pipeline to the end of its inputs.
///
/// Errors before anything is read (bad inputs, unreachable engine) are returned as `Err`;
/// once reading started, a report with the summary is always returned.
pub async fn run(p: &Pipeline, opts: RunOptions) -> Result<Report, RunError> {
    let tail = p.mode == Mode::Tail;
    // In tail mode inputs are found while following (they may not exist yet).
    let inputs = if tail {
        Vec::new()
    } else {
        let (inputs, unmatched) = source::resolve(&p.inputs)?;
        for pattern in &unmatched {
            tracing::warn!("input `{pattern}` matched no file");
        }
        if inputs.is_empty() {
            return Err(RunError::NothingToRead(p.inputs.join(", ")));
        }
        inputs
    };
    let sink = match &p.output {
        OutputTarget::Elasticsearch => {
            let client = EsClient::new(p)?;
            let info = client.server_info().await?;
            tracing::info!(
                "connected to {} {} at {}",
                info.distribution,
                info.version,
                client.shown_url
            );
            if p.template.install {
                client.install_template(p, &info).await?;
                tracing::info!(
                    "index template {} installed for index {}",
                    p.template_name(),
                    p.index
                );
            }
            Sink::Engine(Box::new(BulkSink::new(
                client,
                p.bulk.clone(),
                p.mode == Mode::Tail,
            )))
        }
        OutputTarget::Ndjson(path) => Sink::File(path.clone(), FileFormat::Documents),
        OutputTarget::Bulk(path) => Sink::File(path.clone(), FileFormat::Bulk),
    };

    // Positions are kept for deliveries to the engine; a file output is written anew each run.
    let checkpoints = match p.output {
        OutputTarget::Elasticsearch if opts.checkpoints => {
            // Each share of a split backfill keeps its own positions.
            let name = match p.shard {
                Some(s) => format!("{}#{s}", p.name),
                None => p.name.clone(),
            };
            Some(Checkpoints::open(
                &p.checkpoint_dir,
                &name,
                p.index.as_str(),
            )?)
        }
        _ => None,
    };
    let stats = Stats::new(inputs.iter().map(|i| i.label()).collect());
    for input in &inputs {
        if let source::Location::Path(path) = &input.location {
            let size = std::fs::metadata(path).map_or(0, |m| m.len());
            stats.input(input.id).size.store(size, Relaxed);
        }
    }
    let acct = Arc::new(Accounting {
        stats,
        dlq: DeadLetter::new(&p.dead_letter),
        checkpoints,
    });
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (raw_tx, raw_rx) = flume::bounded::<RawChunk>(workers * 2);
    let (enc_tx, enc_rx) = flume::bounded::<EncodedChunk>(p.bulk.concurrency.get() * 2);

    let exporter = match opts.metrics_addr {
        Some(addr) => {
            let bound = Exporter::bind(addr)
                .await
                .map_err(|source| RunError::Metrics { addr, source })?;
            tracing::info!(
                "metrics at http://{}/metrics, health at /health",
                bound.addr
            );
            let (raw, enc) = (raw_tx.downgrade(), enc_tx.downgrade());
            let queues: Vec<(&'static str, QueueProbe)> = vec![
                (
                    "parse",
                    Box::new(move || raw.upgrade().map_or(0, |t| t.len())),
                ),
                (
                    "deliver",
                    Box::new(move || enc.upgrade().map_or(0, |t| t.len())),
                ),
            ];
            Some(tokio::spawn(bound.serve(acct.clone(), queues)))
        }
        None => None,
    };

    let read_opts = source::ReadOptions {
        cache_dir: p.cache_dir.clone(),
        threads: workers,
        from_start: opts.from_start,
        shard: p.shard,
    };
    let reader = {
        let acct = acct.clone();
        let stop = opts.stop.clone();
        let patterns = p.inputs.clone();
        std::thread::Builder::new()
            .name("evtship-read".into())
            .spawn(move || {
                let mut order = 0u64;
                let mut emit = |mut chunk: RawChunk| {
                    if stop.load(Relaxed) {
                        return Flow::Stop;
                    }
                    chunk.order = order;
                    order += 1;
                    match raw_tx.send(chunk) {
                        Ok(()) => Flow::Continue,
                        Err(_) => Flow::Stop,
                    }
                };
                if tail {
                    source::follow(
                        &patterns,
                        &acct.stats,
                        &read_opts,
                        acct.checkpoints.as_ref(),
                        &stop,
                        &mut emit,
                    );
                    return;
                }
                for input in &inputs {
                    if stop.load(Relaxed) {
                        break;
                    }
                    if source::read_input(
                        input,
                        &acct.stats,
                        &read_opts,
                        acct.checkpoints.as_ref(),
                        &mut emit,
                    ) == Flow::Stop
                    {
                        break;
                    }
                }
            })
            .expect("spawning a thread")
    };
    let encoder = Encoder::new(&p.index, p.transform);
    let parsers: Vec<_> = (0..workers)
        .map(|i| {
            let (rx, tx, encoder) = (raw_rx.clone(), enc_tx.clone(), encoder.clone());
            std::thread::Builder::new()
                .name(format!("evtship-parse-{i}"))
                .spawn(move || {
                    for raw in rx.iter() {
                        if tx.send(encoder.encode(raw)).is_err() {
                            break;
                        }
                    }
                })
                .expect("spawning a thread")
        })
        .collect();
    drop((raw_rx, enc_tx));

    let progress = (opts.progress && std::io::stderr().is_terminal())
        .then(|| crate::progress::spawn(acct.clone(), !tail));

    let saver = acct.checkpoints.is_some().then(|| {
        let acct = acct.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
            loop {
                tick.tick().await;
                let acct = acct.clone();
                let saved = tokio::task::spawn_blocking(move || {
                    acct.checkpoints.as_ref().map_or(Ok(()), Checkpoints::save)
                })
                .await;
                if let Ok(Err(e)) = saved {
                    tracing::error!("{e}");
                }
            }
        })
    });

    let result: Result<(), RunError> = match sink {
        Sink::Engine(bulk) => bulk.run(enc_rx, acct.clone()).await.map_err(Into::into),
        Sink::File(path, format) => {
            let acct = acct.clone();
            tokio::task::spawn_blocking(move || {
                file::write_all(path.as_deref(), format, enc_rx, &acct)
            })
            .await
            .expect("file sink panicked")
            .map_err(Into::into)
        }
    };
    for task in [saver, exporter].into_iter().flatten() {
        task.abort();
    }
    if let Some(p) = progress {
        p.finish();
    }
    // On an error the receivers are gone: workers and the reader stop at their next send.
    let _ = reader.join();
    for t in parsers {
        let _ = t.join();
    }
    if let Err(e) = acct.dlq.flush() {
        tracing::error!(
            "cannot flush the dead letter file {}: {e}",
            acct.dlq.path().display()
        );
    }
    let mut result = result;
    if let Some(cp) = &acct.checkpoints {
        if let Err(e) = cp.save() {
            tracing::error!("{e}");
            if result.is_ok() {
                result = Err(e.into());
            }
        }
    }
    if result.is_err() {
        mark_undelivered_as_failed(&acct.stats);
    }
    let mut summary = acct.stats.summary();
    summary.output = match &p.output {
        OutputTarget::Elasticsearch => format!("{} index {}", p.url_for_display(), p.index),
        other => other.to_string(),
    };
    if acct.dlq.written() > 0 {
        summary.dead_letter_path = Some(acct.dlq.path().display().to_string());
    }
    Ok(Report {
        summary,
        error: result.err(),
    })
}

/// After an abort, every record read without an outcome counts as failed.
fn mark_undelivered_as_failed(stats: &Stats) {
    for s in stats.summary().inputs.iter().enumerate() {
        let (id, i) = s;
        let settled = i.events_indexed + i.duplicates + i.dead_lettered + i.failed;
        if i.events_read > settled {
            stats
                .input(id)
                .failed
                .fetch_add(i.events_read - settled, Relaxed);
        }
    }
}
