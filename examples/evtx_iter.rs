//! The reference of the `.evtx` benchmark: the `evtx` crate's own record iteration (records as
//! JSON values, as evtship asks for them) over files given on the command line, on N threads.
//! Prints `records seconds`.

use evtx::{EvtxParser, ParserSettings};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args
        .next()
        .and_then(|t| t.parse().ok())
        .expect("usage: evtx_iter THREADS FILE...");
    let files: Vec<String> = args.collect();
    let started = Instant::now();
    let mut records = 0u64;
    for f in &files {
        let Ok(parser) = EvtxParser::from_path(f) else {
            continue;
        };
        let settings = ParserSettings::new().num_threads(threads).indent(false);
        let mut parser = parser.with_configuration(settings);
        for r in parser.records_json_value().flatten() {
            std::hint::black_box(&r.data);
            records += 1;
        }
    }
    println!("{records} {:.6}", started.elapsed().as_secs_f64());
}
