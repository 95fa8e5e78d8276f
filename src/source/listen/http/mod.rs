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
use crate::common::budget::Refused;
use crate::common::Charge;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
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
    let counters = &site.served.counters;
    if let Some(auth) = &site.auth {
        let given = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !auth::allows(auth, given) {
            counters.refuse("auth", || {
                format!(
                    "{}: {peer}: refused, missing or wrong credentials",
                    site.served.label
                )
            });
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
    if !engine_reached(site).await {
        counters.refused("engine_unreachable");
        return es::retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            "evtship has not reached its engine yet; send again later",
            5,
        );
    }
    let (body, _charge) = match read_body(site, peer, req).await {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    // The charge is held until the answer: the body, and the records made of it, are what
    // this request holds of the memory budget until the engine answered for them.
    let origin: Arc<str> = Arc::from(format!("{} {path} from {peer}", site.served.label));
    match bulk_index {
        Some(index) => bulk::handle(site, &origin, index, &body).await,
        None => records(site, &origin, &body).await,
    }
}

/// Memory a line of a body costs once parsed, besides its bytes (its entry in the chunk, and
/// for `_bulk` its item).
const LINE_COST: usize = 128;
/// A gzip body is inflated this many bytes at a time, each charged before it is.
const INFLATE_STEP: usize = 256 << 10;

/// How long a request waits for the engine to be reached before it is answered `503` (the
/// listeners start before the engine answers; this covers the first moments of a run).
const ENGINE_PATIENCE: Duration = Duration::from_secs(5);

/// Whether the run has reached its engine, waiting a little for it.
async fn engine_reached(site: &Site) -> bool {
    let engine = &site.served.intake.stats.engine;
    let deadline = tokio::time::Instant::now() + ENGINE_PATIENCE;
    while !engine.is_reached() {
        if tokio::time::Instant::now() >= deadline || site.served.intake.stopping() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Charges `bytes` to a request's charge if the budget has them now. A request never waits
/// for the budget: it is answered `429` at once, so that a small request is never queued
/// behind a large one that waits (the budget's queue is first come, first served).
fn admit(charge: &mut Charge, bytes: usize) -> Result<(), BodyRefusal> {
    match charge.try_grow(bytes) {
        Ok(true) => Ok(()),
        Ok(false) => Err(BodyRefusal::Budget(Refused::Spent {
            total: charge.budget_total(),
        })),
        Err(e) => Err(BodyRefusal::Budget(e)),
    }
}

/// Why a body was not read whole.
enum BodyRefusal {
    TooLarge,
    Budget(Refused),
    Timeout,
    /// The client (or the run's stop) ended the connection before the body was whole.
    Cut(String),
    /// A gzip body that does not gunzip.
    Gzip(String),
}

/// The request body, gunzipped when it says so, within the listener's limit, its read
/// timeout, and the memory budget (which it is charged to: its bytes twice, since the
/// records made of it are as large, and a cost per line).
async fn read_body(
    site: &Site,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<(Bytes, Charge), Answer> {
    let limit = site.limits.max_frame_bytes;
    let gzip = req
        .headers()
        .get(hyper::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let mut charge = site.served.budget.charge();
    let read = tokio::time::timeout(
        site.limits.read_timeout(),
        collect(req.into_body(), limit, gzip, &mut charge),
    )
    .await
    .unwrap_or(Err(BodyRefusal::Timeout));
    let body = match read {
        Ok(body) => body,
        Err(why) => return Err(refusal(site, peer, why)),
    };
    let body = if gzip {
        gunzip(&body, limit, &mut charge).map_err(|why| refusal(site, peer, why))?
    } else {
        body
    };
    let lines = memchr::memchr_iter(b'\n', &body).count() + 1;
    admit(&mut charge, lines * LINE_COST).map_err(|why| refusal(site, peer, why))?;
    Ok((body, charge))
}

/// Reads the body's frames, charging each before it is kept (twice, unless it is gzip:
/// then the inflated bytes are charged twice as they come).
async fn collect(
    mut body: Incoming,
    limit: usize,
    gzip: bool,
    charge: &mut Charge,
) -> Result<Bytes, BodyRefusal> {
    use hyper::body::Body as _;
    let factor = if gzip { 1 } else { 2 };
    let hint = body.size_hint().exact().map(|n| n as usize);
    if hint.is_some_and(|n| n > limit) {
        return Err(BodyRefusal::TooLarge);
    }
    if let Some(n) = hint {
        admit(charge, n * factor)?;
    }
    let mut out = bytes::BytesMut::with_capacity(hint.unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyRefusal::Cut(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if out.len() + data.len() > limit {
            return Err(BodyRefusal::TooLarge);
        }
        if hint.is_none() {
            admit(charge, data.len() * factor)?;
        }
        out.extend_from_slice(&data);
    }
    Ok(out.freeze())
}

/// Inflates a gzip body step by step, each step charged before it is taken.
fn gunzip(body: &[u8], limit: usize, charge: &mut Charge) -> Result<Bytes, BodyRefusal> {
    use std::io::Read;
    let mut z = flate2::read::GzDecoder::new(body);
    let mut out = Vec::new();
    loop {
        admit(charge, 2 * INFLATE_STEP)?;
        let start = out.len();
        out.resize(start + INFLATE_STEP, 0);
        let n = z.read(&mut out[start..]).map_err(|e| {
            BodyRefusal::Gzip(format!(
                "Content-Encoding gzip, but the body does not gunzip: {e}"
            ))
        })?;
        out.truncate(start + n);
        if out.len() > limit {
            return Err(BodyRefusal::TooLarge);
        }
        if n == 0 {
            break;
        }
    }
    charge.shrink_to(2 * out.len() + body.len());
    Ok(Bytes::from(out))
}

/// The answer to a body not read whole, counted under its cause.
fn refusal(site: &Site, peer: SocketAddr, why: BodyRefusal) -> Answer {
    let (limit, label) = (site.limits.max_frame_bytes, &site.served.label);
    let counters = &site.served.counters;
    match why {
        BodyRefusal::TooLarge => {
            counters.refused("body_too_large");
            es::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is larger than {limit} bytes (max_frame_bytes)"),
                "",
            )
        }
        BodyRefusal::Budget(e @ Refused::TooLarge { .. }) => {
            counters.refused("body_too_large");
            es::error(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string(), "")
        }
        BodyRefusal::Budget(e) => {
            counters.refuse("memory", || format!("{label}: {peer}: 429: {e}"));
            es::retry_later(
                StatusCode::TOO_MANY_REQUESTS,
                "evtship holds as much as its memory budget allows; send again in a moment",
                1,
            )
        }
        BodyRefusal::Timeout => {
            counters.refuse("read_timeout", || {
                format!(
                    "{label}: {peer}: the body did not come whole within {} s \
                     (read_timeout_seconds); closed",
                    site.limits.read_timeout_seconds
                )
            });
            let mut answer = es::error(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not come whole within the read timeout",
                "",
            );
            answer.headers_mut().insert(
                hyper::header::CONNECTION,
                hyper::header::HeaderValue::from_static("close"),
            );
            answer
        }
        BodyRefusal::Cut(e) => {
            counters.refused("body_cut");
            tracing::debug!("{label}: {peer}: the body was cut short: {e}");
            es::error(StatusCode::BAD_REQUEST, "the body was cut short", "")
        }
        BodyRefusal::Gzip(e) => {
            counters.refused("bad_body");
            es::error(StatusCode::BAD_REQUEST, &e, "")
        }
    }
}

/// NDJSON or a JSON array of objects, posted to any other path.
async fn records(site: &Site, origin: &Arc<str>, body: &[u8]) -> Answer {
    let mut chunk = RawChunk::growing(site.served.input, origin);
    chunk.buf.reserve(body.len());
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
