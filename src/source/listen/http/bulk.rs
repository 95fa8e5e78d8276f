//! Request bodies: Elasticsearch's `_bulk` (action and document lines) and plain records
//! (NDJSON, or a JSON array of objects), and the `_bulk` answer, item by item as the engine gave
//! it.
//!
//! `index` and `create` actions are taken; their documents go through the same transform as
//! every other record. The client's `_id` is kept; its `_index` too when the listener's
//! `index = "client"` (else the pipeline's index). `create` of a document already present is
//! answered 409, as Elasticsearch does; `index` overwrites it (200). `update` and `delete` are
//! answered 400, one item each, without failing the others.

use super::{es, send_and_wait, Answer, Site};
use crate::ack::{ItemAnswer, Outcome};
use crate::chunk::{Identity, RawChunk, Route};
use crate::common::IndexName;
use crate::source::listen::settings::IndexMode;
use hyper::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// Whether `path` is a `_bulk` endpoint: `Some(None)` for `/_bulk`, `Some(Some(index))` for
/// `/{index}/_bulk`.
pub fn bulk_path(path: &str) -> Option<Option<String>> {
    let rest = path.strip_suffix("/_bulk")?;
    let index = rest.trim_start_matches('/');
    Some((!index.is_empty()).then(|| index.to_owned()))
}

/// The lines of a body, blank ones skipped, with their 1-based numbers.
fn lines(body: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    body.split(|b| *b == b'\n')
        .enumerate()
        .filter_map(|(i, l)| {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            (!l.iter().all(u8::is_ascii_whitespace)).then_some((i + 1, l))
        })
}

/// Puts plain records in `chunk`: a JSON array of objects, or one JSON object per line.
/// Anything else is refused whole, naming the line (or element) at fault.
pub fn push_records(chunk: &mut RawChunk, body: &[u8]) -> Result<(), String> {
    if let Err(e) = std::str::from_utf8(body) {
        let line = body[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        return Err(format!("line {line}: not UTF-8"));
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let items: Vec<Box<serde_json::value::RawValue>> = serde_json::from_slice(body)
            .map_err(|e| format!("the body is not a JSON array: {e}"))?;
        for (i, item) in items.iter().enumerate() {
            if !item.get().starts_with('{') {
                return Err(format!(
                    "element {} of the array is not a JSON object",
                    i + 1
                ));
            }
            let n = i as u64 + 1;
            chunk.push_record(n, |buf| buf.extend_from_slice(item.get().as_bytes()));
        }
        return Ok(());
    }
    for (n, line) in lines(body) {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(line) {
            return Err(format!("line {n}: invalid JSON: {e}"));
        }
        if line.trim_ascii_start().first() != Some(&b'{') {
            return Err(format!("line {n}: not a JSON object"));
        }
        chunk.push_record(n as u64, |buf| buf.extend_from_slice(line));
    }
    Ok(())
}

/// One item of a `_bulk` request.
pub struct Item {
    op: &'static str,
    index: String,
    id: Option<String>,
    /// Its document's line in the chunk, or the answer it got without going anywhere.
    fate: Result<usize, (u16, Value)>,
}

/// The items of a `_bulk` body, their documents pushed into `chunk` (and their routes, for the
/// listener's index `mode`; `default_index` is the pipeline's, as answers name it); `Err`
/// names a line that is no action.
pub fn parse(
    mode: IndexMode,
    default_index: &str,
    chunk: &mut RawChunk,
    path_index: Option<&str>,
    body: &[u8],
) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut it = lines(body);
    while let Some((n, line)) = it.next() {
        let action: Value = serde_json::from_slice(line)
            .map_err(|e| format!("line {n}: malformed action/metadata line: {e}"))?;
        let Some((op, meta)) = action
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
        else {
            return Err(format!(
                "line {n}: malformed action/metadata line: expected one action"
            ));
        };
        let op: &'static str = match op.as_str() {
            "index" => "index",
            "create" => "create",
            "update" => "update",
            "delete" => "delete",
            other => return Err(format!("line {n}: unknown action `{other}`")),
        };
        let wanted = meta["_index"].as_str().or(path_index).map(str::to_owned);
        let id = meta["_id"].as_str().map(str::to_owned);
        let index = match mode {
            IndexMode::Client => wanted.clone(),
            IndexMode::Pipeline => None,
        }
        .unwrap_or_else(|| default_index.to_owned());
        if op == "delete" {
            items.push(refused(
                op,
                index,
                id,
                "evtship takes index and create actions only",
            ));
            continue;
        }
        let Some((doc_n, doc)) = it.next() else {
            return Err(format!(
                "line {n}: the action has no document line after it"
            ));
        };
        if op == "update" {
            items.push(refused(
                op,
                index,
                id,
                "evtship takes index and create actions only",
            ));
            continue;
        }
        let route_index = match (mode, &wanted) {
            (IndexMode::Client, Some(name)) => match IndexName::try_from(name.clone()) {
                Ok(_) => Some(name.clone()),
                Err(problem) => {
                    items.push(refused(op, index, id, &problem));
                    continue;
                }
            },
            _ => None,
        };
        chunk.routes.push(Route {
            index: route_index,
            id: id.clone(),
            overwrite: op == "index",
            verbatim: false,
        });
        let line = chunk.lines.len();
        chunk.push_record(doc_n as u64, |buf| buf.extend_from_slice(doc));
        items.push(Item {
            op,
            index,
            id,
            fate: Ok(line),
        });
    }
    Ok(items)
}

impl Item {
    /// The line of its document in the chunk, or `None` when it was answered without one.
    pub fn line(&self) -> Option<usize> {
        self.fate.as_ref().ok().copied()
    }
}

fn refused(op: &'static str, index: String, id: Option<String>, reason: &str) -> Item {
    Item {
        op,
        index,
        id,
        fate: Err((
            400,
            json!({"type": "illegal_argument_exception", "reason": reason}),
        )),
    }
}

/// `POST /_bulk`, `POST /{index}/_bulk`: the engine's answer for every item, once every one
/// has it.
pub(super) async fn handle(
    site: &Site,
    origin: &Arc<str>,
    path_index: Option<String>,
    body: &[u8],
) -> Answer {
    let started = Instant::now();
    let mut chunk = RawChunk::growing(site.served.input, origin);
    chunk.buf.reserve(body.len());
    chunk.identity = Identity::Content;
    let items = match parse(
        site.index,
        &site.served.index,
        &mut chunk,
        path_index.as_deref(),
        body,
    ) {
        Ok(items) => items,
        Err(problem) => {
            site.served.counters.refused("bad_body");
            return es::error(StatusCode::BAD_REQUEST, &problem, "");
        }
    };
    let answers = if chunk.lines.is_empty() {
        Vec::new()
    } else {
        match send_and_wait(site, chunk, true).await {
            Ok(settled) => settled.answers.unwrap_or_default(),
            Err(answer) => return answer,
        }
    };
    let mut errors = false;
    let items: Vec<Value> = items
        .into_iter()
        .map(|item| {
            let (status, error) = match item.fate {
                Ok(line) => match answers.get(line) {
                    Some(a) => answer_of(a),
                    None => (
                        500,
                        Some(json!({"type": "evtship_exception", "reason": "no answer"})),
                    ),
                },
                Err((status, error)) => (status, Some(error)),
            };
            errors |= status >= 300;
            let mut result = json!({"_index": item.index, "status": status});
            if let Some(id) = item.id {
                result["_id"] = id.into();
            }
            match error {
                Some(e) => result["error"] = e,
                None => {
                    result["result"] = (if status == 201 { "created" } else { "updated" }).into()
                }
            }
            json!({ item.op: result })
        })
        .collect();
    es::json(
        StatusCode::OK,
        json!({"took": started.elapsed().as_millis() as u64, "errors": errors, "items": items}),
    )
}

/// An item's status and error from its record's outcome.
fn answer_of(a: &ItemAnswer) -> (u16, Option<Value>) {
    match a.outcome {
        Outcome::Indexed => (a.status, None),
        Outcome::Duplicate | Outcome::DeadLettered => (a.status, a.error.clone()),
        // Not delivered (the dead letter file failed): the client should send it again.
        Outcome::Failed => (
            429,
            Some(json!({"type": "es_rejected_execution_exception",
                "reason": "evtship could not deliver this document; send it again"})),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_paths_name_their_index() {
        assert_eq!(bulk_path("/_bulk"), Some(None));
        assert_eq!(bulk_path("/logs/_bulk"), Some(Some("logs".into())));
        assert_eq!(bulk_path("/ingest"), None);
    }

    #[test]
    fn plain_records_are_lines_or_an_array_and_a_bad_one_is_named() {
        let origin: Arc<str> = Arc::from("t");
        let mut c = RawChunk::new(0, &origin);
        push_records(&mut c, b"{\"a\":1}\n\n{\"b\":2}\r\n").unwrap();
        assert_eq!(c.lines.len(), 2);
        let mut c = RawChunk::new(0, &origin);
        push_records(&mut c, b" [{\"a\":1},{\"b\":[2]}]").unwrap();
        assert_eq!(c.line(1), b"{\"b\":[2]}");
        let mut c = RawChunk::new(0, &origin);
        assert_eq!(
            push_records(&mut c, b"{\"a\":1}\n{\"a\":\n").unwrap_err()[..7].to_owned(),
            "line 2:"
        );
        assert!(push_records(&mut c, b"[1]")
            .unwrap_err()
            .contains("element 1"));
    }
}
