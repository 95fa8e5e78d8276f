//! The command line's arguments (clap), and the pipeline they make.

use clap::{Parser, Subcommand};
use evtship::config::{Overrides, Pipeline, PipelineFile};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "evtship",
    version,
    about = "Ship Sysmon and Windows event logs into Elasticsearch or OpenSearch"
)]
pub struct Cli {
    /// Log level when RUST_LOG is unset: error, warn, info, debug, trace.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
    /// Log lines as `text` (for people) or `json` (one object per line, with timestamps, for
    /// log collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
pub struct SourceArgs {
    /// A file, directory, glob, archive, http(s):// URL, or `-` for standard input; repeatable;
    /// replaces the pipeline's inputs.
    #[arg(long = "input", value_name = "PATH_OR_GLOB")]
    pub inputs: Vec<String>,
    /// Listen for senders: beats://HOST:PORT (Winlogbeat, Filebeat, Elastic Agent) or
    /// http://HOST:PORT (NDJSON, JSON arrays, Elasticsearch's _bulk); repeatable; the run
    /// lasts until SIGINT/SIGTERM.
    #[arg(long = "listen", value_name = "URI")]
    pub listen: Vec<String>,
    /// Engine URL (user and password may be in it).
    #[arg(long, env = "ES_URL")]
    pub es_url: Option<String>,
    /// Target index.
    #[arg(long)]
    pub index: Option<String>,
    /// es, ndjson:PATH or bulk:PATH (`-` is standard output).
    #[arg(long)]
    pub output: Option<String>,
    /// Dead letter file (JSON lines), appended to.
    #[arg(long, value_name = "PATH")]
    pub dead_letter: Option<PathBuf>,
    /// Where input positions are kept (default ~/.local/share/evtship/checkpoints).
    #[arg(long, env = "EVTSHIP_CHECKPOINT_DIR", value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Where http(s):// inputs are downloaded (default ~/.cache/evtship/downloads).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The disk spool of tcp://, udp:// and syslog listeners (default: spool/NAME in the
    /// checkpoint directory).
    #[arg(long, env = "EVTSHIP_SPOOL_DIR", value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
    /// API key as ID:KEY or its base64 form.
    #[arg(long, env = "ES_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Elastic Cloud id.
    #[arg(long, env = "ES_CLOUD_ID")]
    pub cloud_id: Option<String>,
    /// gzip level of _bulk request bodies: 0 (off) to 9 (smallest); default 1.
    #[arg(long, value_name = "0-9")]
    pub compression_level: Option<evtship::sink::elasticsearch::CompressionLevel>,
    /// _bulk requests in flight: a number (default 4) or `adaptive`.
    #[arg(long, value_name = "N|adaptive")]
    pub concurrency: Option<evtship::sink::elasticsearch::ConcurrencySetting>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a pipeline: read every input to its end and ship it.
    Run {
        /// Pipeline file (TOML); optional when --input is given.
        pipeline: Option<PathBuf>,
        #[command(flatten)]
        source: SourceArgs,
        /// Write the summary as JSON to this file (`-` for standard output).
        #[arg(long, value_name = "PATH")]
        summary_json: Option<PathBuf>,
        /// Print nothing but the summary.
        #[arg(long)]
        no_progress: bool,
        /// Read every input from its start, ignoring stored positions.
        #[arg(long)]
        from_start: bool,
        /// Follow growing files and new files matching the inputs until stopped (SIGINT/SIGTERM).
        #[arg(long)]
        tail: bool,
        /// Serve Prometheus metrics at http://HOST:PORT/metrics and health at /health while
        /// the run goes on.
        #[arg(long, value_name = "HOST:PORT", env = "EVTSHIP_METRICS_ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
        /// Take only share I of N of the records (several processes or machines splitting one
        /// backfill; stable ids keep the union exact).
        #[arg(long, value_name = "I/N")]
        shard: Option<evtship::config::Shard>,
    },
    /// Get the cluster ready for the analysts: install the index template; with --kibana-url
    /// import the Kibana saved objects of config/kibana; with --ml create the Elasticsearch
    /// machine-learning jobs of config/ml.
    Setup {
        /// Pipeline file (TOML) giving the engine and index; optional.
        pipeline: Option<PathBuf>,
        #[command(flatten)]
        source: SourceArgs,
        /// Kibana's URL (user and password may be in it; else the engine's credentials are
        /// used).
        #[arg(long, env = "KIBANA_URL")]
        kibana_url: Option<String>,
        /// Create the machine-learning jobs and datafeeds (Elasticsearch with a platinum,
        /// enterprise or trial licence).
        #[arg(long)]
        ml: bool,
        /// The directory holding kibana/ and ml/.
        #[arg(long, env = "EVTSHIP_CONFIG_DIR", default_value = "config")]
        config_dir: PathBuf,
    },
    /// Validate a pipeline file without sending anything; exit 0 when valid.
    Check {
        /// Pipeline file (TOML).
        pipeline: PathBuf,
        #[command(flatten)]
        source: SourceArgs,
    },
    /// Summarise or replay a dead letter file.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Show or reset the stored positions of inputs.
    Checkpoints {
        #[command(subcommand)]
        action: CheckpointAction,
        /// Checkpoint directory (default ~/.local/share/evtship/checkpoints).
        #[arg(
            long,
            global = true,
            env = "EVTSHIP_CHECKPOINT_DIR",
            value_name = "DIR"
        )]
        checkpoint_dir: Option<PathBuf>,
    },
    /// Print the index template that `run` installs.
    Template {
        /// Index the template is for.
        #[arg(long, default_value = evtship::config::DEFAULT_INDEX)]
        index: String,
        /// Include the mappings of the ECS fields (`ecs = true` in `[transform]`).
        #[arg(long)]
        ecs: bool,
        /// For OpenSearch 2.7+ (`flat_object` instead of Elasticsearch's `flattened`).
        #[arg(long)]
        opensearch: bool,
    },
}

#[derive(Subcommand)]
pub enum DlqAction {
    /// Count the records of a dead letter file by reason, status and input.
    List {
        /// The file (default evtship.dlq.ndjson).
        path: Option<PathBuf>,
    },
    /// Send the records again (after fixing the cause); what is delivered leaves the file.
    Replay {
        /// The dead letter file.
        path: PathBuf,
        /// Pipeline file giving the target (index, connection); flags work as for `run`.
        #[arg(long)]
        pipeline: Option<PathBuf>,
        #[command(flatten)]
        source: Box<SourceArgs>,
    },
}

#[derive(Subcommand)]
pub enum CheckpointAction {
    /// Where state lives and what it holds.
    List,
    /// Forget stored positions, so that inputs are read from their start again.
    Reset {
        /// Only this input (its path); all inputs when omitted.
        input: Option<String>,
    },
}

pub fn overrides(s: SourceArgs) -> Overrides {
    Overrides {
        inputs: s.inputs,
        listen: s.listen,
        es_url: s.es_url,
        index: s.index,
        output: s.output,
        dead_letter: s.dead_letter,
        cache_dir: s.cache_dir,
        tail: false,
        shard: None,
        checkpoint_dir: s.checkpoint_dir,
        spool_dir: s.spool_dir,
        user: std::env::var("ES_USER").ok().filter(|v| !v.is_empty()),
        password: std::env::var("ES_PASSWORD").ok().filter(|v| !v.is_empty()),
        api_key: s.api_key,
        cloud_id: s.cloud_id,
        compression_level: s.compression_level,
        concurrency: s.concurrency,
        no_inputs_needed: false,
    }
}

pub fn load(
    path: Option<&Path>,
    source: SourceArgs,
) -> Result<Pipeline, evtship::config::ConfigError> {
    load_with(path, overrides(source))
}

pub fn load_with(
    path: Option<&Path>,
    ov: Overrides,
) -> Result<Pipeline, evtship::config::ConfigError> {
    let file = path.map(PipelineFile::load).transpose()?;
    Pipeline::resolve(file, ov)
}
