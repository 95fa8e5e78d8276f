//! A damaged spool, against the real engine: a spool of several segments is written while the
//! engine is away, damaged on disk (a flipped record byte, a flipped length byte, a truncated
//! segment, a head that names no segment or points inside a frame), and read by the next run.
//! One bad byte costs one record, every loss is counted and named, and such a run exits 3.

mod common;

use common::listen::*;
use common::proxy::FaultProxy;
use common::wait::{until, Guard};
use common::*;
use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const RECORDS: usize = 5000;
/// The first bytes of every frame (src/source/spool/segment.rs).
const FRAME_MAGIC: [u8; 4] = [0xFF, b'E', b'V', b'F'];

struct Spooled {
    dir: tempfile::TempDir,
    pipeline: PathBuf,
    addr: String,
    index: TestIndex,
}

impl Spooled {
    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    fn segments(&self) -> Vec<PathBuf> {
        let mut s: Vec<PathBuf> = std::fs::read_dir(self.spool())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        s.sort();
        s
    }

    /// Runs evtship over the spool with the engine there, until it stops getting documents.
    fn read_back(&self, expected: u64) -> Run {
        let mut l = Listening::start(&self.pipeline, self.dir.path(), &engine(), &self.addr);
        until(
            "the spool's records",
            Duration::from_secs(120),
            || self.index.count_so_far() >= expected,
            || l.stderr(),
        );
        std::thread::sleep(Duration::from_secs(2));
        l.stop()
    }

    /// The record numbers in the index, each once.
    fn numbers(&self) -> BTreeSet<u64> {
        let docs = self.index.documents();
        let numbers: BTreeSet<u64> = docs
            .values()
            .map(|d| d["RecordNumber"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers.len(), docs.len(), "a record indexed twice");
        numbers
    }
}

/// A spool of several segments holding `RECORDS` records, written by a TCP listener once
/// the engine went away (it refuses every connection), then a SIGTERM.
fn spooled(name: &str) -> Spooled {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new(name);
    let proxy = FaultProxy::start(&engine());
    let addr = format!("127.0.0.1:{}", free_port());
    let spool = dir.path().join("spool");
    let extra = format!(
        "[spool]\ndir = \"{}\"\nmax_bytes = \"4MiB\"\n[bulk]\nshutdown_grace_ms = 500\n",
        spool.display()
    );
    let table = format!("[[listen]]\nuri = \"tcp://{addr}\"\n");
    let pipeline = listen_pipeline(dir.path(), &index.name, &table, &extra);
    let mut l = Listening::start(&pipeline, dir.path(), &proxy.url, &addr);
    // Up with its template installed, then the engine goes away.
    until(
        "the template",
        Duration::from_secs(30),
        || l.stderr().contains("index template"),
        || l.stderr(),
    );
    proxy.set(|f| f.refuse = true);
    let file = dir.path().join("records.json");
    write_records(&file, RECORDS, "SPOOLED");
    TcpStream::connect(&addr)
        .unwrap()
        .write_all(&std::fs::read(&file).unwrap())
        .unwrap();
    let uri = format!("evtship_listener_spooled_total{{listener=\"tcp://{addr}\"}}");
    until(
        "every record on the spool",
        Duration::from_secs(60),
        || l.counter(&uri) == RECORDS as u64,
        || l.stderr(),
    );
    let run = l.stop();
    assert_eq!(run.code, 4, "{}", run.stderr);
    let s = Spooled {
        dir,
        pipeline,
        addr,
        index,
    };
    assert!(s.segments().len() >= 3, "{:?}", s.segments());
    s
}

fn magics(bytes: &[u8]) -> Vec<usize> {
    bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == FRAME_MAGIC)
        .map(|(i, _)| i)
        .collect()
}

fn damaged_run_loses(s: &Spooled, lost: u64, segment: &Path) {
    let run = s.read_back(RECORDS as u64 - lost);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.summary["spool_lost"], lost, "{}", run.stderr);
    assert_eq!(s.numbers().len() as u64, RECORDS as u64 - lost);
    let name = segment.file_name().unwrap().to_str().unwrap();
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains("ERROR") && l.contains(name) && l.contains("byte")),
        "{}",
        run.stderr
    );
}

#[test]
fn a_flipped_record_byte_costs_that_record_alone() {
    let s = spooled("spooldamagerecord");
    let seg = s.segments()[1].clone();
    let mut bytes = std::fs::read(&seg).unwrap();
    // The middle of a record: 40 bytes after the frame marker nearest the middle.
    let m = magics(&bytes);
    let at = m[m.len() / 2] + 18 + 40;
    bytes[at] ^= 0x20;
    std::fs::write(&seg, &bytes).unwrap();
    // On 529c900 every record after it in the segment was lost (307 of 3,622).
    damaged_run_loses(&s, 1, &seg);
}

#[test]
fn a_flipped_length_byte_costs_that_record_alone() {
    let s = spooled("spooldamagelength");
    let seg = s.segments()[1].clone();
    let mut bytes = std::fs::read(&seg).unwrap();
    let m = magics(&bytes);
    bytes[m[m.len() / 2] + 5] ^= 0x7f;
    std::fs::write(&seg, &bytes).unwrap();
    // On 529c900: 294 records lost under "evtship stopped while writing it", exit 0.
    damaged_run_loses(&s, 1, &seg);
}

#[test]
fn a_truncated_segment_loses_what_was_cut_away_and_says_so() {
    let s = spooled("spooldamagecut");
    let seg = s.segments()[1].clone();
    let bytes = std::fs::read(&seg).unwrap();
    let cut = bytes.len() / 2;
    let all = magics(&bytes).len();
    let kept = magics(&bytes[..cut]).len() - 1;
    std::fs::write(&seg, &bytes[..cut]).unwrap();
    let missing = (all - kept) as u64;
    let run = s.read_back(RECORDS as u64 - missing);
    assert_eq!(run.code, 3, "{}", run.stderr);
    // The cut frame is the one loss a reader can see.
    assert_eq!(run.summary["spool_lost"], 1, "{}", run.stderr);
    assert_eq!(s.numbers().len() as u64, RECORDS as u64 - missing);
}

#[test]
fn a_head_naming_no_segment_is_refused_and_deletes_nothing() {
    let s = spooled("spoolhead99");
    let before = s.segments();
    std::fs::write(s.spool().join("head"), "99 0\n").unwrap();
    let log = s.dir.path().join("head99.log");
    let mut run = Guard::spawn(
        Command::new(env!("CARGO_BIN_EXE_evtship"))
            .current_dir(root())
            .env("ES_URL", engine())
            .args(["run", s.pipeline.to_str().unwrap(), "--no-progress"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    // On 529c900: every segment deleted at open, 0 read, and the run went on listening.
    let (code, _) = run.wait_within(Duration::from_secs(30));
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("head"), "{stderr}");
    assert_eq!(s.segments(), before);
}

#[test]
fn a_head_inside_a_frame_is_moved_back_to_its_start_and_nothing_is_skipped() {
    let s = spooled("spoolhead100");
    std::fs::write(s.spool().join("head"), "1 100\n").unwrap();
    // On 529c900: the 600-odd records of segment 1 after byte 100 were skipped with no word.
    let run = s.read_back(RECORDS as u64);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(s.numbers().len(), RECORDS);
    assert!(run.stderr.contains("head"), "{}", run.stderr);
}
