//! Listeners: sources that are sent to. Beats (Lumberjack) and HTTP (NDJSON, JSON arrays and an
//! Elasticsearch-compatible `_bulk`) here; every listener hands its records to the pipeline as
//! chunks whose acknowledgement answers the sender only once the engine has answered for them:
//! a Beats window is ACKed when all its events are settled, an HTTP request answered when all
//! its records are.
//!
//! A listener is named by a URI (`beats://HOST:PORT`, `http://HOST:PORT`), on the command line
//! (`--listen`, repeatable) or in a pipeline file (`[[listen]]` tables, with TLS, limits and
//! authentication). Each one is an input of the run: its records are counted under its URI, and
//! its connections, windows, ACKs and refusals (by cause) are counted beside.

pub mod auth;
pub mod beats;
pub mod http;
pub mod settings;
pub mod tls;

pub use settings::{Kind, ListenError, ListenSettings};

use crate::chunk::RawChunk;
use crate::common::InputId;
use crate::metrics::{ListenerCounters, Stats};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// Where listeners put what they receive: the pipeline's queue of raw chunks.
#[derive(Clone)]
pub struct Intake {
    /// The queue.
    pub tx: flume::Sender<RawChunk>,
    /// The run's counters.
    pub stats: Arc<Stats>,
    /// The next chunk's place in reading order (shared with every source).
    pub order: Arc<AtomicU64>,
    /// Set once the run is stopping.
    pub stop: tokio::sync::watch::Receiver<bool>,
}

impl Intake {
    /// Sends a chunk into the pipeline, waiting while its queues are full (the backpressure
    /// that stops a listener reading); `false` when the pipeline takes no more.
    pub async fn send(&self, mut chunk: RawChunk) -> bool {
        let (n, bytes) = (chunk.lines.len() as u64, chunk.buf.len() as u64);
        let counters = self.stats.input(chunk.input);
        chunk.order = self.order.fetch_add(1, Relaxed);
        counters.read.fetch_add(n, Relaxed);
        if self.tx.send_async(chunk).await.is_ok() {
            counters.bytes.fetch_add(bytes, Relaxed);
            true
        } else {
            counters.read.fetch_sub(n, Relaxed);
            false
        }
    }

    /// Sends a chunk into the pipeline if its queues take it within `patience`; a sender that
    /// can be told to come back (HTTP: 429) is told so rather than held.
    pub async fn send_within(&self, mut chunk: RawChunk, patience: Duration) -> Result<(), Busy> {
        let (n, bytes) = (chunk.lines.len() as u64, chunk.buf.len() as u64);
        let counters = self.stats.input(chunk.input);
        let deadline = tokio::time::Instant::now() + patience;
        chunk.order = self.order.fetch_add(1, Relaxed);
        loop {
            counters.read.fetch_add(n, Relaxed);
            match self.tx.try_send(chunk) {
                Ok(()) => {
                    counters.bytes.fetch_add(bytes, Relaxed);
                    return Ok(());
                }
                Err(e) => {
                    counters.read.fetch_sub(n, Relaxed);
                    match e {
                        flume::TrySendError::Disconnected(_) => return Err(Busy::Closed),
                        flume::TrySendError::Full(back) => chunk = back,
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Busy::Full);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the run is stopping.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Waits until the run is stopping.
    pub async fn stopped(&mut self) {
        while !*self.stop.borrow_and_update() {
            if self.stop.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Why a chunk was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The pipeline's queues stayed full.
    Full,
    /// The pipeline takes nothing more (the run is ending).
    Closed,
}

impl Busy {
    /// The refusal's cause, for the counters.
    pub fn cause(self) -> &'static str {
        match self {
            Self::Full => "queues_full",
            Self::Closed => "stopping",
        }
    }
}

/// A stream from a client, with TLS when the listener has it.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// One listener, bound and ready to serve.
pub struct Bound {
    /// Its settings.
    pub settings: ListenSettings,
    /// Its socket.
    pub listener: TcpListener,
    /// The address it listens on (the port chosen, when 0 was asked for).
    pub addr: SocketAddr,
    /// Its TLS acceptor, when it has TLS.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Bound {
    /// Binds the listener's address and reads its TLS files: any problem is found before the
    /// run starts.
    pub async fn bind(settings: ListenSettings) -> Result<Self, ListenError> {
        let tls = settings.tls.as_ref().map(tls::acceptor).transpose()?;
        let listener =
            TcpListener::bind(settings.addr)
                .await
                .map_err(|source| ListenError::Bind {
                    uri: settings.uri.clone(),
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| ListenError::Bind {
            uri: settings.uri.clone(),
            source,
        })?;
        Ok(Self {
            settings,
            listener,
            addr,
            tls,
        })
    }

    /// The listener's name in the summary and in messages.
    pub fn label(&self) -> String {
        self.settings.label(self.addr)
    }

    /// Serves until the run stops, then until every connection has settled what it received
    /// (or `grace` has passed). `index` is the pipeline's index, as `_bulk` answers name it.
    pub async fn serve(self, intake: Intake, input: InputId, grace: Duration, index: &str) {
        let label = self.label();
        let counters = intake.stats.listener(&label);
        tracing::info!("listening: {label}");
        let served = Served {
            label: Arc::from(label),
            input,
            counters,
            intake,
            grace,
            index: Arc::from(index),
        };
        match self.settings.kind {
            Kind::Beats => beats::serve(self, served).await,
            Kind::Http => http::serve(self, served).await,
        }
    }
}

/// What every connection of a listener shares.
#[derive(Clone)]
pub struct Served {
    /// The listener's name.
    pub label: Arc<str>,
    /// Its input id.
    pub input: InputId,
    /// Its counters.
    pub counters: Arc<ListenerCounters>,
    /// Where its records go.
    pub intake: Intake,
    /// How long, after a stop, what was received still gets to settle.
    pub grace: Duration,
    /// The pipeline's index.
    pub index: Arc<str>,
}

/// Accepts connections until the run stops, giving each (after its TLS handshake, within the
/// listener's timeout) to `handle`; the number open at once is bounded.
pub async fn accept_loop<F, Fut>(bound: Bound, served: Served, handle: F)
where
    F: Fn(Box<dyn Stream>, SocketAddr, Served) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Bound {
        settings,
        listener,
        tls,
        ..
    } = bound;
    let slots = Arc::new(tokio::sync::Semaphore::new(settings.limits.max_connections));
    let handshake = settings.limits.handshake_timeout();
    let handle = Arc::new(handle);
    let mut stop = served.intake.clone();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("{}: accept: {e}", served.label);
                    continue;
                }
            },
            () = stop.stopped() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            served.counters.refused("connections");
            tracing::warn!(
                "{}: {peer}: refused, {} connections are open already (max_connections)",
                served.label,
                settings.limits.max_connections
            );
            continue;
        };
        let (served, tls, handle) = (served.clone(), tls.clone(), handle.clone());
        tasks.spawn(async move {
            let _slot = slot;
            if let Some(stream) = handshake_with(tcp, tls, handshake, &served, peer).await {
                served.counters.opened();
                handle(stream, peer, served.clone()).await;
                served.counters.closed();
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    // Connections end once what they received is settled (each bounded by the grace).
    while tasks.join_next().await.is_some() {}
}

/// The TLS handshake of a new connection, or the plain stream.
async fn handshake_with(
    tcp: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    timeout: Duration,
    served: &Served,
    peer: SocketAddr,
) -> Option<Box<dyn Stream>> {
    let _ = tcp.set_nodelay(true);
    let Some(acceptor) = tls else {
        return Some(Box::new(tcp));
    };
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(Box::new(stream)),
        Ok(Err(e)) => {
            served.counters.refused("tls");
            tracing::warn!("{}: {peer}: TLS handshake refused: {e}", served.label);
            None
        }
        Err(_) => {
            served.counters.refused("handshake_timeout");
            tracing::warn!(
                "{}: {peer}: no TLS handshake within {} s",
                served.label,
                timeout.as_secs()
            );
            None
        }
    }
}
