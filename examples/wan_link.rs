//! One shared link for benchmarks: a TCP proxy whose connections all share one bandwidth per
//! direction, as the connections of a host share its uplink. Toxiproxy's bandwidth toxic
//! limits each connection on its own (four connections would get four links), so bench/run
//! puts this in front of toxiproxy, which adds the latency.
//!
//! `cargo run --release --example wan_link -- LISTEN UPSTREAM MBIT_PER_S`
//!
//! Each direction is a FIFO: a chunk read from any connection is given the link's next free
//! moment and written once it has been "sent" (`len / rate` after the previous chunk, with a
//! burst of 5 ms of link time). Reads are at most 16 KiB, so that connections interleave as
//! packets of a real link would.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Idle link time that a late wake-up may still use.
const SLACK: Duration = Duration::from_millis(5);

/// One direction of the link: when it is free again.
struct Link {
    bytes_per_s: f64,
    free_at: Mutex<Instant>,
}

impl Link {
    /// Books `len` bytes on the link; returns when they have gone through.
    fn book(&self, len: usize) -> Instant {
        let mut free_at = self.free_at.lock().unwrap_or_else(|e| e.into_inner());
        // A wake-up a little late (timers have millisecond resolution) loses no link time: the
        // link may have been idle up to SLACK ago, as a token bucket with that burst.
        let start = (*free_at).max(Instant::now() - SLACK);
        *free_at = start + Duration::from_secs_f64(len as f64 / self.bytes_per_s);
        *free_at
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Arc<Link>,
) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        tokio::time::sleep_until(link.book(n)).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, mbit] = args.as_slice() else {
        eprintln!("usage: wan_link LISTEN UPSTREAM MBIT_PER_S");
        std::process::exit(2);
    };
    let mbit: f64 = mbit.parse().expect("MBIT_PER_S is a number");
    let link = |_| {
        Arc::new(Link {
            bytes_per_s: mbit * 1e6 / 8.0,
            free_at: Mutex::new(Instant::now()),
        })
    };
    let (up, down) = (link(()), link(()));
    let listener = TcpListener::bind(listen).await.expect("bind");
    eprintln!("link {listen} -> {upstream} at {mbit} Mbit/s each way, shared");
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let Ok(server) = TcpStream::connect(upstream).await else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        tokio::spawn(pump(cr, sw, up.clone()));
        tokio::spawn(pump(sr, cw, down.clone()));
    }
}
