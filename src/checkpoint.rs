//! Durable per-input positions: how far every record of an input has been acknowledged.
//!
//! One JSON file per pipeline and index, in the checkpoint directory, written atomically
//! (temporary file, fsync, rename, fsync of the directory). An input is known by its file's
//! identity (device, inode and a fingerprint of its first bytes), not its name, so a renamed
//! file is not read twice and a new file that reuses an inode is not mistaken for the old one.
//!
//! A position only moves past a chunk of records once every record in it, and in every chunk
//! before it, has an outcome (indexed, already present, or dead-lettered). A run that stops at
//! any moment therefore resumes at or before the first record without an outcome: records may be
//! sent twice, never skipped, and stable ids make the second send harmless.

use crate::ack::InOrder;
use crate::chunk::StreamPos;
use crate::common::InputId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use thiserror::Error;

/// Bytes at the start of a file that make its fingerprint.
pub const FINGERPRINT_BYTES: u64 = 1024;

/// Why checkpoints could not be read or written.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// The directory or file could not be used.
    #[error("checkpoint file {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is not a checkpoint file evtship can read.
    #[error("checkpoint file {} is unreadable ({message}); move it away or run `evtship checkpoints reset`", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

/// What identifies a file whatever its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub inode: u64,
    /// xxh3 of the first `fingerprint_len` bytes, in hex.
    pub fingerprint: String,
    /// How many bytes the fingerprint covers (fewer than [`FINGERPRINT_BYTES`] for small files).
    pub fingerprint_len: u64,
}

fn fingerprint(file: &mut File, len: u64) -> io::Result<String> {
    let mut head = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut head)?;
    Ok(format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&head)))
}

impl Identity {
    /// Identifies an open file.
    pub fn of_file(file: &File) -> io::Result<Self> {
        let meta = file.metadata()?;
        let (dev, inode) = dev_inode(&meta);
        let fingerprint_len = meta.len().min(FINGERPRINT_BYTES);
        let mut f = file.try_clone()?;
        use std::io::Seek;
        let here = f.stream_position()?;
        f.seek(io::SeekFrom::Start(0))?;
        let fingerprint = fingerprint(&mut f, fingerprint_len)?;
        f.seek(io::SeekFrom::Start(here))?;
        Ok(Self {
            dev,
            inode,
            fingerprint,
            fingerprint_len,
        })
    }

    /// Identifies a file by path.
    pub fn of_path(path: &Path) -> io::Result<Self> {
        Self::of_file(&File::open(path)?)
    }

    /// The key under which the file's position is stored.
    pub fn key(&self) -> String {
        format!("{}:{}", self.dev, self.inode)
    }

    /// Whether the file at `path` is this file: same device and inode, still starting with the
    /// bytes fingerprinted (it may have grown since).
    pub fn matches(&self, path: &Path) -> bool {
        let Ok(mut file) = File::open(path) else {
            return false;
        };
        let Ok(meta) = file.metadata() else {
            return false;
        };
        dev_inode(&meta) == (self.dev, self.inode)
            && meta.len() >= self.fingerprint_len
            && fingerprint(&mut file, self.fingerprint_len).is_ok_and(|f| f == self.fingerprint)
    }
}

/// The key a file's position is stored under ([`Identity::key`]), from its metadata alone (a
/// `stat`, which works on a file its permissions forbid reading).
pub fn identity_key(meta: &std::fs::Metadata) -> String {
    let (dev, inode) = dev_inode(meta);
    format!("{dev}:{inode}")
}

#[cfg(unix)]
fn dev_inode(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn dev_inode(meta: &std::fs::Metadata) -> (u64, u64) {
    (0, meta.len())
}

/// The stored position of one input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The input as last named (a path).
    pub input: String,
    /// The file's identity.
    pub identity: Identity,
    /// Records of the input acknowledged, from its start (in read order).
    pub records: u64,
    /// Lines and bytes of the stream acknowledged (meaningful when `seekable`).
    pub position: StreamPos,
    /// Whether `position` can be sought to (plain JSON-lines files); otherwise the first
    /// `records` records are skipped on resume.
    pub seekable: bool,
    /// Whether the input was read to its end and every record has an outcome.
    pub finished: bool,
    /// When this entry was last written.
    pub updated: String,
}

/// Everything in one checkpoint file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoreFile {
    /// Format version.
    pub version: u32,
    /// Pipeline name.
    pub pipeline: String,
    /// Target index.
    pub index: String,
    /// Entries by identity key.
    pub entries: BTreeMap<String, Entry>,
}

/// Where reading an input should start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// From the beginning.
    Fresh,
    /// Not at all: it was read to its end and every record has an outcome.
    Finished(Entry),
    /// From a stored position.
    From(Entry),
}

/// A chunk's end, once settled: its position and the records up to it, or `None` when one of
/// its records failed (the position then never moves past it).
type Mark = Option<(StreamPos, u64)>;

#[derive(Debug)]
struct Live {
    key: String,
    chunks: InOrder<Mark>,
    /// A chunk with a failed record settled: the position stays before it.
    blocked: bool,
    total_chunks: Option<u64>,
}

#[derive(Debug)]
struct State {
    file: StoreFile,
    live: HashMap<InputId, Live>,
    dirty: bool,
}

/// The checkpoints of one pipeline run.
#[derive(Debug)]
pub struct Checkpoints {
    path: PathBuf,
    state: Mutex<State>,
    /// Held by a save from its snapshot to its rename: saves write one at a time (they share
    /// the temporary file), and in the order of their snapshots, so that an older snapshot
    /// never replaces a newer one. The periodic save and the last one may overlap: aborting
    /// the periodic task does not stop a write already on the blocking pool.
    writing: Mutex<()>,
}

/// The default checkpoint directory: `$XDG_DATA_HOME/evtship/checkpoints`, else
/// `~/.local/share/evtship/checkpoints`.
pub fn default_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir)
        .join("evtship")
        .join("checkpoints")
}

/// The checkpoint file of a pipeline and index in `dir`.
pub fn file_for(dir: &Path, pipeline: &str, index: &str) -> PathBuf {
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    dir.join(format!("{}@{}.json", safe(pipeline), safe(index)))
}

/// Reads a checkpoint file.
pub fn read_file(path: &Path) -> Result<StoreFile, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Writes a checkpoint file atomically: temporary file, fsync, rename, fsync of the directory.
pub fn write_file(path: &Path, file: &StoreFile) -> Result<(), CheckpointError> {
    let io_err = |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err)?;
    // One fixed temporary name per file: a write cut short by a crash leaves no litter.
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let bytes = serde_json::to_vec_pretty(file).expect("serialisable");
    let mut out = File::create(&tmp).map_err(io_err)?;
    out.write_all(&bytes).map_err(io_err)?;
    out.sync_all().map_err(io_err)?;
    drop(out);
    std::fs::rename(&tmp, path).map_err(io_err)?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl Checkpoints {
    /// Opens (or starts) the checkpoints of `pipeline` into `index` in `dir`.
    pub fn open(dir: &Path, pipeline: &str, index: &str) -> Result<Self, CheckpointError> {
        let path = file_for(dir, pipeline, index);
        let file = if path.exists() {
            read_file(&path)?
        } else {
            StoreFile {
                version: 1,
                pipeline: pipeline.to_owned(),
                index: index.to_owned(),
                entries: BTreeMap::new(),
            }
        };
        Ok(Self {
            path,
            state: Mutex::new(State {
                file,
                live: HashMap::new(),
                dirty: false,
            }),
            writing: Mutex::new(()),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the input at `path` about to be read and says where to start. With
    /// `from_start`, any stored position is dropped.
    pub fn start(
        &self,
        input: InputId,
        label: &str,
        path: &Path,
        seekable: bool,
        from_start: bool,
    ) -> io::Result<Resume> {
        let identity = Identity::of_path(path)?;
        let key = identity.key();
        let mut st = self.lock();
        let previous = st
            .file
            .entries
            .get(&key)
            .filter(|e| e.identity.matches(path))
            .cloned();
        let resume = match previous {
            Some(e) if !from_start && e.finished => Resume::Finished(e),
            Some(e) if !from_start && e.seekable == seekable && e.records > 0 => Resume::From(e),
            _ => Resume::Fresh,
        };
        let mut entry = match &resume {
            Resume::From(e) | Resume::Finished(e) => e.clone(),
            Resume::Fresh => {
                st.dirty = true;
                Entry {
                    input: String::new(),
                    identity: identity.clone(),
                    records: 0,
                    position: StreamPos::default(),
                    seekable,
                    finished: false,
                    updated: crate::common::now(),
                }
            }
        };
        entry.input = label.to_owned();
        entry.identity = identity;
        st.file.entries.insert(key.clone(), entry);
        st.live.insert(
            input,
            Live {
                key,
                chunks: InOrder::default(),
                blocked: false,
                total_chunks: None,
            },
        );
        Ok(resume)
    }

    /// Every record of chunk `seq` of `input` has an outcome; `delivered` when none of them
    /// failed. The position moves past the longest prefix of delivered chunks.
    pub fn settled(
        &self,
        input: InputId,
        seq: u64,
        end: StreamPos,
        records_end: u64,
        delivered: bool,
    ) {
        let mut st = self.lock();
        let st = &mut *st;
        let Some(live) = st.live.get_mut(&input) else {
            return;
        };
        let mut advanced = None;
        for mark in live
            .chunks
            .settle(seq, delivered.then_some((end, records_end)))
        {
            match mark {
                Some(m) if !live.blocked => advanced = Some(m),
                _ => live.blocked = true,
            }
        }
        let finished = !live.blocked && live.total_chunks == Some(live.chunks.settled());
        if let Some(entry) = st.file.entries.get_mut(&live.key) {
            if let Some((end, records)) = advanced {
                entry.position = end;
                entry.records = records;
                entry.updated = crate::common::now();
                st.dirty = true;
            }
            if finished && !entry.finished {
                entry.finished = true;
                st.dirty = true;
            }
        }
    }

    /// The reader handed over `chunks` chunks of `input` and reached its end; `clean` when
    /// nothing in it was unreadable (only then is it marked finished).
    pub fn reader_done(&self, input: InputId, chunks: u64, clean: bool) {
        let mut st = self.lock();
        let st = &mut *st;
        let Some(live) = st.live.get_mut(&input) else {
            return;
        };
        if !clean {
            return;
        }
        live.total_chunks = Some(chunks);
        if !live.blocked && live.chunks.settled() == chunks {
            if let Some(entry) = st.file.entries.get_mut(&live.key) {
                entry.finished = true;
                entry.updated = crate::common::now();
                st.dirty = true;
            }
        }
    }

    /// Writes the file if anything changed.
    pub fn save(&self) -> Result<(), CheckpointError> {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let snapshot = {
            let mut st = self.lock();
            if !st.dirty {
                return Ok(());
            }
            st.dirty = false;
            st.file.clone()
        };
        write_file(&self.path, &snapshot).inspect_err(|_| {
            self.lock().dirty = true;
        })
    }
}

/// Every checkpoint file in `dir`, sorted by name.
pub fn list(dir: &Path) -> Result<Vec<(PathBuf, StoreFile)>, CheckpointError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CheckpointError::Io {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| read_file(&p).map(|f| (p, f)))
        .collect()
}

/// Removes stored positions in `dir`: of the input named `input` (its path as listed, or any
/// name of the same file), or all of them. Returns how many entries were removed.
pub fn reset(dir: &Path, input: Option<&str>) -> Result<usize, CheckpointError> {
    let mut removed = 0;
    for (path, mut file) in list(dir)? {
        let before = file.entries.len();
        match input {
            None => file.entries.clear(),
            Some(name) => {
                let identity = Identity::of_path(Path::new(name)).ok();
                file.entries.retain(|key, e| {
                    e.input != name && identity.as_ref().is_none_or(|i| i.key() != *key)
                });
            }
        }
        let gone = before - file.entries.len();
        if gone == 0 {
            continue;
        }
        removed += gone;
        if file.entries.is_empty() {
            std::fs::remove_file(&path).map_err(|source| CheckpointError::Io {
                path: path.clone(),
                source,
            })?;
        } else {
            write_file(&path, &file)?;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn id(dir: &Path, name: &str, body: &[u8]) -> (PathBuf, Identity) {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        let i = Identity::of_path(&p).unwrap();
        (p, i)
    }

    #[test]
    fn positions_advance_only_over_contiguous_settled_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let (p, ident) = id(dir.path(), "a.json", b"{}\n{}\n{}\n");
        let cp = Checkpoints::open(dir.path(), "p", "i").unwrap();
        assert_eq!(cp.start(0, "a", &p, true, false).unwrap(), Resume::Fresh);
        let pos = |l| StreamPos {
            line: l,
            offset: l * 3,
        };
        cp.settled(0, 1, pos(2), 2, true);
        cp.save().unwrap();
        let stored = read_file(cp.path()).unwrap();
        assert_eq!(
            stored.entries[&ident.key()].records,
            0,
            "chunk 0 is not settled yet"
        );
        cp.settled(0, 0, pos(1), 1, true);
        cp.reader_done(0, 3, true);
        cp.save().unwrap();
        let e = &read_file(cp.path()).unwrap().entries[&ident.key()];
        assert_eq!((e.records, e.position, e.finished), (2, pos(2), false));
        cp.settled(0, 2, pos(3), 3, true);
        cp.save().unwrap();
        assert!(read_file(cp.path()).unwrap().entries[&ident.key()].finished);

        let again = Checkpoints::open(dir.path(), "p", "i").unwrap();
        assert!(matches!(
            again.start(0, "a", &p, true, false).unwrap(),
            Resume::Finished(_)
        ));
        assert_eq!(again.start(1, "a", &p, true, true).unwrap(), Resume::Fresh);
    }

    #[test]
    fn saves_that_overlap_neither_fail_nor_leave_an_older_position() {
        // The periodic save and the last one can run at once; they share the temporary file.
        let dir = tempfile::tempdir().unwrap();
        let chunks = 400;
        let body = "{}\n".repeat(chunks);
        let (p, ident) = id(dir.path(), "a.json", body.as_bytes());
        let cp = Arc::new(Checkpoints::open(dir.path(), "p", "i").unwrap());
        cp.start(0, "a", &p, true, false).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let savers: Vec<_> = (0..4)
            .map(|_| {
                let (cp, done) = (cp.clone(), done.clone());
                std::thread::spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        cp.save()?;
                    }
                    Ok::<_, CheckpointError>(())
                })
            })
            .collect();
        for c in 0..chunks {
            let pos = StreamPos {
                line: c as u64 + 1,
                offset: (c as u64 + 1) * 3,
            };
            cp.settled(0, c as u64, pos, c as u64 + 1, true);
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        done.store(true, Ordering::Relaxed);
        for s in savers {
            s.join().unwrap().unwrap();
        }
        cp.save().unwrap();
        let e = &read_file(cp.path()).unwrap().entries[&ident.key()];
        assert_eq!(e.records, chunks as u64);
    }

    #[test]
    fn a_renamed_file_keeps_its_position_and_a_new_file_does_not_inherit_one() {
        let dir = tempfile::tempdir().unwrap();
        let (p, ident) = id(dir.path(), "a.json", b"{\"a\":1}\n");
        let cp = Checkpoints::open(dir.path(), "p", "i").unwrap();
        cp.start(0, "a", &p, true, false).unwrap();
        cp.settled(0, 0, StreamPos { line: 1, offset: 8 }, 1, true);
        cp.save().unwrap();
        let renamed = dir.path().join("b.json");
        std::fs::rename(&p, &renamed).unwrap();
        let cp = Checkpoints::open(dir.path(), "p", "i").unwrap();
        assert_eq!(Identity::of_path(&renamed).unwrap().key(), ident.key());
        assert!(matches!(
            cp.start(0, "b", &renamed, true, false).unwrap(),
            Resume::From(_)
        ));

        // Same inode, other content (the file was replaced in place): a new file.
        std::fs::write(&renamed, b"{\"b\":2}\n").unwrap();
        let cp = Checkpoints::open(dir.path(), "p", "i").unwrap();
        assert_eq!(
            cp.start(1, "b", &renamed, true, false).unwrap(),
            Resume::Fresh
        );
    }
}
