//! Inputs as named (paths, directories, globs, URLs, `-`) to the list of inputs a run reads.

use super::{InputFile, Location};
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use thiserror::Error;

/// Why the inputs could not be resolved.
#[derive(Debug, Error)]
pub enum ResolveError {
    /// A named file or directory does not exist.
    #[error("input `{0}` does not exist")]
    Missing(String),
    /// A glob pattern is malformed.
    #[error("input `{pattern}` is not a valid glob: {message}")]
    BadGlob {
        /// The pattern.
        pattern: String,
        /// The parser's message.
        message: String,
    },
    /// A directory could not be listed.
    #[error("cannot list directory {}", path.display())]
    ListDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A signal arrived while the inputs were being listed.
    #[error("stopped while listing the inputs")]
    Stopped,
}

/// Deepest directory level walked below a named directory.
pub const MAX_WALK_DEPTH: usize = 64;

/// File names taken from directories and globs (explicitly named files are always read).
const EXTENSIONS: &[&str] = &[
    ".json", ".ndjson", ".jsonl", ".log", ".gz", ".tgz", ".zip", ".tar", ".evtx",
];

fn wanted(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    !name.starts_with('.') && EXTENSIONS.iter().any(|e| name.ends_with(e))
}

/// Expands paths, directories (recursively, sorted) and globs into a list of distinct files.
///
/// A named file or directory that does not exist is an error; a glob that matches nothing
/// is returned in the second list, for a warning.
pub fn resolve(patterns: &[String]) -> Result<(Vec<InputFile>, Vec<String>), ResolveError> {
    resolve_until(patterns, &AtomicBool::new(false))
}

/// [`resolve`], giving up with [`ResolveError::Stopped`] once `stop` is set.
///
/// Directories are walked depth first, in name order, at most [`MAX_WALK_DEPTH`] levels deep.
/// A symbolic link to a directory is followed once per directory it reaches: a directory
/// already walked (a link loop, or two links to one place) is skipped with a warning.
pub fn resolve_until(
    patterns: &[String],
    stop: &AtomicBool,
) -> Result<(Vec<InputFile>, Vec<String>), ResolveError> {
    let mut walker = Walker {
        stop,
        seen: HashSet::new(),
        out: Vec::new(),
    };
    let mut others: Vec<(usize, Location)> = Vec::new();
    let mut unmatched = Vec::new();
    for pattern in patterns {
        if pattern == "-" {
            others.push((walker.out.len(), Location::Stdin));
        } else if pattern.starts_with("http://") || pattern.starts_with("https://") {
            others.push((walker.out.len(), Location::Url(pattern.clone())));
        } else if pattern.contains(['*', '?', '[']) {
            let entries = glob::glob(pattern).map_err(|e| ResolveError::BadGlob {
                pattern: pattern.clone(),
                message: e.to_string(),
            })?;
            let mut found: Vec<PathBuf> = entries.filter_map(Result::ok).collect();
            found.sort();
            let before = walker.out.len();
            for p in found {
                if p.is_dir() {
                    walker.walk(&p, 0)?;
                } else if wanted(&p) {
                    walker.out.push(p);
                }
            }
            if walker.out.len() == before {
                unmatched.push(pattern.clone());
            }
        } else {
            let p = PathBuf::from(pattern);
            if p.is_dir() {
                walker.walk(&p, 0)?;
            } else if p.exists() {
                walker.out.push(p);
            } else {
                return Err(ResolveError::Missing(pattern.clone()));
            }
        }
    }
    // Keep the order given, with stdin and URLs where they were named.
    let mut locations: Vec<Location> = Vec::new();
    let mut others = others.into_iter().peekable();
    for (i, p) in walker.out.into_iter().enumerate() {
        while let Some((_, loc)) = others.next_if(|(at, _)| *at <= i) {
            locations.push(loc);
        }
        locations.push(Location::Path(p));
    }
    locations.extend(others.map(|(_, loc)| loc));
    let mut seen = std::collections::HashSet::new();
    locations.retain(|loc| match loc {
        Location::Path(p) => seen.insert(Location::Path(
            p.canonicalize().unwrap_or_else(|_| p.clone()),
        )),
        other => seen.insert(other.clone()),
    });
    let files = locations
        .into_iter()
        .enumerate()
        .map(|(id, location)| InputFile { id, location })
        .collect();
    Ok((files, unmatched))
}

/// Walks directories, each once.
struct Walker<'a> {
    stop: &'a AtomicBool,
    /// Directories walked, by device and inode.
    seen: HashSet<(u64, u64)>,
    out: Vec<PathBuf>,
}

impl Walker<'_> {
    fn walk(&mut self, dir: &Path, depth: usize) -> Result<(), ResolveError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(ResolveError::Stopped);
        }
        let list_err = |source| ResolveError::ListDir {
            path: dir.to_owned(),
            source,
        };
        let meta = std::fs::metadata(dir).map_err(list_err)?;
        if !self.seen.insert(dir_key(&meta)) {
            tracing::warn!(
                "{}: a directory already walked (a symbolic link loop, or another link to it); skipped",
                dir.display()
            );
            return Ok(());
        }
        if depth > MAX_WALK_DEPTH {
            tracing::warn!(
                "{}: more than {MAX_WALK_DEPTH} directory levels deep; not walked",
                dir.display()
            );
            return Ok(());
        }
        let mut entries = std::fs::read_dir(dir)
            .and_then(|d| {
                d.map(|e| e.map(|e| e.path()))
                    .collect::<io::Result<Vec<_>>>()
            })
            .map_err(list_err)?;
        entries.sort();
        for p in entries {
            if p.is_dir() {
                self.walk(&p, depth + 1)?;
            } else if wanted(&p) {
                self.out.push(p);
            }
        }
        Ok(())
    }
}

#[cfg(unix)]
fn dir_key(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn dir_key(meta: &std::fs::Metadata) -> (u64, u64) {
    (0, meta.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolic_link_loops_are_walked_once() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path();
        std::fs::create_dir_all(w.join("sub")).unwrap();
        std::fs::write(w.join("a.json"), "{}\n").unwrap();
        std::fs::write(w.join("sub/b.json"), "{}\n").unwrap();
        for (link, to) in [("d1", "."), ("d2", "."), ("sub/up", "..")] {
            std::os::unix::fs::symlink(to, w.join(link)).unwrap();
        }
        std::os::unix::fs::symlink(w, w.join("sub/abs")).unwrap();
        let (found, _) = resolve(&[w.display().to_string()]).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn a_stop_ends_the_listing() {
        let dir = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(true);
        let got = resolve_until(&[dir.path().display().to_string()], &stop);
        assert!(matches!(got, Err(ResolveError::Stopped)));
    }
}
