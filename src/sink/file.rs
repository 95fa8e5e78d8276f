//! File outputs: each final document as one JSON line (`ndjson:PATH`), or the exact `_bulk`
//! request bodies (`bulk:PATH`), in the order the records were read, replayable with
//! `curl -H 'Content-Type: application/x-ndjson' --data-binary @PATH URL/_bulk`.

use super::Accounting;
use crate::transform::EncodedChunk;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

/// What each document becomes in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// The document line only.
    Documents,
    /// The action line and the document line.
    Bulk,
}

/// Writes every chunk received to a file or standard output; returns when the channel closes.
pub fn write_all(
    path: Option<&Path>,
    format: FileFormat,
    rx: flume::Receiver<EncodedChunk>,
    acct: &Accounting,
) -> Result<(), FileSinkError> {
    let err = |source| FileSinkError {
        path: path.map_or_else(|| PathBuf::from("<stdout>"), Path::to_owned),
        source,
    };
    let mut out: BufWriter<Box<dyn Write>> = BufWriter::with_capacity(
        1 << 20,
        match path {
            Some(p) => Box::new(File::create(p).map_err(err)?),
            None => Box::new(io::stdout().lock()),
        },
    );
    // Chunks come back from the parsing threads in any order; write them in reading order.
    let mut waiting: BTreeMap<u64, EncodedChunk> = BTreeMap::new();
    let mut next = 0u64;
    for chunk in rx.iter() {
        waiting.insert(chunk.raw.order, chunk);
        while let Some(chunk) = waiting.remove(&next) {
            next += 1;
            acct.reject_unparsable(&chunk);
            for i in 0..chunk.docs.len() {
                let bytes = match format {
                    FileFormat::Documents => chunk.doc_line(i),
                    FileFormat::Bulk => chunk.bulk_lines(i),
                };
                out.write_all(bytes).map_err(err)?;
            }
            acct.stats
                .input(chunk.raw.input)
                .indexed
                .fetch_add(chunk.docs.len() as u64, Relaxed);
            acct.outcome(&chunk, chunk.docs.len());
        }
    }
    out.flush().map_err(err)
}

/// The output file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct FileSinkError {
    /// The file.
    pub path: PathBuf,
    /// The cause.
    pub source: io::Error,
}
