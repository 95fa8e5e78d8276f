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

async fn connection(
    mut stream: Box<dyn Stream>,
    peer: SocketAddr,
    served: Served,
    syslog: bool,
    limits: super::settings::Limits,
) {
    let label = served.label.clone();
    let mut stop = served.intake.clone();
    let mut buf = vec![0u8; 64 << 10];
    let mut framer: Option<Framer> =
        (!syslog).then(|| Framer::new(Framing::Lines, limits.max_frame_bytes));
    let mut number = 0u64;
    loop {
        let n = tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!("{label}: {peer}: {e}");
                    0
                }
            },
            () = stop.stopped() => 0,
            () = tokio::time::sleep(limits.idle_timeout()) => {
                served.counters.refused("idle");
                tracing::info!("{label}: {peer}: nothing sent for {} s; closed", limits.idle_timeout_seconds);
                0
            }
        };
        let f = framer.get_or_insert_with(|| {
            let framing = buf
                .first()
                .filter(|_| n > 0)
                .map_or(Framing::Lines, |&b| Framer::detect(b));
            Framer::new(framing, limits.max_frame_bytes)
        });
        let mut records = batch(&served);
        if n == 0 {
            if let Some(Framed::Record(r)) = f.finish() {
                number += 1;
                take(&mut records, r, syslog, &label, peer, number);
            }
            spool(&served, records).await;
            return;
        }
        f.push(&buf[..n]);
        let end = loop {
            match f.next_record() {
                Ok(Some(Framed::Record(r))) => {
                    number += 1;
                    take(&mut records, r, syslog, &label, peer, number);
                }
                Ok(Some(Framed::Skipped(e))) => {
                    number += 1;
                    served.counters.refused("record_too_large");
                    tracing::warn!("{label}: {peer}: record {number}: {e}; skipped");
                }
                Ok(None) => break false,
                Err(e) => {
                    served.counters.refused("framing");
                    tracing::warn!("{label}: {peer}: {e}; this connection is closed");
                    break true;
                }
            }
        };
        if !spool(&served, records).await || end {
            return;
        }
    }
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
