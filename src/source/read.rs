//! Reading one input: opening it (downloading a URL, spooling standard input when it needs
//! random access), finding its format, and handing each of its streams to the decode stage.

use super::context::{Counted, StreamContext};
use super::resume::{self, Start};
use super::{archive, url, Decode, GzipStream, InputFile, Location, ReadOptions, READ_BUFFER};
use super::{sniff, Format};
use crate::checkpoint::Checkpoints;
use crate::chunk::{Flow, RawChunk, StreamPos};
use crate::metrics::Stats;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Reads one input to its end, handing each stream to `decode` and each chunk to `emit`.
///
/// Problems are reported (an error naming the input and position) and counted in `stats`;
/// whatever could be read is handed over. With `checkpoints`, the input resumes where its
/// records stop being acknowledged and its chunks settle into them. Returns [`Flow::Stop`]
/// when `emit` asked to stop.
pub fn read_input(
    input: &InputFile,
    stats: &Stats,
    opts: &ReadOptions,
    decode: &dyn Decode,
    checkpoints: Option<&Arc<Checkpoints>>,
    emit: &mut dyn FnMut(RawChunk) -> Flow,
) -> Flow {
    let label: Arc<str> = Arc::from(input.label());
    let ctx = StreamContext::new(input.id, stats, decode).sharded(opts.shard);
    match &input.location {
        Location::Path(path) => read_path(path, &label, ctx, opts, checkpoints, emit),
        Location::Url(u) => match url::fetch(u, &opts.cache_dir) {
            Ok((path, _)) => read_path(&path, &label, ctx, opts, checkpoints, emit),
            Err(e) => {
                ctx.error(&format!(
                    "cannot download {}",
                    crate::common::error_chain(&e)
                ));
                Flow::Continue
            }
        },
        Location::Stdin => read_stdin(&label, ctx, opts, emit),
    }
}

/// Standard input: streamed, or spooled to a temporary file first for the formats that need
/// random access (zip, `.evtx`). It has no identity to keep a checkpoint under.
fn read_stdin(
    label: &Arc<str>,
    ctx: StreamContext<'_>,
    opts: &ReadOptions,
    emit: &mut dyn FnMut(RawChunk) -> Flow,
) -> Flow {
    let mut reader = BufReader::with_capacity(READ_BUFFER, io::stdin().lock());
    let format = match reader.fill_buf() {
        Ok(head) => sniff(head),
        Err(e) => {
            ctx.error(&format!("{label}: cannot read standard input: {e}"));
            return Flow::Continue;
        }
    };
    if matches!(format, Format::Zip | Format::Evtx) {
        let spooled = tempfile::NamedTempFile::new().and_then(|mut tmp| {
            io::copy(&mut reader, tmp.as_file_mut())?;
            Ok(tmp)
        });
        return match spooled {
            Ok(tmp) => read_path(tmp.path(), label, ctx, opts, None, emit),
            Err(e) => {
                ctx.error(&format!("{label}: cannot spool standard input: {e}"));
                Flow::Continue
            }
        };
    }
    read_stream(reader, format, label, &ctx, emit)
}

/// Reads the file at `path` (resuming from its checkpoint, if any).
pub(crate) fn read_path(
    path: &Path,
    label: &Arc<str>,
    ctx: StreamContext<'_>,
    opts: &ReadOptions,
    checkpoints: Option<&Arc<Checkpoints>>,
    emit: &mut dyn FnMut(RawChunk) -> Flow,
) -> Flow {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            ctx.error(&format!("{label}: cannot open: {e}"));
            return Flow::Continue;
        }
    };
    if let Ok(meta) = file.metadata() {
        ctx.counters.size.store(meta.len(), Relaxed);
    }
    let file = Counted::new(file, ctx.counters.clone());
    let mut reader = BufReader::with_capacity(READ_BUFFER, file);
    let format = match reader.fill_buf() {
        Ok(head) => sniff(head),
        Err(e) => {
            ctx.error(&format!("{label}: cannot read: {e}"));
            return Flow::Continue;
        }
    };
    let seekable = format == Format::Lines;
    let mut start = StreamPos::default();
    let ctx = ctx.settling_into(checkpoints.cloned());
    if let Some(cp) = checkpoints {
        match resume::start(
            cp,
            &ctx,
            label,
            path,
            seekable,
            opts.from_start,
            &mut reader,
        ) {
            Start::Done => return Flow::Continue,
            Start::At(at) => start = at,
        }
    }
    let flow = match format {
        Format::Zip => {
            drop(reader);
            let mut each = |name: &str, r: &mut dyn Read| member(name, r, label, &ctx, emit);
            archive::read_zip(path, label, &ctx, &mut each)
        }
        Format::Evtx => {
            drop(reader);
            read_evtx(path, label, &ctx, emit)
        }
        Format::Lines => ctx.lines(&mut reader, label, start, emit),
        other => read_stream(reader, other, label, &ctx, emit),
    };
    if flow == Flow::Continue {
        if let Some(cp) = checkpoints {
            let c = ctx.cursor.get();
            cp.reader_done(ctx.input, c.seq, c.errors == 0);
        }
    }
    flow
}

/// Largest archive member spooled to a temporary file to be read as a zip or `.evtx` file
/// (both need random access).
pub const MAX_SPOOLED_MEMBER: u64 = 8 << 30;

/// One member of an archive named `label`: JSON lines are read; an archive or `.evtx` file is
/// read one level deep (a member of a member that is an archive again is skipped with a
/// warning); anything else is skipped.
fn member(
    name: &str,
    reader: &mut dyn Read,
    label: &str,
    ctx: &StreamContext<'_>,
    emit: &mut dyn FnMut(RawChunk) -> Flow,
) -> Flow {
    let origin: Arc<str> = Arc::from(format!("{label}!{name}"));
    if archive::wanted_member(name) {
        let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
        return ctx.lines(&mut reader, &origin, StreamPos::default(), emit);
    }
    if !archive::nested_member(name) {
        tracing::debug!("{label}: skipping member {name}");
        return Flow::Continue;
    }
    if ctx.nested.replace(true) {
        ctx.error(&format!(
            "{origin}: an archive inside an archive inside an archive; skipped (one level of \
             archives inside archives is read)"
        ));
        return Flow::Continue;
    }
    let flow = read_nested(reader, &origin, ctx, emit);
    ctx.nested.set(false);
    flow
}

/// An archive (or `.evtx` file) inside an archive: streamed when it can be (gzip, tar),
/// spooled to a temporary file when it needs random access (zip, `.evtx`).
fn read_nested(
    reader: &mut dyn Read,
    origin: &Arc<str>,
    ctx: &StreamContext<'_>,
    emit: &mut dyn FnMut(RawChunk) -> Flow,
) -> Flow {
    let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
    let format = match reader.fill_buf() {
        Ok(head) => sniff(head),
        Err(e) => {
            ctx.error(&format!("{origin}: cannot read: {e}"));
            return Flow::Continue;
        }
    };
    if !matches!(format, Format::Zip | Format::Evtx) {
        return read_stream(reader, format, origin, ctx, emit);
    }
    let spooled = tempfile::NamedTempFile::new().and_then(|mut tmp| {
        let copied = io::copy(
            &mut (&mut reader).take(MAX_SPOOLED_MEMBER + 1),
            tmp.as_file_mut(),
        )?;
        Ok((tmp, copied))
    });
    match spooled {
        Ok((_, copied)) if copied > MAX_SPOOLED_MEMBER => {
            ctx.error(&format!(
                "{origin}: larger than {MAX_SPOOLED_MEMBER} bytes; not read (a zip or .evtx \
                 member is unpacked to a temporary file first)"
            ));
            Flow::Continue
        }
        Ok((tmp, _)) if format == Format::Zip => {
            let mut each = |name: &str, r: &mut dyn Read| member(name, r, origin, ctx, emit);
            archive::read_zip(tmp.path(), origin, ctx, &mut each)
        }
        Ok((tmp, _)) => read_evtx(tmp.path(), origin, ctx, emit),
        Err(e) => {
            ctx.error(&format!(
                "{origin}: cannot unpack it to a temporary file: {e}"
            ));
            Flow::Continue
        }
    }
}

/// An `.evtx` file: its records are read by the decode stage, its damage counted here.
fn read_evtx(
    path: &Path,
    label: &Arc<str>,
    ctx: &StreamContext<'_>,
    emit: &mut dyn FnMut(RawChunk) -> Flow,
) -> Flow {
    let mut hand_over = |chunk: RawChunk| ctx.hand_over(chunk, emit);
    let flow = ctx
        .decode
        .evtx(path, ctx.input, label, &mut hand_over, &mut |p| {
            ctx.problem(p)
        });
    if let Ok(meta) = std::fs::metadata(path) {
        ctx.counters.bytes.fetch_add(meta.len(), Relaxed);
        ctx.counters.position.store(meta.len(), Relaxed);
    }
    flow
}

/// Reads a stream that needs no random access: gzip (maybe of a tar), tar, or lines.
pub(crate) fn read_stream<R: BufRead>(
    mut reader: R,
    format: Format,
    label: &Arc<str>,
    ctx: &StreamContext<'_>,
    emit: &mut dyn FnMut(RawChunk) -> Flow,
) -> Flow {
    match format {
        Format::Gzip => {
            let mut gz = GzipStream::new(reader);
            let mut head = Vec::with_capacity(512);
            if let Err(e) = (&mut gz).take(512).read_to_end(&mut head) {
                ctx.error(&format!("{label}: not a readable gzip stream: {e}"));
                return Flow::Continue;
            }
            let is_tar = sniff(&head) == Format::Tar;
            let mut inner = BufReader::with_capacity(READ_BUFFER, io::Cursor::new(head).chain(gz));
            let flow = if is_tar {
                let mut each = |name: &str, r: &mut dyn Read| member(name, r, label, ctx, emit);
                archive::read_tar(&mut inner, label, ctx, &mut each)
            } else {
                ctx.lines(&mut inner, label, StreamPos::default(), emit)
            };
            if flow == Flow::Continue {
                // Read to the very end so that the gzip trailer is checked and stray bytes seen.
                if let Err(e) = io::copy(&mut inner, &mut io::sink()) {
                    ctx.warn(&format!("{label}: after the last record: {e}"));
                }
                if let Some(stray) = inner.get_ref().get_ref().1.stray_bytes() {
                    ctx.warn(&format!(
                        "{label}: {stray} stray byte(s) after the end of the gzip stream, ignored"
                    ));
                }
            }
            flow
        }
        Format::Tar => {
            let mut each = |name: &str, r: &mut dyn Read| member(name, r, label, ctx, emit);
            archive::read_tar(&mut reader, label, ctx, &mut each)
        }
        Format::Zip | Format::Evtx => {
            ctx.error(&format!("{label}: this format needs a seekable file"));
            Flow::Continue
        }
        Format::Lines => ctx.lines(&mut reader, label, StreamPos::default(), emit),
    }
}
