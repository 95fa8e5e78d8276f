//! The spool's segment reader on arbitrary bytes, and on segments of valid frames with bytes
//! flipped: no panic; a record read back is one that was written; every frame is read or
//! counted lost, never both, and a clean segment reads back whole.
#![no_main]
use evtship::source::spool::segment::{self, Frames, Item, SEGMENT_HEADER};
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

/// The records read and the frames counted lost (or cut).
fn read_all(seg: &[u8]) -> (Vec<Vec<u8>>, u64) {
    let Ok(mut frames) = Frames::new(Cursor::new(seg), 0, seg.len() as u64) else {
        return (Vec::new(), 0);
    };
    let (mut records, mut lost) = (Vec::new(), 0);
    loop {
        let mut out = Vec::new();
        match frames.next_item(&mut out) {
            Ok(Some(Item::Record { .. })) => records.push(out),
            Ok(Some(Item::Lost(l) | Item::Cut(l))) => lost += l.frames,
            Ok(None) | Err(_) => return (records, lost),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        read_all(rest);
        return;
    }
    let flips = rest.len().min(usize::from(mode >> 5));
    let (body, flips) = rest.split_at(rest.len() - flips);
    let records: Vec<Vec<u8>> = body
        .split(|b| *b == 0)
        .take(64)
        .map(|r| String::from_utf8_lossy(r).into_owned().into_bytes())
        .collect();
    let mut seg = SEGMENT_HEADER.to_vec();
    for r in &records {
        segment::encode(&mut seg, 1, r);
    }
    let span = seg.len() - SEGMENT_HEADER.len();
    for (i, f) in flips.iter().enumerate() {
        let at = SEGMENT_HEADER.len() + (usize::from(*f) * 7919 + i * 104_729) % span;
        seg[at] ^= 0x5a;
    }
    let (got, lost) = read_all(&seg);
    for r in &got {
        assert!(records.contains(r), "a record that was never written");
    }
    if flips.is_empty() {
        assert_eq!((&got, lost), (&records, 0));
    }
    assert!(got.len() as u64 + lost <= (records.len() + flips.len()) as u64);
});
