//! `_bulk` requests: grouping documents by count and bytes, several requests in flight, and the
//! outcome of every item.
//!
//! Per item: 2xx is indexed; 409 (the id exists, `create` refused) is a duplicate; 429 and 5xx
//! are sent again after an exponential backoff with jitter; anything else goes to the dead letter
//! queue with the engine's reason. A whole request that fails with a connection error, a
//! timeout, 429 or 5xx is sent again the same way. After `max_retries` retries the records still
//! undelivered are dead-lettered: never dropped. A whole request refused for good (401, 403, a
//! malformed request) stops the run.

use super::batch::{retry_body, Batch, Item};
use super::compress::Body;
use super::concurrency::{Concurrency, Limiter, Signal, Slot};
use super::retry::{self, Cause, SendError};
use super::settings::BulkSettings;
use super::{EsClient, EsError};
use crate::ack::Outcome;
use crate::sink::rate::RateLimits;
use crate::sink::wire::Actions;
use crate::sink::Accounting;
use crate::transform::EncodedChunk;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// What evtship reads of a `_bulk` response.
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

/// Items to send again, and why.
#[derive(Debug)]
struct Retry {
    items: Vec<Item>,
    cause: Cause,
}

/// Sends documents to the engine in `_bulk` requests.
#[derive(Debug)]
pub struct BulkSink {
    client: EsClient,
    settings: BulkSettings,
    actions: Actions,
    /// `None`: retry without limit (tail mode).
    max_retries: Option<u32>,
    limits: RateLimits,
    /// Set when the run is stopping; retries then end after the shutdown grace.
    stop: Arc<AtomicBool>,
    /// When a retry first saw the run stopping.
    stopping_since: OnceLock<Instant>,
    /// Whether a partial batch goes out as soon as nothing else waits and a slot is free.
    eager: bool,
}

impl BulkSink {
    /// A sink over a connected client, writing `actions`. With `retry_forever` (tail mode)
    /// retryable failures are retried without limit; otherwise `max_retries` times, then
    /// dead-lettered.
    pub fn new(
        client: EsClient,
        settings: BulkSettings,
        actions: Actions,
        retry_forever: bool,
    ) -> Self {
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
            actions,
            limits,
            stop: Arc::default(),
            stopping_since: OnceLock::new(),
            eager: true,
        }
    }

    /// Whether someone waits for each record's answer (a sender's window or request, a line
    /// just appended to a followed file, a Kafka offset): then a partial batch is sent as soon
    /// as nothing else waits for the sink and a request slot is free (the default). A backfill
    /// of files has nobody waiting: its batches fill up to `max_bytes` or `max_events` (or wait
    /// `flush_interval_ms`), since the CPU-bound reader rarely keeps the sink's queue full and
    /// partial batches would mean about five times the requests (2,946 of ~410 KB for 1 GB,
    /// measured, against ~575 of 2 MiB).
    pub fn sending_partial_batches(mut self, eager: bool) -> Self {
        self.eager = eager;
        self
    }

    /// Retries end `shutdown_grace_ms` after `stop` is set: what is still undelivered then is
    /// left without an outcome, so that nothing acknowledges it.
    pub fn stopping_with(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = stop;
        self
    }

    /// The client it sends with.
    pub fn client(&self) -> &EsClient {
        &self.client
    }

    /// Whether the run is stopping and its grace is over.
    fn grace_is_over(&self) -> bool {
        if !self.stop.load(Relaxed) {
            return false;
        }
        let since = self.stopping_since.get_or_init(Instant::now);
        since.elapsed() >= Duration::from_millis(self.settings.shutdown_grace_ms.get() as u64)
    }

    /// Sends every chunk received until the channel closes, then waits for every request.
    pub async fn run(
        self,
        rx: flume::Receiver<EncodedChunk>,
        acct: Arc<Accounting>,
    ) -> Result<(), EsError> {
        let me = Arc::new(self);
        let permits = Limiter::new(me.settings.concurrency());
        acct.stats.bulk.compression_level.store(
            u64::from(me.client.compression.gzip().unwrap_or(0)),
            Relaxed,
        );
        acct.stats.bulk.adaptive.store(
            matches!(me.settings.concurrency(), Concurrency::Adaptive { .. }),
            Relaxed,
        );
        let f = permits.figures();
        acct.stats.bulk.set_limit(f.last, f.lowest, f.highest);
        let mut tasks: JoinSet<Result<(), EsError>> = JoinSet::new();
        let (max_events, max_bytes) = me
            .limits
            .cap(me.settings.max_events.get(), me.settings.max_bytes.0);
        let flush_after = Duration::from_millis(me.settings.flush_interval_ms.get() as u64);
        let action_bytes = me.actions.max_len();
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
            // The encoded bytes leave the chunk: they are copied into request bodies below,
            // and the chunk lives on (raw records, acknowledgement) only for accounting.
            let mut chunk = chunk;
            let encoded = std::mem::take(&mut chunk.buf);
            let chunk = Arc::new(chunk);
            for doc in 0..chunk.docs.len() {
                let line = &encoded[chunk.docs[doc].doc.clone()];
                if !batch.is_empty()
                    && (batch.items.len() >= max_events
                        || batch.body.len() + action_bytes + line.len() > max_bytes)
                {
                    let full = std::mem::replace(&mut batch, Batch::new(max_bytes, max_events));
                    me.dispatch(full, &permits, &mut tasks, &acct).await?;
                }
                if batch.is_empty() {
                    deadline = tokio::time::Instant::now() + flush_after;
                }
                batch.push(&chunk, doc, &me.actions, line);
            }
            drop(encoded);
            while let Some(done) = tasks.try_join_next() {
                flatten(done)?;
            }
            // Nothing else waiting and a request slot free: send now rather than after
            // `flush_after`. A sender waiting for its answer (a Beats window, an HTTP request,
            // a line just appended) does not wait for a batch that would not fill; when the
            // engine is the bottleneck every slot is busy and batches fill as before.
            if me.eager && !batch.is_empty() && rx.is_empty() && permits.has_free_slot() {
                let partial = std::mem::replace(&mut batch, Batch::new(max_bytes, max_events));
                me.dispatch(partial, &permits, &mut tasks, &acct).await?;
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
        permits: &Arc<Limiter>,
        tasks: &mut JoinSet<Result<(), EsError>>,
        acct: &Arc<Accounting>,
    ) -> Result<(), EsError> {
        self.limits
            .acquire(batch.items.len(), batch.body.len())
            .await;
        // Waiting for a slot is the backpressure: readers pause while requests are in flight.
        let slot = permits.acquire().await;
        let me = self.clone();
        let acct = acct.clone();
        let (body, items) = batch.freeze();
        tasks.spawn(async move { me.deliver(body, items, &acct, slot).await });
        // Surface a fatal error from an earlier request without waiting for the end.
        while let Some(done) = tasks.try_join_next() {
            flatten(done)?;
        }
        Ok(())
    }

    /// Sends one batch until every item has an outcome, holding its request slot until then
    /// (through the pauses before retries too, so that the slots bound memory; an adaptive
    /// limit lets another request on the wire meanwhile).
    async fn deliver(
        &self,
        plain: Bytes,
        mut items: Vec<Item>,
        acct: &Accounting,
        mut slot: Slot,
    ) -> Result<(), EsError> {
        // Compressed once; a retry of the whole request sends the same bytes again.
        let mut body = Body::encode(plain, self.client.compression).await;
        let mut attempt = 0u32;
        loop {
            let Some(retry) = self.send(&body, items, acct, &slot).await? else {
                return Ok(());
            };
            attempt += 1;
            if self.grace_is_over() {
                tracing::warn!(
                    "{} records left undelivered at shutdown ({}); they were not acknowledged \
                     and are sent again by a later run",
                    retry.items.len(),
                    retry.cause
                );
                return Ok(());
            }
            if let Some(limit) = self.max_retries.filter(|limit| attempt > *limit) {
                let reason = format!("gave up after {limit} retries: {}", retry.cause);
                tracing::error!("{} records: {reason}", retry.items.len());
                for item in &retry.items {
                    acct.dead_letter(&item.chunk.raw, item.line(), &reason, None, None);
                }
                return Ok(());
            }
            acct.stats
                .retried(&retry.cause.label(), retry.items.len() as u64);
            let delay = retry::backoff(&self.settings, attempt);
            let of = self
                .max_retries
                .map_or_else(|| "no limit".to_owned(), |m| m.to_string());
            tracing::warn!(
                "{} records to retry in {:.1} s (attempt {attempt} of {of}): {}",
                retry.items.len(),
                delay.as_secs_f64(),
                retry.cause
            );
            slot.idle();
            self.pause(delay).await;
            slot.resume().await;
            if retry.cause.is_whole_request() {
                // The same items: the same (compressed) bytes.
                items = retry.items;
            } else {
                let (plain, again) = retry_body(&body.plain, retry.items);
                body = Body::encode(plain, self.client.compression).await;
                items = again;
            }
        }
    }

    /// Waits until the run is stopping and its grace is over.
    async fn grace_ended(&self) {
        while !self.grace_is_over() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits `delay`, or less once the run stops (to the end of its grace).
    async fn pause(&self, delay: Duration) {
        let until = tokio::time::Instant::now() + delay;
        while tokio::time::Instant::now() < until {
            if self.grace_is_over() {
                return;
            }
            let step = until - tokio::time::Instant::now();
            tokio::time::sleep(step.min(Duration::from_millis(250))).await;
        }
    }

    /// One `_bulk` request; returns the items to send again, if any.
    async fn send(
        &self,
        body: &Body,
        items: Vec<Item>,
        acct: &Accounting,
        slot: &Slot,
    ) -> Result<Option<Retry>, EsError> {
        let stats = &acct.stats;
        stats.bulk_in_flight.fetch_add(1, Relaxed);
        stats.bulk.sent(body.plain.len(), body.wire.len());
        let started = std::time::Instant::now();
        // A request still unanswered when the shutdown grace ends is given up: its records
        // stay without an outcome (not acknowledged; a later run sends them again).
        let answer = tokio::select! {
            answer = self.client.bulk(body) => answer,
            () = self.grace_ended() => {
                stats.bulk_in_flight.fetch_sub(1, Relaxed);
                tracing::warn!(
                    "{} records left undelivered at shutdown: the engine did not answer their \
                     request within the grace (bulk.shutdown_grace_ms); they were not \
                     acknowledged and are sent again by a later run",
                    items.len()
                );
                return Ok(None);
            }
        };
        let rtt = started.elapsed();
        stats.bulk_latency.observe(rtt.as_secs_f64());
        stats.bulk_in_flight.fetch_sub(1, Relaxed);
        let outcome = self.judge_answer(answer, items, acct);
        let signal = match &outcome {
            Ok(Some(Retry {
                cause: Cause::Unanswered(_),
                ..
            })) => Signal::Failed,
            Ok(Some(Retry {
                cause: Cause::Request(s) | Cause::Items { status: s, .. },
                ..
            })) if matches!(s, 429 | 503) => Signal::Refused,
            _ => Signal::Answered,
        };
        let f = slot.sample(signal, rtt);
        stats.bulk.set_limit(f.last, f.lowest, f.highest);
        outcome
    }

    /// The outcome of one request's answer (or of its lack).
    fn judge_answer(
        &self,
        answer: Result<(u16, Vec<u8>), SendError>,
        items: Vec<Item>,
        acct: &Accounting,
    ) -> Result<Option<Retry>, EsError> {
        let stats = &acct.stats;
        let (status, text) = match answer {
            Ok(a) => {
                stats.engine_failures.store(0, Relaxed);
                a
            }
            Err(e) => {
                let cause = Cause::Unanswered(e);
                if cause.is_connection() {
                    stats.engine_failures.fetch_add(1, Relaxed);
                }
                return Ok(Some(Retry { items, cause }));
            }
        };
        if retry::retryable(status) {
            return Ok(Some(Retry {
                items,
                cause: Cause::Request(status),
            }));
        }
        if !(200..300).contains(&status) {
            return Err(EsError::refused(
                "_bulk request",
                status,
                &String::from_utf8_lossy(&text),
            ));
        }
        let parsed: BulkResponse = serde_json::from_slice(&text).map_err(|e| {
            EsError::refused(
                &format!("_bulk request (unreadable response: {e})"),
                status,
                &String::from_utf8_lossy(&text),
            )
        })?;
        judge(items, parsed, status, acct)
    }
}

/// The outcome of every item of an answered request; returns the items to send again.
fn judge(
    items: Vec<Item>,
    parsed: BulkResponse,
    status: u16,
    acct: &Accounting,
) -> Result<Option<Retry>, EsError> {
    if parsed.items.len() != items.len() {
        if !parsed.errors && parsed.items.is_empty() {
            // Some proxies strip item details on success; only `errors: false` is known.
            for item in &items {
                item.resolve(acct, Outcome::Indexed, 201, None);
            }
            return Ok(None);
        }
        return Err(EsError::refused(
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
    let mut last = None;
    for (item, result) in items.into_iter().zip(parsed.items) {
        let Some(result) = result.into_values().next() else {
            continue;
        };
        let error = result.error.as_ref();
        match result.status {
            s @ 200..=299 => item.resolve(acct, Outcome::Indexed, s, None),
            409 => item.resolve(acct, Outcome::Duplicate, 409, error),
            s if retry::retryable(s) => {
                last = Some((s, retry::item_reason(error, s)));
                again.push(item);
            }
            s => {
                let reason = retry::item_reason(error, s);
                acct.dead_letter(&item.chunk.raw, item.line(), &reason, Some(s), error);
            }
        }
    }
    Ok(last.map(|(status, reason)| Retry {
        items: again,
        cause: Cause::Items { status, reason },
    }))
}

fn flatten(done: Result<Result<(), EsError>, tokio::task::JoinError>) -> Result<(), EsError> {
    match done {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Ok(()),
    }
}
