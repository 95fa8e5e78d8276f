//! zip and tar archives, walked member by member without unpacking to disk; what becomes of a
//! member is the caller's (`read.rs`): its lines, or, for an archive inside the archive, its own
//! members one level deep.

use super::context::{Counted, StreamContext};
use super::READ_BUFFER;
use crate::chunk::Flow;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// What is done with one member: its name, and a reader of its bytes.
pub(crate) type Member<'m> = &'m mut dyn FnMut(&str, &mut dyn Read) -> Flow;

/// Members read from archives: JSON-lines files. macOS metadata (`__MACOSX/`, `._*`) is skipped.
pub(crate) fn wanted_member(name: &str) -> bool {
    let lower = name.to_lowercase();
    let base = lower.rsplit('/').next().unwrap_or(&lower);
    !lower.starts_with("__macosx/")
        && !lower.contains("/__macosx/")
        && !base.starts_with("._")
        && [".json", ".ndjson", ".jsonl", ".log", ".txt"]
            .iter()
            .any(|e| base.ends_with(e))
}

/// Members that are archives or `.evtx` files themselves, read one level deep.
pub(crate) fn nested_member(name: &str) -> bool {
    let lower = name.to_lowercase();
    let base = lower.rsplit('/').next().unwrap_or(&lower);
    !base.starts_with("._")
        && [".zip", ".gz", ".tgz", ".tar", ".evtx"]
            .iter()
            .any(|e| base.ends_with(e))
}

/// Opens an archive, reporting a failure as an unreadable input.
fn open(path: &Path, label: &str, ctx: &StreamContext<'_>) -> Option<Counted<File>> {
    File::open(path)
        .map_err(|e| ctx.error(&format!("{label}: cannot open: {e}")))
        .ok()
        .map(|f| Counted::new(f, ctx.counters.clone()))
}

/// Reads every JSON member of a zip file.
pub(crate) fn read_zip(
    path: &Path,
    label: &str,
    ctx: &StreamContext<'_>,
    each: Member<'_>,
) -> Flow {
    let Some(file) = open(path, label, ctx) else {
        return Flow::Continue;
    };
    let mut archive = match zip::ZipArchive::new(BufReader::with_capacity(READ_BUFFER, file)) {
        Ok(a) => a,
        Err(e) => {
            // No readable central directory (a truncated download, say): walk the local
            // headers from the start and take whatever members are whole.
            ctx.warn(&format!(
                "{label}: zip central directory unreadable ({e}); reading members sequentially"
            ));
            return read_zip_stream(path, label, ctx, each);
        }
    };
    for i in 0..archive.len() {
        let member = match archive.by_index(i) {
            Ok(m) => m,
            Err(e) => {
                ctx.error(&format!("{label}: member #{}: unreadable: {e}", i + 1));
                continue;
            }
        };
        let name = member.name().to_owned();
        if member.is_dir() {
            continue;
        }
        let mut member = member;
        if each(&name, &mut member) == Flow::Stop {
            return Flow::Stop;
        }
    }
    Flow::Continue
}

fn read_zip_stream(path: &Path, label: &str, ctx: &StreamContext<'_>, each: Member<'_>) -> Flow {
    let Some(file) = open(path, label, ctx) else {
        return Flow::Continue;
    };
    let mut reader = BufReader::with_capacity(READ_BUFFER, file);
    let mut index = 0usize;
    loop {
        index += 1;
        let member = match zip::read::read_zipfile_from_stream(&mut reader) {
            Ok(Some(m)) => m,
            Ok(None) => return Flow::Continue,
            Err(e) => {
                ctx.error(&format!(
                    "{label}: member #{index}: unreadable ({e}); the rest of the archive is skipped"
                ));
                return Flow::Continue;
            }
        };
        let name = member.name().to_owned();
        let mut member = member;
        if !member.is_dir() && each(&name, &mut member) == Flow::Stop {
            return Flow::Stop;
        }
        // Whatever the member's reader left: skip it to reach the next header.
        if let Err(e) = std::io::copy(&mut member, &mut std::io::sink()) {
            ctx.error(&format!(
                "{label}!{name}: {e}; the rest of the archive is skipped"
            ));
            return Flow::Continue;
        }
    }
}

/// Reads every JSON member of a tar stream (already decompressed).
pub(crate) fn read_tar(
    reader: &mut dyn Read,
    label: &str,
    ctx: &StreamContext<'_>,
    each: Member<'_>,
) -> Flow {
    let mut archive = tar::Archive::new(reader);
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => {
            ctx.error(&format!("{label}: not a readable tar archive: {e}"));
            return Flow::Continue;
        }
    };
    for (i, entry) in entries.enumerate() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                ctx.error(&format!(
                    "{label}: tar member #{}: unreadable ({e}); the rest of the archive is skipped",
                    i + 1
                ));
                return Flow::Continue;
            }
        };
        let name = entry.path().map(|p| p.to_string_lossy().into_owned());
        let Ok(name) = name else { continue };
        let kind = entry.header().entry_type();
        if kind.is_hard_link() {
            let target = entry
                .link_name()
                .ok()
                .flatten()
                .map_or_else(|| "?".into(), |t| t.display().to_string());
            ctx.warn(&format!(
                "{label}!{name}: a hard link to {target}; skipped (its target is read as its own member)"
            ));
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let mut entry = entry;
        if each(&name, &mut entry) == Flow::Stop {
            return Flow::Stop;
        }
    }
    Flow::Continue
}

#[cfg(test)]
mod tests {
    use super::wanted_member;

    #[test]
    fn junk_members_are_skipped() {
        assert!(wanted_member(
            "apt29_evals_day1_manual_2020-05-01225525.json"
        ));
        assert!(wanted_member("dir/x.NDJSON"));
        assert!(!wanted_member("__MACOSX/._x.json"));
        assert!(!wanted_member("dir/._x.json"));
        assert!(!wanted_member("README.md"));
    }
}
