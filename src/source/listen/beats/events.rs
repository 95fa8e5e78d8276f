//! The events of a connection's frames, read straight into the part of the window being
//! received: `J` frames from the socket, legacy `D` frames pair by pair, and the frames inside
//! a `C` frame, each charged to the memory budget before it is allocated.

use super::codec::{self, CodecError};
use super::{Connection, End, FrameRead, INFLATE_STEP, LINE_BYTES};
use tokio::io::AsyncReadExt;

impl Connection {
    /// A `J` frame's JSON, read straight into the window's part.
    pub(super) async fn json_event(
        &mut self,
        r: &mut FrameRead<'_>,
        len: usize,
    ) -> Result<(), End> {
        // Opening a window may wait for the pipeline: not the sender's time.
        let waited = tokio::time::Instant::now();
        self.window().await?;
        r.deadline += waited.elapsed();
        self.reserve(Some(r), len + LINE_BYTES).await?;
        let mut stop = self.stop.clone();
        let w = self.window.as_mut().expect("a window is open");
        let start = w.part.buf.len();
        w.part.buf.resize(start + len, 0);
        let got = tokio::select! {
            got = tokio::time::timeout_at(r.deadline, r.r.read_exact(&mut w.part.buf[start..])) => got,
            () = stop.stopped() => Ok(Ok(0)),
        };
        match got {
            Ok(Ok(n)) if n == len => {}
            Ok(Ok(_)) => {
                w.part.buf.truncate(start);
                return Err(End::Done);
            }
            Ok(Err(e)) => {
                w.part.buf.truncate(start);
                return Err(End::Io(e));
            }
            Err(_) => {
                w.part.buf.truncate(start);
                return Err(End::ReadTimeout);
            }
        }
        self.part_bytes += len + LINE_BYTES;
        self.event_written(start).await
    }

    /// A legacy `D` frame: its pairs read within the limit (each costs its lengths on the
    /// wire too, and its JSON once built), charged as they come, then built into the part.
    pub(super) async fn data_event(
        &mut self,
        r: &mut FrameRead<'_>,
        count: u32,
    ) -> Result<(), End> {
        let limit = self.limits.max_frame_bytes as u64;
        let mut raw = Vec::new();
        for _ in 0..u64::from(count) * 2 {
            let mut len = [0u8; 4];
            self.read_exact(r, &mut len).await?;
            let n = u32::from_be_bytes(len) as usize;
            let size = raw.len() as u64 + 4 + n as u64;
            if size > limit {
                return Err(End::Codec(CodecError::TooLarge { size, limit }));
            }
            self.reserve(Some(r), 4 + n).await?;
            raw.extend_from_slice(&len);
            let start = raw.len();
            raw.resize(start + n, 0);
            self.read_exact(r, &mut raw[start..]).await?;
        }
        let (json_len, _) = codec::data_len(&raw, count, limit).map_err(End::Codec)?;
        self.window().await?;
        self.reserve(Some(r), json_len + LINE_BYTES).await?;
        let w = self.window.as_mut().expect("a window is open");
        let start = w.part.buf.len();
        codec::write_data(&raw, count, &mut w.part.buf);
        self.part_bytes += json_len + LINE_BYTES;
        self.event_written(start).await
    }

    /// A `C` frame: its payload read and inflated, each step charged before it is taken, and
    /// its frames taken one at a time from the inflated bytes.
    pub(super) async fn compressed(
        &mut self,
        r: &mut FrameRead<'_>,
        len: usize,
    ) -> Result<(), End> {
        let limit = self.limits.max_frame_bytes;
        self.reserve(Some(r), len).await?;
        let mut payload = vec![0u8; len];
        self.read_exact(r, &mut payload).await?;
        let mut z = flate2::read::ZlibDecoder::new(&payload[..]);
        let mut inflated = Vec::new();
        loop {
            self.reserve(Some(r), INFLATE_STEP).await?;
            let start = inflated.len();
            inflated.resize(start + INFLATE_STEP, 0);
            let n = std::io::Read::read(&mut z, &mut inflated[start..])
                .map_err(|e| End::Codec(CodecError::Inflate(e.to_string())))?;
            inflated.truncate(start + n);
            if inflated.len() > limit {
                let size = inflated.len() as u64;
                let limit = limit as u64;
                return Err(End::Codec(CodecError::TooLarge { size, limit }));
            }
            if n == 0 {
                break;
            }
        }
        drop(payload);
        inflated.shrink_to_fit();
        self.charge.shrink_to(self.part_bytes + inflated.capacity());
        let mut cursor = codec::Cursor::new(&inflated, limit as u64);
        while let Some(inner) = cursor.next().map_err(End::Codec)? {
            match inner {
                codec::Inner::Window(n) => self.open_window(n).await?,
                codec::Inner::Json(_, json) => {
                    self.window().await?;
                    self.reserve(Some(r), json.len() + LINE_BYTES).await?;
                    let w = self.window.as_mut().expect("a window is open");
                    let start = w.part.buf.len();
                    w.part.buf.extend_from_slice(json);
                    self.part_bytes += json.len() + LINE_BYTES;
                    self.event_written(start).await?;
                }
                codec::Inner::Data {
                    pairs,
                    count,
                    json_len,
                    ..
                } => {
                    self.window().await?;
                    self.reserve(Some(r), json_len + LINE_BYTES).await?;
                    let w = self.window.as_mut().expect("a window is open");
                    let start = w.part.buf.len();
                    codec::write_data(pairs, count, &mut w.part.buf);
                    self.part_bytes += json_len + LINE_BYTES;
                    self.event_written(start).await?;
                }
            }
        }
        Ok(())
    }
}
