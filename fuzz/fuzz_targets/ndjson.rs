//! NDJSON framing and encoding on arbitrary bytes: no panic (no stack overflow on deep nesting),
//! every line either a document or a rejection, every document line valid JSON, and no line
//! held beyond the line limit (4 KiB here, so that short inputs reach it).
#![no_main]
use evtship::decode::{read_lines_limited, Flow, StreamPos};
use evtship::transform::{Encoder, Settings};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

mod json_text;

fuzz_target!(|data: &[u8]| {
    let origin: Arc<str> = Arc::from("fuzz");
    let encoder = Encoder::new(Settings::default());
    let mut emit = |chunk: evtship::decode::RawChunk| {
        let lines = chunk.lines.len();
        for i in 0..lines {
            assert!(chunk.line(i).len() <= 4096, "a line held beyond the limit");
        }
        let encoded = encoder.encode(chunk);
        assert_eq!(encoded.docs.len() + encoded.rejected.len(), lines);
        for i in 0..encoded.docs.len() {
            assert!(json_text::is_json(encoded.doc_line(i)), "valid JSON");
        }
        Flow::Continue
    };
    let _ = read_lines_limited(data, 0, &origin, StreamPos::default(), 4096, &mut emit);
});
