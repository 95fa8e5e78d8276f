//! UDP listeners: one JSON object (or a few lines of them) per datagram (`udp://`, NXLog's
//! `om_udp`), or one syslog message per datagram (`syslog+udp://`). UDP cannot push back: while
//! the spool is full, datagrams are dropped and counted. So are those the kernel dropped when
//! the socket's buffer overflowed (read from `/proc/net/udp`), so the count is the whole loss.

use super::settings::Kind;
use super::{Bound, Served, Socket};
use crate::source::spool::Batch;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// The receive buffer asked of the kernel (it may give less: `net.core.rmem_max`).
const RECEIVE_BUFFER: usize = 8 << 20;
/// Most datagrams gathered into one batch.
const BATCH_DATAGRAMS: usize = 512;

/// Binds a UDP socket with a large receive buffer.
pub fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// Receives datagrams until the run stops.
pub async fn serve(bound: Bound, served: Served) {
    let Socket::Datagram(socket) = bound.socket else {
        unreachable!("a UDP listener has a UDP socket");
    };
    let syslog = bound.settings.kind == Kind::SyslogUdp;
    let limit = bound.settings.limits.max_frame_bytes.min(65_535);
    let (spool, source) = served.spool.clone().expect("a UDP listener has the spool");
    let mut stop = served.intake.clone();
    let mut buf = vec![0u8; 65_536];
    let mut kernel = KernelDrops::new(bound.addr);
    let mut warned: Option<Instant> = None;
    loop {
        let got = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            () = stop.stopped() => break,
        };
        let mut records = Batch::new(source, served.counters.clone());
        let mut datagrams = 0;
        let mut next = got.map(|(n, _)| n);
        while let Ok(n) = next {
            datagrams += 1;
            take(&buf[..n], syslog, limit, &served, &mut records);
            if datagrams >= BATCH_DATAGRAMS {
                break;
            }
            next = socket.try_recv_from(&mut buf).map(|(n, _)| n);
        }
        if records.is_empty() {
            continue;
        }
        let n = records.len();
        if spool.try_send(records).is_err() {
            served.counters.lost(n);
            if warned.is_none_or(|w| w.elapsed() > Duration::from_secs(10)) {
                tracing::warn!(
                    "{}: the spool is full: datagrams are dropped (counted as dropped)",
                    served.label
                );
                warned = Some(Instant::now());
            }
        }
        kernel.update(&served, false);
    }
    kernel.update(&served, true);
}

/// The records of one datagram.
fn take(d: &[u8], syslog: bool, limit: usize, served: &Served, out: &mut Batch) {
    if d.len() > limit {
        served.counters.refused("record_too_large");
        return;
    }
    if syslog {
        let m = d.strip_suffix(b"\n").unwrap_or(d);
        if !m.is_empty() {
            out.push(&super::syslog::record(m));
        }
        return;
    }
    for line in d.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.trim_ascii().is_empty() {
            out.push(line);
        }
    }
}

/// The kernel's count of datagrams it dropped for this socket (a full receive buffer).
struct KernelDrops {
    port: u16,
    seen: u64,
    checked: Instant,
}

impl KernelDrops {
    fn new(addr: SocketAddr) -> Self {
        Self {
            port: addr.port(),
            seen: 0,
            checked: Instant::now(),
        }
    }

    /// Adds what the kernel dropped since the last look (at most once a second, unless
    /// `now`).
    fn update(&mut self, served: &Served, now: bool) {
        if !now && self.checked.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.checked = Instant::now();
        let Some(now) = kernel_drops(self.port) else {
            return;
        };
        if now > self.seen {
            served.counters.dropped.fetch_add(now - self.seen, Relaxed);
            self.seen = now;
        }
    }
}

/// The `drops` column of `/proc/net/udp` and `/proc/net/udp6` for a local port.
fn kernel_drops(port: u16) -> Option<u64> {
    let wanted = format!(":{port:04X}");
    let mut total = None;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.get(1).is_some_and(|local| local.ends_with(&wanted)) {
                let drops: u64 = cols.last().and_then(|d| d.parse().ok()).unwrap_or(0);
                *total.get_or_insert(0) += drops;
            }
        }
    }
    total
}
