//! TCP listeners without acknowledgement: JSON lines (`tcp://`, NXLog's `om_tcp` with
//! `to_json()`) and syslog (`syslog://`, LF or octet-counted framing, told apart by each
//! connection's first byte). What a connection sends goes to the spool; while the spool is
//! full the connection is not read, so the sender is pushed back by TCP itself.

use super::framing::{Framed, Framer, Framing};
use super::settings::Kind;
use super::{Bound, Served, Stream};
use crate::source::spool::Batch;
use std::net::SocketAddr;
use tokio::io::AsyncReadExt;

/// Serves TCP connections until the run stops.
pub async fn serve(bound: Bound, served: Served) {
    let limits = bound.settings.limits;
    let syslog = bound.settings.kind == Kind::Syslog;
    super::accept_loop(bound, served, move |stream, peer, served| {
        connection(stream, peer, served, syslog, limits)
    })
    .await;
}

/// Hands a batch to the spool; `false` when the spool takes no more.
async fn spool(served: &Served, batch: Batch) -> bool {
    if batch.is_empty() {
        return true;
    }
    let (spool, _) = served
        .spool
        .as_ref()
        .expect("a spooled listener has the spool");
    spool.send(batch).await
}

fn batch(served: &Served) -> Batch {
    let (_, source) = served
        .spool
        .as_ref()
        .expect("a spooled listener has the spool");
    Batch::new(*source, served.counters.clone())
}

/// What a wait on the connection gave.
enum Got {
    /// Bytes read into the buffer.
    Bytes(usize),
    /// The sender closed the connection (or it failed).
    Closed,
    /// The run stops.
    Stopped,
    /// Nothing came for the idle timeout.
    Idle,
    /// A record begun was not whole within the read timeout.
    ReadTimeout,
}

async fn connection(
    mut stream: Box<dyn Stream>,
    peer: SocketAddr,
    served: Served,
    syslog: bool,
    limits: super::settings::Limits,
) {
    let label = served.label.clone();
    let mut stop = served.intake.clone();
    let mut buf = vec![0u8; 16 << 10];
    let mut framer: Option<Framer> =
        (!syslog).then(|| Framer::new(Framing::Lines, limits.max_frame_bytes));
    let mut number = 0u64;
    // What this connection holds of the memory budget: the bytes its framer keeps, and the
    // records on their way to the spool.
    let mut charge = served.budget.charge();
    let mut record_since: Option<tokio::time::Instant> = None;
    loop {
        let record_deadline = record_since.map(|t| t + limits.read_timeout());
        let got = tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(0) => Got::Closed,
                Ok(n) => Got::Bytes(n),
                Err(e) => {
                    tracing::debug!("{label}: {peer}: {e}");
                    Got::Closed
                }
            },
            () = stop.stopped() => Got::Stopped,
            () = tokio::time::sleep(limits.idle_timeout()) => Got::Idle,
            () = sleep_until(record_deadline), if record_deadline.is_some() => Got::ReadTimeout,
        };
        let f = framer.get_or_insert_with(|| {
            let framing = match got {
                Got::Bytes(_) => Framer::detect(buf[0]),
                _ => Framing::Lines,
            };
            Framer::new(framing, limits.max_frame_bytes)
        });
        let n = match got {
            Got::Bytes(n) => n,
            other => {
                ended(other, f, &served, (peer, syslog), &mut number).await;
                return;
            }
        };
        if !admit(&mut charge, f, n, &served, peer, &limits).await {
            return;
        }
        f.push(&buf[..n]);
        let mut records = batch(&served);
        let end = frame_all(f, &mut records, &served, syslog, peer, &mut number);
        f.compact();
        record_since = match (f.inside_record(), record_since) {
            (false, _) => None,
            (true, None) => Some(tokio::time::Instant::now()),
            (true, since) => since,
        };
        // The records on their way to the spool are charged too, until they are on disk.
        let _ = charge.try_grow((f.held() + records.bytes()).saturating_sub(charge.bytes()));
        records.hold(charge.split(records.bytes()));
        let spooled = spool(&served, records).await;
        charge.shrink_to(f.held());
        if !spooled || end {
            return;
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Charges the framer's growth by `n` bytes before it holds them: when the budget is spent,
/// the connection is not read (TCP pushes back on the sender), without limit between records
/// and at most the read timeout inside one. `false` when the connection is to be closed.
async fn admit(
    charge: &mut crate::common::Charge,
    f: &Framer,
    n: usize,
    served: &Served,
    peer: SocketAddr,
    limits: &super::settings::Limits,
) -> bool {
    let more = (f.pending() + n).saturating_sub(charge.bytes());
    match charge.try_grow(more) {
        Ok(true) => return true,
        Ok(false) => {}
        Err(e) => {
            served.counters.refuse("memory", || {
                format!("{}: {peer}: {e}; closed", served.label)
            });
            return false;
        }
    }
    let mut stop = served.intake.clone();
    let patience = f.inside_record().then(|| limits.read_timeout());
    let got = tokio::select! {
        got = charge.grow_waiting(more, patience) => got,
        () = stop.stopped() => return false,
    };
    match got {
        Ok(()) => true,
        Err(e) => {
            served.counters.refuse("memory", || {
                format!(
                    "{}: {peer}: {e} while a record was half received; closed",
                    served.label
                )
            });
            false
        }
    }
}

/// Frames every whole record held into `records`; `true` when the stream cannot go on.
fn frame_all(
    f: &mut Framer,
    records: &mut Batch,
    served: &Served,
    syslog: bool,
    peer: SocketAddr,
    number: &mut u64,
) -> bool {
    let label = &served.label;
    loop {
        match f.next_record() {
            Ok(Some(Framed::Record(r))) => {
                *number += 1;
                take(records, r, syslog, label, peer, *number);
            }
            Ok(Some(Framed::Skipped(e))) => {
                *number += 1;
                let n = *number;
                served.counters.refuse("record_too_large", || {
                    format!("{label}: {peer}: record {n}: {e}; skipped")
                });
            }
            Ok(None) => return false,
            Err(e) => {
                served.counters.refuse("framing", || {
                    format!("{label}: {peer}: {e}; this connection is closed")
                });
                return true;
            }
        }
    }
}

/// The connection ends: what was whole is spooled; a record it cut is counted, never taken.
async fn ended(
    got: Got,
    f: &mut Framer,
    served: &Served,
    (peer, syslog): (SocketAddr, bool),
    number: &mut u64,
) {
    let label = &served.label;
    let counters = &served.counters;
    let mut records = batch(served);
    match got {
        Got::Closed => match f.finish() {
            Some(Framed::Record(r)) => {
                *number += 1;
                take(&mut records, r, syslog, label, peer, *number);
            }
            Some(Framed::Skipped(e)) => {
                counters.refuse("record_cut", || {
                    format!("{label}: {peer}: {e}; it is not taken")
                });
            }
            None => {}
        },
        Got::Stopped if f.inside_record() => {
            counters.refused("record_cut");
            tracing::info!(
                "{label}: {peer}: the run stops while a record was half received \
                 ({} bytes); it is not taken (the sender has not finished it)",
                f.pending()
            );
        }
        Got::Idle => counters.refuse("idle", || {
            format!("{label}: {peer}: nothing sent for a while; closed")
        }),
        Got::ReadTimeout => counters.refuse("read_timeout", || {
            format!(
                "{label}: {peer}: a record begun {} bytes ago was not finished within the read \
                 timeout; closed, and it is not taken",
                f.pending()
            )
        }),
        _ => {}
    }
    spool(served, records).await;
}

/// Adds a framed record to the batch: syslog messages are parsed; a JSON line that does not
/// look like an object is still spooled (the pipeline dead-letters it), and named here.
fn take(batch: &mut Batch, r: &[u8], syslog: bool, label: &str, peer: SocketAddr, number: u64) {
    if syslog {
        batch.push(&super::syslog::record(r));
        return;
    }
    let trimmed = r.trim_ascii();
    if !(trimmed.starts_with(b"{") && trimmed.ends_with(b"}")) {
        tracing::warn!(
            "{label}: {peer}: record {number} is no JSON object ({}); it goes to the dead \
             letter file",
            crate::common::printable(&String::from_utf8_lossy(&r[..r.len().min(60)]))
        );
    }
    batch.push(r);
}
