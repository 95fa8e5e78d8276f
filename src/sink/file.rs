//! File outputs: each final document as one JSON line (`ndjson:PATH`), or the exact `_bulk`
//! request bodies (`bulk:PATH`), in the order the records were read, replayable with
//! `curl -H 'Content-Type: application/x-ndjson' --data-binary @PATH URL/_bulk`.

use super::wire::Actions;
use super::Accounting;
use crate::ack::Outcome;
use crate::transform::EncodedChunk;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// What each document becomes in the file.
#[derive(Debug, Clone)]
pub enum FileFormat {
    /// The document line only.
    Documents,
    /// The action line and the document line.
    Bulk(Actions),
}

/// Writes every chunk received to a file or standard output; returns when the channel closes.
pub fn write_all(
    path: Option<&Path>,
    format: &FileFormat,
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
            write_chunk(&mut out, format, &chunk, acct).map_err(err)?;
        }
    }
    // Whatever is left (a source stopped between numbering a chunk and sending it), in order.
    for chunk in waiting.into_values() {
        write_chunk(&mut out, format, &chunk, acct).map_err(err)?;
    }
    out.flush().map_err(err)
}

fn write_chunk(
    out: &mut impl Write,
    format: &FileFormat,
    chunk: &EncodedChunk,
    acct: &Accounting,
) -> io::Result<()> {
    acct.reject_unparsable(chunk);
    let mut action = Vec::with_capacity(128);
    for (i, doc) in chunk.docs.iter().enumerate() {
        if let FileFormat::Bulk(actions) = format {
            action.clear();
            actions.write(doc, &mut action);
            out.write_all(&action)?;
        }
        out.write_all(chunk.doc_line(i))?;
    }
    for doc in &chunk.docs {
        acct.resolve(&chunk.raw, doc.line, Outcome::Indexed, || (201, None));
    }
    Ok(())
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
