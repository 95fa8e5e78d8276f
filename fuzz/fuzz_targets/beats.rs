//! The Lumberjack frame decoder on arbitrary bytes, plain and as a compressed frame's payload:
//! no panic, no frame over the limit, never a compressed frame inside a compressed one.
#![no_main]
use evtship::source::listen::beats::codec::{inflate, parse_all, CodecError, Frame};
use libfuzzer_sys::fuzz_target;

const LIMIT: u64 = 1 << 16;

fn check(frames: &[Frame]) {
    for f in frames {
        match f {
            Frame::Event(_, json) => assert!(json.len() as u64 <= LIMIT),
            Frame::Compressed(_) => panic!("a compressed frame inside a compressed one"),
            Frame::Window(_) => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match parse_all(data, LIMIT) {
        Ok(frames) => check(&frames),
        Err(CodecError::Nested) | Err(_) => {}
    }
    if let Ok(frames) = inflate(data, LIMIT) {
        check(&frames);
    }
});
