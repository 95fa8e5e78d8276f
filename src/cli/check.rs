//! `evtship check`: validates a pipeline without sending anything.

use super::Exit;
use evtship::config::Pipeline;
use std::path::Path;

/// Reports what a valid pipeline would read; inputs not there yet are warnings, not errors.
pub fn run(path: &Path, p: &Pipeline) -> Exit {
    let mut files = 0;
    for pattern in &p.inputs {
        match evtship::source::resolve(std::slice::from_ref(pattern)) {
            Ok((found, unmatched)) => {
                files += found.len();
                for u in unmatched {
                    eprintln!("warning: input `{u}` matches no file yet");
                }
            }
            Err(evtship::source::ResolveError::Missing(m)) => {
                eprintln!("warning: input `{m}` does not exist yet");
            }
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return Exit::Usage;
            }
        }
    }
    let listening = if p.listen.is_empty() {
        String::new()
    } else {
        let uris: Vec<String> = p
            .listen
            .iter()
            .map(|l| evtship::redact::url(&l.uri))
            .collect();
        let spool = if p.listen.iter().any(|l| l.kind.spooled()) {
            format!(
                " (spool {}, at most {} MiB)",
                p.spool.dir.display(),
                p.spool.max_bytes >> 20
            )
        } else {
            String::new()
        };
        format!("; listens on {}{spool}", uris.join(", "))
    };
    let consuming = p.kafka.as_ref().map_or_else(String::new, |k| {
        format!(
            "; consumes {} as group {}",
            evtship::redact::url(&k.label()),
            k.group
        )
    });
    let requests = if p.output == evtship::config::OutputTarget::Elasticsearch {
        let concurrency = match p.bulk.concurrency() {
            evtship::sink::elasticsearch::Concurrency::Fixed(n) => format!("concurrency {n}"),
            evtship::sink::elasticsearch::Concurrency::Adaptive { min, max } => {
                format!("adaptive concurrency {min} to {max}")
            }
        };
        format!("; requests {}, {concurrency}", p.es.compression)
    } else {
        String::new()
    };
    println!(
        "{}: valid; {files} input file(s) found{listening}{consuming}; output {}; template {}{requests}",
        path.display(),
        p.output_for_display(),
        p.template_name()
    );
    Exit::Delivered
}
