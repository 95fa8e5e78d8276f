//! Pipeline files: TOML parsing, validation and the settings a run uses.
//!
//! A pipeline file names its inputs and where the documents go. Every field is optional except
//! that a run needs at least one input (from the file or from `--input`). Values are checked
//! while the file is parsed, so an error names the line and column at fault.

mod env;
mod types;

pub use types::{ByteSize, IndexName, OutputTarget, Shard};

use serde::Deserialize;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
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
    /// Write to a data stream of this name instead of an index (`op_type` create; the template
    /// declares the stream).
    pub data_stream: Option<bool>,
    /// TLS settings (`[elasticsearch.tls]`).
    #[serde(default)]
    pub tls: TlsSection,
}

/// The `[elasticsearch.tls]` section. By default the system's root certificates (and Mozilla's)
/// are trusted and the server's name is checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// PEM file of the CA (or CAs) that signed the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// Check the server's certificate. `false` accepts any certificate: loudly warned.
    pub verify: bool,
    /// PEM file of a client certificate (with `client_key`), for clusters that require one.
    pub client_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub client_key: Option<PathBuf>,
}

impl Default for TlsSection {
    fn default() -> Self {
        Self {
            ca_file: None,
            verify: true,
            client_cert: None,
            client_key: None,
        }
    }
}

/// The `[template]` section: the composable index template installed at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplateSection {
    /// Install or update the template at start.
    pub install: bool,
    /// Template name; default `evtship-<index>`.
    pub name: Option<String>,
    /// Primary shards of the index.
    pub shards: NonZeroUsize,
    /// Replicas; the cluster default (1) when unset.
    pub replicas: Option<usize>,
    /// Strings longer than this are not indexed in the `.keyword` sub-field.
    pub ignore_above: NonZeroUsize,
    /// Elasticsearch ILM policy attached to the index (ignored, with a warning, on OpenSearch).
    pub ilm_policy: Option<String>,
    /// The index's field limit (`index.mapping.total_fields.limit`). Every string field counts
    /// twice (text and `.keyword`): all of ../shared/datasets makes 956 fields.
    pub total_fields_limit: NonZeroUsize,
}

impl Default for TemplateSection {
    fn default() -> Self {
        Self {
            install: true,
            name: None,
            shards: NonZeroUsize::MIN,
            replicas: None,
            ignore_above: NonZeroUsize::new(1024).expect("non-zero"),
            total_fields_limit: NonZeroUsize::new(2000).expect("non-zero"),
            ilm_policy: None,
        }
    }
}

/// The `[bulk]` section: how documents are grouped and sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BulkSection {
    /// At most this many documents per `_bulk` request.
    pub max_events: NonZeroUsize,
    /// At most this many bytes per `_bulk` request (`"2MiB"`, the default, or a number of
    /// bytes). Each request in flight holds its body and the records in it: 2 MiB x 4 keeps a
    /// run under 64 MiB, as fast on a 2-core engine as 5 MiB (bench/run).
    pub max_bytes: ByteSize,
    /// Requests in flight at once.
    pub concurrency: NonZeroUsize,
    /// Retries of a retryable failure (429, 5xx, connection errors) before a record is
    /// dead-lettered.
    pub max_retries: u32,
    /// First retry delay in milliseconds; doubles each time, with jitter.
    pub initial_backoff_ms: NonZeroUsize,
    /// Longest retry delay in milliseconds.
    pub max_backoff_ms: NonZeroUsize,
    /// A partial request is sent after waiting this long for more documents (milliseconds).
    pub flush_interval_ms: NonZeroUsize,
    /// Send at most this many events per second (shared clusters); unlimited when unset.
    pub max_events_per_second: Option<std::num::NonZeroU32>,
    /// Send at most this many bytes per second (`"2MiB"` or a number); unlimited when unset.
    pub max_bytes_per_second: Option<ByteSize>,
}

impl Default for BulkSection {
    fn default() -> Self {
        Self {
            max_events: NonZeroUsize::new(5000).expect("non-zero"),
            max_bytes: ByteSize(2 * 1024 * 1024),
            concurrency: NonZeroUsize::new(4).expect("non-zero"),
            max_retries: 12,
            initial_backoff_ms: NonZeroUsize::new(200).expect("non-zero"),
            max_backoff_ms: NonZeroUsize::new(30_000).expect("non-zero"),
            flush_interval_ms: NonZeroUsize::new(200).expect("non-zero"),
            max_events_per_second: None,
            max_bytes_per_second: None,
        }
    }
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
    pub template: TemplateSection,
    /// Bulk requests.
    #[serde(default)]
    pub bulk: BulkSection,
    /// Dead letter queue.
    #[serde(default)]
    pub dead_letter: DeadLetterSection,
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
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })
    }
}

/// Overrides from the command line and the environment; `None` leaves the file's value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces the file's inputs when not empty.
    pub inputs: Vec<String>,
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
    /// `ES_USER`.
    pub user: Option<String>,
    /// `ES_PASSWORD`.
    pub password: Option<String>,
    /// `--api-key` or `ES_API_KEY`.
    pub api_key: Option<String>,
    /// `--cloud-id` or `ES_CLOUD_ID`.
    pub cloud_id: Option<String>,
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
    /// Connection settings (used when the output is `es`).
    pub elasticsearch: ElasticsearchSection,
    /// Target index.
    pub index: IndexName,
    /// Template settings.
    pub template: TemplateSection,
    /// Bulk settings.
    pub bulk: BulkSection,
    /// Dead letter file.
    pub dead_letter: PathBuf,
    /// Download cache of URL inputs.
    pub cache_dir: PathBuf,
    /// Checkpoint directory.
    pub checkpoint_dir: PathBuf,
    /// Record to document rules.
    pub transform: crate::transform::Settings,
    /// This process's share of the records, when a backfill is split across processes.
    pub shard: Option<Shard>,
}

impl Pipeline {
    /// Merges a pipeline file (or none) with command-line overrides and checks the result.
    pub fn resolve(file: Option<PipelineFile>, ov: Overrides) -> Result<Self, ConfigError> {
        let file = file.unwrap_or_default();
        let inputs = if ov.inputs.is_empty() {
            file.inputs
        } else {
            ov.inputs
        };
        if inputs.is_empty() && !ov.no_inputs_needed {
            return Err(ConfigError::Invalid {
                field: "inputs",
                message: "no inputs: list them in the pipeline file or pass --input".into(),
            });
        }
        let output = match ov.output {
            Some(text) => text.parse().map_err(|message| ConfigError::Invalid {
                field: "--output",
                message,
            })?,
            None => file.output.unwrap_or(OutputTarget::Elasticsearch),
        };
        let index = match ov.index {
            Some(name) => IndexName::try_from(name).map_err(|message| ConfigError::Invalid {
                field: "--index",
                message,
            })?,
            None => {
                file.elasticsearch.index.clone().unwrap_or_else(|| {
                    IndexName::try_from(DEFAULT_INDEX.to_owned()).expect("valid")
                })
            }
        };
        let mut es = file.elasticsearch;
        if let Some(url) = ov.es_url {
            es.url = Some(url);
            es.urls = None;
        }
        for (slot, value) in [
            (&mut es.user, ov.user),
            (&mut es.password, ov.password),
            (&mut es.api_key, ov.api_key),
            (&mut es.cloud_id, ov.cloud_id),
        ] {
            if value.is_some() {
                *slot = value;
            }
        }
        if es.url.is_some() && es.urls.is_some() {
            return Err(ConfigError::Invalid {
                field: "elasticsearch.urls",
                message: "set either url or urls, not both".into(),
            });
        }
        for url in es
            .url
            .iter()
            .flat_map(|u| u.split(','))
            .chain(es.urls.iter().flatten().map(String::as_str))
        {
            validate_url(url.trim())?;
        }
        for (slot, file, field) in [
            (
                &mut es.password,
                es.password_file.clone(),
                "elasticsearch.password_file",
            ),
            (
                &mut es.api_key,
                es.api_key_file.clone(),
                "elasticsearch.api_key_file",
            ),
        ] {
            if let (None, Some(file)) = (&slot, file) {
                let text = std::fs::read_to_string(&file).map_err(|e| ConfigError::Invalid {
                    field,
                    message: format!("cannot read {}: {e}", file.display()),
                })?;
                *slot = Some(text.lines().next().unwrap_or_default().trim().to_owned());
            }
        }
        if es.tls.client_cert.is_some() != es.tls.client_key.is_some() {
            return Err(ConfigError::Invalid {
                field: "elasticsearch.tls.client_cert",
                message: "a client certificate needs its key (client_cert and client_key)".into(),
            });
        }
        if es.api_key.is_some() && (es.user.is_some() || es.password.is_some()) {
            return Err(ConfigError::Invalid {
                field: "elasticsearch.api_key",
                message: "set either an API key or a user and password, not both".into(),
            });
        }
        if es.password.is_some() && es.user.is_none() {
            return Err(ConfigError::Invalid {
                field: "elasticsearch.password",
                message: "a password needs a user (elasticsearch.user or ES_USER)".into(),
            });
        }
        if es.data_stream == Some(true) && index.is_dated() {
            return Err(ConfigError::Invalid {
                field: "elasticsearch.data_stream",
                message: "a data stream has one name: drop the %{+date} pattern".into(),
            });
        }
        let dead_letter = ov
            .dead_letter
            .or(file.dead_letter.path)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DEAD_LETTER));
        let cache_dir = ov
            .cache_dir
            .or(file.cache_dir)
            .unwrap_or_else(crate::source::url::default_cache_dir);
        let checkpoint_dir = ov
            .checkpoint_dir
            .or(file.checkpoint_dir)
            .unwrap_or_else(crate::checkpoint::default_dir);
        let transform = crate::transform::Settings {
            dialect: file.transform.dialect,
            timestamp: file.transform.timestamp,
            timezone: file.transform.timezone.map(|z| z.0),
            ecs: file.transform.ecs,
        };
        Ok(Self {
            shard: ov.shard,
            transform,
            mode: if ov.tail { Mode::Tail } else { file.mode },
            cache_dir,
            checkpoint_dir,
            name: file.name.unwrap_or_else(|| "evtship".into()),
            inputs,
            output,
            elasticsearch: es,
            index,
            template: file.template,
            bulk: file.bulk,
            dead_letter,
        })
    }

    /// The engine URL to use: the configured one or the local default.
    pub fn url(&self) -> &str {
        self.elasticsearch.url.as_deref().unwrap_or(DEFAULT_URL)
    }

    /// Every node URL configured (`urls`, or `url` split at commas), or the local default.
    pub fn urls(&self) -> Vec<String> {
        match &self.elasticsearch.urls {
            Some(list) if !list.is_empty() => list.clone(),
            _ => self.url().split(',').map(|u| u.trim().to_owned()).collect(),
        }
    }

    /// The engine URL or Cloud deployment, credentials hidden, for messages.
    pub fn url_for_display(&self) -> String {
        match &self.elasticsearch.cloud_id {
            Some(id) => format!("Elastic Cloud {}", id.split(':').next().unwrap_or_default()),
            None => self
                .urls()
                .iter()
                .map(|u| crate::redact::url(u))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// The index template name.
    pub fn template_name(&self) -> String {
        self.template
            .name
            .clone()
            .unwrap_or_else(|| format!("evtship-{}", self.index.pattern().replace('*', "")))
    }
}

fn validate_url(url: &str) -> Result<(), ConfigError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.split("://").nth(1).is_some_and(|rest| !rest.is_empty());
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            field: "elasticsearch.url",
            message: format!(
                "`{}` is not an http:// or https:// URL",
                crate::redact::url(url)
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(p.elasticsearch.api_key.as_deref(), Some("id:secret"));
    }

    #[test]
    fn sizes_accept_units() {
        let file = parse("[bulk]\nmax_bytes = \"2MiB\"\n").unwrap();
        assert_eq!(file.bulk.max_bytes.0, 2 * 1024 * 1024);
        let file = parse("[bulk]\nmax_bytes = 1000\n").unwrap();
        assert_eq!(file.bulk.max_bytes.0, 1000);
    }
}
