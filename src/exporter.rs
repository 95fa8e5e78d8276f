//! `--metrics-addr`: the run's counters as Prometheus (OpenMetrics) text at `/metrics`, and a
//! health endpoint at `/health`.
//!
//! Counters are read from [`Stats`] at each scrape, so they are the very numbers the summary
//! prints at the end.

use crate::metrics::Stats;
use crate::sink::Accounting;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Reads the depth of one queue between stages.
pub type QueueProbe = Box<dyn Fn() -> usize + Send + Sync>;

/// What the endpoints read.
struct Exported {
    acct: Arc<Accounting>,
    queues: Vec<(&'static str, QueueProbe)>,
}

type Labels = Vec<(&'static str, String)>;

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let g: Gauge = Gauge::default();
    g.set(value as i64);
    registry.register(name, help, g);
}

fn per_input(
    registry: &mut Registry,
    name: &str,
    help: &str,
    values: impl Iterator<Item = (String, u64)>,
) {
    let family = Family::<Labels, Counter>::default();
    for (input, v) in values {
        family.get_or_create(&vec![("input", input)]).inc_by(v);
    }
    registry.register(name, help, family);
}

/// The OpenMetrics text of the counters now.
fn render(e: &Exported) -> String {
    let stats: &Stats = &e.acct.stats;
    let s = stats.summary();
    let mut r = Registry::with_prefix("evtship");
    register_totals(&mut r, &s);
    register_per_input(&mut r, &s);
    register_delivery(&mut r, e);
    register_listeners(&mut r, stats);
    register_kafka(&mut r, stats);
    let mut text = String::new();
    encode(&mut text, &r).expect("writing to a String cannot fail");
    text
}

/// The run's totals: the very numbers of the summary.
fn register_totals(r: &mut Registry, s: &crate::metrics::Summary) {
    let totals: [(&str, &str, u64); 9] = [
        (
            "events_read",
            "Records read from every input",
            s.events_read,
        ),
        (
            "events_indexed",
            "Documents created in the index (or written to the file output)",
            s.events_indexed,
        ),
        (
            "events_duplicate",
            "Documents the index already held (409 on create)",
            s.duplicates,
        ),
        (
            "events_dead_lettered",
            "Records written to the dead letter file",
            s.dead_lettered,
        ),
        (
            "events_failed",
            "Records neither delivered nor dead-lettered (aborted runs)",
            s.failed,
        ),
        (
            "bytes_read",
            "Decoded bytes read from every input",
            s.bytes_read,
        ),
        (
            "input_errors",
            "Unreadable parts of inputs (truncated archives, damaged chunks)",
            s.input_errors,
        ),
        (
            "warnings",
            "Warnings about inputs that lost nothing",
            s.warnings,
        ),
        (
            "spool_lost_records",
            "Records lost to damage in the disk spool (frames skipped by its reader)",
            s.spool_lost,
        ),
    ];
    for (name, help, v) in totals {
        counter(r, name, help, v);
    }
}

/// The summary's figures per input.
fn register_per_input(r: &mut Registry, s: &crate::metrics::Summary) {
    type Field = fn(&crate::metrics::InputSummary) -> u64;
    let inputs: [(&str, &str, Field); 6] = [
        ("input_events_read", "Records read, per input", |i| {
            i.events_read
        }),
        (
            "input_events_indexed",
            "Documents created, per input",
            |i| i.events_indexed,
        ),
        (
            "input_events_duplicate",
            "Documents already present, per input",
            |i| i.duplicates,
        ),
        (
            "input_events_dead_lettered",
            "Records dead-lettered, per input",
            |i| i.dead_lettered,
        ),
        ("input_events_failed", "Records failed, per input", |i| {
            i.failed
        }),
        ("input_bytes_read", "Decoded bytes read, per input", |i| {
            i.bytes_read
        }),
    ];
    for (name, help, f) in inputs {
        per_input(
            r,
            name,
            help,
            s.inputs.iter().map(|i| (i.input.clone(), f(i))),
        );
    }
}

/// Each listener's connections, windows, ACKs, keep-alives and refusals by cause.
fn register_listeners(r: &mut Registry, stats: &Stats) {
    let listeners = stats.listener_summaries();
    if listeners.is_empty() {
        return;
    }
    type Field = fn(&crate::metrics::ListenerSummary) -> u64;
    let fields: [(&str, &str, Field); 6] = [
        (
            "listener_connections",
            "Connections accepted, per listener",
            |l| l.connections,
        ),
        (
            "listener_windows",
            "Beats windows or HTTP requests received whole",
            |l| l.windows,
        ),
        (
            "listener_acks",
            "Windows ACKed or requests answered after their records settled",
            |l| l.acks,
        ),
        (
            "listener_keepalives",
            "Keep-alive ACKs sent while windows waited",
            |l| l.keepalives,
        ),
        (
            "listener_spooled",
            "Records written to the disk spool (TCP, UDP, syslog)",
            |l| l.received,
        ),
        (
            "listener_dropped",
            "Records not kept: UDP while the spool was full, or dropped by the kernel",
            |l| l.dropped,
        ),
    ];
    for (name, help, f) in fields {
        let family = Family::<Labels, Counter>::default();
        for l in &listeners {
            family
                .get_or_create(&vec![("listener", l.listener.clone())])
                .inc_by(f(l));
        }
        r.register(name, help, family);
    }
    let refused = Family::<Labels, Counter>::default();
    for l in &listeners {
        for (cause, n) in &l.refused {
            refused
                .get_or_create(&vec![
                    ("listener", l.listener.clone()),
                    ("cause", cause.clone()),
                ])
                .inc_by(*n);
        }
    }
    r.register(
        "listener_refused",
        "Connections, frames or requests refused, by cause",
        refused,
    );
}

/// The Kafka consumer's lag per partition, commits and rebalances.
fn register_kafka(r: &mut Registry, stats: &Stats) {
    let Some(k) = stats.kafka.summary() else {
        return;
    };
    let lag = Family::<Labels, Gauge>::default();
    for p in &k.partitions {
        lag.get_or_create(&vec![
            ("topic", p.topic.clone()),
            ("partition", p.partition.to_string()),
        ])
        .set(p.lag);
    }
    r.register(
        "kafka_consumer_lag",
        "Records of a partition the group has still to read (end offset - committed)",
        lag,
    );
    for (name, help, n) in [
        ("kafka_commits", "Offset commits that succeeded", k.commits),
        (
            "kafka_commit_failures",
            "Offset commits that failed",
            k.commit_failures,
        ),
        (
            "kafka_rebalances",
            "Partition assignments and revocations",
            k.rebalances,
        ),
    ] {
        let c = Counter::<u64>::default();
        c.inc_by(n);
        r.register(name, help, c);
    }
}

/// Retries, request latency and queue depths.
fn register_delivery(r: &mut Registry, e: &Exported) {
    let stats: &Stats = &e.acct.stats;
    let retries = Family::<Labels, Counter>::default();
    for (cause, n) in stats.retry_causes() {
        retries.get_or_create(&vec![("cause", cause)]).inc_by(n);
    }
    r.register(
        "retries",
        "Records or requests sent again, by cause",
        retries,
    );
    r.register(
        "bulk_request_duration_seconds",
        "Time from sending a _bulk request to reading its answer",
        stats.bulk_latency.clone(),
    );
    let depth = Family::<Labels, Gauge>::default();
    for (queue, probe) in &e.queues {
        depth
            .get_or_create(&vec![("queue", (*queue).to_owned())])
            .set(probe() as i64);
    }
    r.register("queue_depth", "Chunks waiting between stages", depth);
    gauge(
        r,
        "bulk_requests_in_flight",
        "_bulk requests awaiting an answer",
        stats.bulk_in_flight.load(Relaxed),
    );
    let bulk = &stats.bulk;
    counter(
        r,
        "bulk_body_bytes",
        "Bytes of _bulk bodies before compression",
        bulk.body_bytes.load(Relaxed),
    );
    counter(
        r,
        "bulk_wire_bytes",
        "Bytes of _bulk bodies as sent (gzip when compression_level is above 0)",
        bulk.wire_bytes.load(Relaxed),
    );
    gauge(
        r,
        "bulk_concurrency_limit",
        "_bulk requests allowed in flight (the adaptive limit now, or the fixed one)",
        bulk.limit.load(Relaxed),
    );
}

async fn metrics(State(e): State<Arc<Exported>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        render(&e),
    )
}

/// 200 while the process runs; the body says `ok`, `starting` until the engine first answered
/// (listeners accept meanwhile), or `degraded` while `_bulk` requests find no engine
/// (restarting evtship would not help then, so the status stays 200).
async fn health(State(e): State<Arc<Exported>>) -> impl IntoResponse {
    let stats = &e.acct.stats;
    let failures = stats.engine_failures.load(Relaxed);
    let reached = stats.engine.is_reached();
    let status = match (reached, failures) {
        (false, _) => "starting",
        (true, 0) => "ok",
        _ => "degraded",
    };
    let body = serde_json::json!({
        "status": status,
        "engine_reached": reached,
        "engine_failures_in_a_row": failures,
        "uptime_seconds": stats.elapsed().as_secs(),
        "events_read": stats.summary().events_read,
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

/// A bound metrics listener, ready to serve.
pub struct Exporter {
    listener: tokio::net::TcpListener,
    /// The address it listens on.
    pub addr: SocketAddr,
}

impl Exporter {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        Ok(Self { listener, addr })
    }

    /// Serves `/metrics` and `/health` until the task is dropped or aborted.
    pub async fn serve(self, acct: Arc<Accounting>, queues: Vec<(&'static str, QueueProbe)>) {
        let state = Arc::new(Exported { acct, queues });
        let app = axum::Router::new()
            .route("/metrics", get(metrics))
            .route("/health", get(health))
            .with_state(state);
        if let Err(e) = axum::serve(self.listener, app).await {
            tracing::error!("metrics endpoint stopped: {e}");
        }
    }
}
