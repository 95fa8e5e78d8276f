//! The Kibana saved objects of `config/kibana/` (a data view for the index, the analysts'
//! saved searches), imported with Kibana's saved objects import API.

use super::{files_in, SetupError};
use crate::common::IndexName;
use crate::sink::elasticsearch::EsSettings;
use serde_json::Value;
use std::path::Path;

/// Kibana's import endpoint; `overwrite=true` makes a second setup update what the first made.
pub const IMPORT_PATH: &str = "/api/saved_objects/_import?overwrite=true";

/// Reads every `*.ndjson` of `dir` as one list of saved objects; data views (`index-pattern`)
/// are pointed at `index`.
pub fn load(dir: &Path, index: &IndexName) -> Result<Vec<Value>, SetupError> {
    let mut objects = Vec::new();
    for path in files_in(dir, "ndjson")? {
        let text = std::fs::read_to_string(&path).map_err(|e| SetupError::File {
            path: path.clone(),
            message: e.to_string(),
        })?;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let mut object: Value = serde_json::from_str(line).map_err(|e| SetupError::File {
                path: path.clone(),
                message: format!("line {}: not JSON: {e}", n + 1),
            })?;
            if object["type"] == "index-pattern" {
                object["attributes"]["title"] = Value::from(index.pattern());
            }
            objects.push(object);
        }
    }
    Ok(objects)
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// Imports `objects` into the Kibana at `url` (credentials from the URL, else the pipeline's
/// user and password or API key); returns how many Kibana says it imported.
pub async fn import(url: &str, es: &EsSettings, objects: &[Value]) -> Result<u64, SetupError> {
    let (base, from_url) = crate::sink::elasticsearch::client::split_userinfo(url);
    let from_url = from_url.map(|(user, password)| basic(&user, &password));
    let base = base.trim_end_matches('/').to_owned();
    let shown = crate::redact::url(&base);
    let fail = |message: String| SetupError::Kibana {
        url: shown.clone(),
        message,
    };
    let authorization = from_url
        .or_else(|| {
            es.api_key
                .as_deref()
                .map(crate::sink::elasticsearch::cloud::api_key_header)
        })
        .or_else(|| {
            es.user
                .as_ref()
                .map(|user| basic(user, es.password.as_deref().unwrap_or("")))
        });
    let mut ndjson = String::new();
    for o in objects {
        ndjson.push_str(&o.to_string());
        ndjson.push('\n');
    }
    let part = reqwest::multipart::Part::bytes(ndjson.into_bytes())
        .file_name("evtship.ndjson")
        .mime_str("application/ndjson")
        .map_err(|e| fail(e.to_string()))?;
    let form = reqwest::multipart::Form::new().part("file", part);
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut request = client
        .post(format!("{base}{IMPORT_PATH}"))
        .header("kbn-xsrf", "true")
        .multipart(form);
    if let Some(h) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, h);
    }
    let response = request
        .send()
        .await
        .map_err(|e| fail(crate::common::error_chain(&e)))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or_default();
    if status != 200 || v["success"] != true {
        let shown_body: String = text.chars().take(500).collect();
        return Err(fail(format!("import answered HTTP {status}: {shown_body}")));
    }
    Ok(v["successCount"].as_u64().unwrap_or(objects.len() as u64))
}
