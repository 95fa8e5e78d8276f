//! `_bulk` requests: grouping documents by count and bytes, several requests in flight, and the
//! outcome of every item.
//!
//! Per item: 2xx is indexed; 409 (the id exists, `create` refused) is a duplicate; 429 and 5xx
//! are sent again after an exponential backoff with jitter; anything else goes to the dead letter
//! queue with the engine's reason. A whole request that fails with a connection error, a
//! timeout, 429 or 5xx is sent again the same way. After `max_retries` retries the records still
//! undelivered are dead-lettered: never dropped. A whole request refused for good (401, 403, a
//! malformed request) stops the run.

use super::{error_chain, refused, EsClient, EsError};
use crate::config::BulkSection;
use crate::sink::rate::RateLimits;
use crate::sink::Accounting;
use crate::transform::EncodedChunk;
use bytes::Bytes;
use elasticsearch::http::headers::{HeaderMap, HeaderValue, CONTENT_TYPE};
use elasticsearch::http::Method;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Only what evtship reads of a `_bulk` response.
const FILTER_PATH: &str = "errors,items.*.status,items.*.error";

/// One document of a request: its chunk (for accounting and the dead letter queue) and where
/// its action and document lines are in the request body.
#[derive(Debug, Clone)]
struct Item {
    chunk: Arc<EncodedChunk>,
    doc: usize,
    span: Range<usize>,
}

impl Item {
    fn line(&self) -> usize {
        self.chunk.docs[self.doc].line
    }
}

/// A `_bulk` request being filled: the body is written once, at its final size, and sent as it
/// is. Chunks give up their encoded bytes as soon as these are copied here, so that a request
/// in flight holds its body and the raw records of its documents, no more.
#[derive(Debug)]
struct Batch {
    body: Vec<u8>,
    items: Vec<Item>,
}

impl Batch {
    fn new(max_bytes: usize, max_events: usize) -> Self {
        Self {
            body: Vec::with_capacity(max_bytes),
            items: Vec::with_capacity(max_events),
        }
    }

    fn push(&mut self, chunk: &Arc<EncodedChunk>, doc: usize, lines: &[u8]) {
        let start = self.body.len();
        self.body.extend_from_slice(lines);
        self.items.push(Item {
            chunk: chunk.clone(),
            doc,
            span: start..self.body.len(),
        });
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The request, the body frozen for sending (and slicing, should items be retried).
    fn freeze(self) -> (Bytes, Vec<Item>) {
        (Bytes::from(self.body), self.items)
    }
}

/// The body of a retry: only the items sent again, copied out of the previous body.
fn retry_body(previous: &Bytes, items: Vec<Item>) -> (Bytes, Vec<Item>) {
    let size = items.iter().map(|i| i.span.len()).sum();
    let mut batch = Batch {
        body: Vec::with_capacity(size),
        items: Vec::with_capacity(items.len()),
    };
    for item in items {
        let lines = &previous[item.span.clone()];
        batch.push(&item.chunk, item.doc, lines);
    }
    batch.freeze()
}

#[derive(Debug, Deserialize)]
struct BulkResponse {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<HashMap<String, ItemResult>>,
}

#[derive(Debug, Deserialize)]
struct ItemResult {
    status: u16,
    #[serde(default)]
    error: Option<Value>,
}

/// Why a request or item is being retried.
#[derive(Debug)]
struct Retry {
    items: Vec<Item>,
    reason: String,
    /// Short label of the cause, for metrics: `connection`, `response`, `request_503`,
    /// `item_429`.
    cause: String,
}

/// Sends documents to the engine in `_bulk` requests.
#[derive(Debug)]
pub struct BulkSink {
    client: EsClient,
    settings: BulkSection,
    /// `None`: retry without limit (tail mode).
    max_retries: Option<u32>,
    limits: RateLimits,
}

fn retryable(status: u16) -> bool {
    status == 429 || status >= 500
}

/// Delay before retry number `attempt` (1-based): doubling from the initial delay up to the cap,
/// with "equal jitter" (half fixed, half random) so that retries of many requests spread out.
fn backoff(settings: &BulkSection, attempt: u32) -> Duration {
    let initial = settings.initial_backoff_ms.get() as u64;
    let cap = settings.max_backoff_ms.get() as u64;
    let exp = initial.saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
    let ceiling = exp.min(cap);
    let half = ceiling / 2;
    Duration::from_millis(half + fastrand::u64(0..=half.max(1)))
}

fn item_reason(error: Option<&Value>, status: u16) -> String {
    match error {
        Some(e) => {
            let kind = e["type"].as_str().unwrap_or("error");
            let reason = e["reason"].as_str().unwrap_or_default();
            let cause = e["caused_by"]["reason"].as_str();
            match cause {
                Some(c) => format!("{kind}: {reason} ({c})"),
                None => format!("{kind}: {reason}"),
            }
        }
        None => format!("HTTP {status}"),
    }
}

impl BulkSink {
    /// A sink over a connected client. With `retry_forever` (tail mode) retryable failures are
    /// retried without limit; otherwise `max_retries` times, then dead-lettered.
    pub fn new(client: EsClient, settings: BulkSection, retry_forever: bool) -> Self {
        let limits = RateLimits::new(
            settings.max_events_per_second,
            settings
                .max_bytes_per_second
                .and_then(|b| std::num::NonZeroU32::new(b.0.min(u32::MAX as usize) as u32)),
        );
        Self {
            max_retries: (!retry_forever).then_some(settings.max_retries),
            client,
            settings,
            limits,
        }
    }

    /// Sends every chunk received until the channel closes, then waits for every request.
    pub async fn run(
        self,
        rx: flume::Receiver<EncodedChunk>,
        acct: Arc<Accounting>,
    ) -> Result<(), EsError> {
        let me = Arc::new(self);
        let permits = Arc::new(Semaphore::new(me.settings.concurrency.get()));
        let mut tasks: JoinSet<Result<(), EsError>> = JoinSet::new();
        let (max_events, max_bytes) = me
            .limits
            .cap(me.settings.max_events.get(), me.settings.max_bytes.0);
        let flush_after = Duration::from_millis(me.settings.flush_interval_ms.get() as u64);
        let mut batch = Batch::new(max_bytes, max_events);
        // A partial batch waits at most `flush_after` for more documents (tail mode latency).
        let mut deadline = tokio::time::Instant::now();
        loop {
            let received = if batch.is_empty() {
                rx.recv_async().await
            } else {
                tokio::select! {
                    r = rx.recv_async() => r,
                    () = tokio::time::sleep_until(deadline) => {
                        let partial = std::mem::replace(&mut batch, Batch::new(max_bytes, max_events));
                        me.dispatch(partial, &permits, &mut tasks, &acct).await?;
                        continue;
                    }
                }
            };
            let Ok(chunk) = received else { break };
            acct.reject_unparsable(&chunk);
            if chunk.docs.is_empty() {
                acct.outcome(&chunk, 0);
                continue;
            }
            // The encoded bytes leave the chunk: they are copied into request bodies below,
            // and the chunk lives on (raw records, outcome counter) only for accounting.
            let mut chunk = chunk;
            let encoded = std::mem::take(&mut chunk.buf);
            let chunk = Arc::new(chunk);
            for doc in 0..chunk.docs.len() {
                let lines = &encoded[chunk.docs[doc].bulk.clone()];
                if !batch.is_empty()
                    && (batch.items.len() >= max_events
                        || batch.body.len() + lines.len() > max_bytes)
                {
                    let full = std::mem::replace(&mut batch, Batch::new(max_bytes, max_events));
                    me.dispatch(full, &permits, &mut tasks, &acct).await?;
                }
                if batch.is_empty() {
                    deadline = tokio::time::Instant::now() + flush_after;
                }
                batch.push(&chunk, doc, lines);
            }
            drop(encoded);
            while let Some(done) = tasks.try_join_next() {
                flatten(done)?;
            }
        }
        if !batch.is_empty() {
            me.dispatch(batch, &permits, &mut tasks, &acct).await?;
        }
        while let Some(done) = tasks.join_next().await {
            flatten(done)?;
        }
        Ok(())
    }

    async fn dispatch(
        self: &Arc<Self>,
        batch: Batch,
        permits: &Arc<Semaphore>,
        tasks: &mut JoinSet<Result<(), EsError>>,
        acct: &Arc<Accounting>,
    ) -> Result<(), EsError> {
        self.limits
            .acquire(batch.items.len(), batch.body.len())
            .await;
        // Waiting for a permit is the backpressure: readers pause while requests are in flight.
        let permit = permits.clone().acquire_owned().await.expect("never closed");
        let me = self.clone();
        let acct = acct.clone();
        let (body, items) = batch.freeze();
        tasks.spawn(async move {
            let result = me.deliver(body, items, &acct).await;
            drop(permit);
            result
        });
        // Surface a fatal error from an earlier request without waiting for the end.
        while let Some(done) = tasks.try_join_next() {
            flatten(done)?;
        }
        Ok(())
    }

    /// Sends one batch until every item has an outcome.
    async fn deliver(
        &self,
        mut body: Bytes,
        mut items: Vec<Item>,
        acct: &Accounting,
    ) -> Result<(), EsError> {
        let mut attempt = 0u32;
        loop {
            let Some(retry) = self.send(&body, items, acct).await? else {
                return Ok(());
            };
            attempt += 1;
            if let Some(limit) = self.max_retries.filter(|limit| attempt > *limit) {
                let reason = format!("gave up after {limit} retries: {}", retry.reason);
                tracing::error!("{} records: {reason}", retry.items.len());
                for item in &retry.items {
                    acct.dead_letter(&item.chunk, item.line(), &reason, None, None);
                    acct.outcome(&item.chunk, 1);
                }
                return Ok(());
            }
            acct.stats.retried(&retry.cause, retry.items.len() as u64);
            let delay = backoff(&self.settings, attempt);
            let of = self
                .max_retries
                .map_or_else(|| "no limit".to_owned(), |m| m.to_string());
            tracing::warn!(
                "{} records to retry in {:.1} s (attempt {attempt} of {of}): {}",
                retry.items.len(),
                delay.as_secs_f64(),
                retry.reason
            );
            tokio::time::sleep(delay).await;
            (body, items) = retry_body(&body, retry.items);
        }
    }

    /// One `_bulk` request; returns the items to send again, if any.
    async fn send(
        &self,
        body: &Bytes,
        items: Vec<Item>,
        acct: &Accounting,
    ) -> Result<Option<Retry>, EsError> {
        let stats = &acct.stats;
        stats.bulk_in_flight.fetch_add(1, Relaxed);
        let started = std::time::Instant::now();
        let answer = self.request(body).await;
        stats.bulk_latency.observe(started.elapsed().as_secs_f64());
        stats.bulk_in_flight.fetch_sub(1, Relaxed);
        let (status, text) = match answer {
            Ok(a) => {
                stats.engine_failures.store(0, Relaxed);
                a
            }
            Err((reason, cause)) => {
                if cause == "connection" {
                    stats.engine_failures.fetch_add(1, Relaxed);
                }
                return Ok(Some(Retry {
                    items,
                    reason,
                    cause: cause.to_owned(),
                }));
            }
        };
        if retryable(status) {
            return Ok(Some(Retry {
                items,
                reason: format!("HTTP {status} for the whole request"),
                cause: format!("request_{status}"),
            }));
        }
        if !(200..300).contains(&status) {
            return Err(refused(
                "_bulk request",
                status,
                &String::from_utf8_lossy(&text),
            ));
        }
        let parsed: BulkResponse = serde_json::from_slice(&text).map_err(|e| {
            refused(
                &format!("_bulk request (unreadable response: {e})"),
                status,
                &String::from_utf8_lossy(&text),
            )
        })?;
        if parsed.items.len() != items.len() {
            if !parsed.errors && parsed.items.is_empty() {
                // Some proxies strip item details on success; only `errors: false` is known.
                for item in &items {
                    acct.stats
                        .input(item.chunk.raw.input)
                        .indexed
                        .fetch_add(1, Relaxed);
                }
                return Ok(None);
            }
            return Err(refused(
                &format!(
                    "_bulk request ({} items sent, {} answered)",
                    items.len(),
                    parsed.items.len()
                ),
                status,
                "",
            ));
        }
        let mut again = Vec::new();
        let mut last_reason = String::new();
        let mut last_cause = String::new();
        for (item, result) in items.into_iter().zip(parsed.items) {
            let Some(result) = result.into_values().next() else {
                continue;
            };
            let counters = acct.stats.input(item.chunk.raw.input);
            match result.status {
                200..=299 => {
                    counters.indexed.fetch_add(1, Relaxed);
                }
                409 => {
                    counters.duplicates.fetch_add(1, Relaxed);
                }
                s if retryable(s) => {
                    last_reason = format!("item {}", item_reason(result.error.as_ref(), s));
                    last_cause = format!("item_{s}");
                    again.push(item);
                    continue;
                }
                s => {
                    let reason = item_reason(result.error.as_ref(), s);
                    acct.dead_letter(
                        &item.chunk,
                        item.line(),
                        &reason,
                        Some(s),
                        result.error.as_ref(),
                    );
                }
            }
            acct.outcome(&item.chunk, 1);
        }
        Ok((!again.is_empty()).then_some(Retry {
            items: again,
            reason: last_reason,
            cause: last_cause,
        }))
    }

    /// Sends one `_bulk` body; the answer's status and body, or why there is none and a cause
    /// label (`connection`, `response`).
    async fn request(&self, body: &Bytes) -> Result<(u16, Vec<u8>), (String, &'static str)> {
        let (node_index, node) = self.client.pick();
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        // A `Bytes` body is handed to the HTTP client as it is, without a copy.
        let sent = node
            .client
            .send(
                Method::Post,
                "/_bulk",
                headers,
                Some(&[("filter_path", FILTER_PATH)]),
                Some(body.clone()),
                None,
            )
            .await;
        let response = sent.map_err(|e| {
            self.client.failed(node_index);
            (
                format!("{}: {}", node.shown_url, error_chain(&e)),
                "connection",
            )
        })?;
        let status = response.status_code().as_u16();
        let text = response.bytes().await.map_err(|e| {
            (
                format!("reading the response: {}", error_chain(&e)),
                "response",
            )
        })?;
        Ok((status, text.to_vec()))
    }
}

fn flatten(done: Result<Result<(), EsError>, tokio::task::JoinError>) -> Result<(), EsError> {
    match done {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let s = BulkSection::default();
        let first = backoff(&s, 1).as_millis();
        assert!((100..=200).contains(&first), "{first}");
        for attempt in 1..40 {
            assert!(backoff(&s, attempt).as_millis() <= 30_000);
        }
        assert!(backoff(&s, 8).as_millis() >= 12_800);
    }

    #[test]
    fn reasons_name_the_engine_error() {
        let e = serde_json::json!({"type":"mapper_parsing_exception","reason":"failed to parse field [x]",
            "caused_by":{"type":"x","reason":"For input string: \"abc\""}});
        assert_eq!(
            item_reason(Some(&e), 400),
            "mapper_parsing_exception: failed to parse field [x] (For input string: \"abc\")"
        );
        assert_eq!(item_reason(None, 503), "HTTP 503");
    }
}
