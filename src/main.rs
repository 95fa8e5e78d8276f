//! The `evtship` command line: parses arguments, calls the library, maps outcomes to exit codes
//! (0 all delivered, 3 some records dead-lettered, 1 aborted, 2 invalid usage or configuration).

use anyhow::Context;

use clap::{Parser, Subcommand};
use evtship::config::{IndexName, Overrides, Pipeline, PipelineFile, TemplateSection};
use evtship::pipeline::{self, RunOptions};
use evtship::sink::elasticsearch::template;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// jemalloc: per-thread caches suit the parse workers, which allocate and free a JSON tree
/// per record (glibc malloc took a quarter of their time; jemalloc is 35% faster end to end and
/// keeps a lower peak RSS than glibc or mimalloc; see bench/run).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "evtship",
    version,
    about = "Ship Sysmon and Windows event logs into Elasticsearch or OpenSearch"
)]
struct Cli {
    /// Log level when RUST_LOG is unset: error, warn, info, debug, trace.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    /// Log lines as `text` (for people) or `json` (one object per line, with timestamps, for
    /// log collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct SourceArgs {
    /// A file, directory, glob, archive, http(s):// URL, or `-` for standard input; repeatable;
    /// replaces the pipeline's inputs.
    #[arg(long = "input", value_name = "PATH_OR_GLOB")]
    inputs: Vec<String>,
    /// Engine URL (user and password may be in it).
    #[arg(long, env = "ES_URL")]
    es_url: Option<String>,
    /// Target index.
    #[arg(long)]
    index: Option<String>,
    /// es, ndjson:PATH or bulk:PATH (`-` is standard output).
    #[arg(long)]
    output: Option<String>,
    /// Dead letter file (JSON lines), appended to.
    #[arg(long, value_name = "PATH")]
    dead_letter: Option<PathBuf>,
    /// Where input positions are kept (default ~/.local/share/evtship/checkpoints).
    #[arg(long, env = "EVTSHIP_CHECKPOINT_DIR", value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Where http(s):// inputs are downloaded (default ~/.cache/evtship/downloads).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// API key as ID:KEY or its base64 form.
    #[arg(long, env = "ES_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Elastic Cloud id.
    #[arg(long, env = "ES_CLOUD_ID")]
    cloud_id: Option<String>,
}

#[derive(Subcommand)]
enum Command {
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
enum DlqAction {
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
enum CheckpointAction {
    /// Where state lives and what it holds.
    List,
    /// Forget stored positions, so that inputs are read from their start again.
    Reset {
        /// Only this input (its path); all inputs when omitted.
        input: Option<String>,
    },
}

fn overrides(s: SourceArgs) -> Overrides {
    Overrides {
        inputs: s.inputs,
        es_url: s.es_url,
        index: s.index,
        output: s.output,
        dead_letter: s.dead_letter,
        cache_dir: s.cache_dir,
        tail: false,
        shard: None,
        checkpoint_dir: s.checkpoint_dir,
        user: std::env::var("ES_USER").ok().filter(|v| !v.is_empty()),
        password: std::env::var("ES_PASSWORD").ok().filter(|v| !v.is_empty()),
        api_key: s.api_key,
        cloud_id: s.cloud_id,
        no_inputs_needed: false,
    }
}

fn load(path: Option<&Path>, source: SourceArgs) -> Result<Pipeline, evtship::config::ConfigError> {
    load_with(path, overrides(source))
}

fn load_with(path: Option<&Path>, ov: Overrides) -> Result<Pipeline, evtship::config::ConfigError> {
    let file = path.map(PipelineFile::load).transpose()?;
    Pipeline::resolve(file, ov)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,evtship={}", cli.log_level)));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(evtship::progress::log_writer)
        .with_target(false);
    match cli.log_format {
        LogFormat::Json => logs.json().with_current_span(false).init(),
        LogFormat::Text => logs
            .with_ansi(std::io::stderr().is_terminal())
            .without_time()
            .init(),
    }
    match cli.command {
        Command::Template {
            index,
            ecs,
            opensearch,
        } => {
            let index = match IndexName::try_from(index) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("error: --index: {e}");
                    return ExitCode::from(2);
                }
            };
            let flavor = if opensearch {
                template::Flavor::OpenSearch
            } else {
                template::Flavor::Elasticsearch
            };
            let features = template::Features {
                ecs,
                flavor,
                data_stream: false,
            };
            let body = template::body(&index, &TemplateSection::default(), features);
            println!(
                "{}",
                serde_json::to_string_pretty(&body).expect("serialisable")
            );
            ExitCode::SUCCESS
        }
        Command::Dlq { action } => dlq(action),
        Command::Checkpoints {
            action,
            checkpoint_dir,
        } => {
            let dir = checkpoint_dir.unwrap_or_else(evtship::checkpoint::default_dir);
            match checkpoints(&dir, action) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Setup {
            pipeline,
            source,
            kibana_url,
            ml,
            config_dir,
        } => {
            let ov = Overrides {
                no_inputs_needed: true,
                ..overrides(source)
            };
            let p = match load_with(pipeline.as_deref(), ov) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let opts = evtship::setup::SetupOptions {
                config_dir,
                kibana_url,
                ml,
            };
            ExitCode::from(setup(&p, &opts))
        }
        Command::Check { pipeline, source } => match load(Some(&pipeline), source) {
            Ok(p) => check(&pipeline, &p),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run {
            pipeline,
            source,
            summary_json,
            no_progress,
            from_start,
            tail,
            shard,
            metrics_addr,
        } => {
            let mut ov = overrides(source);
            ov.tail = tail;
            ov.shard = shard;
            let p = match load_with(pipeline.as_deref(), ov) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let opts = RunOptions {
                progress: !no_progress,
                from_start,
                metrics_addr,
                ..RunOptions::new()
            };
            match run(&p, summary_json.as_deref(), opts) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn dlq(action: DlqAction) -> ExitCode {
    match action {
        DlqAction::List { path } => {
            let path = path.unwrap_or_else(|| PathBuf::from(evtship::config::DEFAULT_DEAD_LETTER));
            match evtship::replay::summarize(&path) {
                Ok(s) => {
                    println!(
                        "{}: {} records, {} replayable",
                        path.display(),
                        s.total,
                        s.replayable
                    );
                    let show = |title: &str, m: &std::collections::BTreeMap<String, usize>| {
                        println!("by {title}:");
                        let mut v: Vec<_> = m.iter().collect();
                        v.sort_by(|a, b| b.1.cmp(a.1));
                        for (k, n) in v {
                            println!("  {n:>8}  {k}");
                        }
                    };
                    show("reason", &s.reasons);
                    show("status", &s.statuses);
                    show("input", &s.inputs);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        DlqAction::Replay {
            path,
            pipeline,
            mut source,
        } => {
            // The records go where the pipeline says; its own inputs are not read.
            source.inputs = vec![path.display().to_string()];
            let p = match load(pipeline.as_deref(), *source) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: starting the async runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match runtime.block_on(evtship::replay::replay(&p, &path, RunOptions::new())) {
                Ok(r) => {
                    let _ = r.report.summary.write_table(&mut std::io::stderr());
                    eprintln!(
                        "replayed {} records from {}: {} indexed, {} already present; \
                         {} failed again and {} unreplayable lines stay in the file",
                        r.report.summary.events_read,
                        path.display(),
                        r.report.summary.events_indexed,
                        r.report.summary.duplicates,
                        r.still_failing,
                        r.unreplayable
                    );
                    if let Some(e) = &r.report.error {
                        eprintln!("error: {e}");
                        return ExitCode::from(1);
                    }
                    ExitCode::from(if r.still_failing + r.unreplayable > 0 {
                        3
                    } else {
                        0
                    })
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn checkpoints(
    dir: &Path,
    action: CheckpointAction,
) -> Result<(), evtship::checkpoint::CheckpointError> {
    match action {
        CheckpointAction::List => {
            println!("checkpoint directory: {}", dir.display());
            let files = evtship::checkpoint::list(dir)?;
            if files.is_empty() {
                println!("(no checkpoints)");
            }
            for (path, file) in files {
                println!(
                    "\n{} (pipeline {}, index {})",
                    path.display(),
                    file.pipeline,
                    file.index
                );
                println!(
                    "  {:<60} {:>10} {:>10} {:>12} {:>9}  updated",
                    "input", "records", "line", "byte", "finished"
                );
                for e in file.entries.values() {
                    println!(
                        "  {:<60} {:>10} {:>10} {:>12} {:>9}  {}",
                        e.input,
                        e.records,
                        if e.seekable {
                            e.position.line.to_string()
                        } else {
                            "-".into()
                        },
                        if e.seekable {
                            e.position.offset.to_string()
                        } else {
                            "-".into()
                        },
                        if e.finished { "yes" } else { "no" },
                        e.updated
                    );
                }
            }
        }
        CheckpointAction::Reset { input } => {
            let n = evtship::checkpoint::reset(dir, input.as_deref())?;
            match input {
                Some(i) => println!("removed {n} stored position(s) of {i} in {}", dir.display()),
                None => println!("removed all {n} stored position(s) in {}", dir.display()),
            }
        }
    }
    Ok(())
}

/// Reports what a valid pipeline would read; inputs not there yet are warnings, not errors.
fn check(path: &Path, p: &Pipeline) -> ExitCode {
    let mut files = 0;
    for pattern in &p.inputs {
        match evtship::source::resolve(std::slice::from_ref(pattern)) {
            Ok((found, unmatched)) => {
                files += found.len();
                for u in unmatched {
                    eprintln!("warning: input `{u}` matches no file yet");
                }
            }
            Err(evtship::source::ResolveError::Missing(m)) => {
                eprintln!("warning: input `{m}` does not exist yet");
            }
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    let output = match &p.output {
        evtship::config::OutputTarget::Elasticsearch => {
            format!("{} index {}", p.url_for_display(), p.index)
        }
        other => other.to_string(),
    };
    println!(
        "{}: valid; {files} input file(s) found; output {output}; template {}",
        path.display(),
        p.template_name()
    );
    ExitCode::SUCCESS
}

/// `evtship setup`: every step asked for is tried; the exit code is 2 for unusable files, 1
/// when a step failed, else 0.
fn setup(p: &Pipeline, opts: &evtship::setup::SetupOptions) -> u8 {
    use evtship::setup::{kibana, ml, SetupError};
    if p.output != evtship::config::OutputTarget::Elasticsearch {
        eprintln!(
            "error: setup needs an Elasticsearch or OpenSearch output, not {}",
            p.output
        );
        return 2;
    }
    // Every file is read before anything is sent, so a typo changes nothing on the cluster.
    let files = (|| -> Result<_, SetupError> {
        let objects = opts
            .kibana_url
            .as_ref()
            .map(|_| kibana::load(&opts.config_dir.join("kibana"), &p.index))
            .transpose()?;
        let jobs = opts
            .ml
            .then(|| ml::load(&opts.config_dir.join("ml"), &p.index))
            .transpose()?;
        Ok((objects, jobs))
    })();
    let (objects, jobs) = match files {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async {
        let (client, info) = match evtship::setup::template(p).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        println!(
            "index template {} installed for index {} on {} {} at {}",
            p.template_name(),
            p.index,
            info.distribution,
            info.version,
            client.shown_url
        );
        let mut code = 0;
        if let (Some(url), Some(objects)) = (&opts.kibana_url, &objects) {
            match kibana::import(url, p, objects).await {
                Ok(n) => println!(
                    "Kibana: imported {n} saved objects from {} (data view {} on @timestamp, saved searches)",
                    opts.config_dir.join("kibana").display(),
                    p.index.pattern()
                ),
                Err(e) => {
                    eprintln!("error: {e}");
                    code = 1;
                }
            }
        }
        if let Some(jobs) = &jobs {
            let created = match ml::check_available(&client, &info).await {
                Ok(()) => ml::create(&client, jobs).await,
                Err(e) => Err(e),
            };
            match created {
                Ok(done) => {
                    for d in done {
                        match d {
                            ml::Created::New(what) => println!("ML: created {what}"),
                            ml::Created::Existing(what) => {
                                println!("ML: {what} exists already; left as it is")
                            }
                        }
                    }
                }
                Err(e @ SetupError::NoMachineLearning(_)) => {
                    eprintln!("error: {e}");
                    code = 1;
                }
                Err(e) => {
                    eprintln!("error: creating the ML jobs: {e}");
                    code = 1;
                }
            }
        }
        code
    })
}

/// First SIGINT or SIGTERM: stop reading, deliver what is in flight, write checkpoints, print
/// the summary. Second: exit at once (checkpoints only ever hold acknowledged positions).
async fn stop_on_signals(stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
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
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            eprintln!(
                "evtship: stopping: delivering what is in flight and writing checkpoints \
                 (signal again to stop at once)"
            );
        }
    }
    eprintln!("evtship: stopped at once; checkpoints hold what was acknowledged");
    std::process::exit(130);
}

fn run(p: &Pipeline, summary_json: Option<&Path>, opts: RunOptions) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.spawn(stop_on_signals(opts.stop.clone()));
    let report = match runtime.block_on(pipeline::run(p, opts)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(if e.is_usage() { 2 } else { 1 });
        }
    };
    let summary = &report.summary;
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
    if let Some(e) = &report.error {
        eprintln!("error: {e}");
    }
    Ok(report.exit_code() as u8)
}
