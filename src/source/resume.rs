//! Where reading a file starts again, from its checkpoint: not at all (read to its end before),
//! at a byte offset (JSON lines), after a number of records (archives and `.evtx`), or at 0.

use super::context::StreamContext;
use crate::checkpoint::{Checkpoints, Resume};
use crate::chunk::StreamPos;
use std::io::{self, Seek};
use std::path::Path;

/// How to read a file, given its checkpoint.
pub(crate) enum Start {
    /// Every record already has an outcome: skip the file.
    Done,
    /// Read from this position of the stream (the reader was sought to it).
    At(StreamPos),
}

/// Registers the file at `path` with the checkpoints and prepares `reader` (and the cursor of
/// `ctx`) to resume where its records stop being acknowledged.
pub(crate) fn start(
    cp: &Checkpoints,
    ctx: &StreamContext<'_>,
    label: &str,
    path: &Path,
    seekable: bool,
    from_start: bool,
    reader: &mut dyn Seek,
) -> Start {
    let entry = match cp.start(ctx.input, label, path, seekable, from_start) {
        Ok(Resume::Fresh) => return Start::At(StreamPos::default()),
        Ok(Resume::Finished(e)) => {
            tracing::info!(
                "{label}: already shipped to its end ({} records; checkpoint {}); skipped. \
                 Use --from-start or `evtship checkpoints reset` to read it again",
                e.records,
                cp.path().display()
            );
            return Start::Done;
        }
        Ok(Resume::From(e)) => e,
        Err(e) => {
            ctx.warn(&format!(
                "{label}: cannot identify the file for its checkpoint ({e}); reading it without one"
            ));
            return Start::At(StreamPos::default());
        }
    };
    let mut c = ctx.cursor.get();
    if !seekable {
        tracing::info!(
            "{label}: resuming after {} acknowledged records (skipping them)",
            entry.records
        );
        c.skip = entry.records;
        ctx.cursor.set(c);
        return Start::At(StreamPos::default());
    }
    let len = std::fs::metadata(path).map_or(0, |m| m.len());
    if len >= entry.position.offset
        && reader
            .seek(io::SeekFrom::Start(entry.position.offset))
            .is_ok()
    {
        tracing::info!(
            "{label}: resuming at line {} (byte {}), after {} acknowledged records",
            entry.position.line + 1,
            entry.position.offset,
            entry.records
        );
        c.records = entry.records;
        ctx.cursor.set(c);
        return Start::At(entry.position);
    }
    ctx.warn(&format!(
        "{label}: shorter than its checkpoint (truncated?); reading it from the start"
    ));
    let _ = reader.seek(io::SeekFrom::Start(0));
    Start::At(StreamPos::default())
}
