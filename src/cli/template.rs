//! `evtship template`: prints the index template `run` installs.

use super::Exit;
use evtship::config::IndexName;
use evtship::sink::elasticsearch::template::{self, TemplateSettings};

/// Prints the template for `index`.
pub fn print(index: String, ecs: bool, opensearch: bool) -> Exit {
    let index = match IndexName::try_from(index) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: --index: {e}");
            return Exit::Usage;
        }
    };
    let flavor = if opensearch {
        template::Flavor::OpenSearch
    } else {
        template::Flavor::Elasticsearch
    };
    let features = template::Features {
        ecs,
        flavor,
        data_stream: false,
    };
    let body = template::body(&index, &TemplateSettings::default(), features);
    println!(
        "{}",
        serde_json::to_string_pretty(&body).expect("serialisable")
    );
    Exit::Delivered
}
