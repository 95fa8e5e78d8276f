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
    /// The request could not be made or got no answer.
    #[error("{url}")]
    Request {
        /// The URL, credentials hidden.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("{url}: the server answered {status}")]
    Status {
        /// The URL, credentials hidden.
        url: String,
        /// The status.
        status: reqwest::StatusCode,
    },
    /// The body stopped before its end.
    #[error("{url}: download interrupted after {done} bytes")]
    Interrupted {
        /// The URL, credentials hidden.
        url: String,
        /// Bytes received.
        done: u64,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The body was shorter than announced.
    #[error("{url}: download incomplete: {done} of {total} bytes")]
    Incomplete {
        /// The URL, credentials hidden.
        url: String,
        /// Bytes received.
        done: u64,
        /// Bytes announced.
        total: u64,
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
    let name = cache_name(url);
    let place = Place {
        url,
        shown: &shown,
        path: cache_dir.join(&name),
        meta: cache_dir.join(format!("{name}.meta.json")),
        part: cache_dir.join(format!("{name}.part")),
    };
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(None)
        .build()
        .map_err(|e| place.request_err(e))?;
    let cached: Option<Meta> = std::fs::read(&place.meta)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|m: &Meta| {
            m.url == url && std::fs::metadata(&place.path).is_ok_and(|f| f.len() == m.size)
        });
    if let Some(meta) = &cached {
        if place.cache_still_good(&client, meta) {
            return Ok((place.path, Fetched::Cached));
        }
    }
    std::fs::create_dir_all(cache_dir).map_err(|e| place.cache_err(cache_dir, e))?;
    place.download(&client)?;
    Ok((place.path, Fetched::Downloaded))
}

/// Where one URL is cached.
struct Place<'a> {
    url: &'a str,
    shown: &'a str,
    path: PathBuf,
    meta: PathBuf,
    part: PathBuf,
}

impl Place<'_> {
    fn request_err(&self, source: reqwest::Error) -> DownloadError {
        DownloadError::Request {
            url: self.shown.to_owned(),
            source,
        }
    }

    fn cache_err(&self, path: &Path, source: io::Error) -> DownloadError {
        DownloadError::Cache {
            url: self.shown.to_owned(),
            path: path.to_owned(),
            source,
        }
    }

    /// Whether the cached copy is still what the server has (same size and ETag), or the
    /// server cannot say (then the copy is used, with a warning).
    fn cache_still_good(&self, client: &reqwest::blocking::Client, meta: &Meta) -> bool {
        let (shown, path) = (self.shown, self.path.display());
        match client.head(self.url).send() {
            Ok(resp) if resp.status().is_success() => {
                let size = header(&resp, "content-length").and_then(|s| s.parse::<u64>().ok());
                let etag = header(&resp, "etag");
                let same_size = size.is_none_or(|s| s == meta.size);
                let same_etag = match (&etag, &meta.etag) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                };
                if same_size && same_etag {
                    tracing::info!("{shown}: using the cached download {path}");
                    return true;
                }
                tracing::info!("{shown}: changed on the server; downloading again");
                false
            }
            Ok(resp) => {
                tracing::warn!(
                    "{shown}: HEAD answered {}; using the cached download {path}",
                    resp.status()
                );
                true
            }
            Err(e) => {
                tracing::warn!(
                    "{shown}: cannot check the server ({e}); using the cached download {path}"
                );
                true
            }
        }
    }

    /// Downloads into the `.part` file, then renames it and writes the metadata.
    fn download(&self, client: &reqwest::blocking::Client) -> Result<(), DownloadError> {
        let mut resp = client
            .get(self.url)
            .send()
            .map_err(|e| self.request_err(e))?;
        if !resp.status().is_success() {
            return Err(DownloadError::Status {
                url: self.shown.to_owned(),
                status: resp.status(),
            });
        }
        let total = resp.content_length();
        let etag = header(&resp, "etag");
        let mut out = File::create(&self.part).map_err(|e| self.cache_err(&self.part, e))?;
        tracing::info!(
            "{}: downloading{} to {}",
            self.shown,
            total.map_or_else(String::new, |t| format!(" {:.1} MB", t as f64 / 1e6)),
            self.path.display()
        );
        let done = self.copy(&mut resp, &mut out, total)?;
        if let Some(total) = total.filter(|t| *t != done) {
            return Err(DownloadError::Incomplete {
                url: self.shown.to_owned(),
                done,
                total,
            });
        }
        out.sync_all().map_err(|e| self.cache_err(&self.part, e))?;
        drop(out);
        std::fs::rename(&self.part, &self.path).map_err(|e| self.cache_err(&self.path, e))?;
        let meta = Meta {
            url: self.url.to_owned(),
            size: done,
            etag,
        };
        std::fs::write(&self.meta, serde_json::to_vec(&meta).expect("serialisable"))
            .map_err(|e| self.cache_err(&self.meta, e))
    }

    /// Copies the body to `out`, logging progress every five seconds; returns the bytes.
    fn copy(
        &self,
        resp: &mut reqwest::blocking::Response,
        out: &mut File,
        total: Option<u64>,
    ) -> Result<u64, DownloadError> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut done = 0u64;
        let started = Instant::now();
        let mut last_report = Instant::now();
        loop {
            let n = resp
                .read(&mut buf)
                .map_err(|source| DownloadError::Interrupted {
                    url: self.shown.to_owned(),
                    done,
                    source,
                })?;
            if n == 0 {
                return Ok(done);
            }
            out.write_all(&buf[..n])
                .map_err(|e| self.cache_err(&self.part, e))?;
            done += n as u64;
            if last_report.elapsed() >= Duration::from_secs(5) {
                last_report = Instant::now();
                let rate = done as f64 / 1e6 / started.elapsed().as_secs_f64();
                let shown = self.shown;
                match total {
                    Some(t) => tracing::info!(
                        "{shown}: {:.0}% of {:.1} MB ({rate:.1} MB/s)",
                        done as f64 * 100.0 / t as f64,
                        t as f64 / 1e6
                    ),
                    None => {
                        tracing::info!("{shown}: {:.1} MB ({rate:.1} MB/s)", done as f64 / 1e6)
                    }
                }
            }
        }
    }
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
