//! The threads of a run: one reader (sources, with the decode stage) and one parsing worker
//! per core (the transform), joined by bounded channels.

use super::RunOptions;
use crate::checkpoint::Checkpoints;
use crate::chunk::{Flow, RawChunk};
use crate::config::{Mode, Pipeline};
use crate::decode::Decoder;
use crate::exporter::QueueProbe;
use crate::sink::Accounting;
use crate::source::{self, InputFile};
use crate::transform::{EncodedChunk, Encoder};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The reader and parsing threads of a run.
pub(super) struct Workers {
    /// Whether the reader got through everything it had to read (`false` when stopped early).
    reader: JoinHandle<bool>,
    parsers: Vec<JoinHandle<()>>,
    raw: flume::WeakSender<RawChunk>,
    encoded: flume::WeakSender<EncodedChunk>,
}

impl Workers {
    /// Probes of the queue depths between stages, for the metrics.
    pub fn queue_probes(&self) -> Vec<(&'static str, QueueProbe)> {
        let (raw, enc) = (self.raw.clone(), self.encoded.clone());
        vec![
            (
                "parse",
                Box::new(move || raw.upgrade().map_or(0, |t| t.len())),
            ),
            (
                "deliver",
                Box::new(move || enc.upgrade().map_or(0, |t| t.len())),
            ),
        ]
    }

    /// Waits for every thread (they stop once the sink stops taking chunks); returns whether
    /// the reader read everything it had to.
    pub fn join(self) -> bool {
        let completed = self.reader.join().unwrap_or(false);
        for t in self.parsers {
            let _ = t.join();
        }
        completed
    }
}

/// Starts the reader and the parsing workers; returns them and the channel of encoded chunks.
pub(super) fn start(
    p: &Pipeline,
    opts: &RunOptions,
    inputs: Vec<InputFile>,
    acct: &Arc<Accounting>,
    checkpoints: Option<Arc<Checkpoints>>,
) -> Started {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (raw_tx, raw_rx) = flume::bounded::<RawChunk>(threads * 2);
    let (enc_tx, enc_rx) = flume::bounded::<EncodedChunk>(p.bulk.queue_depth());
    let (raw, encoded) = (raw_tx.downgrade(), enc_tx.downgrade());
    let order = Arc::new(AtomicU64::new(0));
    let listeners = raw_tx.clone();
    let source = Source {
        inputs,
        acct: acct.clone(),
        checkpoints,
        threads,
        order: order.clone(),
    };
    let reader = spawn_reader(p, opts, source, raw_tx);
    let encoder = Encoder::new(p.transform).with_times(p.index.is_dated());
    let parsers = (0..threads)
        .map(|i| {
            let (rx, tx, encoder) = (raw_rx.clone(), enc_tx.clone(), encoder.clone());
            std::thread::Builder::new()
                .name(format!("evtship-parse-{i}"))
                .spawn(move || {
                    for raw in rx.iter() {
                        if tx.send(encoder.encode(raw)).is_err() {
                            break;
                        }
                    }
                })
                .expect("spawning a thread")
        })
        .collect();
    let workers = Workers {
        reader,
        parsers,
        raw,
        encoded,
    };
    Started {
        workers,
        encoded: enc_rx,
        listeners,
        order,
    }
}

/// What [`start`] gives the rest of the run.
pub(super) struct Started {
    /// The threads.
    pub workers: Workers,
    /// Encoded chunks, for the sink.
    pub encoded: flume::Receiver<EncodedChunk>,
    /// The queue of raw chunks, for listeners (the run's end waits until every sender of it
    /// is gone).
    pub listeners: flume::Sender<RawChunk>,
    /// The next chunk's place in reading order, shared by every source.
    pub order: Arc<AtomicU64>,
}

/// The file side of the reader.
struct Source {
    inputs: Vec<InputFile>,
    acct: Arc<Accounting>,
    checkpoints: Option<Arc<Checkpoints>>,
    threads: usize,
    order: Arc<AtomicU64>,
}

/// The reader: every input in turn (or, tailing, every file that matches until stopped).
fn spawn_reader(
    p: &Pipeline,
    opts: &RunOptions,
    source: Source,
    raw_tx: flume::Sender<RawChunk>,
) -> JoinHandle<bool> {
    let Source {
        inputs,
        acct,
        checkpoints,
        threads,
        order,
    } = source;
    let read_opts = source::ReadOptions {
        cache_dir: p.cache_dir.clone(),
        from_start: opts.from_start,
        shard: p.shard,
    };
    let decoder = Decoder {
        settings: p.decode,
        threads,
        evtx_shape: crate::transform::dialect::evtx::flatten,
    };
    let stop = opts.stop.clone();
    let patterns = p.inputs.clone();
    let tail = p.mode == Mode::Tail;
    std::thread::Builder::new()
        .name("evtship-read".into())
        .spawn(move || {
            let mut emit = |mut chunk: RawChunk| {
                if stop.load(Relaxed) {
                    return Flow::Stop;
                }
                chunk.order = order.fetch_add(1, Relaxed);
                match raw_tx.send(chunk) {
                    Ok(()) => Flow::Continue,
                    Err(_) => Flow::Stop,
                }
            };
            let cp = checkpoints.as_ref();
            if tail {
                source::follow(
                    &patterns,
                    &acct.stats,
                    &read_opts,
                    &decoder,
                    cp,
                    &stop,
                    &mut emit,
                );
                // Following ends with a signal: that is its end.
                return true;
            }
            for input in &inputs {
                if stop.load(Relaxed)
                    || source::read_input(input, &acct.stats, &read_opts, &decoder, cp, &mut emit)
                        == Flow::Stop
                {
                    return false;
                }
            }
            !stop.load(Relaxed)
        })
        .expect("spawning a thread")
}
