//! The Elasticsearch / OpenSearch sink: connection, template, bulk requests with retries.

mod bulk;
pub mod cloud;
pub mod template;

pub use bulk::BulkSink;

use crate::config::Pipeline;
use crate::redact;
use elasticsearch::auth::Credentials;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::indices::IndicesPutIndexTemplateParts;
use elasticsearch::Elasticsearch;
use std::time::Duration;
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

/// A connected client.
#[derive(Debug, Clone)]
pub struct EsClient {
    /// The client.
    pub client: Elasticsearch,
    /// The URL, credentials hidden, for messages.
    pub shown_url: String,
}

/// Splits `user:password@` off a URL.
fn split_userinfo(url: &str) -> (String, Option<(String, String)>) {
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
    /// Builds a client for the pipeline's engine (nothing is sent yet).
    pub fn new(p: &Pipeline) -> Result<Self, EsError> {
        let timeout = Duration::from_secs(
            p.elasticsearch
                .timeout_seconds
                .map_or(120, |t| t.get() as u64),
        );
        let cloud = match &p.elasticsearch.cloud_id {
            Some(id) => Some(cloud::decode(id).map_err(|message| EsError::Setup {
                url: "the Cloud ID".into(),
                message: format!("invalid Cloud ID: {message}"),
            })?),
            None => None,
        };
        let configured = match &cloud {
            Some(c) => c.elasticsearch.clone(),
            None => p.url().to_owned(),
        };
        let (url, userinfo) = split_userinfo(&configured);
        let shown_url = redact::url(&configured);
        let parsed = elasticsearch::http::Url::parse(&url).map_err(|e| EsError::Setup {
            url: shown_url.clone(),
            message: e.to_string(),
        })?;
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(parsed))
            .timeout(timeout)
            .disable_proxy();
        if let Some(creds) = credentials(p, userinfo) {
            builder = builder.auth(creds);
        }
        let transport = builder.build().map_err(|e| EsError::Setup {
            url: shown_url.clone(),
            message: e.to_string(),
        })?;
        Ok(Self {
            client: Elasticsearch::new(transport),
            shown_url,
        })
    }

    /// `GET /`: checks the engine answers and says what it is.
    pub async fn server_info(&self) -> Result<ServerInfo, EsError> {
        let response = self
            .client
            .info()
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status_code().as_u16();
        let body = response.text().await.map_err(|e| self.unreachable(&e))?;
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
        let response = self
            .client
            .indices()
            .put_index_template(IndicesPutIndexTemplateParts::Name(&name))
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
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

    fn unreachable(&self, e: &elasticsearch::Error) -> EsError {
        EsError::Unreachable {
            url: self.shown_url.clone(),
            message: error_chain(e),
        }
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
