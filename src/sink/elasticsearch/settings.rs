//! The settings of the Elasticsearch sink: how to reach the engine, and how documents are
//! grouped and sent (the `[elasticsearch]`, `[elasticsearch.tls]` and `[bulk]` sections, once
//! resolved).

use super::concurrency::Concurrency;
use crate::common::ByteSize;
use serde::Deserialize;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach and authenticate to the engine.
#[derive(Debug, Clone)]
pub struct EsSettings {
    /// Node URLs; user and password may be in them. Ignored with a `cloud_id`.
    pub urls: Vec<String>,
    /// Elastic Cloud id: the one node to use instead of `urls`.
    pub cloud_id: Option<String>,
    /// Basic-auth user.
    pub user: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
    /// API key as `id:key` or its base64 form.
    pub api_key: Option<String>,
    /// Bearer token.
    pub bearer_token: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// How long a batch run waits for the engine to answer at start before it gives up (a
    /// run with listeners, tail or Kafka waits without limit).
    pub startup_timeout: Duration,
    /// TLS settings.
    pub tls: TlsSettings,
    /// gzip level of `_bulk` bodies (0 = off).
    pub compression: super::CompressionLevel,
}

impl EsSettings {
    /// Where the documents go, credentials hidden, for messages and the summary.
    pub fn shown(&self) -> String {
        match &self.cloud_id {
            Some(id) => format!("Elastic Cloud {}", id.split(':').next().unwrap_or_default()),
            None => self
                .urls
                .iter()
                .map(|u| crate::redact::url(u))
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// The `[elasticsearch.tls]` section. By default the system's root certificates (and Mozilla's)
/// are trusted and the server's name is checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM file of the CA (or CAs) that signed the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// Check the server's certificate. `false` accepts any certificate: loudly warned.
    pub verify: bool,
    /// PEM file of a client certificate (with `client_key`), for clusters that require one.
    pub client_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub client_key: Option<PathBuf>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            ca_file: None,
            verify: true,
            client_cert: None,
            client_key: None,
        }
    }
}

/// The `[bulk]` section: how documents are grouped and sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BulkSettings {
    /// At most this many documents per `_bulk` request.
    pub max_events: NonZeroUsize,
    /// At most this many bytes per `_bulk` request (`"2MiB"`, the default, or a number of
    /// bytes). Each request in flight holds its body and the records in it: 2 MiB x 4 keeps a
    /// run under 64 MiB, as fast on a 2-core engine as 5 MiB (bench/run).
    pub max_bytes: ByteSize,
    /// Requests in flight at once: a number, or `"adaptive"` (found as the run goes, within
    /// `min_concurrency..=max_concurrency`; see the `concurrency` module).
    pub concurrency: ConcurrencySetting,
    /// The floor of an adaptive concurrency.
    pub min_concurrency: NonZeroUsize,
    /// The ceiling of an adaptive concurrency: at most this many requests are under way, each
    /// holding its body and its records.
    pub max_concurrency: NonZeroUsize,
    /// Retries of a retryable failure (429, 5xx, connection errors) before a record is
    /// dead-lettered.
    pub max_retries: u32,
    /// First retry delay in milliseconds; doubles each time, with jitter.
    pub initial_backoff_ms: NonZeroUsize,
    /// Longest retry delay in milliseconds.
    pub max_backoff_ms: NonZeroUsize,
    /// A partial request waits at most this long for more documents (milliseconds). In a live
    /// run (listeners, tail, Kafka) it goes at once when nothing else is queued and a request
    /// slot is free; a backfill of files fills its requests.
    pub flush_interval_ms: NonZeroUsize,
    /// After SIGINT/SIGTERM, records still being retried are given this long (milliseconds)
    /// to be delivered; then they are left without an outcome (unacknowledged, counted as
    /// unsettled) and the run ends.
    pub shutdown_grace_ms: NonZeroUsize,
    /// Send at most this many events per second (shared clusters); unlimited when unset.
    pub max_events_per_second: Option<std::num::NonZeroU32>,
    /// Send at most this many bytes per second (`"2MiB"` or a number); unlimited when unset.
    pub max_bytes_per_second: Option<ByteSize>,
}

impl Default for BulkSettings {
    fn default() -> Self {
        Self {
            max_events: NonZeroUsize::new(5000).expect("non-zero"),
            max_bytes: ByteSize(2 * 1024 * 1024),
            concurrency: ConcurrencySetting::Fixed(NonZeroUsize::new(4).expect("non-zero")),
            min_concurrency: NonZeroUsize::new(1).expect("non-zero"),
            max_concurrency: NonZeroUsize::new(16).expect("non-zero"),
            max_retries: 12,
            initial_backoff_ms: NonZeroUsize::new(200).expect("non-zero"),
            max_backoff_ms: NonZeroUsize::new(30_000).expect("non-zero"),
            flush_interval_ms: NonZeroUsize::new(200).expect("non-zero"),
            shutdown_grace_ms: NonZeroUsize::new(30_000).expect("non-zero"),
            max_events_per_second: None,
            max_bytes_per_second: None,
        }
    }
}

/// Largest `_bulk` request body: Elasticsearch refuses bodies over its
/// `http.max_content_length` (100 MB by default).
pub const MAX_BODY_BYTES: usize = 100 << 20;
/// Most requests in flight at once.
pub const MAX_CONCURRENCY: usize = 256;
/// Most documents in one request.
pub const MAX_EVENTS: usize = 1_000_000;

/// `concurrency` as written: a number of requests, or `"adaptive"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ConcurrencyText")]
pub enum ConcurrencySetting {
    /// This many requests in flight.
    Fixed(NonZeroUsize),
    /// `"adaptive"`: found as the run goes.
    Adaptive,
}

/// What a pipeline file may hold for `concurrency`.
#[derive(Deserialize)]
#[serde(untagged)]
enum ConcurrencyText {
    Number(i64),
    Word(String),
}

impl TryFrom<ConcurrencyText> for ConcurrencySetting {
    type Error = String;

    fn try_from(text: ConcurrencyText) -> Result<Self, String> {
        match text {
            ConcurrencyText::Number(n) => usize::try_from(n)
                .ok()
                .and_then(NonZeroUsize::new)
                .map(Self::Fixed)
                .ok_or_else(|| {
                    format!("{n} requests in flight: it takes 1 or more, or \"adaptive\"")
                }),
            ConcurrencyText::Word(w) => w.parse(),
        }
    }
}

impl ConcurrencySetting {
    /// The fixed number, if it is one.
    pub fn fixed(self) -> Option<NonZeroUsize> {
        match self {
            Self::Fixed(n) => Some(n),
            Self::Adaptive => None,
        }
    }
}

impl std::str::FromStr for ConcurrencySetting {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("adaptive") {
            return Ok(Self::Adaptive);
        }
        s.trim().parse().map(Self::Fixed).map_err(|_| {
            format!("`{s}` is neither a number of requests (1 or more) nor `adaptive`")
        })
    }
}

impl BulkSettings {
    /// The concurrency to run with.
    pub fn concurrency(&self) -> Concurrency {
        match self.concurrency {
            ConcurrencySetting::Fixed(n) => Concurrency::Fixed(n.get()),
            ConcurrencySetting::Adaptive => Concurrency::Adaptive {
                min: self.min_concurrency.get(),
                max: self.max_concurrency.get(),
            },
        }
    }

    /// How many encoded chunks wait for the sink: two per request in flight (of the ceiling's
    /// quarter, when adaptive).
    pub fn queue_depth(&self) -> usize {
        match self.concurrency() {
            Concurrency::Fixed(n) => n * 2,
            Concurrency::Adaptive { max, .. } => (max / 4).max(1) * 2,
        }
    }

    /// Checks what the sink would trip on: bounds, and backoffs in order. The error names the
    /// setting (`bulk.<name>`) and what is wrong.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.max_bytes.0 > MAX_BODY_BYTES {
            return Err((
                "bulk.max_bytes",
                format!(
                    "{} bytes is more than {MAX_BODY_BYTES} (100MiB): Elasticsearch refuses \
                     larger requests (http.max_content_length), and each request in flight \
                     holds its body",
                    self.max_bytes.0
                ),
            ));
        }
        for (name, n) in [
            (
                "bulk.concurrency",
                self.concurrency.fixed().map_or(0, NonZeroUsize::get),
            ),
            ("bulk.max_concurrency", self.max_concurrency.get()),
        ] {
            if n > MAX_CONCURRENCY {
                return Err((
                    name,
                    format!("{n} requests in flight is more than {MAX_CONCURRENCY}"),
                ));
            }
        }
        if self.min_concurrency > self.max_concurrency {
            return Err((
                "bulk.min_concurrency",
                format!(
                    "{} is more than max_concurrency ({})",
                    self.min_concurrency, self.max_concurrency
                ),
            ));
        }
        if self.max_events.get() > MAX_EVENTS {
            return Err((
                "bulk.max_events",
                format!(
                    "{} documents per request is more than {MAX_EVENTS}",
                    self.max_events
                ),
            ));
        }
        if self.initial_backoff_ms > self.max_backoff_ms {
            return Err((
                "bulk.initial_backoff_ms",
                format!(
                    "{} ms is more than max_backoff_ms ({} ms)",
                    self.initial_backoff_ms, self.max_backoff_ms
                ),
            ));
        }
        Ok(())
    }
}
