//! Listeners on a network: hostile senders (frames that announce billions of pairs, bodies
//! never finished, windows and bodies half sent), against the real engine. None of them may
//! crash evtship, take its memory past the listeners' budget, or hold its connection slots,
//! and a legitimate sender gets through meanwhile.

mod common;

use common::listen::*;
use common::wait::peak_kib;
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The listeners' memory budget when nothing sets it (`[listeners] max_buffered_bytes`).
const BUDGET_MIB: u64 = 256;
/// What evtship holds besides the budget: its code, the runtime, the pipeline's queues of
/// small chunks, per-connection buffers (measured: 40 to 60 MiB idle or under light load).
const MARGIN_MIB: u64 = 96;

fn beats_frame_w(n: u32) -> Vec<u8> {
    let mut f = b"2W".to_vec();
    f.extend(n.to_be_bytes());
    f
}

fn beats_frame_j(seq: u32, json: &[u8]) -> Vec<u8> {
    let mut f = b"2J".to_vec();
    f.extend(seq.to_be_bytes());
    f.extend((json.len() as u32).to_be_bytes());
    f.extend(json);
    f
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(bytes).unwrap();
    z.finish().unwrap()
}

/// Writes `chunks` times `chunk` after `head`, stopping at the first write evtship refuses.
fn flood(addr: &str, head: &[u8], chunk: &[u8], chunks: usize) -> usize {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return 0;
    };
    if s.write_all(head).is_err() {
        return 0;
    }
    (0..chunks)
        .take_while(|_| s.write_all(chunk).is_ok())
        .count()
}

fn sent_once(l: &Listening, addr: &str, index: &TestIndex) {
    let file = data("otrf/covenant_copy_smb_CreateRequest_2020-09-22145302.json");
    let out = lumber_send(addr, &file, &[]).output().unwrap();
    let (code, report) = lumber_result(out);
    assert_eq!(code, 0, "lumber-send: {report}; evtship: {}", l.stderr());
    index.wait_for(506, Duration::from_secs(60), || l.stderr());
}

#[test]
fn beats_frames_that_announce_billions_of_pairs_are_refused_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("exposedbeats");
    let addr = format!("127.0.0.1:{}", free_port());
    let table = format!("[[listen]]\nuri = \"beats://{addr}\"\n");
    let p = listen_pipeline(dir.path(), &index.name, &table, "");
    let mut l = Listening::start(&p, dir.path(), &engine(), &addr);
    let before = peak_kib(l.pid());

    // A legacy D frame announcing 4,294,967,295 zero-length pairs, then 300 MiB of them
    // (on 529c900 this aborted the process: `memory allocation of 3221225472 bytes failed`).
    let mut head = beats_frame_w(1);
    head.extend(b"2D");
    head.extend(1u32.to_be_bytes());
    head.extend(u32::MAX.to_be_bytes());
    let zeros = vec![0u8; 1 << 20];
    let d_attack = {
        let addr = addr.clone();
        std::thread::spawn(move || flood(&addr, &head, &zeros, 300))
    };
    // Compressed frames holding a D frame of zero-length pairs (an amplification: 30 MiB
    // inflated from about 30 KiB on the wire), twelve of them on each of four connections.
    let mut inner = b"2D".to_vec();
    inner.extend(1u32.to_be_bytes());
    inner.extend(u32::MAX.to_be_bytes());
    inner.extend(vec![0u8; 30 << 20]);
    let payload = zlib(&inner);
    let mut c_frame = b"2C".to_vec();
    c_frame.extend((payload.len() as u32).to_be_bytes());
    c_frame.extend(&payload);
    let c_attacks: Vec<_> = (0..4)
        .map(|_| {
            let (addr, frame) = (addr.clone(), c_frame.clone());
            std::thread::spawn(move || flood(&addr, &beats_frame_w(12), &frame, 12))
        })
        .collect();
    let d_sent = d_attack.join().unwrap();
    for a in c_attacks {
        a.join().unwrap();
    }
    // Still here, and a real sender's window gets through.
    sent_once(&l, &addr, &index);
    let peak = peak_kib(l.pid());
    let run = l.stop();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let refused = &run.summary["listeners"][0]["refused"];
    assert!(
        refused["frame_too_large"].as_u64().unwrap_or(0) >= 1
            && refused["protocol"].as_u64().unwrap_or(0) >= 4,
        "{refused}: {}",
        run.stderr
    );
    assert!(d_sent < 300, "the 300 MiB D frame was read whole");
    eprintln!(
        "peak RSS {} MiB (before the attack {} MiB); D frame refused after {d_sent} MiB",
        peak / 1024,
        before / 1024
    );
    assert!(
        peak < (BUDGET_MIB + MARGIN_MIB) * 1024,
        "peak RSS {} KiB: {}",
        peak,
        run.stderr
    );
}

/// An HTTP request by hand: headers, then `body_part` of a body that announces `length`.
fn half_request(addr: &str, length: usize, body_part: &[u8]) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).ok()?;
    let head = format!(
        "POST /ingest HTTP/1.1\r\nHost: evtship\r\nContent-Type: application/x-ndjson\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).ok()?;
    let _ = s.write_all(body_part);
    Some(s)
}

/// The status line's code of what evtship answered on `s` (0 when it closed without one).
fn status_of(s: &mut TcpStream, within: Duration) -> u16 {
    s.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn post_lines(addr: &str, n: usize, host: &str) -> (u16, Value) {
    let body: String = (0..n)
        .map(|i| format!("{{\"Hostname\":\"{host}\",\"n\":{i}}}\n"))
        .collect();
    let r = reqwest::blocking::Client::new()
        .post(format!("http://{addr}/ingest"))
        .body(body)
        .timeout(Duration::from_secs(60))
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

#[test]
fn bodies_never_finished_are_bounded_in_total_and_timed_out_and_a_real_request_gets_through() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("exposedhttp");
    let addr = format!("127.0.0.1:{}", free_port());
    let table = format!("[[listen]]\nuri = \"http://{addr}\"\nread_timeout_seconds = 6\n");
    let p = listen_pipeline(dir.path(), &index.name, &table, "");
    let l = Listening::start(&p, dir.path(), &engine(), &addr);

    // 60 senders announce 31 MiB bodies and send 16 MiB of each (on 529c900: ~1 GB held,
    // and 96 of them aborted the process).
    let part = vec![b' '; 16 << 20];
    let started = Instant::now();
    let attackers: Vec<_> = (0..60)
        .map(|_| {
            let (addr, part) = (addr.clone(), part.clone());
            std::thread::spawn(move || {
                let mut s = half_request(&addr, 31 << 20, &part)?;
                Some(status_of(&mut s, Duration::from_secs(30)))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let (status, answer) = post_lines(&addr, 50, "legit");
    assert_eq!(status, 200, "{answer}: {}", l.stderr());
    assert_eq!(answer["indexed"], 50, "{answer}");
    let statuses: Vec<u16> = attackers
        .into_iter()
        .filter_map(|a| a.join().unwrap())
        .collect();
    let took = started.elapsed();
    let peak = peak_kib(l.pid());
    let (too_many, timed_out) = (
        statuses.iter().filter(|s| **s == 429).count(),
        statuses.iter().filter(|s| **s == 408).count(),
    );
    eprintln!(
        "{} answers in {took:?}: {too_many} x 429, {timed_out} x 408; peak RSS {} MiB",
        statuses.len(),
        peak / 1024
    );
    assert!(too_many >= 40, "{statuses:?}");
    assert_eq!(too_many + timed_out, statuses.len(), "{statuses:?}");
    assert!(
        peak < (BUDGET_MIB + MARGIN_MIB) * 1024,
        "peak {peak} KiB: {}",
        l.stderr()
    );
    let mut l = l;
    let run = l.stop();
    let refused = &run.summary["listeners"][0]["refused"];
    assert_eq!(
        refused["memory"].as_u64(),
        Some(too_many as u64),
        "{refused}"
    );
    assert_eq!(refused["read_timeout"].as_u64(), Some(timed_out as u64));
    assert!(refused.get("body_too_large").is_none(), "{refused}");
}

#[test]
fn half_sent_bodies_and_windows_are_closed_by_their_timeouts_and_slots_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("exposedslow");
    let (http, beats) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let limits = "max_connections = 30\nidle_timeout_seconds = 3\nread_timeout_seconds = 3\n\
                  keepalive_seconds = 1\n";
    let tables = format!(
        "[[listen]]\nuri = \"http://{http}\"\n{limits}\n[[listen]]\nuri = \"beats://{beats}\"\n{limits}"
    );
    let p = listen_pipeline(dir.path(), &index.name, &tables, "");
    let mut l = Listening::start(&p, dir.path(), &engine(), &http);
    wait_for_port(&beats, Duration::from_secs(10), || l.stderr());

    // 25 HTTP senders: headers and 1 byte of a 1,000-byte body, then nothing.
    let mut bodies: Vec<TcpStream> = (0..25)
        .map(|_| half_request(&http, 1000, b"{").expect("connected"))
        .collect();
    // 25 Beats senders: a window of 2 and one event of it, then nothing.
    let mut window = beats_frame_w(2);
    window.extend(beats_frame_j(1, br#"{"Hostname":"slow","n":1}"#));
    let mut windows: Vec<TcpStream> = (0..25)
        .map(|_| {
            let mut s = TcpStream::connect(&beats).unwrap();
            s.write_all(&window).unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    for s in &mut bodies {
        assert_eq!(status_of(s, Duration::from_secs(15)), 408);
    }
    // Each window's connection is closed with no keep-alive ACK: evtship waited on the sender.
    for s in &mut windows {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(got.is_empty(), "the sender got {got:?}");
    }
    let closed_after = started.elapsed();
    assert!(closed_after < Duration::from_secs(10), "{closed_after:?}");
    // The slots are free again: a legitimate sender on each listener.
    let (status, answer) = post_lines(&http, 10, "legit");
    assert_eq!((status, &answer["indexed"]), (200, &Value::from(10)));
    sent_once(&l, &beats, &index);
    let run = l.stop();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let [h, b] = [0, 1].map(|i| run.summary["listeners"][i].clone());
    assert_eq!(h["refused"]["read_timeout"], 25, "{h}");
    assert!(h["refused"].get("body_too_large").is_none(), "{h}");
    assert_eq!(b["refused"]["idle"], 25, "{b}");
    eprintln!("half-sent bodies and windows closed after {closed_after:?}");
}

#[test]
fn a_flood_of_refused_senders_is_counted_whole_and_warned_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("exposedauth");
    let addr = format!("127.0.0.1:{}", free_port());
    let table =
        format!("[[listen]]\nuri = \"http://{addr}\"\n[listen.auth]\nbearer_token = \"s3cret\"\n");
    let p = listen_pipeline(dir.path(), &index.name, &table, "");
    let mut l = Listening::start(&p, dir.path(), &engine(), &addr);
    let client = reqwest::blocking::Client::new();
    for _ in 0..300 {
        let r = client
            .post(format!("http://{addr}/ingest"))
            .bearer_auth("wrong")
            .body("{\"a\":1}\n")
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    let run = l.stop();
    assert_eq!(run.summary["listeners"][0]["refused"]["auth"], 300);
    let warnings = run
        .stderr
        .lines()
        .filter(|l| l.contains("missing or wrong credentials"))
        .count();
    assert!(
        (1..=3).contains(&warnings),
        "{warnings} lines: {}",
        run.stderr
    );
}
