//! `.evtx` input on arbitrary bytes: the parser and evtship's flattening never panic, and
//! every document is a flat JSON object.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(parser) = evtx::EvtxParser::from_buffer(data.to_vec()) else {
        return;
    };
    let mut parser = parser.with_configuration(evtx::ParserSettings::new().num_threads(1));
    for record in parser.records_json_value().take(64) {
        if let Ok(r) = record {
            let doc = evtship::transform::dialect::evtx::flatten(r.data);
            assert!(doc.values().all(|v| !v.is_object()));
        }
    }
});
