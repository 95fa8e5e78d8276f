//! Default places on disk that several stages name.

use std::path::PathBuf;

/// The default cache directory of downloaded inputs: `$XDG_CACHE_HOME/evtship/downloads`,
/// else `~/.cache/evtship/downloads`.
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("evtship").join("downloads")
}
