//! The `_bulk` body parser and the plain-records parser of the HTTP listener on arbitrary
//! bytes: no panic, every document item points at a line of the chunk, one route per line.
#![no_main]
use evtship::chunk::RawChunk;
use evtship::source::listen::http::bulk::{parse, push_records};
use evtship::source::listen::settings::IndexMode;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

mod json_text;

fuzz_target!(|data: &[u8]| {
    let origin: Arc<str> = Arc::from("fuzz");
    for mode in [IndexMode::Pipeline, IndexMode::Client] {
        let mut chunk = RawChunk::new(0, &origin);
        if let Ok(items) = parse(mode, "logstashindex", &mut chunk, Some("idx"), data) {
            assert_eq!(chunk.routes.len(), chunk.lines.len());
            for item in &items {
                if let Some(line) = item.line() {
                    assert!(line < chunk.lines.len());
                }
            }
        }
    }
    let mut chunk = RawChunk::new(0, &origin);
    if push_records(&mut chunk, data).is_ok() {
        for i in 0..chunk.lines.len() {
            assert!(json_text::is_json(chunk.line(i)));
        }
    }
});
