//! The sink of a run: the engine (connected, its template installed), a file, or Kafka.

use super::RunError;
use crate::config::{OutputTarget, Pipeline};
use crate::sink::elasticsearch::template::{self, Wanted};
use crate::sink::elasticsearch::{BulkSink, EsClient};
use crate::sink::file::{self, FileFormat};
use crate::sink::kafka::KafkaSink;
use crate::sink::wire::Actions;
use crate::sink::Accounting;
use crate::transform::EncodedChunk;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Where a run's documents go.
pub(super) enum Sink {
    /// The engine.
    Engine(Box<BulkSink>),
    /// A file (or standard output), and what each document becomes in it.
    File(Option<PathBuf>, FileFormat),
    /// A Kafka topic.
    Kafka(KafkaSink),
}

/// Connects to the engine and installs the template, or names the output file.
pub(super) async fn connect(p: &Pipeline, stop: &Arc<AtomicBool>) -> Result<Sink, RunError> {
    let actions = Actions::new(&p.index);
    Ok(match &p.output {
        OutputTarget::Elasticsearch => {
            let client = EsClient::new(&p.es)?;
            let info = client.server_info().await?;
            tracing::info!(
                "connected to {} {} at {}",
                info.distribution,
                info.version,
                client.shown_url
            );
            if p.template.install {
                let wanted = Wanted {
                    ecs: p.transform.ecs,
                    data_stream: p.data_stream,
                };
                let name = template::install(&client, &p.index, &p.template, wanted, &info).await?;
                tracing::info!("index template {name} installed for index {}", p.index);
            }
            let sink = BulkSink::new(client, p.bulk.clone(), actions, p.is_live())
                .stopping_with(stop.clone())
                .sending_partial_batches(p.is_live() || p.kafka.is_some());
            Sink::Engine(Box::new(sink))
        }
        OutputTarget::Ndjson(path) => Sink::File(path.clone(), FileFormat::Documents),
        OutputTarget::Bulk(path) => Sink::File(path.clone(), FileFormat::Bulk(actions)),
        OutputTarget::Kafka { brokers, topic } => {
            let connection =
                p.kafka_section
                    .connection()
                    .map_err(|e| crate::config::ConfigError::Invalid {
                        field: "kafka",
                        message: e.to_string(),
                    })?;
            Sink::Kafka(KafkaSink::new(brokers, topic, &connection))
        }
    })
}

/// Delivers every encoded chunk until the channel closes.
pub(super) async fn run(
    sink: Sink,
    rx: flume::Receiver<EncodedChunk>,
    acct: Arc<Accounting>,
) -> Result<(), RunError> {
    match sink {
        Sink::Engine(bulk) => bulk.run(rx, acct).await.map_err(Into::into),
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
