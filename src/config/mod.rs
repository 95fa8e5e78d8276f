//! Pipeline files and the command line, merged into the settings of a run.
//!
//! A pipeline file ([`file`]) names its inputs and where the documents go. Every field is
//! optional except that a run needs at least one input (from the file or from `--input`).
//! [`Pipeline::resolve`] merges a file with the command line and the environment
//! ([`Overrides`]), reads secrets from files, and checks what only the merged whole can show;
//! each stage then gets its own settings (`EsSettings`, `BulkSettings`, `Settings`, ...), never
//! the whole pipeline.

mod env;
mod file;
mod resolve;
mod types;

pub use crate::common::{ByteSize, IndexName};
pub use crate::source::Shard;
pub use file::{
    DeadLetterSection, ElasticsearchSection, Mode, PipelineFile, TimeZoneName, TransformSection,
};
pub use types::OutputTarget;

use crate::sink::elasticsearch::template::TemplateSettings;
use crate::sink::elasticsearch::{BulkSettings, EsSettings};
use std::path::PathBuf;
use thiserror::Error;

/// Why a pipeline file or the command line could not be turned into settings.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read pipeline file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or holds a value of the wrong kind; the message names the line.
    #[error("invalid pipeline file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line, column and the offending text.
        message: String,
    },
    /// A setting is wrong in a way only visible once everything is merged.
    #[error("invalid setting `{field}`: {message}")]
    Invalid {
        /// The setting, as written in the file (`output.index`) or on the command line.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Overrides from the command line and the environment; `None` leaves the file's value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces the file's inputs when not empty.
    pub inputs: Vec<String>,
    /// `--listen URI`: replaces the file's listeners when not empty.
    pub listen: Vec<String>,
    /// `--es-url` or `ES_URL`.
    pub es_url: Option<String>,
    /// `--index`.
    pub index: Option<String>,
    /// `--output`.
    pub output: Option<String>,
    /// `--dead-letter`.
    pub dead_letter: Option<PathBuf>,
    /// `--cache-dir`.
    pub cache_dir: Option<PathBuf>,
    /// `--tail`.
    pub tail: bool,
    /// `--shard I/N`.
    pub shard: Option<Shard>,
    /// `--checkpoint-dir`.
    pub checkpoint_dir: Option<PathBuf>,
    /// `--spool-dir`.
    pub spool_dir: Option<PathBuf>,
    /// `ES_USER`.
    pub user: Option<String>,
    /// `ES_PASSWORD`.
    pub password: Option<String>,
    /// `--api-key` or `ES_API_KEY`.
    pub api_key: Option<String>,
    /// `--cloud-id` or `ES_CLOUD_ID`.
    pub cloud_id: Option<String>,
    /// `--compression-level`.
    pub compression_level: Option<crate::sink::elasticsearch::CompressionLevel>,
    /// `--concurrency`.
    pub concurrency: Option<crate::sink::elasticsearch::ConcurrencySetting>,
    /// The command reads no input (`setup`): an empty input list is no error.
    pub no_inputs_needed: bool,
}

/// Default engine URL: the local engine of `scripts/opensearch-local`.
pub const DEFAULT_URL: &str = "http://127.0.0.1:19200";
/// Default index.
pub const DEFAULT_INDEX: &str = "logstashindex";
/// Default dead letter file.
pub const DEFAULT_DEAD_LETTER: &str = "evtship.dlq.ndjson";

/// Everything a run needs, merged and validated.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Name for messages.
    pub name: String,
    /// Input specifications (paths, directories, globs).
    pub inputs: Vec<String>,
    /// Batch or tail.
    pub mode: Mode,
    /// Where documents go.
    pub output: OutputTarget,
    /// How to reach the engine (used when the output is `es`).
    pub es: EsSettings,
    /// Write to a data stream named as the index.
    pub data_stream: bool,
    /// Target index.
    pub index: IndexName,
    /// Template settings.
    pub template: TemplateSettings,
    /// Bulk settings.
    pub bulk: BulkSettings,
    /// Dead letter file.
    pub dead_letter: PathBuf,
    /// Download cache of URL inputs.
    pub cache_dir: PathBuf,
    /// Checkpoint directory.
    pub checkpoint_dir: PathBuf,
    /// Record to document rules.
    pub transform: crate::transform::Settings,
    /// Framing of records.
    pub decode: crate::decode::DecodeSettings,
    /// Listeners (`--listen`, `[[listen]]`).
    pub listen: Vec<crate::source::listen::ListenSettings>,
    /// The memory budget of all listeners together, in bytes.
    pub listen_budget: usize,
    /// The disk spool of the listeners that cannot acknowledge.
    pub spool: crate::source::spool::SpoolSettings,
    /// The Kafka consumer (`kafka://` input or `[kafka] topics`), if any.
    pub kafka: Option<crate::source::kafka::KafkaSettings>,
    /// The `[kafka]` section (the connection of a Kafka output).
    pub kafka_section: crate::source::kafka::KafkaSection,
    /// This process's share of the records, when a backfill is split across processes.
    pub shard: Option<Shard>,
}

impl Pipeline {
    /// The engine URL or Cloud deployment, credentials hidden, for messages.
    pub fn url_for_display(&self) -> String {
        self.es.shown()
    }

    /// The index template name.
    pub fn template_name(&self) -> String {
        self.template.name_for(&self.index)
    }

    /// Whether the run lasts until a signal (tailing files, or listening), retrying the
    /// engine without limit meanwhile.
    pub fn is_live(&self) -> bool {
        self.mode == Mode::Tail || !self.listen.is_empty()
    }

    /// Whether positions of inputs are kept: deliveries to the engine or to Kafka (a file
    /// output is written anew each run).
    pub fn keeps_positions(&self) -> bool {
        matches!(
            self.output,
            OutputTarget::Elasticsearch | OutputTarget::Kafka { .. }
        )
    }

    /// Where the documents go, for messages and the summary.
    pub fn output_for_display(&self) -> String {
        match &self.output {
            OutputTarget::Elasticsearch => {
                format!("{} index {}", self.url_for_display(), self.index)
            }
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<PipelineFile, ConfigError> {
        PipelineFile::parse(text, Path::new("p.toml"))
    }

    #[test]
    fn unknown_field_names_its_line() {
        let err = parse("inputs = [\"a\"]\n[bulk]\nmax_event = 3\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("p.toml"), "{text}");
        assert!(text.contains("line 3"), "{text}");
        assert!(text.contains("max_event"), "{text}");
    }

    #[test]
    fn zero_batch_size_is_rejected_with_its_line() {
        let err = parse("[bulk]\nconcurrency = 2\nmax_events = 0\n").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn compression_and_concurrency_are_checked_with_their_line() {
        use crate::sink::elasticsearch::{CompressionLevel, ConcurrencySetting};
        let err = parse("[elasticsearch]\ncompression_level = 12\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 2") && text.contains("0..=9"), "{text}");
        let err = parse("[bulk]\nconcurrency = \"fast\"\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("line 2") && text.contains("adaptive"),
            "{text}"
        );
        let err = parse("[bulk]\nconcurrency = 0\n").unwrap_err();
        assert!(err.to_string().contains("1 or more"), "{err}");
        let file = parse(
            "inputs = [\"a\"]\n[elasticsearch]\ncompression_level = 0\n[bulk]\nconcurrency = \"adaptive\"\nmax_concurrency = 8\n",
        )
        .unwrap();
        assert_eq!(file.bulk.concurrency, ConcurrencySetting::Adaptive);
        let p = Pipeline::resolve(Some(file), Overrides::default()).unwrap();
        assert_eq!(p.es.compression, CompressionLevel::OFF);
        assert_eq!(
            p.bulk.concurrency(),
            crate::sink::elasticsearch::Concurrency::Adaptive { min: 1, max: 8 }
        );
        let file =
            parse("inputs = [\"a\"]\n[bulk]\nmin_concurrency = 9\nmax_concurrency = 8\n").unwrap();
        let err = Pipeline::resolve(Some(file), Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("min_concurrency"), "{err}");
        let default = Pipeline::resolve(
            Some(parse("inputs = [\"a\"]\n").unwrap()),
            Overrides {
                concurrency: Some("adaptive".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
        // The local engine by default: no compression on loopback.
        assert_eq!(default.es.compression, CompressionLevel::OFF);
        assert_eq!(default.bulk.concurrency, ConcurrencySetting::Adaptive);
        for (url, level) in [
            ("https://u:p@es.example.com:9243", CompressionLevel::DEFAULT),
            (
                "http://localhost:9200,http://10.0.0.2:9200",
                CompressionLevel::DEFAULT,
            ),
            ("http://[::1]:9200", CompressionLevel::OFF),
            (
                "http://127.0.0.2:9200,http://localhost:9201",
                CompressionLevel::OFF,
            ),
        ] {
            let p = Pipeline::resolve(
                Some(parse("inputs = [\"a\"]\n").unwrap()),
                Overrides {
                    es_url: Some(url.into()),
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(p.es.compression, level, "{url}");
        }
    }

    #[test]
    fn bad_index_name_is_rejected_with_its_line() {
        let err = parse("[elasticsearch]\nindex = \"Upper\"\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("line 2") && text.contains("lowercase"),
            "{text}"
        );
    }

    #[test]
    fn flags_override_the_file() {
        let file =
            parse("inputs = [\"a.json\"]\noutput = \"ndjson:-\"\n[elasticsearch]\nindex = \"x\"\n")
                .unwrap();
        let p = Pipeline::resolve(
            Some(file),
            Overrides {
                inputs: vec!["b.json".into()],
                index: Some("y".into()),
                output: Some("es".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(p.inputs, vec!["b.json".to_owned()]);
        assert_eq!(p.index.as_str(), "y");
        assert_eq!(p.output, OutputTarget::Elasticsearch);
        assert_eq!(p.template_name(), "evtship-y");
    }

    #[test]
    fn no_inputs_is_an_error() {
        let err = Pipeline::resolve(None, Overrides::default()).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                field: "inputs",
                ..
            }
        ));
    }

    #[test]
    fn transform_section() {
        let file = parse("[transform]\ndialect = \"winlogbeat\"\ntimestamp = \"event\"\ntimezone = \"America/New_York\"\necs = true\n").unwrap();
        assert!(file.transform.ecs);
        let err = parse("[transform]\ntimezone = \"Mars/Olympus\"\n").unwrap_err();
        assert!(
            err.to_string().contains("line 2") && err.to_string().contains("Mars/Olympus"),
            "{err}"
        );
        let err = parse("[transform]\ndialect = \"syslog\"\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn secrets_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "id:secret\n").unwrap();
        let file = parse(&format!(
            "inputs = [\"a\"]\n[elasticsearch]\napi_key_file = \"{}\"\n",
            key.display()
        ))
        .unwrap();
        let p = Pipeline::resolve(Some(file), Overrides::default()).unwrap();
        assert_eq!(p.es.api_key.as_deref(), Some("id:secret"));
    }

    #[test]
    fn sizes_accept_units() {
        let file = parse("[bulk]\nmax_bytes = \"2MiB\"\n").unwrap();
        assert_eq!(file.bulk.max_bytes.0, 2 * 1024 * 1024);
        let file = parse("[bulk]\nmax_bytes = 1000\n").unwrap();
        assert_eq!(file.bulk.max_bytes.0, 1000);
    }
}
