//! gzip of `_bulk` request bodies (`compression_level`): a body is compressed once, and the
//! same bytes are sent again when the whole request is retried.
//!
//! The backend is flate2 over zlib-rs, chosen by measurement (bench/gzip-backends): on 2 MiB
//! bodies of real Sysmon NDJSON, level 1 ran at 751 MB/s on one core against 464 MB/s for
//! flate2's default miniz_oxide and 459 MB/s for libdeflate, and zlib-ng's 820 MB/s needs a C
//! build with cmake.

use bytes::Bytes;
use serde::Deserialize;
use std::fmt;
use std::io::Write;

/// The gzip level of `_bulk` bodies: 0 sends them as they are, 1 (fastest) to 9 (smallest)
/// compresses them. Only a level in 0..=9 can be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct CompressionLevel(u8);

impl CompressionLevel {
    /// Bodies sent as they are.
    pub const OFF: Self = Self(0);
    /// The default towards a remote engine: gzip level 1. Over the simulated 100 Mbit/s, 40 ms
    /// link it delivered 7.1x the input MB/s of uncompressed bodies into the blackhole, at a
    /// tenth of the bytes; level 9 halves the bytes again for about twice the CPU (13.7 against
    /// 7.2 CPU-s per GB) and was within 7% of its speed (bench/run --only wan). Towards an
    /// engine on this host the default is off (see the pipeline's resolution).
    pub const DEFAULT: Self = Self(1);

    /// The gzip level, `None` when off.
    pub fn gzip(self) -> Option<u32> {
        (self.0 > 0).then_some(u32::from(self.0))
    }
}

impl Default for CompressionLevel {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<i64> for CompressionLevel {
    type Error = String;

    fn try_from(level: i64) -> Result<Self, String> {
        match u8::try_from(level) {
            Ok(l @ 0..=9) => Ok(Self(l)),
            _ => Err(format!(
                "compression level {level} is not in 0..=9 (0 = off, 1 = fastest, 9 = smallest)"
            )),
        }
    }
}

impl std::str::FromStr for CompressionLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let level: i64 = s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a compression level (0..=9)"))?;
        Self::try_from(level)
    }
}

impl fmt::Display for CompressionLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.gzip() {
            Some(level) => write!(f, "gzip level {level}"),
            None => f.write_str("off"),
        }
    }
}

/// A request body as sent: the documents' bytes, and the bytes on the wire (the same bytes,
/// or their gzip).
#[derive(Debug, Clone)]
pub struct Body {
    /// The `_bulk` lines, uncompressed (retries of some items are cut from them).
    pub plain: Bytes,
    /// What goes on the wire.
    pub wire: Bytes,
    /// Whether `wire` is gzip (`Content-Encoding: gzip`).
    pub gzip: bool,
}

impl Body {
    /// The body at `level`. Compressing 2 MiB takes a few milliseconds: call it off the async
    /// threads (see [`Body::encode`]).
    pub fn new(plain: Bytes, level: CompressionLevel) -> Self {
        match level.gzip() {
            None => Self {
                wire: plain.clone(),
                plain,
                gzip: false,
            },
            Some(level) => Self {
                wire: gzip(&plain, level),
                plain,
                gzip: true,
            },
        }
    }

    /// [`Body::new`] on tokio's blocking threads when there is anything to compress.
    pub async fn encode(plain: Bytes, level: CompressionLevel) -> Self {
        if level.gzip().is_none() {
            return Self::new(plain, level);
        }
        tokio::task::spawn_blocking(move || Self::new(plain, level))
            .await
            .expect("compressing a body does not panic")
    }
}

/// gzip of `data` at `level` (1..=9).
fn gzip(data: &[u8], level: u32) -> Bytes {
    // Real NDJSON shrinks about 10x at level 1: a tenth of the input, plus the header, is
    // reserved at once.
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 10 + 64),
        flate2::Compression::new(level),
    );
    encoder
        .write_all(data)
        .expect("writing to memory does not fail");
    Bytes::from(encoder.finish().expect("writing to memory does not fail"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn levels_outside_0_to_9_are_refused() {
        assert_eq!(CompressionLevel::try_from(0), Ok(CompressionLevel::OFF));
        assert_eq!(
            "9".parse::<CompressionLevel>().map(|l| l.gzip()),
            Ok(Some(9))
        );
        assert!(CompressionLevel::try_from(10)
            .unwrap_err()
            .contains("0..=9"));
        assert!(CompressionLevel::try_from(-1).is_err());
        assert!("fast".parse::<CompressionLevel>().is_err());
    }

    #[test]
    fn a_compressed_body_inflates_to_the_documents() {
        let plain = Bytes::from(
            "{\"create\":{}}\n{\"Image\":\"C:\\\\Windows\\\\System32\\\\cmd.exe\"}\n".repeat(500),
        );
        let body = Body::new(plain.clone(), CompressionLevel::DEFAULT);
        assert!(body.gzip);
        assert!(body.wire.len() * 10 < plain.len(), "{}", body.wire.len());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&body.wire[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, plain);
        let off = Body::new(plain.clone(), CompressionLevel::OFF);
        assert!(!off.gzip);
        assert_eq!(off.wire, plain);
    }
}
