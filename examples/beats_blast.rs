//! A Beats (Lumberjack v2) load generator for `bench/run --only beats`: it measures evtship's
//! listener, not a client. Every window is encoded (and zlib-compressed, as Beats do) before the
//! clock starts; then each connection writes its windows with up to `--pipeline` of them awaiting
//! their ACK, as Beats' `pipelining` does, and the run ends when every window has been ACKed.
//! Correctness is proved elsewhere, with go-lumber and Filebeat; this only pushes bytes.
//!
//! Usage: beats_blast ADDR FILE [--connections N] [--window N] [--compress LEVEL] [--pipeline N]
//! Prints: events seconds connections

use flate2::write::ZlibEncoder;
use flate2::Compression;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

struct Options {
    addr: String,
    file: String,
    connections: usize,
    window: usize,
    compress: u32,
    pipeline: usize,
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let addr = args.next().expect("ADDR");
    let file = args.next().expect("FILE");
    let mut o = Options {
        addr,
        file,
        connections: 4,
        window: 2048,
        compress: 3,
        pipeline: 2,
    };
    while let Some(flag) = args.next() {
        let value: usize = args
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--connections" => o.connections = value.max(1),
            "--window" => o.window = value.max(1),
            "--compress" => o.compress = value as u32,
            "--pipeline" => o.pipeline = value.max(1),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// One window as it goes on the wire: `2W` + count, then the events as `2J` frames, inside one
/// `2C` frame unless `level` is 0.
fn encode(events: &[Vec<u8>], level: u32) -> Vec<u8> {
    let mut frames = Vec::new();
    for (i, e) in events.iter().enumerate() {
        frames.extend_from_slice(b"2J");
        frames.extend_from_slice(&(i as u32 + 1).to_be_bytes());
        frames.extend_from_slice(&(e.len() as u32).to_be_bytes());
        frames.extend_from_slice(e);
    }
    let mut out = Vec::with_capacity(frames.len() / 4 + 16);
    out.extend_from_slice(b"2W");
    out.extend_from_slice(&(events.len() as u32).to_be_bytes());
    if level == 0 {
        out.extend_from_slice(&frames);
    } else {
        let mut z = ZlibEncoder::new(Vec::new(), Compression::new(level));
        z.write_all(&frames).expect("compress");
        let packed = z.finish().expect("compress");
        out.extend_from_slice(b"2C");
        out.extend_from_slice(&(packed.len() as u32).to_be_bytes());
        out.extend_from_slice(&packed);
    }
    out
}

/// Sends `windows` on one connection, at most `pipeline` unanswered; returns when all are ACKed.
fn send(addr: &str, windows: Vec<(u32, Vec<u8>)>, pipeline: usize) -> std::io::Result<u64> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut reader = stream.try_clone()?;
    let mut waiting: VecDeque<u32> = VecDeque::new();
    let mut events = 0u64;
    let mut next = windows.into_iter();
    loop {
        while waiting.len() < pipeline {
            let Some((count, bytes)) = next.next() else {
                break;
            };
            stream.write_all(&bytes)?;
            waiting.push_back(count);
        }
        let Some(&want) = waiting.front() else {
            return Ok(events);
        };
        let mut ack = [0u8; 6];
        reader.read_exact(&mut ack)?;
        assert_eq!(&ack[..2], b"2A", "not an ACK");
        let seq = u32::from_be_bytes(ack[2..].try_into().expect("4 bytes"));
        if seq == want {
            waiting.pop_front();
            events += u64::from(want);
        }
    }
}

fn main() {
    let o = options();
    let lines: Vec<Vec<u8>> = BufReader::new(std::fs::File::open(&o.file).expect("FILE"))
        .split(b'\n')
        .map(|l| l.expect("read"))
        .filter(|l| !l.is_empty())
        .collect();
    let mut per_connection: Vec<Vec<(u32, Vec<u8>)>> = vec![Vec::new(); o.connections];
    for (i, chunk) in lines.chunks(o.window).enumerate() {
        per_connection[i % o.connections].push((chunk.len() as u32, encode(chunk, o.compress)));
    }
    drop(lines);
    let start = Instant::now();
    let handles: Vec<_> = per_connection
        .into_iter()
        .map(|windows| {
            let addr = o.addr.clone();
            let pipeline = o.pipeline;
            std::thread::spawn(move || send(&addr, windows, pipeline))
        })
        .collect();
    let mut events = 0;
    for h in handles {
        events += h.join().expect("sender thread").expect("connection failed");
    }
    println!(
        "{events} {:.3} {}",
        start.elapsed().as_secs_f64(),
        o.connections
    );
}
