//! Syslog framing (LF and octet-counted, RFC 6587) and the syslog parser on arbitrary bytes:
//! no panic, every record within the limit, every parsed message one JSON object; the bytes
//! fed in pieces give the same records as fed whole.
#![no_main]
use evtship::source::listen::framing::{Framed, Framer, Framing};
use evtship::source::listen::syslog;
use libfuzzer_sys::fuzz_target;

mod json_text;

/// The records (`None`: one skipped for its size), and whether the stream ended well.
fn frame(data: &[u8], framing: Framing, piece: usize) -> (Vec<Option<Vec<u8>>>, bool) {
    let mut f = Framer::new(framing, 512);
    let mut out = Vec::new();
    let own = |r: Framed<'_>| match r {
        Framed::Record(r) => Some(r.to_vec()),
        Framed::Skipped(_) => None,
    };
    for part in data.chunks(piece.max(1)) {
        f.push(part);
        loop {
            match f.next_record() {
                Ok(Some(r)) => out.push(own(r)),
                Ok(None) => break,
                Err(_) => return (out, false),
            }
        }
    }
    out.extend(f.finish().map(own));
    (out, true)
}

fuzz_target!(|data: &[u8]| {
    let framing = data.first().map_or(Framing::Lines, |&b| Framer::detect(b));
    let (whole, ok) = frame(data, framing, data.len());
    let piece = data.get(1).map_or(1, |&b| b as usize % 17 + 1);
    let (pieces, ok2) = frame(data, framing, piece);
    if ok && ok2 {
        assert_eq!(whole, pieces);
    }
    for r in whole.iter().flatten() {
        assert!(r.len() <= 512);
        let rec = syslog::record(r);
        assert!(json_text::is_json_object(&rec), "a JSON record");
    }
    let rec = syslog::record(data);
    assert!(json_text::is_json_object(&rec), "a JSON record");
});
