//! Compresses 2 MiB `_bulk`-sized bodies cut from an NDJSON file (at line ends) with flate2's
//! backend (chosen by cargo feature) and with libdeflate, at several levels, one thread, and
//! prints MB/s of input and the compressed size per input byte. Usage: gzip-backends FILE.

use std::io::Write;
use std::time::Instant;

const BODY: usize = 2 * 1024 * 1024;

fn bodies(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < data.len() && out.len() < 64 {
        let mut end = (start + BODY).min(data.len());
        while end < data.len() && data[end - 1] != b'\n' {
            end -= 1;
        }
        out.push(&data[start..end]);
        start = end;
    }
    out
}

fn flate2_gzip(body: &[u8], level: u32) -> usize {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::new(level),
    );
    enc.write_all(body).expect("in memory");
    enc.finish().expect("in memory").len()
}

fn libdeflate_gzip(body: &[u8], level: i32, out: &mut Vec<u8>) -> usize {
    let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).expect("level"));
    out.resize(c.gzip_compress_bound(body.len()), 0);
    c.gzip_compress(body, out).expect("bound")
}

fn run(name: &str, level: i32, bodies: &[&[u8]], mut f: impl FnMut(&[u8]) -> usize) {
    let mut secs = Vec::new();
    let (mut inb, mut outb) = (0usize, 0usize);
    for _ in 0..3 {
        let t = Instant::now();
        inb = 0;
        outb = 0;
        for b in bodies {
            inb += b.len();
            outb += f(b);
        }
        secs.push(t.elapsed().as_secs_f64());
    }
    secs.sort_by(f64::total_cmp);
    println!(
        "{name:<24} level {level:>2}  {:>7.1} MB/s  {:.4} bytes out per byte in",
        inb as f64 / secs[1] / 1e6,
        outb as f64 / inb as f64
    );
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: gzip-backends FILE");
    let data = std::fs::read(&path).expect("readable file");
    let bodies = bodies(&data);
    let backend = if cfg!(feature = "zlib-rs") {
        "flate2 (zlib-rs)"
    } else if cfg!(feature = "zlib-ng") {
        "flate2 (zlib-ng)"
    } else {
        "flate2 (miniz_oxide)"
    };
    println!("{} bodies of up to {BODY} bytes from {path}", bodies.len());
    for level in [1, 3, 6, 9] {
        run(backend, level, &bodies, |b| flate2_gzip(b, level as u32));
    }
    let mut out = Vec::new();
    for level in [1, 3, 6, 9, 12] {
        run("libdeflate", level, &bodies, |b| libdeflate_gzip(b, level, &mut out));
    }
}
