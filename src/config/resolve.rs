//! Merging a pipeline file with the command line and the environment, in steps: what to read,
//! where to send, the connection (with secrets read from files), then the checks only the
//! merged whole can make.

use super::file::ElasticsearchSection;
use super::{
    ConfigError, IndexName, Mode, OutputTarget, Overrides, Pipeline, PipelineFile,
    DEFAULT_DEAD_LETTER, DEFAULT_INDEX, DEFAULT_URL,
};
use crate::sink::dlq::DeadLetter;
use crate::sink::elasticsearch::{CompressionLevel, EsSettings};
use crate::source::listen::settings::ListenTable;
use crate::source::listen::ListenSettings;
use std::path::PathBuf;
use std::time::Duration;

/// Per-request timeout when none is set.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a batch run waits at start for the engine when nothing says otherwise.
const DEFAULT_STARTUP_TIMEOUT_SECONDS: u64 = 10;

impl Pipeline {
    /// Merges a pipeline file (or none) with command-line overrides and checks the result.
    pub fn resolve(file: Option<PipelineFile>, ov: Overrides) -> Result<Self, ConfigError> {
        let mut file = file.unwrap_or_default();
        if let Some(c) = ov.concurrency {
            file.bulk.concurrency = c;
        }
        let all_inputs = if ov.inputs.is_empty() {
            file.inputs.clone()
        } else {
            ov.inputs.clone()
        };
        let (kafka_inputs, inputs): (Vec<String>, Vec<String>) = all_inputs
            .into_iter()
            .partition(|i| i.starts_with("kafka://"));
        let kafka = kafka_of(&kafka_inputs, &file.kafka)?;
        let listen = listeners_of(&ov, file.listen)?;
        let listen_budget =
            file.listeners
                .budget(&listen)
                .map_err(|message| ConfigError::Invalid {
                    field: "listeners.max_buffered_bytes",
                    message,
                })?;
        if inputs.is_empty() && listen.is_empty() && kafka.is_none() && !ov.no_inputs_needed {
            return Err(ConfigError::Invalid {
                field: "inputs",
                message: "no inputs: list them in the pipeline file or pass --input \
                          (or --listen URI)"
                    .into(),
            });
        }
        let output = match &ov.output {
            Some(text) => text.parse().map_err(|message| ConfigError::Invalid {
                field: "--output",
                message,
            })?,
            None => file.output.unwrap_or(OutputTarget::Elasticsearch),
        };
        let index = index_of(&ov, &file.elasticsearch)?;
        let invalid =
            |(field, message): (&'static str, String)| ConfigError::Invalid { field, message };
        file.bulk.check().map_err(invalid)?;
        file.decode.check().map_err(invalid)?;
        let mut es = merge_connection(file.elasticsearch, &ov)?;
        read_secret_files(&mut es)?;
        check_connection(&es, &index)?;
        let dead_letter = ov
            .dead_letter
            .or(file.dead_letter.path)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DEAD_LETTER));
        if !ov.no_inputs_needed {
            DeadLetter::check_writable(&dead_letter)
                .map_err(|message| invalid(("dead_letter.path", message)))?;
        }
        let transform = crate::transform::Settings {
            dialect: file.transform.dialect,
            timestamp: file.transform.timestamp,
            timezone: file.transform.timezone.map(|z| z.0),
            ecs: file.transform.ecs,
        };
        let checkpoint_dir = ov
            .checkpoint_dir
            .or(file.checkpoint_dir)
            .unwrap_or_else(crate::checkpoint::default_dir);
        let name = file.name.unwrap_or_else(|| "evtship".into());
        let spool = spool_of(ov.spool_dir, file.spool, &checkpoint_dir, &name)?;
        Ok(Self {
            listen_budget,
            spool,
            kafka,
            kafka_section: file.kafka,
            shard: ov.shard,
            transform,
            decode: file.decode,
            listen,
            mode: if ov.tail { Mode::Tail } else { file.mode },
            cache_dir: ov
                .cache_dir
                .or(file.cache_dir)
                .unwrap_or_else(crate::common::dirs::default_cache_dir),
            checkpoint_dir,
            name,
            inputs,
            output,
            data_stream: es.data_stream == Some(true),
            es: settings_of(es),
            index,
            template: file.template,
            bulk: file.bulk,
            dead_letter,
        })
    }
}

/// The Kafka consumer: one `kafka://` input (several topics in it), or `[kafka] topics`.
fn kafka_of(
    uris: &[String],
    section: &crate::source::kafka::KafkaSection,
) -> Result<Option<crate::source::kafka::KafkaSettings>, ConfigError> {
    use crate::source::kafka::KafkaUri;
    let invalid = |message: String| ConfigError::Invalid {
        field: "kafka",
        message: crate::redact::text(&message),
    };
    let uri = match uris {
        [] if section.topics.is_empty() => return Ok(None),
        [] => None,
        [one] => Some(KafkaUri::parse(one).map_err(|e| invalid(e.to_string()))?),
        _ => {
            return Err(invalid(
                "one kafka:// input per run: name several topics in it (kafka://B/T1,T2)".into(),
            ))
        }
    };
    section
        .consumer(uri.as_ref())
        .map(Some)
        .map_err(|e| invalid(e.to_string()))
}

/// The spool's settings: `--spool-dir`, the file's `[spool]`, or a directory named for the
/// pipeline in the checkpoint directory.
fn spool_of(
    dir: Option<PathBuf>,
    section: crate::source::spool::SpoolSection,
    checkpoint_dir: &std::path::Path,
    name: &str,
) -> Result<crate::source::spool::SpoolSettings, ConfigError> {
    let spool = crate::source::spool::SpoolSettings {
        dir: dir
            .or(section.dir)
            .unwrap_or_else(|| checkpoint_dir.join("spool").join(safe_name(name))),
        max_bytes: section
            .max_bytes
            .map_or(crate::source::spool::DEFAULT_MAX_BYTES, |b| b.0 as u64),
    };
    if spool.max_bytes == 0 {
        return Err(ConfigError::Invalid {
            field: "spool.max_bytes",
            message: "must be above 0".into(),
        });
    }
    Ok(spool)
}

/// A pipeline name as a directory name.
fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The listeners: `--listen` URIs, else the file's `[[listen]]` tables.
fn listeners_of(
    ov: &Overrides,
    tables: Vec<ListenTable>,
) -> Result<Vec<ListenSettings>, ConfigError> {
    let invalid = |e: crate::source::listen::ListenError| ConfigError::Invalid {
        field: "listen",
        message: crate::redact::text(&e.to_string()),
    };
    if ov.listen.is_empty() {
        tables
            .into_iter()
            .map(|t| ListenSettings::from_section(t.0).map_err(invalid))
            .collect()
    } else {
        ov.listen
            .iter()
            .map(|u| ListenSettings::from_uri(u).map_err(invalid))
            .collect()
    }
}

/// The target index: `--index`, the file's, or the default.
fn index_of(ov: &Overrides, es: &ElasticsearchSection) -> Result<IndexName, ConfigError> {
    match &ov.index {
        Some(name) => IndexName::try_from(name.clone()).map_err(|message| ConfigError::Invalid {
            field: "--index",
            message,
        }),
        None => Ok(es
            .index
            .clone()
            .unwrap_or_else(|| IndexName::try_from(DEFAULT_INDEX.to_owned()).expect("valid"))),
    }
}

/// The file's `[elasticsearch]` section with the command line and environment over it.
fn merge_connection(
    mut es: ElasticsearchSection,
    ov: &Overrides,
) -> Result<ElasticsearchSection, ConfigError> {
    if ov.compression_level.is_some() {
        es.compression_level = ov.compression_level;
    }
    if let Some(url) = &ov.es_url {
        es.url = Some(url.clone());
        es.urls = None;
    }
    for (slot, value) in [
        (&mut es.user, &ov.user),
        (&mut es.password, &ov.password),
        (&mut es.api_key, &ov.api_key),
        (&mut es.cloud_id, &ov.cloud_id),
    ] {
        if value.is_some() {
            slot.clone_from(value);
        }
    }
    if es.url.is_some() && es.urls.is_some() {
        return Err(invalid(
            "elasticsearch.urls",
            "set either url or urls, not both",
        ));
    }
    for url in urls_of(&es) {
        validate_url(&url)?;
    }
    Ok(es)
}

/// Every node URL configured (`urls`, or `url` split at commas), or the local default.
fn urls_of(es: &ElasticsearchSection) -> Vec<String> {
    match &es.urls {
        Some(list) if !list.is_empty() => list.clone(),
        _ => es
            .url
            .as_deref()
            .unwrap_or(DEFAULT_URL)
            .split(',')
            .map(|u| u.trim().to_owned())
            .collect(),
    }
}

/// `password_file` and `api_key_file`: the secret is the file's first line.
fn read_secret_files(es: &mut ElasticsearchSection) -> Result<(), ConfigError> {
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
    Ok(())
}

/// What only the merged connection settings can show.
fn check_connection(es: &ElasticsearchSection, index: &IndexName) -> Result<(), ConfigError> {
    if es.tls.client_cert.is_some() != es.tls.client_key.is_some() {
        return Err(invalid(
            "elasticsearch.tls.client_cert",
            "a client certificate needs its key (client_cert and client_key)",
        ));
    }
    if es.api_key.is_some() && (es.user.is_some() || es.password.is_some()) {
        return Err(invalid(
            "elasticsearch.api_key",
            "set either an API key or a user and password, not both",
        ));
    }
    if es.password.is_some() && es.user.is_none() {
        return Err(invalid(
            "elasticsearch.password",
            "a password needs a user (elasticsearch.user or ES_USER)",
        ));
    }
    if es.data_stream == Some(true) && index.is_dated() {
        return Err(invalid(
            "elasticsearch.data_stream",
            "a data stream has one name: drop the %{+date} pattern",
        ));
    }
    Ok(())
}

/// The sink's settings from the merged section.
fn settings_of(es: ElasticsearchSection) -> EsSettings {
    let compression = es
        .compression_level
        .unwrap_or_else(|| default_compression(&urls_of(&es), es.cloud_id.is_some()));
    EsSettings {
        urls: urls_of(&es),
        cloud_id: es.cloud_id,
        user: es.user,
        password: es.password,
        api_key: es.api_key,
        bearer_token: es.bearer_token,
        timeout: es
            .timeout_seconds
            .map_or(DEFAULT_TIMEOUT, |t| Duration::from_secs(t.get() as u64)),
        startup_timeout: Duration::from_secs(
            es.startup_timeout_seconds
                .unwrap_or(DEFAULT_STARTUP_TIMEOUT_SECONDS),
        ),
        tls: es.tls,
        compression,
    }
}

/// gzip level 1, except towards an engine on this host (every URL a loopback address and no
/// Cloud ID): there the link is no limit, and compressing only costs CPU the engine shares
/// (1.05x the time of uncompressed bodies into the local engine, bench/run --only engine).
fn default_compression(urls: &[String], cloud: bool) -> CompressionLevel {
    let loopback = |u: &String| {
        let (plain, _) = crate::sink::elasticsearch::client::split_userinfo(u);
        url::Url::parse(&plain).is_ok_and(|p| match p.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        })
    };
    if !cloud && !urls.is_empty() && urls.iter().all(loopback) {
        CompressionLevel::OFF
    } else {
        CompressionLevel::DEFAULT
    }
}

fn invalid(field: &'static str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.to_owned(),
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
