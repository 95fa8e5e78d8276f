//! The Beats (Lumberjack) listener: what Winlogbeat, Filebeat and Elastic Agent send to a
//! Logstash `beats` input.
//!
//! A connection is read window by window ([`codec`]): a `W` frame announces how many events
//! follow, then come `J` (or legacy `D`) frames, plain or inside `C` frames. A window goes to
//! the pipeline in chunks as its events arrive (so memory is bounded by the pipeline's queues,
//! not by the windows senders choose), joined by one [`Joint`]; its ACK goes out only when
//! every event of it has an outcome from the engine (indexed, already present or
//! dead-lettered), in the order the windows came (ACKs are cumulative, and a sender pipelines
//! windows). While a window waits, an
//! ACK of 0 goes out every `keepalive_seconds`, so the sender neither times out nor sends it
//! again. A window with a record that failed is never ACKed: the connection is closed and the
//! sender sends it again; a connection that dies before its ACK gets none, and the same
//! happens. Resent events find their documents by their stable ids.

pub mod codec;

use super::{Bound, Served, Stream};
use crate::ack::{InOrder, Joint, Settle, Settled};
use crate::chunk::{Identity, RawChunk};
use codec::{CodecError, Frame};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::sync::mpsc;

/// Serves Beats connections until the run stops.
pub async fn serve(bound: Bound, served: Served) {
    let limits = bound.settings.limits;
    super::accept_loop(bound, served, move |stream, peer, served| {
        connection(stream, peer, served, limits)
    })
    .await;
}

/// A window settled: its place among the connection's windows, its size, and whether every
/// event of it is safely somewhere.
#[derive(Debug)]
struct WindowSettled {
    ordinal: u64,
    count: u32,
    delivered: bool,
}

/// A window's side of the acknowledgement model.
struct WindowMark {
    ordinal: u64,
    to_acker: mpsc::UnboundedSender<WindowSettled>,
}

impl Settle for WindowMark {
    fn settled(self: Box<Self>, settled: Settled) {
        let _ = self.to_acker.send(WindowSettled {
            ordinal: self.ordinal,
            count: u32::try_from(settled.tally.total()).unwrap_or(u32::MAX),
            delivered: settled.tally.failed == 0,
        });
    }
}

/// The window being received.
struct Window {
    /// How many events it announced.
    expected: u32,
    /// How many have come.
    received: u32,
    /// The events not handed over yet.
    part: RawChunk,
    joint: Joint,
}

/// Why a connection ends.
#[derive(Debug)]
enum End {
    /// The sender closed it, or the run stops.
    Done,
    /// A read failed.
    Io(std::io::Error),
    /// What came is no Lumberjack, or too large.
    Codec(CodecError),
    /// Nothing came for the idle timeout.
    Idle,
}

struct Connection {
    served: Served,
    limits: super::settings::Limits,
    origin: Arc<str>,
    /// Windows handed over and not ACKed yet.
    pending: Arc<AtomicUsize>,
    to_acker: mpsc::UnboundedSender<WindowSettled>,
    version: u8,
    next_ordinal: u64,
    /// The window being received.
    window: Option<Window>,
}

async fn connection(
    stream: Box<dyn Stream>,
    peer: SocketAddr,
    served: Served,
    limits: super::settings::Limits,
) {
    let (rd, wr) = tokio::io::split(stream);
    let (to_acker, from_windows) = mpsc::unbounded_channel();
    let pending = Arc::new(AtomicUsize::new(0));
    let (acker_done_tx, mut acker_done) = tokio::sync::oneshot::channel::<()>();
    let acker = Acker {
        writer: wr,
        keepalive: limits.keepalive(),
        pending: pending.clone(),
        served: served.clone(),
        version: std::sync::Arc::new(std::sync::atomic::AtomicU8::new(b'2')),
    };
    let version = acker.version.clone();
    let acking = tokio::spawn(async move {
        acker.run(from_windows).await;
        let _ = acker_done_tx.send(());
    });
    let mut conn = Connection {
        origin: Arc::from(format!("{} from {peer}", served.label)),
        served,
        limits,
        pending,
        to_acker,
        version: b'2',
        next_ordinal: 0,
        window: None,
    };
    let end = tokio::select! {
        end = conn.read(BufReader::with_capacity(64 << 10, rd), &version) => end,
        _ = &mut acker_done => End::Done,
    };
    conn.report(&end, peer);
    let grace = conn.served.grace + Duration::from_secs(5);
    drop(conn);
    // The ACKs of what was received go out as it settles (the sink's grace bounds it).
    let _ = tokio::time::timeout(grace, acking).await;
}

impl Connection {
    fn report(&self, end: &End, peer: SocketAddr) {
        let label = &self.served.label;
        match end {
            End::Done => tracing::debug!("{label}: {peer}: closed"),
            End::Io(e) => tracing::debug!("{label}: {peer}: {e}"),
            End::Idle => {
                self.served.counters.refused("idle");
                tracing::info!(
                    "{label}: {peer}: nothing sent for {} s; closed",
                    self.limits.idle_timeout_seconds
                );
            }
            End::Codec(e) => {
                let cause = match e {
                    CodecError::TooLarge { .. } => "frame_too_large",
                    _ => "protocol",
                };
                self.served.counters.refused(cause);
                tracing::warn!("{label}: {peer}: {e}; this connection is closed");
            }
        }
    }

    /// Reads windows until the sender closes, the run stops, or something is wrong.
    async fn read(
        &mut self,
        mut r: BufReader<ReadHalf<Box<dyn Stream>>>,
        version: &std::sync::atomic::AtomicU8,
    ) -> End {
        let mut stop = self.served.intake.clone();
        loop {
            let idle = self.limits.idle_timeout();
            let waiting = self.pending.load(Relaxed) > 0 || self.window.is_some();
            let frame = tokio::select! {
                f = read_frame(&mut r, self.limits.max_frame_bytes as u64) => f,
                () = tokio::time::sleep(idle), if !waiting => return End::Idle,
                () = stop.stopped() => return End::Done,
            };
            let (v, frame) = match frame {
                Ok(Some(f)) => f,
                Ok(None) => return End::Done,
                Err(end) => return end,
            };
            self.version = v;
            version.store(v, Relaxed);
            if let Err(end) = self.take(frame).await {
                return end;
            }
        }
    }

    /// One frame (a compressed one holds several).
    async fn take(&mut self, frame: Frame) -> Result<(), End> {
        match frame {
            Frame::Window(n) => self.open_window(n).await,
            Frame::Event(_, json) => self.event(json).await,
            Frame::Compressed(frames) => {
                for f in frames {
                    Box::pin(self.take(f)).await?;
                }
                Ok(())
            }
        }
    }

    async fn open_window(&mut self, n: u32) -> Result<(), End> {
        if n > self.limits.max_window {
            return Err(End::Codec(CodecError::TooLarge {
                size: u64::from(n),
                limit: u64::from(self.limits.max_window),
            }));
        }
        // A window announced before the last was whole: what came of it is its window.
        self.close_window().await?;
        if n > 0 {
            self.window = Some(Window {
                expected: n,
                received: 0,
                part: self.new_part(),
                joint: Joint::new(Box::new(WindowMark {
                    ordinal: self.next_ordinal,
                    to_acker: self.to_acker.clone(),
                })),
            });
            self.next_ordinal += 1;
            self.pending.fetch_add(1, Relaxed);
            self.served.counters.windows.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    fn new_part(&self) -> RawChunk {
        let mut chunk = RawChunk::new(self.served.input, &self.origin);
        chunk.identity = Identity::Content;
        chunk
    }

    async fn event(&mut self, json: Vec<u8>) -> Result<(), End> {
        let Some(w) = self.window.as_mut() else {
            // Events without a window (old senders): a window of one each.
            self.open_window(1).await?;
            return Box::pin(self.event(json)).await;
        };
        w.received += 1;
        let number = u64::from(w.received);
        w.part
            .push_record(number, |buf| buf.extend_from_slice(&json));
        if w.received >= w.expected {
            self.close_window().await
        } else if w.part.is_full() {
            self.hand_over().await
        } else {
            Ok(())
        }
    }

    /// Hands over the rest of the window being received; its ACK follows once all is settled.
    async fn close_window(&mut self) -> Result<(), End> {
        let Some(w) = self.window.take() else {
            return Ok(());
        };
        let Window { part, joint, .. } = w;
        let sent = if part.lines.is_empty() {
            true
        } else {
            let mut part = part;
            part.ack = joint.part(part.lines.len());
            self.served.intake.send(part).await
        };
        joint.close();
        if sent {
            Ok(())
        } else {
            Err(End::Done)
        }
    }

    /// Sends what came so far of the window being received into the pipeline.
    async fn hand_over(&mut self) -> Result<(), End> {
        let fresh = self.new_part();
        let Some(w) = self.window.as_mut() else {
            return Ok(());
        };
        let mut part = std::mem::replace(&mut w.part, fresh);
        part.ack = w.joint.part(part.lines.len());
        if !self.served.intake.send(part).await {
            return Err(End::Done);
        }
        Ok(())
    }
}

/// Reads one frame: its version and what it was; `None` at the end of the stream.
async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    limit: u64,
) -> Result<Option<(u8, Frame)>, End> {
    let mut head = [0u8; 2];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(End::Io(e)),
    }
    let version = codec::version(head[0]).map_err(End::Codec)?;
    let kind = head[1];
    let mut header = vec![0u8; codec::header_len(kind).map_err(End::Codec)?];
    r.read_exact(&mut header).await.map_err(End::Io)?;
    let frame = match kind {
        b'W' => Frame::Window(u32::from_be_bytes(header[..4].try_into().expect("4"))),
        b'J' | b'C' => {
            let len = codec::payload_len(kind, &header, limit)
                .map_err(End::Codec)?
                .expect("a length");
            let mut payload = vec![0u8; len];
            r.read_exact(&mut payload).await.map_err(End::Io)?;
            if kind == b'J' {
                Frame::Event(
                    u32::from_be_bytes(header[..4].try_into().expect("4")),
                    payload,
                )
            } else {
                Frame::Compressed(codec::inflate(&payload, limit).map_err(End::Codec)?)
            }
        }
        _ => read_data_frame(r, &header, limit).await?,
    };
    Ok(Some((version, frame)))
}

/// A legacy `D` frame: its key/value pairs, read pair by pair within `limit`.
async fn read_data_frame<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    header: &[u8],
    limit: u64,
) -> Result<Frame, End> {
    let seq = u32::from_be_bytes(header[..4].try_into().expect("4"));
    let count = u32::from_be_bytes(header[4..8].try_into().expect("4"));
    let mut total = 0u64;
    let mut pairs = Vec::new();
    for _ in 0..count {
        let mut pair = [Vec::new(), Vec::new()];
        for part in &mut pair {
            let len = r.read_u32().await.map_err(End::Io)? as u64;
            total += len;
            if total > limit {
                return Err(End::Codec(CodecError::TooLarge { size: total, limit }));
            }
            *part = vec![0u8; len as usize];
            r.read_exact(part).await.map_err(End::Io)?;
        }
        let [k, v] = pair;
        pairs.push((k, v));
    }
    let json = codec::data_pairs(pairs).map_err(End::Codec)?;
    Ok(Frame::Event(seq, json))
}

/// Writes a connection's ACKs, window after window, as they settle, and keep-alives while
/// windows wait.
struct Acker {
    writer: WriteHalf<Box<dyn Stream>>,
    keepalive: Duration,
    pending: Arc<AtomicUsize>,
    served: Served,
    version: Arc<std::sync::atomic::AtomicU8>,
}

impl Acker {
    async fn run(mut self, mut settled: mpsc::UnboundedReceiver<WindowSettled>) {
        let mut order: InOrder<(u32, bool)> = InOrder::default();
        loop {
            let got = tokio::select! {
                got = settled.recv() => got,
                () = tokio::time::sleep(self.keepalive) => {
                    // Windows handed over and waiting for the engine: tell the sender.
                    if self.pending.load(Relaxed) > 0 {
                        if self.write(0).await.is_err() {
                            return;
                        }
                        self.served.counters.keepalives.fetch_add(1, Relaxed);
                    }
                    continue;
                }
            };
            let Some(w) = got else { return };
            for (count, delivered) in order.settle(w.ordinal, (w.count, w.delivered)) {
                self.pending.fetch_sub(1, Relaxed);
                if !delivered {
                    tracing::warn!(
                        "{}: a window held records that could not be delivered; closing the \
                         connection so that the sender sends it again",
                        self.served.label
                    );
                    let _ = self.writer.shutdown().await;
                    return;
                }
                if self.write(count).await.is_err() {
                    return;
                }
                self.served.counters.acks.fetch_add(1, Relaxed);
            }
        }
    }

    async fn write(&mut self, seq: u32) -> std::io::Result<()> {
        let ack = codec::ack(self.version.load(Relaxed), seq);
        self.writer.write_all(&ack).await?;
        self.writer.flush().await
    }
}
