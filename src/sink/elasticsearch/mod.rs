//! The Elasticsearch / OpenSearch sink: connection, template, bulk requests with retries.

mod bulk;
pub mod cloud;
pub mod template;

pub use bulk::BulkSink;

use crate::config::Pipeline;
use crate::redact;
use elasticsearch::auth::{ClientCertificate, Credentials};
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::indices::IndicesPutIndexTemplateParts;
use elasticsearch::Elasticsearch;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Why the sink could not connect or had to stop.
#[derive(Debug, Error)]
pub enum EsError {
    /// The URL or credentials are unusable.
    #[error("cannot use {url}: {message}")]
    Setup {
        /// The URL, credentials hidden.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The engine could not be reached.
    #[error("cannot reach {url}: {message}")]
    Unreachable {
        /// The URL, credentials hidden.
        url: String,
        /// The transport's message.
        message: String,
    },
    /// The engine refused a request in a way retrying cannot fix (401, 403, 400 on the whole
    /// request, ...).
    #[error("{what} failed with HTTP {status}: {body}")]
    Refused {
        /// The request.
        what: String,
        /// HTTP status.
        status: u16,
        /// Start of the response body.
        body: String,
    },
}

/// What `GET /` said about the server.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// `elasticsearch` or `opensearch`.
    pub distribution: String,
    /// Version number.
    pub version: String,
}

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

/// Clients of every configured node, with failover: requests go to the current node; a node
/// whose connection fails is skipped for [`DEAD_FOR`], then tried again.
#[derive(Debug)]
pub struct EsClient {
    nodes: Vec<Node>,
    current: AtomicUsize,
    dead_until: Mutex<Vec<Option<Instant>>>,
    /// The URLs, credentials hidden, for messages.
    pub shown_url: String,
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

fn credentials(p: &Pipeline, from_url: Option<(String, String)>) -> Option<Credentials> {
    let es = &p.elasticsearch;
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

impl EsClient {
    /// Builds clients for the pipeline's nodes (nothing is sent yet).
    pub fn new(p: &Pipeline) -> Result<Self, EsError> {
        let urls = match &p.elasticsearch.cloud_id {
            Some(id) => vec![
                cloud::decode(id)
                    .map_err(|message| EsError::Setup {
                        url: "the Cloud ID".into(),
                        message: format!("invalid Cloud ID: {message}"),
                    })?
                    .elasticsearch,
            ],
            None => p.urls(),
        };
        let nodes = urls
            .iter()
            .map(|u| Self::node(p, u))
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

    fn node(p: &Pipeline, configured: &str) -> Result<Node, EsError> {
        let timeout = Duration::from_secs(
            p.elasticsearch
                .timeout_seconds
                .map_or(120, |t| t.get() as u64),
        );
        let (url, userinfo) = split_userinfo(configured);
        let shown_url = redact::url(configured);
        let parsed = elasticsearch::http::Url::parse(&url).map_err(|e| EsError::Setup {
            url: shown_url.clone(),
            message: e.to_string(),
        })?;
        // Proxies come from the standard environment variables (HTTPS_PROXY, NO_PROXY, ...).
        let mut builder =
            TransportBuilder::new(SingleNodeConnectionPool::new(parsed)).timeout(timeout);
        let setup = |message: String| EsError::Setup {
            url: shown_url.clone(),
            message,
        };
        let tls = &p.elasticsearch.tls;
        if let Some(ca) = &tls.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| setup(format!("cannot read the CA file {}: {e}", ca.display())))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                setup(format!(
                    "the CA file {} holds no PEM certificate: {e}",
                    ca.display()
                ))
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
        let header_credentials = credentials(p, userinfo);
        match (&tls.client_cert, &tls.client_key, header_credentials) {
            (Some(cert), Some(key), None) => {
                let mut pem = std::fs::read(cert).map_err(|e| {
                    setup(format!(
                        "cannot read the client certificate {}: {e}",
                        cert.display()
                    ))
                })?;
                pem.extend(std::fs::read(key).map_err(|e| {
                    setup(format!("cannot read the client key {}: {e}", key.display()))
                })?);
                builder = builder.auth(Credentials::Certificate(ClientCertificate::Pem(pem)));
            }
            (Some(_), Some(_), Some(_)) => {
                return Err(setup(
                    "a client certificate cannot be combined with a password, API key or token \
                     in this client; use one of them"
                        .into(),
                ))
            }
            (_, _, Some(creds)) => builder = builder.auth(creds),
            _ => {}
        }
        let transport = builder.build().map_err(|e| EsError::Setup {
            url: shown_url.clone(),
            message: e.to_string(),
        })?;
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
            let sent = node.client.info().send().await;
            let got = match sent {
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
                Err(e) => {
                    last = Some(EsError::Unreachable {
                        url: node.shown_url.clone(),
                        message: error_chain(&e),
                    });
                    self.failed(i);
                }
            }
        }
        let Some((status, body)) = answer else {
            return Err(last.expect("at least one node"));
        };
        if !(200..300).contains(&status) {
            return Err(refused("GET /", status, &body));
        }
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let info = ServerInfo {
            distribution: v["version"]["distribution"]
                .as_str()
                .unwrap_or("elasticsearch")
                .to_owned(),
            version: v["version"]["number"].as_str().unwrap_or("?").to_owned(),
        };
        // No product check refuses anything: Elasticsearch 7.10+ and OpenSearch 1 to 3 are
        // known to work; anything else gets one line and a try.
        let major_minor = |v: &str| {
            let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            (it.next().unwrap_or(0), it.next().unwrap_or(0))
        };
        let known = match info.distribution.as_str() {
            "opensearch" => (1..=3).contains(&major_minor(&info.version).0),
            _ => major_minor(&info.version) >= (7, 10),
        };
        if !known {
            tracing::warn!(
                "{} {} is not a version evtship was made for (Elasticsearch 7.10+, OpenSearch 1-3); trying anyway",
                info.distribution,
                info.version
            );
        }
        Ok(info)
    }

    /// Installs or updates the pipeline's index template, for the server `info` describes.
    pub async fn install_template(&self, p: &Pipeline, info: &ServerInfo) -> Result<(), EsError> {
        let name = p.template_name();
        let flavor = template::Flavor::of(&info.distribution, &info.version);
        if p.template.ilm_policy.is_some() && flavor != template::Flavor::Elasticsearch {
            tracing::warn!(
                "ILM is an Elasticsearch feature: ilm_policy is not applied on {} (use an ISM policy there)",
                info.distribution
            );
        }
        let features = template::Features {
            ecs: p.transform.ecs,
            flavor,
            data_stream: p.elasticsearch.data_stream == Some(true),
        };
        let body = template::body(&p.index, &p.template, features);
        let (_, node) = self.pick();
        let response = node
            .client
            .indices()
            .put_index_template(IndicesPutIndexTemplateParts::Name(&name))
            .body(body)
            .send()
            .await
            .map_err(|e| EsError::Unreachable {
                url: node.shown_url.clone(),
                message: error_chain(&e),
            })?;
        let status = response.status_code().as_u16();
        if !(200..300).contains(&status) {
            let body = response.text().await.unwrap_or_default();
            return Err(refused(
                &format!("installing index template {name}"),
                status,
                &body,
            ));
        }
        Ok(())
    }
}

impl EsClient {
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
        let unreachable = |e: &dyn std::error::Error| EsError::Unreachable {
            url: node.shown_url.clone(),
            message: error_chain(e),
        };
        let response = sent.map_err(|e| {
            self.failed(i);
            unreachable(&e)
        })?;
        let status = response.status_code().as_u16();
        let text = response.text().await.map_err(|e| unreachable(&e))?;
        Ok((status, text))
    }
}

/// An error and its causes on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

pub(crate) fn refused(what: &str, status: u16, body: &str) -> EsError {
    let mut shown: String = body.chars().take(500).collect();
    if shown.len() < body.len() {
        shown.push('…');
    }
    EsError::Refused {
        what: what.to_owned(),
        status,
        body: shown,
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
