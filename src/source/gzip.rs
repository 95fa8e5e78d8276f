//! gzip streams as real files have them: several members back to back, and sometimes a stray
//! byte or two after the last one (upstream `.tar.gz` datasets end with one `0x0A`).

use flate2::bufread::GzDecoder;
use std::io::{self, BufRead, Read};

/// Decompresses every gzip member of a stream; bytes after the last member that do not start
/// another member end the stream and are counted (see [`GzipStream::stray_bytes`]) instead of
/// failing it.
pub struct GzipStream<R: BufRead> {
    decoder: Option<GzDecoder<R>>,
    stray: u64,
}

impl<R: BufRead> GzipStream<R> {
    /// Wraps a reader positioned at the first gzip member.
    pub fn new(reader: R) -> Self {
        Self {
            decoder: Some(GzDecoder::new(reader)),
            stray: 0,
        }
    }

    /// Bytes found after the last member, if any.
    pub fn stray_bytes(&self) -> Option<u64> {
        (self.stray > 0).then_some(self.stray)
    }
}

impl<R: BufRead> Read for GzipStream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(decoder) = self.decoder.as_mut() else {
                return Ok(0);
            };
            let n = decoder.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // End of a member: another member, stray bytes, or the end.
            let mut inner = self.decoder.take().expect("present").into_inner();
            let rest = inner.fill_buf()?;
            if rest.is_empty() {
                return Ok(0);
            }
            if rest.len() >= 2 && rest[0] == 0x1f && rest[1] == 0x8b {
                self.decoder = Some(GzDecoder::new(inner));
                continue;
            }
            let mut stray = 0u64;
            loop {
                let len = inner.fill_buf()?.len();
                if len == 0 {
                    break;
                }
                stray += len as u64;
                inner.consume(len);
            }
            self.stray = stray;
            return Ok(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn members_back_to_back_and_a_stray_byte() {
        let mut data = gz(b"one\n");
        data.extend(gz(b"two\n"));
        data.push(b'\n');
        let mut s = GzipStream::new(&data[..]);
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert_eq!(out, "one\ntwo\n");
        assert_eq!(s.stray_bytes(), Some(1));
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let data = gz(&b"x".repeat(10000));
        let mut s = GzipStream::new(&data[..data.len() / 2]);
        let mut out = Vec::new();
        assert!(s.read_to_end(&mut out).is_err());
    }
}
