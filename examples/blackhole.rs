//! A `_bulk` blackhole for benchmarks: answers like an Elasticsearch node that accepts every
//! document at once, so that a run measures evtship alone. It proves nothing about delivery
//! (the tests use the real engine for that).
//!
//! `cargo run --release --example blackhole -- 127.0.0.1:19399`; `GET /_blackhole` gives the
//! requests, bytes and documents received.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::routing::{get, post, put};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

type Json = ([(axum::http::HeaderName, &'static str); 1], String);

fn json(v: Value) -> Json {
    ([(CONTENT_TYPE, "application/json")], v.to_string())
}

#[derive(Default)]
struct Received {
    requests: AtomicU64,
    bytes: AtomicU64,
    docs: AtomicU64,
}

/// Counts the body as it arrives, frame by frame, without gathering it into one buffer.
async fn bulk(State(r): State<Arc<Received>>, body: Body) -> Json {
    let (mut bytes, mut lines) = (0u64, 0u64);
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
            lines += memchr::memchr_iter(b'\n', data).count() as u64;
        }
    }
    r.requests.fetch_add(1, Relaxed);
    r.bytes.fetch_add(bytes, Relaxed);
    r.docs.fetch_add(lines / 2, Relaxed);
    json(json!({"took": 0, "errors": false}))
}

async fn stats(State(r): State<Arc<Received>>) -> Json {
    json(json!({
        "requests": r.requests.load(Relaxed),
        "bytes": r.bytes.load(Relaxed),
        "docs": r.docs.load(Relaxed),
    }))
}

async fn info() -> Json {
    json(json!({"name": "blackhole", "version": {"number": "8.15.0", "build_flavor": "default"}}))
}

async fn acknowledged() -> Json {
    json(json!({"acknowledged": true}))
}

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:19399".into());
    let received = Arc::new(Received::default());
    let app = axum::Router::new()
        .route("/", get(info))
        .route("/_bulk", post(bulk))
        .route("/_blackhole", get(stats))
        .route("/_index_template/{name}", put(acknowledged))
        .layer(DefaultBodyLimit::disable())
        .with_state(received);
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("blackhole listening on http://{addr}");
    axum::serve(listener, app).await.expect("serve");
}
