//! Inputs as named (paths, directories, globs, URLs, `-`) to the list of inputs a run reads.

use super::{InputFile, Location};
use std::io;
use std::path::{Path, PathBuf};
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
    #[error("cannot list directory {path}: {source}")]
    ListDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

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
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut others: Vec<(usize, Location)> = Vec::new();
    let mut unmatched = Vec::new();
    for pattern in patterns {
        if pattern == "-" {
            others.push((paths.len(), Location::Stdin));
        } else if pattern.starts_with("http://") || pattern.starts_with("https://") {
            others.push((paths.len(), Location::Url(pattern.clone())));
        } else if pattern.contains(['*', '?', '[']) {
            let entries = glob::glob(pattern).map_err(|e| ResolveError::BadGlob {
                pattern: pattern.clone(),
                message: e.to_string(),
            })?;
            let mut found: Vec<PathBuf> = entries.filter_map(Result::ok).collect();
            found.sort();
            let before = paths.len();
            for p in found {
                if p.is_dir() {
                    walk(&p, &mut paths)?;
                } else if wanted(&p) {
                    paths.push(p);
                }
            }
            if paths.len() == before {
                unmatched.push(pattern.clone());
            }
        } else {
            let p = PathBuf::from(pattern);
            if p.is_dir() {
                walk(&p, &mut paths)?;
            } else if p.exists() {
                paths.push(p);
            } else {
                return Err(ResolveError::Missing(pattern.clone()));
            }
        }
    }
    // Keep the order given, with stdin and URLs where they were named.
    let mut locations: Vec<Location> = Vec::new();
    let mut others = others.into_iter().peekable();
    for (i, p) in paths.into_iter().enumerate() {
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

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ResolveError> {
    let list = |dir: &Path| -> io::Result<Vec<PathBuf>> {
        let mut v = std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<io::Result<Vec<_>>>()?;
        v.sort();
        Ok(v)
    };
    let entries = list(dir).map_err(|source| ResolveError::ListDir {
        path: dir.to_owned(),
        source,
    })?;
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if wanted(&p) {
            out.push(p);
        }
    }
    Ok(())
}
