//! The Elasticsearch / OpenSearch sink: connection ([`client`]), index template
//! ([`template`]), `_bulk` requests with retries ([`bulk`], [`retry`]), and settings.

mod batch;
pub mod bulk;
pub mod client;
pub mod cloud;
pub mod compress;
pub mod concurrency;
pub mod retry;
pub mod settings;
pub mod template;

pub use bulk::BulkSink;
pub use client::{EsClient, Node};
pub use compress::CompressionLevel;
pub use concurrency::Concurrency;
pub use settings::{BulkSettings, ConcurrencySetting, EsSettings, TlsSettings};

use std::path::PathBuf;
use thiserror::Error;

/// Why the sink could not connect or had to stop.
#[derive(Debug, Error)]
pub enum EsError {
    /// The URL, credentials or TLS files are unusable.
    #[error("cannot use {url}: {problem}")]
    Setup {
        /// The URL, credentials hidden.
        url: String,
        /// What is wrong.
        #[source]
        problem: SetupError,
    },
    /// The engine could not be reached.
    #[error("cannot reach {url}")]
    Unreachable {
        /// The URL, credentials hidden.
        url: String,
        /// The transport's error.
        #[source]
        source: elasticsearch::Error,
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

impl EsError {
    /// A refusal, with the first 500 characters of the body.
    pub(crate) fn refused(what: &str, status: u16, body: &str) -> Self {
        let mut shown: String = body.chars().take(500).collect();
        if shown.len() < body.len() {
            shown.push('…');
        }
        Self::Refused {
            what: what.to_owned(),
            status,
            body: shown,
        }
    }
}

/// What is wrong with the connection settings.
#[derive(Debug, Error)]
pub enum SetupError {
    /// The Cloud ID does not decode.
    #[error("invalid Cloud ID: {0}")]
    CloudId(String),
    /// The URL does not parse.
    #[error("invalid URL")]
    Url(#[from] url::ParseError),
    /// A file named by the TLS settings cannot be read.
    #[error("cannot read {what} {}", path.display())]
    Read {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The CA file holds no PEM certificate.
    #[error("the CA file {} holds no PEM certificate", path.display())]
    Pem {
        /// Its path.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: elasticsearch::Error,
    },
    /// This client cannot send a client certificate and a password, key or token together.
    #[error(
        "a client certificate cannot be combined with a password, API key or token in this \
         client; use one of them"
    )]
    CertificateAndSecret,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Transport(#[source] elasticsearch::http::transport::BuildError),
}

/// What `GET /` said about the server.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// `elasticsearch` or `opensearch`.
    pub distribution: String,
    /// Version number.
    pub version: String,
}

impl ServerInfo {
    /// Reads the body of `GET /`.
    pub fn from_root(body: &str) -> Self {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        Self {
            distribution: v["version"]["distribution"]
                .as_str()
                .unwrap_or("elasticsearch")
                .to_owned(),
            version: v["version"]["number"].as_str().unwrap_or("?").to_owned(),
        }
    }

    /// No product check refuses anything: Elasticsearch 7.10+ and OpenSearch 1 to 3 are known
    /// to work; anything else gets one line and a try.
    pub fn warn_if_unknown(&self) {
        let major_minor = |v: &str| {
            let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            (it.next().unwrap_or(0), it.next().unwrap_or(0))
        };
        let known = match self.distribution.as_str() {
            "opensearch" => (1..=3).contains(&major_minor(&self.version).0),
            _ => major_minor(&self.version) >= (7, 10),
        };
        if !known {
            tracing::warn!(
                "{} {} is not a version evtship was made for (Elasticsearch 7.10+, OpenSearch 1-3); trying anyway",
                self.distribution,
                self.version
            );
        }
    }
}
