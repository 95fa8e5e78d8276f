//! What an Elasticsearch output asks before it sends, answered so that Beats (`output.
//! elasticsearch`) and Logstash can point at evtship unchanged: `GET /` (who is there),
//! `GET /_license`, and the setup calls of their template, ILM and data-stream loading, which
//! evtship takes and ignores (the pipeline installs its own template on the engine). Also the
//! error answers every endpoint shares, in Elasticsearch's shape.

use super::Answer;
use crate::source::listen::Busy;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};

/// The Elasticsearch version evtship answers as: Beats 7.17 and 8.x both send to it.
pub const ANSWERS_AS: &str = "8.17.0";

/// A JSON answer, with the product header Elasticsearch's own clients look for.
pub fn json(status: StatusCode, body: Value) -> Answer {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header("X-Elastic-Product", "Elasticsearch")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

/// An error in Elasticsearch's shape.
pub fn error(status: StatusCode, reason: &str, path: &str) -> Answer {
    let kind = match status {
        StatusCode::BAD_REQUEST => "parse_exception",
        StatusCode::PAYLOAD_TOO_LARGE => "content_too_long_exception",
        StatusCode::NOT_FOUND => "resource_not_found_exception",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed_exception",
        _ => "evtship_exception",
    };
    let reason = if path.is_empty() {
        reason.to_owned()
    } else {
        format!("{reason}: {path}")
    };
    json(
        status,
        json!({"error": {"type": kind, "reason": reason}, "status": status.as_u16()}),
    )
}

/// 401, asking for credentials.
pub fn unauthorized() -> Answer {
    let mut answer = json(
        StatusCode::UNAUTHORIZED,
        json!({"error": {"type": "security_exception",
            "reason": "missing or wrong authentication credentials"}, "status": 401}),
    );
    answer.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Basic realm=\"evtship\", Bearer"),
    );
    answer
}

/// `status` with `Retry-After: seconds`: come back later.
pub fn retry_later(status: StatusCode, reason: &str, seconds: u32) -> Answer {
    let mut answer = json(
        status,
        json!({"error": {"type": "es_rejected_execution_exception", "reason": reason},
            "status": status.as_u16()}),
    );
    answer.headers_mut().insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from(seconds),
    );
    answer
}

/// 429 with `Retry-After` (queues full), or 503 (the run is ending).
pub fn busy(why: Busy) -> Answer {
    let (status, reason) = match why {
        Busy::Full => (
            StatusCode::TOO_MANY_REQUESTS,
            "evtship's queues are full; send again in a moment",
        ),
        Busy::Closed => (
            StatusCode::SERVICE_UNAVAILABLE,
            "evtship is stopping; send again later",
        ),
    };
    let mut answer = json(
        status,
        json!({"error": {"type": "es_rejected_execution_exception", "reason": reason},
            "status": status.as_u16()}),
    );
    answer.headers_mut().insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from_static("1"),
    );
    answer
}

/// `GET /`: who is there.
fn root() -> Value {
    json!({
        "name": "evtship",
        "cluster_name": "evtship",
        "cluster_uuid": "evtship-listener",
        "version": {
            "number": ANSWERS_AS,
            "build_flavor": "default",
            "build_type": "evtship",
            "build_snapshot": false,
            "lucene_version": "9.12.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0"
        },
        "tagline": "You Know, for Search"
    })
}

/// `GET /_license`: an active licence, which Beats' Elasticsearch output checks for.
fn license() -> Value {
    json!({"license": {
        "status": "active", "uid": "evtship", "type": "basic", "issue_date_in_millis": 0,
        "expiry_date_in_millis": 4_102_444_800_000u64, "max_nodes": 1000, "issued_to": "evtship",
        "issuer": "evtship", "start_date_in_millis": -1
    }})
}

/// Paths of the setup APIs an Elasticsearch output uses before it sends (templates, ILM, data
/// streams, ingest pipelines, aliases).
const SETUP: &[&str] = &[
    "/_index_template",
    "/_template",
    "/_component_template",
    "/_ilm",
    "/_data_stream",
    "/_ingest",
    "/_alias",
    "/_xpack",
    "/_nodes",
    "/_cluster",
    "/_security",
];

/// The answer to a call that is not a write of records: `GET /`, `GET /_license`, a setup
/// call (taken and ignored), or `None` for a request that sends records.
pub fn setup_call(method: &Method, path: &str) -> Option<Answer> {
    let read = *method == Method::GET || *method == Method::HEAD;
    if read && (path == "/" || path.is_empty()) {
        return Some(json(StatusCode::OK, root()));
    }
    if read && path.starts_with("/_license") {
        return Some(json(StatusCode::OK, license()));
    }
    if path.ends_with("/_bulk") {
        return None;
    }
    let setup = SETUP.iter().any(|p| path.starts_with(p)) || path.contains("/_alias");
    if setup {
        tracing::debug!("{method} {path}: a setup call of an Elasticsearch output, ignored");
        return Some(json(
            StatusCode::OK,
            if read {
                json!({})
            } else {
                json!({"acknowledged": true})
            },
        ));
    }
    if *method == Method::HEAD {
        // "Does this exist?" (an index, an alias): yes, so that nothing more is set up.
        return Some(json(StatusCode::OK, json!({})));
    }
    if read {
        return Some(error(
            StatusCode::NOT_FOUND,
            "no such endpoint in evtship",
            path,
        ));
    }
    None
}
