//! The spool's writer: groups what the listeners queued, appends it to the current segment,
//! syncs it, and only then makes it visible to the reader and counts it received.

use super::{segment, Batch, Shared};
use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// The segment being written.
struct Current {
    number: u64,
    file: std::fs::File,
    len: u64,
}

/// Writes until every listener has dropped its sender.
pub(super) fn run(shared: &Shared, rx: flume::Receiver<Batch>, mut next: u64) {
    let dir = shared.settings.dir.clone();
    let mut current: Option<Current> = None;
    let (mut groups, mut records, mut syncing) = (0u64, 0u64, Duration::ZERO);
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        let mut bytes = group[0].bytes();
        let most = super::GROUP_BYTES.min(shared.settings.max_bytes as usize / 4);
        while bytes < most {
            match rx.try_recv() {
                Ok(b) => {
                    bytes += b.bytes();
                    group.push(b);
                }
                Err(_) => break,
            }
        }
        if current.is_some() && is_full(shared, bytes as u64) {
            // The segment being written cannot be deleted: seal it, so that once its records
            // are settled the keeper can free its space.
            current = None;
            shared.lock().writing = None;
        }
        wait_for_space(shared, bytes as u64);
        if current
            .as_ref()
            .is_none_or(|c| c.len >= shared.settings.segment_bytes())
        {
            match open_segment(&dir, next) {
                Ok(c) => {
                    let mut st = shared.lock();
                    st.segments.insert(c.number, 0);
                    st.used += c.len;
                    st.writing = Some(c.number);
                    next += 1;
                    current = Some(c);
                }
                Err(e) => {
                    fail(shared, &group, &e);
                    continue;
                }
            }
        }
        let c = current.as_mut().expect("a segment is open");
        let started = std::time::Instant::now();
        let written = group
            .iter()
            .try_for_each(|b| c.file.write_all(&b.frames))
            .and_then(|()| c.file.sync_data());
        syncing += started.elapsed();
        groups += 1;
        records += group.iter().map(Batch::len).sum::<u64>();
        if let Err(e) = written {
            // What did not reach the disk is lost: say so, cut it off (it would read as a
            // damaged frame later), and start a new segment.
            fail(shared, &group, &e);
            let _ = c.file.set_len(c.len);
            current = None;
            continue;
        }
        c.len += bytes as u64;
        {
            let mut st = shared.lock();
            st.segments.insert(c.number, c.len);
        }
        shared.data.notify_all();
        for b in &group {
            b.counters.received.fetch_add(b.records, Relaxed);
        }
    }
    if groups > 0 {
        tracing::info!(
            "spool {}: {records} records written in {groups} synced groups ({:.0} records and \
             {:.2} ms of write and fdatasync per group)",
            dir.display(),
            records as f64 / groups as f64,
            syncing.as_secs_f64() * 1e3 / groups as f64
        );
    }
    let mut st = shared.lock();
    st.writer_done = true;
    st.writing = None;
    drop(st);
    shared.data.notify_all();
}

/// Whether `bytes` more would go past the bound.
fn is_full(shared: &Shared, bytes: u64) -> bool {
    let st = shared.lock();
    st.used > 0 && st.used + bytes > shared.settings.max_bytes
}

/// Reserves `bytes` of the bound, waiting while the spool is full; once the run stops, what
/// is still queued is written past the bound rather than lost.
fn wait_for_space(shared: &Shared, bytes: u64) {
    let mut st = shared.lock();
    let mut warned = false;
    while st.used > 0 && st.used + bytes > shared.settings.max_bytes && !shared.stop.load(Relaxed) {
        shared.full.store(true, Relaxed);
        if !warned {
            tracing::warn!(
                "spool {} is full ({} bytes): listeners wait (TCP) or drop (UDP) until the \
                 engine takes records",
                shared.settings.dir.display(),
                shared.settings.max_bytes
            );
            warned = true;
        }
        st = shared
            .space
            .wait_timeout(st, Duration::from_millis(100))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    shared.full.store(false, Relaxed);
    st.used += bytes;
}

/// Creates segment `number` with its header (synced with the first group written to it).
fn open_segment(dir: &std::path::Path, number: u64) -> std::io::Result<Current> {
    let path = segment::path(dir, number);
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)?;
    file.write_all(&segment::SEGMENT_HEADER)?;
    // The new name must survive a crash too.
    std::fs::File::open(dir)?.sync_all()?;
    Ok(Current {
        number,
        file,
        len: segment::SEGMENT_HEADER.len() as u64,
    })
}

fn fail(shared: &Shared, group: &[Batch], e: &std::io::Error) {
    let n: u64 = group.iter().map(Batch::len).sum();
    tracing::error!(
        "spool {}: {e}; {n} records received were not written and are lost",
        shared.settings.dir.display()
    );
    for b in group {
        b.counters.lost(b.records);
    }
    let bytes: u64 = group.iter().map(|b| b.bytes() as u64).sum();
    let mut st = shared.lock();
    st.used = st.used.saturating_sub(bytes);
}
