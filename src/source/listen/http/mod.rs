//! The HTTP listener: `POST` of NDJSON or a JSON array to any path, and an
//! Elasticsearch-compatible `/_bulk` (and `/{index}/_bulk`), answered only once the engine has
//! answered for the records; plus the few calls Beats' and Logstash's Elasticsearch outputs make
//! before they send ([`es`]), so that `output.elasticsearch` can point at evtship unchanged.
//!
//! - `200` with counts (or, for `_bulk`, the per-item statuses the engine gave), once every
//!   record has an outcome;
//! - `400` naming the line for a body that is not JSON lines, a JSON array of objects, or a
//!   `_bulk` body; `413` for a body over `max_frame_bytes` (after gunzipping:
//!   `Content-Encoding: gzip` bodies are taken, as Filebeat sends them);
//! - `429` with `Retry-After` when evtship's queues stay full for a second;
//! - `401` when `[listen.auth]` asks for a token or a password the request lacks;
//! - `503` when the records could not all be delivered (send them again).

pub mod bulk;
mod es;

use super::auth;
use super::settings::{IndexMode, Limits, ListenAuth};
use super::{Bound, Served, Stream};
use crate::ack::{Ack, Settle, Settled};
use crate::chunk::{Identity, RawChunk};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// The answer of every request.
type Answer = Response<Full<Bytes>>;

/// What every request of one listener needs.
struct Site {
    served: Served,
    auth: Option<ListenAuth>,
    index: IndexMode,
    limits: Limits,
}

/// Serves HTTP connections until the run stops.
pub async fn serve(bound: Bound, served: Served) {
    let site = Arc::new(Site {
        auth: bound.settings.auth.clone(),
        index: bound.settings.index,
        limits: bound.settings.limits,
        served: served.clone(),
    });
    super::accept_loop(bound, served, move |stream, peer, served| {
        connection(stream, peer, served, site.clone())
    })
    .await;
}

async fn connection(stream: Box<dyn Stream>, peer: SocketAddr, served: Served, site: Arc<Site>) {
    let idle = site.limits.idle_timeout();
    let service = hyper::service::service_fn(move |req| {
        let site = site.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&site, peer, req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // A connection that sends no request for the idle timeout is closed.
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(idle);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut stop = served.intake.clone();
    tokio::select! {
        r = conn.as_mut() => { if let Err(e) = r { tracing::debug!("{}: {peer}: {e}", served.label) } }
        () = stop.stopped() => {
            // Requests under way are answered once settled; then the connection closes.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(served.grace + Duration::from_secs(5), conn).await;
        }
    }
}

/// Answers one request.
async fn handle(site: &Site, peer: SocketAddr, req: Request<Incoming>) -> Answer {
    if let Some(auth) = &site.auth {
        let given = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !auth::allows(auth, given) {
            site.served.counters.refused("auth");
            return es::unauthorized();
        }
    }
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    if let Some(answer) = es::setup_call(&method, &path) {
        return answer;
    }
    let bulk_index = bulk::bulk_path(&path);
    if !(method == Method::POST || method == Method::PUT) {
        return es::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed", &path);
    }
    let body = match read_body(site, req).await {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    let origin: Arc<str> = Arc::from(format!("{} {path} from {peer}", site.served.label));
    match bulk_index {
        Some(index) => bulk::handle(site, &origin, index, &body).await,
        None => records(site, &origin, &body).await,
    }
}

/// The request body, gunzipped when it says so, within the listener's limit.
async fn read_body(site: &Site, req: Request<Incoming>) -> Result<Bytes, Answer> {
    let limit = site.limits.max_frame_bytes;
    let gzip = req
        .headers()
        .get(hyper::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let too_large = || {
        site.served.counters.refused("body_too_large");
        es::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {limit} bytes (max_frame_bytes)"),
            "",
        )
    };
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(too_large()),
    };
    if !gzip {
        return Ok(body);
    }
    use std::io::Read;
    let mut out = Vec::with_capacity(body.len() * 4);
    let mut z = flate2::read::GzDecoder::new(&body[..]).take(limit as u64 + 1);
    if let Err(e) = z.read_to_end(&mut out) {
        return Err(es::error(
            StatusCode::BAD_REQUEST,
            &format!("Content-Encoding gzip, but the body does not gunzip: {e}"),
            "",
        ));
    }
    if out.len() > limit {
        return Err(too_large());
    }
    Ok(Bytes::from(out))
}

/// NDJSON or a JSON array of objects, posted to any other path.
async fn records(site: &Site, origin: &Arc<str>, body: &[u8]) -> Answer {
    let mut chunk = RawChunk::new(site.served.input, origin);
    chunk.identity = Identity::Content;
    if let Err(problem) = bulk::push_records(&mut chunk, body) {
        site.served.counters.refused("bad_body");
        return es::error(StatusCode::BAD_REQUEST, &problem, "");
    }
    if chunk.lines.is_empty() {
        return es::json(StatusCode::OK, json!({"received": 0}));
    }
    let received = chunk.lines.len();
    let settled = match send_and_wait(site, chunk, false).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let t = settled.tally;
    let body = json!({
        "received": received,
        "indexed": t.indexed,
        "duplicates": t.duplicates,
        "dead_lettered": t.dead_lettered,
        "failed": t.failed,
    });
    let status = if t.failed > 0 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    es::json(status, body)
}

/// A request's side of the acknowledgement model: the answer goes out once it settles.
struct RequestMark {
    answers: bool,
    reply: tokio::sync::oneshot::Sender<Settled>,
}

impl Settle for RequestMark {
    fn settled(self: Box<Self>, settled: Settled) {
        let _ = self.reply.send(settled);
    }

    fn wants_answers(&self) -> bool {
        self.answers
    }
}

/// Sends a request's records into the pipeline (refusing with 429 while its queues stay full)
/// and waits until every one of them has an outcome.
async fn send_and_wait(site: &Site, mut chunk: RawChunk, answers: bool) -> Result<Settled, Answer> {
    let (reply, settled) = tokio::sync::oneshot::channel();
    chunk.ack = Ack::new(
        chunk.lines.len(),
        Some(Box::new(RequestMark { answers, reply })),
    );
    site.served.counters.windows.fetch_add(1, Relaxed);
    if let Err(why) = site
        .served
        .intake
        .send_within(chunk, Duration::from_secs(1))
        .await
    {
        site.served.counters.refused(why.cause());
        return Err(es::busy(why));
    }
    match settled.await {
        Ok(s) => {
            site.served.counters.acks.fetch_add(1, Relaxed);
            Ok(s)
        }
        Err(_) => Err(es::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "evtship stopped before the engine answered for these records; send them again",
            "",
        )),
    }
}
