//! NDJSON framing and encoding on arbitrary bytes: no panic, every line either a document or a
//! rejection, and every document line valid JSON.
#![no_main]
use evtship::decode::{read_lines, Flow, StreamPos};
use evtship::transform::{Encoder, Settings};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let origin: Arc<str> = Arc::from("fuzz");
    let encoder = Encoder::new(Settings::default());
    let mut emit = |chunk: evtship::decode::RawChunk| {
        let lines = chunk.lines.len();
        let encoded = encoder.encode(chunk);
        assert_eq!(encoded.docs.len() + encoded.rejected.len(), lines);
        for i in 0..encoded.docs.len() {
            serde_json::from_slice::<serde_json::Value>(encoded.doc_line(i)).expect("valid JSON");
        }
        Flow::Continue
    };
    let _ = read_lines(data, 0, &origin, StreamPos::default(), &mut emit);
});
