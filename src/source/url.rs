//! `http(s)://` inputs: downloaded once into a cache directory, then read like local files.
//!
//! A cached download is reused when the server reports the same size and, where it gives one,
//! the same ETag (checked with a `HEAD` request); when the server cannot be reached the cached
//! copy is used with a warning. Downloads go to a `.part` file renamed when complete, so an
//! interrupted download is never mistaken for a whole one.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Why a URL could not be downloaded.
#[derive(Debug, Error)]
pub enum DownloadError {
    /// The request failed.
    #[error("{url}: {message}")]
    Http {
        /// The URL, credentials hidden.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The cache could not be written.
    #[error("{url}: cannot write the cache {}: {source}", path.display())]
    Cache {
        /// The URL, credentials hidden.
        url: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Meta {
    url: String,
    size: u64,
    etag: Option<String>,
}

/// The default cache directory: `$XDG_CACHE_HOME/evtship/downloads`, else
/// `~/.cache/evtship/downloads`.
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("evtship").join("downloads")
}

fn cache_name(url: &str) -> String {
    let last = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("download");
    let safe: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    format!("{:016x}-{safe}", xxhash_rust::xxh3::xxh3_64(url.as_bytes()))
}

fn header(resp: &reqwest::blocking::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// What [`fetch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// The cached copy was reused.
    Cached,
    /// The file was downloaded.
    Downloaded,
}

/// Returns a local copy of `url` in `cache_dir`, downloading it when needed.
pub fn fetch(url: &str, cache_dir: &Path) -> Result<(PathBuf, Fetched), DownloadError> {
    let shown = crate::redact::url(url);
    let http_err = |message: String| DownloadError::Http {
        url: shown.clone(),
        message,
    };
    let name = cache_name(url);
    let path = cache_dir.join(&name);
    let meta_path = cache_dir.join(format!("{name}.meta.json"));
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(None)
        .build()
        .map_err(|e| http_err(e.to_string()))?;

    let cached: Option<Meta> = std::fs::read(&meta_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|m: &Meta| {
            m.url == url && std::fs::metadata(&path).is_ok_and(|f| f.len() == m.size)
        });
    if let Some(meta) = &cached {
        match client.head(url).send() {
            Ok(resp) if resp.status().is_success() => {
                let size = header(&resp, "content-length").and_then(|s| s.parse::<u64>().ok());
                let etag = header(&resp, "etag");
                let same_size = size.is_none_or(|s| s == meta.size);
                let same_etag = match (&etag, &meta.etag) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                };
                if same_size && same_etag {
                    tracing::info!("{shown}: using the cached download {}", path.display());
                    return Ok((path, Fetched::Cached));
                }
                tracing::info!("{shown}: changed on the server; downloading again");
            }
            Ok(resp) => {
                tracing::warn!(
                    "{shown}: HEAD answered {}; using the cached download {}",
                    resp.status(),
                    path.display()
                );
                return Ok((path, Fetched::Cached));
            }
            Err(e) => {
                tracing::warn!(
                    "{shown}: cannot check the server ({e}); using the cached download {}",
                    path.display()
                );
                return Ok((path, Fetched::Cached));
            }
        }
    }

    let cache_err = |path: &Path, source| DownloadError::Cache {
        url: shown.clone(),
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(cache_dir).map_err(|e| cache_err(cache_dir, e))?;
    let mut resp = client
        .get(url)
        .send()
        .map_err(|e| http_err(crate::sink::elasticsearch::error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(http_err(format!("the server answered {}", resp.status())));
    }
    let total = resp.content_length();
    let etag = header(&resp, "etag");
    let part = cache_dir.join(format!("{name}.part"));
    let mut out = File::create(&part).map_err(|e| cache_err(&part, e))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    let started = Instant::now();
    let mut last_report = Instant::now();
    tracing::info!(
        "{shown}: downloading{} to {}",
        total.map_or_else(String::new, |t| format!(" {:.1} MB", t as f64 / 1e6)),
        path.display()
    );
    loop {
        let n = resp
            .read(&mut buf)
            .map_err(|e| http_err(format!("download interrupted after {done} bytes: {e}")))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(|e| cache_err(&part, e))?;
        done += n as u64;
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let rate = done as f64 / 1e6 / started.elapsed().as_secs_f64();
            match total {
                Some(t) => tracing::info!(
                    "{shown}: {:.0}% of {:.1} MB ({rate:.1} MB/s)",
                    done as f64 * 100.0 / t as f64,
                    t as f64 / 1e6
                ),
                None => tracing::info!("{shown}: {:.1} MB ({rate:.1} MB/s)", done as f64 / 1e6),
            }
        }
    }
    if let Some(t) = total.filter(|t| *t != done) {
        return Err(http_err(format!(
            "download incomplete: {done} of {t} bytes"
        )));
    }
    out.sync_all().map_err(|e| cache_err(&part, e))?;
    drop(out);
    std::fs::rename(&part, &path).map_err(|e| cache_err(&path, e))?;
    let meta = Meta {
        url: url.to_owned(),
        size: done,
        etag,
    };
    std::fs::write(&meta_path, serde_json::to_vec(&meta).expect("serialisable"))
        .map_err(|e| cache_err(&meta_path, e))?;
    Ok((path, Fetched::Downloaded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_names_are_distinct_and_readable() {
        let a = cache_name("https://h/x/apt29_evals_day1_manual.zip");
        let b = cache_name("https://h/y/apt29_evals_day1_manual.zip");
        assert!(a.ends_with("-apt29_evals_day1_manual.zip"));
        assert_ne!(a, b);
        assert!(cache_name("https://h/?q=1").ends_with("-h"));
    }
}
