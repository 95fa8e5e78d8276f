//! The writing side of a Beats connection: ACKs window after window as they settle, and
//! keep-alives while windows received whole wait for the engine.

use super::codec;
use super::WindowSettled;
use crate::ack::InOrder;
use crate::source::listen::{Served, Stream};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::sync::mpsc;

/// Writes a connection's ACKs, window after window, as they settle, and keep-alives while
/// windows wait.
pub(super) struct Acker {
    pub(super) writer: WriteHalf<Box<dyn Stream>>,
    pub(super) keepalive: Duration,
    pub(super) pending: Arc<AtomicUsize>,
    pub(super) served: Served,
    pub(super) version: Arc<std::sync::atomic::AtomicU8>,
}

impl Acker {
    pub(super) async fn run(mut self, mut settled: mpsc::UnboundedReceiver<WindowSettled>) {
        let mut order: InOrder<(u32, bool)> = InOrder::default();
        loop {
            let got = tokio::select! {
                got = settled.recv() => got,
                () = tokio::time::sleep(self.keepalive) => {
                    // Windows handed over and waiting for the engine: tell the sender.
                    if self.pending.load(Relaxed) > 0 {
                        if self.write(0).await.is_err() {
                            return;
                        }
                        self.served.counters.keepalives.fetch_add(1, Relaxed);
                    }
                    continue;
                }
            };
            let Some(w) = got else { return };
            for (count, delivered) in order.settle(w.ordinal, (w.count, w.delivered)) {
                self.pending.fetch_sub(1, Relaxed);
                if !delivered {
                    tracing::warn!(
                        "{}: a window held records that could not be delivered; closing the \
                         connection so that the sender sends it again",
                        self.served.label
                    );
                    let _ = self.writer.shutdown().await;
                    return;
                }
                if self.write(count).await.is_err() {
                    return;
                }
                self.served.counters.acks.fetch_add(1, Relaxed);
            }
        }
    }

    async fn write(&mut self, seq: u32) -> std::io::Result<()> {
        let ack = codec::ack(self.version.load(Relaxed), seq);
        self.writer.write_all(&ack).await?;
        self.writer.flush().await
    }
}
