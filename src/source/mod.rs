//! Inputs: where records come from, and how far each input has been acknowledged.
//!
//! - [`resolve`]: paths, directories, globs, URLs and `-` (standard input) to a list of inputs;
//! - [`sniff`]: the format of a stream from its first bytes (gzip, zip, tar, `.evtx`, lines);
//! - [`read`]: opening an input and handing each of its streams (a file, an archive member, a
//!   decompressed stream) to the decode stage, through [`Decode`]; archives are streamed and
//!   nothing is unpacked to disk;
//! - [`resume`]: where an input starts again, from its checkpoint;
//! - [`settle`]: a file's side of the acknowledgement model: its checkpoint advances past the
//!   longest prefix of its chunks that are settled;
//! - [`tail`]: following growing files; [`url`]: the download cache; [`shard`]: `--shard I/N`;
//! - [`listen`]: sources that are sent to (Beats, HTTP), whose senders are answered once the
//!   engine has answered for their records.
//!
//! A source never frames records: the pipeline gives it a [`Decode`] (the decode stage) that
//! turns each stream's bytes into chunks, and the source numbers the chunks, skips what was
//! acknowledged before and gives each chunk its acknowledgement token.

mod archive;
mod context;
mod gzip;
pub mod intake;
pub mod kafka;
pub mod listen;
mod read;
mod resolve;
mod resume;
mod settle;
mod shard;
mod sniff;
pub mod spool;
mod tail;
pub mod url;

pub use gzip::GzipStream;
pub use read::read_input;
pub use resolve::{resolve, resolve_until, ResolveError};
pub use shard::Shard;
pub use sniff::{sniff, Format};
pub use tail::follow;

use crate::chunk::{Flow, RawChunk, StreamError, StreamPos, StreamProblem, StreamTotals};
use crate::common::InputId;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Size of read buffers.
pub const READ_BUFFER: usize = 256 * 1024;

/// The decode stage, as a source hands it streams: the pipeline passes one in.
pub trait Decode {
    /// Frames the JSON lines of `reader` (which stands at `start` of its stream) into chunks of
    /// `input`'s records named `origin`, handing each to `emit`.
    fn lines(
        &self,
        reader: &mut dyn BufRead,
        input: InputId,
        origin: &Arc<str>,
        start: StreamPos,
        emit: &mut dyn FnMut(RawChunk) -> Flow,
    ) -> Result<(StreamTotals, Flow), StreamError>;

    /// Reads the records of the `.evtx` file at `path`, reporting damage to `problem`.
    fn evtx(
        &self,
        path: &Path,
        input: InputId,
        origin: &Arc<str>,
        emit: &mut dyn FnMut(RawChunk) -> Flow,
        problem: &mut dyn FnMut(StreamProblem),
    ) -> Flow;
}

/// Where an input's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A local file.
    Path(PathBuf),
    /// Standard input (`-`).
    Stdin,
    /// An `http://` or `https://` URL, downloaded into the cache first.
    Url(String),
}

/// An input to read, resolved from the pipeline's inputs.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Position in the run's list of inputs.
    pub id: InputId,
    /// Where it is.
    pub location: Location,
}

impl InputFile {
    /// The name used in messages and the summary (credentials in URLs hidden).
    pub fn label(&self) -> String {
        match &self.location {
            Location::Path(p) => p.display().to_string(),
            Location::Stdin => "-".to_owned(),
            Location::Url(u) => crate::redact::url(u),
        }
    }
}

/// Settings of the reading stage.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Where URL inputs are downloaded.
    pub cache_dir: PathBuf,
    /// Ignore stored positions and read every input from its start.
    pub from_start: bool,
    /// Take only this share of the records.
    pub shard: Option<Shard>,
}
