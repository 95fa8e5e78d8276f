//! A pipeline file as written: its sections, parsed and checked value by value, so that an
//! error names the line and column at fault.

use super::{env, ConfigError, OutputTarget};
use crate::common::IndexName;
use crate::sink::elasticsearch::template::TemplateSettings;
use crate::sink::elasticsearch::{BulkSettings, TlsSettings};
use serde::Deserialize;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

/// The `[elasticsearch]` section: where and how to connect.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchSection {
    /// Base URL of the engine, e.g. `http://127.0.0.1:19200`; user and password may be in it.
    /// Several nodes: separate them with commas, or use `urls`.
    pub url: Option<String>,
    /// Several nodes of one cluster: requests go to the first that answers; a node that fails is
    /// skipped for 30 s.
    pub urls: Option<Vec<String>>,
    /// Target index.
    pub index: Option<IndexName>,
    /// Basic-auth user.
    pub user: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
    /// API key as `id:key` or its base64 form.
    pub api_key: Option<String>,
    /// Elastic Cloud id.
    pub cloud_id: Option<String>,
    /// Bearer token (`Authorization: Bearer ...`).
    pub bearer_token: Option<String>,
    /// File holding the password (its first line).
    pub password_file: Option<PathBuf>,
    /// File holding the API key (its first line).
    pub api_key_file: Option<PathBuf>,
    /// Per-request timeout in seconds.
    pub timeout_seconds: Option<NonZeroUsize>,
    /// How long a batch run waits at start for the engine to answer (seconds; 0: one try).
    pub startup_timeout_seconds: Option<u64>,
    /// Write to a data stream of this name instead of an index (`op_type` create; the template
    /// declares the stream).
    pub data_stream: Option<bool>,
    /// gzip level of `_bulk` request bodies: 0 (off) to 9; 1 when unset.
    pub compression_level: Option<crate::sink::elasticsearch::CompressionLevel>,
    /// TLS settings (`[elasticsearch.tls]`).
    #[serde(default)]
    pub tls: TlsSettings,
}

/// The `[transform]` section: how records become documents.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransformSection {
    /// `auto` (detect per record), `nxlog`, `powershell`, `winlogbeat` or `azure`.
    pub dialect: crate::transform::dialect::Dialect,
    /// `source` (the record's `@timestamp`, as Logstash keeps it) or `event` (when it happened).
    pub timestamp: crate::transform::timestamp::TimestampMode,
    /// IANA zone of NXLog's `EventTime` (local time without a zone), e.g. `America/New_York`.
    pub timezone: Option<TimeZoneName>,
    /// Add Elastic Common Schema fields beside the originals.
    pub ecs: bool,
}

/// An IANA time zone name, checked when the file is read.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct TimeZoneName(pub chrono_tz::Tz);

impl TryFrom<String> for TimeZoneName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        name.parse::<chrono_tz::Tz>().map(Self).map_err(|_| {
            format!("unknown time zone `{name}` (use an IANA name such as America/New_York)")
        })
    }
}

/// The `[dead_letter]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterSection {
    /// File the rejected records are appended to (JSON lines).
    pub path: Option<PathBuf>,
}

/// How inputs are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Read every input to its end, then exit.
    #[default]
    Batch,
    /// Follow growing files and new files matching the inputs until stopped.
    Tail,
}

/// A pipeline file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// A name for messages and the summary.
    pub name: Option<String>,
    /// Files, directories or globs.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// `batch` (default) or `tail`.
    #[serde(default)]
    pub mode: Mode,
    /// `es`, `ndjson:PATH` or `bulk:PATH`.
    pub output: Option<OutputTarget>,
    /// Where `http(s)://` inputs are downloaded.
    pub cache_dir: Option<PathBuf>,
    /// Where positions of inputs are kept (see `evtship checkpoints list`).
    pub checkpoint_dir: Option<PathBuf>,
    /// Connection and index.
    #[serde(default)]
    pub elasticsearch: ElasticsearchSection,
    /// Index template.
    #[serde(default)]
    pub template: TemplateSettings,
    /// Bulk requests.
    #[serde(default)]
    pub bulk: BulkSettings,
    /// Dead letter queue.
    #[serde(default)]
    pub dead_letter: DeadLetterSection,
    /// Framing of records.
    #[serde(default)]
    pub decode: crate::decode::DecodeSettings,
    /// Listeners: `[[listen]]` tables.
    #[serde(default)]
    pub listen: Vec<crate::source::listen::settings::ListenTable>,
    /// What all listeners share: their memory budget.
    #[serde(default)]
    pub listeners: crate::source::listen::settings::ListenersSection,
    /// The disk spool of TCP, UDP and syslog listeners.
    #[serde(default)]
    pub spool: crate::source::spool::SpoolSection,
    /// Kafka: the consumer of `kafka://` inputs, and the connection of a Kafka output.
    #[serde(default)]
    pub kafka: crate::source::kafka::KafkaSection,
    /// Record to document rules.
    #[serde(default)]
    pub transform: TransformSection,
}

impl PipelineFile {
    /// Reads and parses a pipeline file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let raw = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = env::interpolate(&raw, |name| std::env::var(name).ok()).map_err(
            |(line, message)| ConfigError::Parse {
                path: path.to_owned(),
                message: format!("line {line}: {message}"),
            },
        )?;
        let file = Self::parse(&text, path)?;
        file.warn_if_secrets_are_exposed(&raw, path);
        Ok(file)
    }

    /// Warns when the file itself holds a secret (not `${VAR}` or a `*_file`) and others may
    /// read it.
    fn warn_if_secrets_are_exposed(&self, raw: &str, path: &Path) {
        let literal = |key: &str| {
            raw.lines().any(|l| {
                let l = l.trim_start();
                l.starts_with(key) && l.contains('=') && !l.contains("${")
            })
        };
        let holds_secret = ["password", "api_key", "bearer_token"]
            .iter()
            .any(|k| literal(&format!("{k} ")) || literal(&format!("{k}=")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_or(0, |m| m.permissions().mode());
            if holds_secret && mode & 0o044 != 0 {
                tracing::warn!(
                    "{} holds a secret and other users may read it (mode {:o}): use ${{ENV}} or a *_file setting, or chmod 600",
                    path.display(),
                    mode & 0o777
                );
            }
        }
    }

    /// Parses pipeline text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        // The parser's message quotes the line at fault: secrets in it are hidden.
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: crate::redact::text(e.to_string().trim_end()),
        })
    }
}
