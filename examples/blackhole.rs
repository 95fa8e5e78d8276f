//! A `_bulk` blackhole for benchmarks: answers like an Elasticsearch node that accepts every
//! document at once, so that a run measures evtship alone. It proves nothing about delivery
//! (the tests use the real engine for that).
//!
//! `cargo run --release --example blackhole -- 127.0.0.1:19399 [--refuse SHARE]`;
//! `GET /_blackhole` gives the requests, bytes (as received, and inflated when gzipped) and
//! documents received. `--refuse 0.3` answers that share of `_bulk` requests 429 (at random),
//! for the adaptive concurrency benchmark.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

type Json = ([(axum::http::HeaderName, &'static str); 1], String);

fn json(v: Value) -> Json {
    ([(CONTENT_TYPE, "application/json")], v.to_string())
}

#[derive(Default)]
struct Received {
    requests: AtomicU64,
    refused: AtomicU64,
    /// Body bytes as received.
    wire_bytes: AtomicU64,
    /// Body bytes once inflated (the same as received for plain bodies).
    bytes: AtomicU64,
    docs: AtomicU64,
    /// Share of `_bulk` requests answered 429.
    refuse: f64,
}

/// Counts the body as it arrives, frame by frame, without gathering it into one buffer; a
/// gzip body is inflated as it comes, to count its documents.
async fn bulk(
    State(r): State<Arc<Received>>,
    headers: HeaderMap,
    body: Body,
) -> (StatusCode, Json) {
    let gzip = headers
        .get(CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let (mut wire, mut bytes, mut lines) = (0u64, 0u64, 0u64);
    let mut compressed = Vec::new();
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            wire += data.len() as u64;
            if gzip {
                compressed.extend_from_slice(data);
            } else {
                bytes += data.len() as u64;
                lines += memchr::memchr_iter(b'\n', data).count() as u64;
            }
        }
    }
    if gzip {
        let mut inflate = flate2::read::MultiGzDecoder::new(&compressed[..]);
        let mut buf = vec![0; 256 << 10];
        while let Ok(n) = inflate.read(&mut buf) {
            if n == 0 {
                break;
            }
            bytes += n as u64;
            lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        }
    }
    r.requests.fetch_add(1, Relaxed);
    r.wire_bytes.fetch_add(wire, Relaxed);
    if r.refuse > 0.0 && fastrand::f64() < r.refuse {
        r.refused.fetch_add(1, Relaxed);
        let refusal = json!({"error": {"type": "blackhole", "reason": "refused"}, "status": 429});
        return (StatusCode::TOO_MANY_REQUESTS, json(refusal));
    }
    r.bytes.fetch_add(bytes, Relaxed);
    r.docs.fetch_add(lines / 2, Relaxed);
    (StatusCode::OK, json(json!({"took": 0, "errors": false})))
}

async fn stats(State(r): State<Arc<Received>>) -> Json {
    json(json!({
        "requests": r.requests.load(Relaxed),
        "refused": r.refused.load(Relaxed),
        "wire_bytes": r.wire_bytes.load(Relaxed),
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:19399".into());
    let refuse = args
        .iter()
        .position(|a| a == "--refuse")
        .and_then(|i| args.get(i + 1))
        .map_or(0.0, |v| {
            v.parse().expect("--refuse takes a share, e.g. 0.3")
        });
    let received = Arc::new(Received {
        refuse,
        ..Received::default()
    });
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
