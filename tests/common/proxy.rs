//! A fault-injection HTTP proxy between evtship and the real engine, for delivery tests.
//!
//! It forwards requests to the engine and, as told through [`Faults`], can refuse connections
//! (accept and close at once), cut them (read the request, close without an answer), forward
//! a `_bulk` request and swallow the engine's answer, delay
//! answers, answer whole requests with a status of its choosing, or answer single `_bulk` items
//! with 429/503/400 without forwarding them (so that the engine never sees them), or answer a
//! share of `_bulk` requests as a whole. A gzip body (`Content-Encoding: gzip`) is inflated and
//! forwarded as it is. It counts what it saw, including the `Authorization` headers and the
//! compressed bodies.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to the traffic; change it at any time.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Accept and close every connection at once.
    pub refuse: bool,
    /// Read each request, then close without answering.
    pub cut: bool,
    /// Forward each `_bulk` request to the engine, then close without answering (the engine
    /// has the documents; evtship does not know).
    pub swallow: bool,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// Answer every request with this status, without forwarding it.
    pub whole_status: Option<u16>,
    /// Fraction of `_bulk` items answered with one of `item_statuses` instead of forwarded.
    pub item_fault_rate: f64,
    /// Statuses for faulted items.
    pub item_statuses: Vec<u16>,
    /// Fraction of `_bulk` requests answered as a whole with `request_fault_status`.
    pub request_fault_rate: f64,
    /// The status of those answers (429 unless set).
    pub request_fault_status: Option<u16>,
}

/// Counters of what went through.
#[derive(Debug, Default)]
pub struct Seen {
    /// Requests received.
    pub requests: AtomicU64,
    /// `_bulk` items answered with a fault.
    pub faulted_items: AtomicU64,
    /// Connections refused or cut.
    pub dropped: AtomicU64,
    /// `_bulk` requests answered as a whole with a fault.
    pub faulted_requests: AtomicU64,
    /// `_bulk` requests whose body came gzipped.
    pub gzip_bodies: AtomicU64,
    /// Bytes of `_bulk` bodies as received.
    pub wire_bytes: AtomicU64,
    /// Bytes of `_bulk` bodies once inflated.
    pub body_bytes: AtomicU64,
    /// xxh3 of every `_bulk` body as received, in order.
    pub bodies: Mutex<Vec<u64>>,
}

/// A running proxy.
pub struct FaultProxy {
    /// Its URL.
    pub url: String,
    /// The faults in force.
    pub faults: Arc<Mutex<Faults>>,
    /// What it saw.
    pub seen: Arc<Seen>,
    /// `Authorization` headers received.
    pub authorizations: Arc<Mutex<Vec<String>>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (e.g. the engine's URL).
    pub fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let faults = Arc::new(Mutex::new(Faults::default()));
        let seen = Arc::new(Seen::default());
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let (f, s, a, up) = (
            faults.clone(),
            seen.clone(),
            authorizations.clone(),
            upstream.to_owned(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (f, s, a, up) = (f.clone(), s.clone(), a.clone(), up.clone());
                std::thread::spawn(move || serve(stream, &f, &s, &a, &up));
            }
        });
        Self {
            url,
            faults,
            seen,
            authorizations,
        }
    }

    /// Changes the faults.
    pub fn set(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.faults.lock().unwrap());
    }
}

/// One HTTP request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Headers in the order received.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one HTTP/1.1 request with a `Content-Length` body (what evtship's clients send).
pub fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_owned(), v.trim().to_owned());
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse().unwrap_or(0);
            }
            headers.push((k, v));
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

/// Writes a JSON answer.
pub fn respond(stream: &mut TcpStream, status: u16, body: &[u8]) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    stream.flush()
}

fn serve(
    stream: TcpStream,
    faults: &Mutex<Faults>,
    seen: &Seen,
    auth: &Mutex<Vec<String>>,
    upstream: &str,
) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        if faults.lock().unwrap().refuse {
            seen.dropped.fetch_add(1, SeqCst);
            return;
        }
        let Some(mut req) = read_request(&mut reader) else {
            return;
        };
        seen.requests.fetch_add(1, SeqCst);
        let bulk = req.method == "POST" && req.target.contains("_bulk");
        if bulk {
            inflate(&mut req, seen);
        }
        if let Some((_, v)) = req
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            auth.lock().unwrap().push(v.clone());
        }
        let f = faults.lock().unwrap().clone();
        if f.refuse || f.cut {
            seen.dropped.fetch_add(1, SeqCst);
            return;
        }
        if let Some(d) = f.delay {
            std::thread::sleep(d);
        }
        if let Some(status) = f.whole_status {
            let body =
                json!({"error": {"type": "fault_proxy", "reason": "injected"}, "status": status});
            if respond(&mut writer, status, body.to_string().as_bytes()).is_err() {
                return;
            }
            continue;
        }
        if bulk && f.request_fault_rate > 0.0 && fastrand::f64() < f.request_fault_rate {
            seen.faulted_requests.fetch_add(1, SeqCst);
            let status = f.request_fault_status.unwrap_or(429);
            let body =
                json!({"error": {"type": "fault_proxy", "reason": "injected"}, "status": status});
            if respond(&mut writer, status, body.to_string().as_bytes()).is_err() {
                return;
            }
            continue;
        }
        if bulk && f.swallow {
            forward(&client, upstream, &req, req.body.clone());
            seen.dropped.fetch_add(1, SeqCst);
            return;
        }
        let (status, body) = if bulk && f.item_fault_rate > 0.0 {
            bulk_with_faults(&client, upstream, &req, &f, seen)
        } else {
            forward(&client, upstream, &req, req.body.clone())
        };
        if respond(&mut writer, status, &body).is_err() {
            return;
        }
    }
}

/// Counts a `_bulk` body, and inflates it when it came gzipped.
fn inflate(req: &mut Request, seen: &Seen) {
    seen.wire_bytes.fetch_add(req.body.len() as u64, SeqCst);
    seen.bodies
        .lock()
        .unwrap()
        .push(xxhash_rust::xxh3::xxh3_64(&req.body));
    if req
        .header("content-encoding")
        .is_some_and(|e| e.eq_ignore_ascii_case("gzip"))
    {
        seen.gzip_bodies.fetch_add(1, SeqCst);
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&req.body[..])
            .read_to_end(&mut plain)
            .expect("a gzip body inflates");
        req.body = plain;
        req.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("content-encoding"));
    }
    seen.body_bytes.fetch_add(req.body.len() as u64, SeqCst);
}

fn forward(
    client: &reqwest::blocking::Client,
    upstream: &str,
    req: &Request,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap();
    let mut r = client
        .request(method, format!("{upstream}{}", req.target))
        .body(body);
    for (k, v) in &req.headers {
        if k.eq_ignore_ascii_case("content-type") {
            r = r.header(k, v);
        }
    }
    match r.send() {
        Ok(resp) => (
            resp.status().as_u16(),
            resp.bytes().map(|b| b.to_vec()).unwrap_or_default(),
        ),
        Err(e) => (
            502,
            json!({"error": e.to_string()}).to_string().into_bytes(),
        ),
    }
}

/// Answers some items itself with a fault; forwards the others, then merges both answers in
/// the order of the request.
fn bulk_with_faults(
    client: &reqwest::blocking::Client,
    upstream: &str,
    req: &Request,
    f: &Faults,
    seen: &Seen,
) -> (u16, Vec<u8>) {
    let text = String::from_utf8_lossy(&req.body);
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let pairs: Vec<(&str, &str)> = lines
        .chunks(2)
        .map(|c| (c[0], c.get(1).copied().unwrap_or("")))
        .collect();
    let faulted: Vec<Option<u16>> = pairs
        .iter()
        .map(|_| {
            (fastrand::f64() < f.item_fault_rate)
                .then(|| f.item_statuses[fastrand::usize(0..f.item_statuses.len())])
        })
        .collect();
    let mut forwarded = String::new();
    for ((a, d), fault) in pairs.iter().zip(&faulted) {
        if fault.is_none() {
            forwarded.push_str(a);
            forwarded.push('\n');
            forwarded.push_str(d);
            forwarded.push('\n');
        }
    }
    let mut answers: Vec<Value> = Vec::new();
    let mut errors = false;
    if !forwarded.is_empty() {
        let (status, body) = forward(client, upstream, req, forwarded.into_bytes());
        if status != 200 {
            return (status, body);
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        errors |= v["errors"].as_bool().unwrap_or(false);
        answers = v["items"].as_array().cloned().unwrap_or_default();
    }
    let mut answers = answers.into_iter();
    let items: Vec<Value> = faulted
        .iter()
        .map(|fault| match fault {
            Some(status) => {
                seen.faulted_items.fetch_add(1, SeqCst);
                errors = true;
                json!({"create": {"status": status, "error": {"type": "fault_proxy_rejection", "reason": format!("injected {status}")}}})
            }
            None => answers.next().unwrap_or(Value::Null),
        })
        .collect();
    (
        200,
        json!({"errors": errors, "items": items})
            .to_string()
            .into_bytes(),
    )
}
