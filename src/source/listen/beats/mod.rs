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

mod acker;
pub mod codec;
mod events;

use acker::Acker;

use super::{Bound, Served, Stream};
use crate::ack::{Joint, Settle, Settled};
use crate::chunk::{Identity, RawChunk};
use crate::common::budget::Refused;
use crate::common::Charge;
use codec::CodecError;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, BufReader, ReadHalf};
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
    /// Nothing came for the idle timeout while evtship waited on the sender.
    Idle,
    /// A frame was begun and not finished within the read timeout.
    ReadTimeout,
    /// The memory budget stayed spent while a frame was half read.
    Memory(Refused),
}

/// Bytes of memory a record's entry in a chunk takes besides its bytes.
const LINE_BYTES: usize = std::mem::size_of::<crate::chunk::RawLine>();
/// A compressed frame is inflated this many bytes at a time, each charged before it is.
const INFLATE_STEP: usize = 256 << 10;

struct Connection {
    served: Served,
    limits: super::settings::Limits,
    origin: Arc<str>,
    /// Windows received whole, handed over and not ACKed yet.
    pending: Arc<AtomicUsize>,
    to_acker: mpsc::UnboundedSender<WindowSettled>,
    version: u8,
    next_ordinal: u64,
    /// The window being received.
    window: Option<Window>,
    /// What this connection holds of the memory budget: the part of the window being
    /// received (`part_bytes` of it) and the frame being read.
    charge: Charge,
    part_bytes: usize,
    /// Set once the run is stopping.
    stop: super::Intake,
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
        charge: served.budget.charge(),
        stop: served.intake.clone(),
        served,
        limits,
        pending,
        to_acker,
        version: b'2',
        next_ordinal: 0,
        window: None,
        part_bytes: 0,
    };
    let end = tokio::select! {
        end = conn.read(BufReader::with_capacity(16 << 10, rd), &version) => end,
        _ = &mut acker_done => End::Done,
    };
    conn.report(&end, peer);
    let grace = conn.served.grace + Duration::from_secs(5);
    drop(conn);
    // The ACKs of what was received go out as it settles (the sink's grace bounds it).
    let _ = tokio::time::timeout(grace, acking).await;
}

type Reader = BufReader<ReadHalf<Box<dyn Stream>>>;

impl Connection {
    fn report(&self, end: &End, peer: SocketAddr) {
        let label = &self.served.label;
        let counters = &self.served.counters;
        match end {
            End::Done => tracing::debug!("{label}: {peer}: closed"),
            End::Io(e) => tracing::debug!("{label}: {peer}: {e}"),
            End::Idle => {
                let waiting = match &self.window {
                    Some(w) => format!(
                        "{} of the {} events of its window came, then nothing",
                        w.received, w.expected
                    ),
                    None => "nothing sent".to_owned(),
                };
                counters.refuse("idle", || {
                    format!(
                        "{label}: {peer}: {waiting} for {} s; closed",
                        self.limits.idle_timeout_seconds
                    )
                });
            }
            End::ReadTimeout => counters.refuse("read_timeout", || {
                format!(
                    "{label}: {peer}: a frame was not sent whole within {} s \
                     (read_timeout_seconds); closed",
                    self.limits.read_timeout_seconds
                )
            }),
            End::Memory(e) => counters.refuse("memory", || {
                format!("{label}: {peer}: {e} while a frame was half read; closed")
            }),
            End::Codec(e) => {
                let cause = match e {
                    CodecError::TooLarge { .. } => "frame_too_large",
                    _ => "protocol",
                };
                counters.refuse(cause, || {
                    format!("{label}: {peer}: {e}; this connection is closed")
                });
            }
        }
    }

    /// Whether evtship waits on the engine rather than on the sender: windows were received
    /// whole and wait for their ACK, and none is being received.
    fn waits_on_engine(&self) -> bool {
        self.window.is_none() && self.pending.load(Relaxed) > 0
    }

    /// Reads windows until the sender closes, the run stops, or something is wrong.
    async fn read(&mut self, mut r: Reader, version: &std::sync::atomic::AtomicU8) -> End {
        let mut stop = self.stop.clone();
        loop {
            // Between frames, the idle timeout runs whenever evtship waits on the sender.
            let idle = self.limits.idle_timeout();
            let mut head = [0u8; 2];
            let started = tokio::select! {
                r = r.read_exact(&mut head) => r,
                () = tokio::time::sleep(idle), if !self.waits_on_engine() => return End::Idle,
                () = stop.stopped() => return End::Done,
            };
            match started {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return End::Done,
                Err(e) => return End::Io(e),
            }
            let v = match codec::version(head[0]) {
                Ok(v) => v,
                Err(e) => return End::Codec(e),
            };
            self.version = v;
            version.store(v, Relaxed);
            // Once begun, a frame must come whole within the read timeout, whatever else.
            let mut reading = FrameRead {
                r: &mut r,
                deadline: tokio::time::Instant::now() + self.limits.read_timeout(),
            };
            if let Err(end) = self.frame(&mut reading, head[1]).await {
                return end;
            }
            self.charge.shrink_to(self.part_bytes);
        }
    }

    /// One frame after its version byte.
    async fn frame(&mut self, r: &mut FrameRead<'_>, kind: u8) -> Result<(), End> {
        let mut header = [0u8; 8];
        let header = &mut header[..codec::header_len(kind).map_err(End::Codec)?];
        self.read_exact(r, header).await?;
        let limit = self.limits.max_frame_bytes as u64;
        match kind {
            b'W' => self.open_window(u32_at(header, 0)).await,
            b'J' => {
                let len = codec::payload_len(kind, header, limit)
                    .map_err(End::Codec)?
                    .expect("J has a length");
                self.json_event(r, len).await
            }
            b'D' => self.data_event(r, u32_at(header, 4)).await,
            _ => {
                let len = codec::payload_len(kind, header, limit)
                    .map_err(End::Codec)?
                    .expect("C has a length");
                self.compressed(r, len).await
            }
        }
    }

    /// Reads `buf` whole within the frame's deadline (and until the run stops).
    async fn read_exact(&mut self, r: &mut FrameRead<'_>, buf: &mut [u8]) -> Result<(), End> {
        let mut stop = self.stop.clone();
        tokio::select! {
            got = tokio::time::timeout_at(r.deadline, r.r.read_exact(buf)) => match got {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(End::Io(e)),
                Err(_) => Err(End::ReadTimeout),
            },
            () = stop.stopped() => Err(End::Done),
        }
    }

    /// Charges `bytes` more to the budget before they are allocated. When the budget is
    /// spent, the part of the window received so far goes into the pipeline first (so that
    /// the connection waits holding as little as it can), then the connection waits: without
    /// limit between frames (TCP pushes back on the sender), at most the read timeout inside
    /// one (then it is closed, and what it held is given back). The wait does not count
    /// against the frame's deadline: the sender is not the one who is slow.
    async fn reserve(&mut self, r: Option<&mut FrameRead<'_>>, bytes: usize) -> Result<(), End> {
        if self.charge.try_grow(bytes).map_err(too_large)? {
            return Ok(());
        }
        self.hand_over().await?;
        let waited = tokio::time::Instant::now();
        let mut stop = self.stop.clone();
        let within = self.limits.read_timeout();
        let inside_a_frame = self.charge.bytes() > 0;
        let patience = inside_a_frame.then_some(within);
        let got = tokio::select! {
            got = self.charge.grow_waiting(bytes, patience) => got,
            () = stop.stopped() => return Err(End::Done),
        };
        match got {
            Ok(()) => {
                if let Some(r) = r {
                    r.deadline += waited.elapsed();
                }
                Ok(())
            }
            Err(e @ Refused::TooLarge { .. }) => Err(too_large(e)),
            Err(e) => Err(End::Memory(e)),
        }
    }

    /// The window being received, opened for one event if none was announced (old senders).
    async fn window(&mut self) -> Result<&mut Window, End> {
        if self.window.is_none() {
            self.open_window(1).await?;
        }
        Ok(self.window.as_mut().expect("a window is open"))
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
            self.served.counters.windows.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    fn new_part(&self) -> RawChunk {
        let mut chunk = RawChunk::growing(self.served.input, &self.origin);
        chunk.identity = Identity::Content;
        chunk
    }

    /// An event's bytes were written into the part from `start`: it is a record of the
    /// window, which is handed over when whole (or its part when full).
    async fn event_written(&mut self, start: usize) -> Result<(), End> {
        let w = self.window.as_mut().expect("a window is open");
        w.received += 1;
        let end = w.part.buf.len();
        w.part.lines.push(crate::chunk::RawLine {
            number: u64::from(w.received),
            range: start..end,
            cut: None,
        });
        if w.received >= w.expected {
            self.close_window().await
        } else if w.part.is_full() {
            self.hand_over().await
        } else {
            Ok(())
        }
    }

    /// The part of the window being received, with the budget's bytes it holds, ready to go.
    fn ready_part(&mut self, part: &mut RawChunk, joint: &Joint) {
        part.ack = joint.part(part.lines.len());
        part.charge = Some(self.charge.split(std::mem::take(&mut self.part_bytes)));
    }

    /// Hands over the rest of the window being received; its ACK follows once all is settled.
    async fn close_window(&mut self) -> Result<(), End> {
        let Some(w) = self.window.take() else {
            return Ok(());
        };
        let Window {
            mut part, joint, ..
        } = w;
        let sent = if part.lines.is_empty() {
            true
        } else {
            self.ready_part(&mut part, &joint);
            self.served.intake.send(part).await
        };
        // Received whole: from now on evtship waits on the engine for it (keep-alives).
        self.pending.fetch_add(1, Relaxed);
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
        if w.part.lines.is_empty() {
            return Ok(());
        }
        let mut part = std::mem::replace(&mut w.part, fresh);
        let joint = self.window.take().expect("a window is open");
        self.ready_part(&mut part, &joint.joint);
        self.window = Some(joint);
        if !self.served.intake.send(part).await {
            return Err(End::Done);
        }
        Ok(())
    }
}

/// A frame being read: the connection's reader and when the frame must be whole.
struct FrameRead<'a> {
    r: &'a mut Reader,
    deadline: tokio::time::Instant,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("four bytes"))
}

fn too_large(e: Refused) -> End {
    let (size, limit) = match e {
        Refused::TooLarge { wanted, total } => (wanted as u64, total as u64),
        Refused::Spent { total } => (total as u64, total as u64),
    };
    End::Codec(CodecError::TooLarge { size, limit })
}
