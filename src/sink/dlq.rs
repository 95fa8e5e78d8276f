//! The dead letter queue: a JSON-lines file of the records that could not be delivered, each with
//! the reason, the engine's status and error, and where it came from.
//!
//! Each line holds `time`, `reason`, `status` (HTTP status of the item, or null), `error` (the
//! engine's error object, or null), `input` (file, or `archive!member`), `line` (1-based line
//! number in that stream), and either `record` (the original record, when it was JSON) or
//! `record_text` (the original line, when it was not; with `record_base64`, its exact bytes,
//! when they are not UTF-8).

use serde_json::{Map, Value};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// One rejected record.
#[derive(Debug)]
pub struct DeadRecord<'a> {
    /// Why it was rejected.
    pub reason: &'a str,
    /// HTTP status of the item, when the engine answered.
    pub status: Option<u16>,
    /// The engine's error object, when it gave one.
    pub error: Option<&'a Value>,
    /// The stream it came from.
    pub input: &'a str,
    /// Its line number in that stream.
    pub line: u64,
    /// Its bytes as read.
    pub record: &'a [u8],
}

/// An append-only dead letter file, created on first use.
#[derive(Debug)]
pub struct DeadLetter {
    path: PathBuf,
    writer: Mutex<Option<BufWriter<File>>>,
    written: AtomicU64,
}

impl DeadLetter {
    /// A queue that will append to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            writer: Mutex::new(None),
            written: AtomicU64::new(0),
        }
    }

    /// Checks, without writing a line, that records can be appended to `path`: not a
    /// directory, and in a directory that exists (or can be made) and takes new files.
    pub fn check_writable(path: &Path) -> Result<(), String> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => return Err(format!("{} is a directory", path.display())),
            Ok(_) => {
                return OpenOptions::new()
                    .append(true)
                    .open(path)
                    .map(drop)
                    .map_err(|e| format!("cannot append to {}: {e}", path.display()));
            }
            Err(_) => {}
        }
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut existing = dir;
        while !existing.exists() {
            match existing.parent() {
                Some(p) if !p.as_os_str().is_empty() => existing = p,
                _ => {
                    existing = Path::new(".");
                    break;
                }
            }
        }
        if !existing.is_dir() {
            return Err(format!("{} is not a directory", existing.display()));
        }
        tempfile::NamedTempFile::new_in(existing)
            .map(drop)
            .map_err(|e| format!("cannot create files in {}: {e}", existing.display()))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records written by this process.
    pub fn written(&self) -> u64 {
        self.written.load(Relaxed)
    }

    /// Appends one record.
    pub fn write(&self, rec: &DeadRecord<'_>) -> io::Result<()> {
        let mut line = Map::new();
        line.insert("time".into(), crate::common::now().into());
        line.insert("reason".into(), rec.reason.into());
        line.insert("status".into(), rec.status.map_or(Value::Null, Value::from));
        line.insert("error".into(), rec.error.cloned().unwrap_or(Value::Null));
        line.insert("input".into(), rec.input.into());
        line.insert("line".into(), rec.line.into());
        match serde_json::from_slice::<Value>(rec.record) {
            Ok(v) => {
                line.insert("record".into(), v);
            }
            Err(_) => match std::str::from_utf8(rec.record) {
                Ok(text) => {
                    line.insert("record_text".into(), text.into());
                }
                Err(_) => {
                    // Not UTF-8: the exact bytes, so that what was read can be sent again.
                    use base64::Engine;
                    let exact = base64::engine::general_purpose::STANDARD.encode(rec.record);
                    line.insert(
                        "record_text".into(),
                        String::from_utf8_lossy(rec.record).into_owned().into(),
                    );
                    line.insert("record_base64".into(), exact.into());
                }
            },
        }
        let mut bytes = serde_json::to_vec(&line).map_err(io::Error::other)?;
        bytes.push(b'\n');
        let mut guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            *guard = Some(BufWriter::new(file));
        }
        guard.as_mut().expect("opened").write_all(&bytes)?;
        self.written.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Flushes what was written to the file.
    pub fn flush(&self) -> io::Result<()> {
        let mut guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(w) => {
                w.flush()?;
                w.get_ref().sync_data()
            }
            None => Ok(()),
        }
    }
}
