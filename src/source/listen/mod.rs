//! Listeners: sources that are sent to. Beats (Lumberjack) and HTTP (NDJSON, JSON arrays and an
//! Elasticsearch-compatible `_bulk`) hand their records to the pipeline as chunks whose
//! acknowledgement answers the sender only once the engine has answered for them: a Beats
//! window is ACKed when all its events are settled, an HTTP request answered when all its
//! records are. TCP (JSON lines), UDP and syslog have no acknowledgement: what they receive
//! goes to the disk spool ([`crate::source::spool`]) first, and leaves it once settled.
//!
//! A listener is named by a URI (`beats://HOST:PORT`, `http://HOST:PORT`), on the command line
//! (`--listen`, repeatable) or in a pipeline file (`[[listen]]` tables, with TLS, limits and
//! authentication). Each one is an input of the run: its records are counted under its URI, and
//! its connections, windows, ACKs and refusals (by cause) are counted beside.

pub mod auth;
pub mod beats;
pub mod framing;
pub mod http;
pub mod settings;
pub mod syslog;
mod tcp;
pub mod tls;
mod udp;

pub use crate::source::intake::{Busy, Intake};
pub use settings::{Kind, ListenError, ListenSettings};

use crate::common::{Budget, InputId};
use crate::metrics::ListenerCounters;
use crate::source::spool::SpoolSender;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// A stream from a client, with TLS when the listener has it.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// One listener, bound and ready to serve.
pub struct Bound {
    /// Its settings.
    pub settings: ListenSettings,
    /// Its socket.
    pub socket: Socket,
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
        let error = |source| ListenError::Bind {
            uri: settings.uri.clone(),
            source,
        };
        let socket = if settings.kind.datagram() {
            Socket::Datagram(udp::bind(settings.addr).map_err(error)?)
        } else {
            Socket::Stream(TcpListener::bind(settings.addr).await.map_err(error)?)
        };
        let addr = match &socket {
            Socket::Stream(l) => l.local_addr(),
            Socket::Datagram(u) => u.local_addr(),
        }
        .map_err(error)?;
        Ok(Self {
            settings,
            socket,
            addr,
            tls,
        })
    }

    /// The listener's name in the summary and in messages.
    pub fn label(&self) -> String {
        self.settings.label(self.addr)
    }

    /// Serves until the run stops, then until every connection has settled what it received
    /// (or `grace` has passed). `index` is the pipeline's index, as `_bulk` answers name it;
    /// `spool` is where a listener without acknowledgements puts what it receives.
    pub async fn serve(
        self,
        intake: Intake,
        input: InputId,
        grace: Duration,
        index: &str,
        spool: Option<(SpoolSender, u16)>,
        budget: Budget,
    ) {
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
            spool,
            budget,
        };
        match self.settings.kind {
            Kind::Beats => beats::serve(self, served).await,
            Kind::Http => http::serve(self, served).await,
            Kind::Tcp | Kind::Syslog => tcp::serve(self, served).await,
            Kind::Udp | Kind::SyslogUdp => udp::serve(self, served).await,
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
    /// The spool and this listener's number in it (TCP, UDP and syslog listeners).
    pub spool: Option<(SpoolSender, u16)>,
    /// The memory budget every listener of the run shares.
    pub budget: Budget,
}

/// A listener's socket.
pub enum Socket {
    /// TCP (Beats, HTTP, TCP, syslog).
    Stream(TcpListener),
    /// UDP.
    Datagram(UdpSocket),
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
        socket,
        tls,
        ..
    } = bound;
    let Socket::Stream(listener) = socket else {
        unreachable!("a stream listener has a TCP socket");
    };
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
            served.counters.refuse("connections", || {
                format!(
                    "{}: {peer}: refused, {} connections are open already (max_connections)",
                    served.label, settings.limits.max_connections
                )
            });
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
            served.counters.refuse("tls", || {
                format!("{}: {peer}: TLS handshake refused: {e}", served.label)
            });
            None
        }
        Err(_) => {
            served.counters.refuse("handshake_timeout", || {
                format!(
                    "{}: {peer}: no TLS handshake within {} s",
                    served.label,
                    timeout.as_secs()
                )
            });
            None
        }
    }
}
