//! The sink of a run: the engine (connected, its template installed), a file, or Kafka.

use super::RunError;
use crate::common::IndexName;
use crate::config::{OutputTarget, Pipeline};
use crate::sink::elasticsearch::template::TemplateSettings;
use crate::sink::elasticsearch::template::{self, Wanted};
use crate::sink::elasticsearch::EsError;
use crate::sink::elasticsearch::{BulkSink, EsClient};
use crate::sink::file::{self, FileFormat};
use crate::sink::kafka::KafkaSink;
use crate::sink::wire::Actions;
use crate::sink::Accounting;
use crate::transform::EncodedChunk;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a run's documents go.
pub(super) enum Sink {
    /// The engine, and what is still to do before the first request when the run started
    /// without waiting for it (a live run: listeners, tail or Kafka).
    Engine(Box<BulkSink>, Option<Setup>),
    /// A file (or standard output), and what each document becomes in it.
    File(Option<PathBuf>, FileFormat),
    /// A Kafka topic.
    Kafka(KafkaSink),
}

/// What reaching the engine takes: `GET /`, then the template.
pub(super) struct Setup {
    index: IndexName,
    template: TemplateSettings,
    wanted: Wanted,
    stop: Arc<AtomicBool>,
}

/// The longest wait between two tries to reach the engine at start.
const MOST_BETWEEN_TRIES: Duration = Duration::from_secs(30);
/// A start that waits for the engine says so at most this often.
const SAY_EVERY: Duration = Duration::from_secs(30);

/// Connects to the engine and installs the template, or names the output file. A live run
/// (listeners, tail, Kafka) does not wait here for the engine: its sink reaches it before
/// the first request, retrying without limit, while the listeners accept. A batch run waits
/// up to `startup_timeout`. Returns the sink and how long the engine took to answer (`None`:
/// not reached yet).
pub(super) async fn connect(
    p: &Pipeline,
    stop: &Arc<AtomicBool>,
) -> Result<(Sink, Option<Duration>), RunError> {
    let actions = Actions::new(&p.index);
    Ok(match &p.output {
        OutputTarget::Elasticsearch => {
            let client = EsClient::new(&p.es)?;
            let setup = Setup {
                index: p.index.clone(),
                template: p.template.clone(),
                wanted: Wanted {
                    ecs: p.transform.ecs,
                    data_stream: p.data_stream,
                },
                stop: stop.clone(),
            };
            let live = p.is_live() || p.kafka.is_some();
            let (setup, reached) = if live {
                (Some(setup), None)
            } else {
                let started = Instant::now();
                reach(&client, &setup, Some(p.es.startup_timeout)).await?;
                (None, Some(started.elapsed()))
            };
            let sink = BulkSink::new(client, p.bulk.clone(), actions, p.is_live())
                .stopping_with(stop.clone())
                .sending_partial_batches(live);
            (Sink::Engine(Box::new(sink), setup), reached)
        }
        OutputTarget::Ndjson(path) => (
            Sink::File(path.clone(), FileFormat::Documents),
            Some(Duration::ZERO),
        ),
        OutputTarget::Bulk(path) => (
            Sink::File(path.clone(), FileFormat::Bulk(actions)),
            Some(Duration::ZERO),
        ),
        OutputTarget::Kafka { brokers, topic } => {
            let connection =
                p.kafka_section
                    .connection()
                    .map_err(|e| crate::config::ConfigError::Invalid {
                        field: "kafka",
                        message: e.to_string(),
                    })?;
            (
                Sink::Kafka(KafkaSink::new(brokers, topic, &connection)),
                Some(Duration::ZERO),
            )
        }
    })
}

/// Whether an error at start may go away by itself (no engine yet, or one still starting).
fn may_pass(e: &EsError) -> bool {
    match e {
        EsError::Unreachable { .. } => true,
        EsError::Refused { status, .. } => *status == 429 || *status >= 500,
        EsError::Setup { .. } => false,
    }
}

/// Reads `GET /` and installs the template, trying again with backoff while the engine cannot
/// be reached, up to `patience` (`None`: without limit), and saying so once per interval. A
/// stop ends the wait at once.
async fn reach(
    client: &EsClient,
    setup: &Setup,
    patience: Option<Duration>,
) -> Result<(), RunError> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(500);
    let mut said: Option<Instant> = None;
    loop {
        let tried = tokio::select! {
            r = try_reach(client, setup) => r,
            () = stopped(&setup.stop) => return Err(RunError::Stopped),
        };
        let e = match tried {
            Ok(()) => {
                if said.is_some() {
                    tracing::info!(
                        "reached the engine after {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                }
                return Ok(());
            }
            Err(RunError::Engine(e)) if may_pass(&e) => e,
            Err(e) => return Err(e),
        };
        let left = patience.map(|p| p.saturating_sub(started.elapsed()));
        if left == Some(Duration::ZERO) {
            return Err(e.into());
        }
        if said.is_none_or(|t| t.elapsed() >= SAY_EVERY) {
            let until = patience.map_or_else(
                || "without limit; listeners accept meanwhile".to_owned(),
                |p| format!("for up to {} s (startup_timeout_seconds)", p.as_secs()),
            );
            tracing::warn!(
                "{}; evtship tries again every {:.0} s or less, {until}",
                crate::common::error_chain(&e),
                MOST_BETWEEN_TRIES.as_secs_f64()
            );
            said = Some(Instant::now());
        }
        let wait = left.map_or(delay, |l| l.min(delay));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stopped(&setup.stop) => return Err(RunError::Stopped),
        }
        delay = (delay * 2).min(MOST_BETWEEN_TRIES);
    }
}

async fn try_reach(client: &EsClient, setup: &Setup) -> Result<(), RunError> {
    let info = client.server_info().await?;
    tracing::info!(
        "connected to {} {} at {}",
        info.distribution,
        info.version,
        client.shown_url
    );
    if setup.template.install {
        let name =
            template::install(client, &setup.index, &setup.template, setup.wanted, &info).await?;
        tracing::info!("index template {name} installed for index {}", setup.index);
    }
    Ok(())
}

/// Waits until the run is stopped.
async fn stopped(stop: &AtomicBool) {
    while !stop.load(Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Delivers every encoded chunk until the channel closes.
pub(super) async fn run(
    sink: Sink,
    rx: flume::Receiver<EncodedChunk>,
    acct: Arc<Accounting>,
) -> Result<(), RunError> {
    match sink {
        Sink::Engine(bulk, setup) => {
            if let Some(setup) = setup {
                match reach(bulk.client(), &setup, None).await {
                    Ok(()) => acct.stats.engine.mark(acct.stats.elapsed()),
                    // Stopped before the engine answered: what was received stays unsettled.
                    Err(RunError::Stopped) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            bulk.run(rx, acct).await.map_err(Into::into)
        }
        Sink::File(path, format) => tokio::task::spawn_blocking(move || {
            file::write_all(path.as_deref(), &format, rx, &acct)
        })
        .await
        .expect("file sink panicked")
        .map_err(Into::into),
        Sink::Kafka(kafka) => tokio::task::spawn_blocking(move || kafka.run(&rx, &acct))
            .await
            .expect("Kafka sink panicked")
            .map_err(Into::into),
    }
}
