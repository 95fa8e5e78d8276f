//! Clients of every configured node, with failover: requests go to the current node; a node
//! whose connection fails is skipped for a while, then tried again.

use super::compress::Body;
use super::retry::SendError;
use super::settings::EsSettings;
use super::{cloud, EsError, ServerInfo, SetupError};
use crate::redact;
use elasticsearch::auth::{ClientCertificate, Credentials};
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::Method;
use elasticsearch::Elasticsearch;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One node of the cluster.
#[derive(Debug, Clone)]
pub struct Node {
    /// The client.
    pub client: Elasticsearch,
    /// The URL, credentials hidden, for messages.
    pub shown_url: String,
}

/// How long a node that failed is skipped.
const DEAD_FOR: Duration = Duration::from_secs(30);

/// What `_bulk` answers are asked to hold: the item statuses and errors, nothing else.
const FILTER_PATH: &str = "errors,items.*.status,items.*.error";

/// Clients of every configured node, with failover.
#[derive(Debug)]
pub struct EsClient {
    nodes: Vec<Node>,
    current: AtomicUsize,
    dead_until: Mutex<Vec<Option<Instant>>>,
    /// The URLs, credentials hidden, for messages.
    pub shown_url: String,
    /// gzip level of `_bulk` bodies.
    pub compression: super::CompressionLevel,
}

/// Splits `user:password@` off a URL.
pub(crate) fn split_userinfo(url: &str) -> (String, Option<(String, String)>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => {
            let info = &rest[..at];
            let (user, pass) = info.split_once(':').unwrap_or((info, ""));
            (
                format!("{scheme}://{}", &rest[at + 1..]),
                Some((percent_decode(user), percent_decode(pass))),
            )
        }
        None => (url.to_owned(), None),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn credentials(es: &EsSettings, from_url: Option<(String, String)>) -> Option<Credentials> {
    if let Some(key) = &es.api_key {
        return Some(Credentials::AuthorizationHeader(cloud::api_key_header(key)));
    }
    if let Some(token) = &es.bearer_token {
        return Some(Credentials::Bearer(token.clone()));
    }
    if let Some(user) = &es.user {
        return Some(Credentials::Basic(
            user.clone(),
            es.password.clone().unwrap_or_default(),
        ));
    }
    from_url.map(|(u, p)| Credentials::Basic(u, p))
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, SetupError> {
    std::fs::read(path).map_err(|source| SetupError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

impl EsClient {
    /// Builds clients for the configured nodes (nothing is sent yet).
    pub fn new(es: &EsSettings) -> Result<Self, EsError> {
        let urls = match &es.cloud_id {
            Some(id) => vec![
                cloud::decode(id)
                    .map_err(|message| EsError::Setup {
                        url: "the Cloud ID".into(),
                        problem: SetupError::CloudId(message),
                    })?
                    .elasticsearch,
            ],
            None => es.urls.clone(),
        };
        let nodes = urls
            .iter()
            .map(|u| Self::node(es, u))
            .collect::<Result<Vec<_>, _>>()?;
        let shown_url = nodes
            .iter()
            .map(|n| n.shown_url.as_str())
            .collect::<Vec<_>>()
            .join(",");
        Ok(Self {
            dead_until: Mutex::new(vec![None; nodes.len()]),
            nodes,
            current: AtomicUsize::new(0),
            shown_url,
            compression: es.compression,
        })
    }

    /// The node to send to now, and its position.
    pub fn pick(&self) -> (usize, &Node) {
        let now = Instant::now();
        let dead = self.dead_until.lock().unwrap_or_else(|e| e.into_inner());
        let start = self.current.load(Relaxed);
        let n = self.nodes.len();
        let i = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| dead[i].is_none_or(|until| until <= now))
            .unwrap_or(start);
        (i, &self.nodes[i])
    }

    /// The connection to node `i` failed: skip it for a while.
    pub fn failed(&self, i: usize) {
        if self.nodes.len() < 2 {
            return;
        }
        let mut dead = self.dead_until.lock().unwrap_or_else(|e| e.into_inner());
        if dead[i].is_some_and(|until| until > Instant::now()) {
            return;
        }
        dead[i] = Some(Instant::now() + DEAD_FOR);
        let next = (i + 1) % self.nodes.len();
        if self
            .current
            .compare_exchange(i, next, Relaxed, Relaxed)
            .is_ok()
        {
            tracing::warn!(
                "{} does not answer; switching to {} (retried in {} s)",
                self.nodes[i].shown_url,
                self.nodes[next].shown_url,
                DEAD_FOR.as_secs()
            );
        }
    }

    fn node(es: &EsSettings, configured: &str) -> Result<Node, EsError> {
        let (url, userinfo) = split_userinfo(configured);
        let shown_url = redact::url(configured);
        let setup = |problem: SetupError| EsError::Setup {
            url: shown_url.clone(),
            problem,
        };
        let parsed = elasticsearch::http::Url::parse(&url).map_err(|e| setup(e.into()))?;
        // Proxies come from the standard environment variables (HTTPS_PROXY, NO_PROXY, ...).
        let mut builder =
            TransportBuilder::new(SingleNodeConnectionPool::new(parsed)).timeout(es.timeout);
        let tls = &es.tls;
        if let Some(ca) = &tls.ca_file {
            let pem = read_file("the CA file", ca).map_err(setup)?;
            let cert = Certificate::from_pem(&pem).map_err(|source| {
                setup(SetupError::Pem {
                    path: ca.clone(),
                    source,
                })
            })?;
            builder = builder.cert_validation(CertificateValidation::Full(cert));
        }
        if !tls.verify {
            tracing::warn!(
                "TLS certificate verification is OFF for {shown_url} (tls.verify = false): \
                 anyone on the path can read and change what is sent"
            );
            builder = builder.cert_validation(CertificateValidation::None);
        }
        match (&tls.client_cert, &tls.client_key, credentials(es, userinfo)) {
            (Some(cert), Some(key), None) => {
                let mut pem = read_file("the client certificate", cert).map_err(setup)?;
                pem.extend(read_file("the client key", key).map_err(setup)?);
                builder = builder.auth(Credentials::Certificate(ClientCertificate::Pem(pem)));
            }
            (Some(_), Some(_), Some(_)) => return Err(setup(SetupError::CertificateAndSecret)),
            (_, _, Some(creds)) => builder = builder.auth(creds),
            _ => {}
        }
        let transport = builder
            .build()
            .map_err(|e| setup(SetupError::Transport(e)))?;
        Ok(Node {
            client: Elasticsearch::new(transport),
            shown_url,
        })
    }

    /// `GET /`: checks that a node answers (trying each in turn) and says what it is.
    pub async fn server_info(&self) -> Result<ServerInfo, EsError> {
        let mut last = None;
        let mut answer = None;
        for _ in 0..self.nodes.len() {
            let (i, node) = self.pick();
            let got = match node.client.info().send().await {
                Ok(r) => {
                    let status = r.status_code().as_u16();
                    r.text().await.map(|b| (status, b))
                }
                Err(e) => Err(e),
            };
            match got {
                Ok(a) => {
                    answer = Some(a);
                    break;
                }
                Err(source) => {
                    last = Some(EsError::Unreachable {
                        url: node.shown_url.clone(),
                        source,
                    });
                    self.failed(i);
                }
            }
        }
        let Some((status, body)) = answer else {
            return Err(last.expect("at least one node"));
        };
        if !(200..300).contains(&status) {
            return Err(EsError::refused("GET /", status, &body));
        }
        let info = ServerInfo::from_root(&body);
        info.warn_if_unknown();
        Ok(info)
    }

    /// Sends one `_bulk` body; the answer's status and body, or why there is none.
    pub(super) async fn bulk(&self, body: &Body) -> Result<(u16, Vec<u8>), SendError> {
        let (node_index, node) = self.pick();
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        if body.gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        // A `Bytes` body is handed to the HTTP client as it is, without a copy.
        let sent = node
            .client
            .send(
                Method::Post,
                "/_bulk",
                headers,
                Some(&[("filter_path", FILTER_PATH)]),
                Some(body.wire.clone()),
                None,
            )
            .await;
        let response = sent.map_err(|source| {
            self.failed(node_index);
            SendError::Connection {
                node: node.shown_url.clone(),
                source,
            }
        })?;
        let status = response.status_code().as_u16();
        let text = response.bytes().await.map_err(SendError::Response)?;
        Ok((status, text.to_vec()))
    }

    /// Sends one JSON request to the current node and returns the status and body text.
    /// Transport failures are errors; HTTP statuses are the caller's to judge.
    pub async fn request(
        &self,
        method: elasticsearch::http::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, String), EsError> {
        let (i, node) = self.pick();
        let sent = node
            .client
            .send(
                method,
                path,
                elasticsearch::http::headers::HeaderMap::new(),
                Option::<&()>::None,
                body.map(|b| elasticsearch::http::request::JsonBody::new(b.clone())),
                None,
            )
            .await;
        let unreachable = |source| EsError::Unreachable {
            url: node.shown_url.clone(),
            source,
        };
        let response = sent.map_err(|e| {
            self.failed(i);
            unreachable(e)
        })?;
        let status = response.status_code().as_u16();
        let text = response.text().await.map_err(unreachable)?;
        Ok((status, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_split_and_decoded() {
        let (url, info) = split_userinfo("https://elastic:p%40ss@host:9243/");
        assert_eq!(url, "https://host:9243/");
        assert_eq!(info, Some(("elastic".into(), "p@ss".into())));
        assert_eq!(split_userinfo("http://h:1").1, None);
    }
}
