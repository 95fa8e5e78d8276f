//! The floor of the shipper benchmark: one thread, `serde_json` parse and serialise of every
//! line of a file, nothing else. Prints `lines bytes seconds` on one line.

use std::io::{BufRead, BufReader};
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("usage: json_floor FILE");
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(&path).expect("open"));
    let mut line = Vec::new();
    let mut out = Vec::with_capacity(1 << 16);
    let (mut lines, mut bytes) = (0u64, 0u64);
    let started = Instant::now();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).expect("read");
        if n == 0 {
            break;
        }
        bytes += n as u64;
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(trimmed).expect("a JSON line");
        out.clear();
        serde_json::to_writer(&mut out, &v).expect("serialise");
        lines += 1;
        std::hint::black_box(&out);
    }
    println!("{lines} {bytes} {:.6}", started.elapsed().as_secs_f64());
}
