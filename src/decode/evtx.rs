//! `.evtx` files: records parsed by the `evtx` crate, chunks of the file on several threads.
//!
//! Each record is handed over in the shape the caller's [`EvtxShape`] gives it (the
//! transform's `.evtx` dialect: a flat, NXLog-shaped document). Records are numbered by their
//! position in the file (1-based); a damaged chunk is skipped with an error naming the file
//! and the chunk.

use crate::chunk::{Flow, RawChunk, StreamProblem};
use crate::common::{error_chain, InputId};
use evtx::err::{ChunkError, DeserializationError, EvtxError};
use evtx::{EvtxParser, ParserSettings};
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::Arc;

/// Turns the crate's JSON rendering of a record into the document handed over.
pub type EvtxShape = fn(Value) -> Map<String, Value>;

/// Reads every record of the `.evtx` file at `path`, parsing chunks on `threads` threads.
pub(crate) fn read(
    path: &Path,
    input: InputId,
    origin: &Arc<str>,
    threads: usize,
    shape: EvtxShape,
    emit: &mut dyn FnMut(RawChunk) -> Flow,
    problem: &mut dyn FnMut(StreamProblem),
) -> Flow {
    let parser = match EvtxParser::from_path(path) {
        Ok(p) => p,
        Err(e) => {
            problem(StreamProblem::Lost(format!(
                "{origin}: not a readable .evtx file: {}",
                error_chain(&e)
            )));
            return Flow::Continue;
        }
    };
    for p in super::evtx_check::check(path, origin) {
        problem(p);
    }
    let settings = ParserSettings::new().num_threads(threads).indent(false);
    let mut parser = parser.with_configuration(settings);
    let mut chunk = RawChunk::new(input, origin);
    let mut ordinal = 0u64;
    for record in parser.records_json_value() {
        match record {
            Ok(r) => {
                ordinal += 1;
                let doc = shape(r.data);
                chunk.push_record(ordinal, |buf| {
                    sonic_rs::to_writer(buf, &doc).expect("a JSON map serialises");
                });
                if chunk.is_full() {
                    let full = std::mem::replace(&mut chunk, RawChunk::new(input, origin));
                    if emit(full) == Flow::Stop {
                        return Flow::Stop;
                    }
                }
            }
            Err(e) => {
                if let Some(p) = report(origin, &e) {
                    problem(p);
                }
            }
        }
    }
    if !chunk.lines.is_empty() {
        return emit(chunk);
    }
    Flow::Continue
}

/// What a parser error means for the records; `None` for never-used space at the end of the
/// file (no record lost).
fn report(origin: &str, e: &EvtxError) -> Option<StreamProblem> {
    match e {
        EvtxError::FailedToParseChunk { chunk_id, source } => {
            if let ChunkError::FailedToParseChunkHeader(
                DeserializationError::InvalidEvtxChunkMagic { magic },
            ) = source.as_ref()
            {
                if magic.iter().all(|b| *b == 0) {
                    tracing::debug!("{origin}: chunk {chunk_id} is empty");
                    return None;
                }
            }
            Some(StreamProblem::Lost(format!(
                "{origin}: chunk {chunk_id} is damaged ({}); its records are skipped",
                error_chain(e)
            )))
        }
        other => Some(StreamProblem::Lost(format!(
            "{origin}: a record could not be read ({}); skipped",
            error_chain(other)
        ))),
    }
}
