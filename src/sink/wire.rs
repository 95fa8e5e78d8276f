//! The `_bulk` wire format: each document preceded by its action line,
//! `{"create":{"_index":"<index>","_id":"<id>"}}`. Documents are sent with `create`, so a record
//! already indexed is answered 409 (a duplicate) and never overwritten.

use crate::chunk::Route;
use crate::common::IndexName;
use crate::transform::EncodedDoc;

/// Writes action lines for one index (a dated index named per document from its time, UTC).
#[derive(Debug, Clone)]
pub struct Actions {
    index: IndexName,
    /// The action line up to the id, for an index that does not depend on the document.
    fixed_prefix: Option<Vec<u8>>,
}

impl Actions {
    /// Actions into `index`.
    pub fn new(index: &IndexName) -> Self {
        Self {
            fixed_prefix: (!index.is_dated()).then(|| prefix(index.as_str())),
            index: index.clone(),
        }
    }

    /// Whether documents must come with their time ([`EncodedDoc::time`]) to be named.
    pub fn needs_times(&self) -> bool {
        self.index.is_dated()
    }

    /// The longest action line this writes (exact for a fixed index; a dated index's name is
    /// taken as its pattern plus ten bytes).
    pub fn max_len(&self) -> usize {
        let index = match &self.fixed_prefix {
            Some(p) => return p.len() + ID_AND_END,
            None => self.index.as_str().len() + 10,
        };
        prefix("").len() + index + ID_AND_END
    }

    /// The index a document goes to.
    pub fn index_of(&self, doc: &EncodedDoc) -> String {
        if let Some(index) = doc.route.as_ref().and_then(|r| r.index.as_ref()) {
            return index.clone();
        }
        match &self.fixed_prefix {
            Some(_) => self.index.as_str().to_owned(),
            None => self
                .index
                .for_time(doc.time.unwrap_or_else(chrono::Utc::now)),
        }
    }

    /// Appends the action line of `doc`, newline included.
    pub fn write(&self, doc: &EncodedDoc, out: &mut Vec<u8>) {
        if let Some(route) = &doc.route {
            return self.write_routed(doc, route, out);
        }
        match &self.fixed_prefix {
            Some(p) => out.extend_from_slice(p),
            None => out.extend_from_slice(&prefix(&self.index_of(doc))),
        }
        out.extend_from_slice(doc.id.as_str().as_bytes());
        out.extend_from_slice(b"\"}}\n");
    }

    /// The action line a `_bulk` client asked for: its op, its index (when allowed), its id.
    fn write_routed(&self, doc: &EncodedDoc, route: &Route, out: &mut Vec<u8>) {
        let op = if route.overwrite { "index" } else { "create" };
        let action = serde_json::json!({ op: {
            "_index": self.index_of(doc),
            "_id": route.id.as_deref().unwrap_or(doc.id.as_str()),
        }});
        serde_json::to_writer(&mut *out, &action).expect("a JSON value serialises");
        out.push(b'\n');
    }

    /// The id a document is sent under (its client's, or its stable one).
    pub fn id_of<'d>(&self, doc: &'d EncodedDoc) -> &'d str {
        doc.route
            .as_ref()
            .and_then(|r| r.id.as_deref())
            .unwrap_or(doc.id.as_str())
    }
}

/// The id (32 hex digits) and `"}}` with the newline.
const ID_AND_END: usize = 32 + 4;

/// `{"create":{"_index":"<index>","_id":"` (index names are validated: nothing in them needs
/// JSON escaping).
fn prefix(index: &str) -> Vec<u8> {
    format!("{{\"create\":{{\"_index\":\"{index}\",\"_id\":\"").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{Flow, StreamPos};
    use crate::transform::{Encoder, Settings};
    use serde_json::Value;
    use std::sync::Arc;

    #[test]
    fn action_line_names_index_and_id() {
        let origin: Arc<str> = Arc::from("t");
        let mut chunks = Vec::new();
        let text = "{\"Hostname\":\"h\",\"Channel\":\"c\",\"RecordNumber\":1,\"@timestamp\":\"2020-05-02T23:59:59.999Z\"}\n";
        crate::decode::read_lines(
            text.as_bytes(),
            0,
            &origin,
            StreamPos::default(),
            &mut |c| {
                chunks.push(c);
                Flow::Continue
            },
        )
        .unwrap();
        let c = Encoder::new(Settings::default())
            .with_times(true)
            .encode(chunks.remove(0));
        for (name, want) in [("idx", "idx"), ("l-%{+yyyy.MM.dd}", "l-2020.05.02")] {
            let actions = Actions::new(&IndexName::try_from(name.to_owned()).unwrap());
            let mut line = Vec::new();
            actions.write(&c.docs[0], &mut line);
            assert_eq!(line.last(), Some(&b'\n'));
            let action: Value = serde_json::from_slice(&line).unwrap();
            assert_eq!(action["create"]["_index"], want);
            assert_eq!(action["create"]["_id"].as_str().unwrap().len(), 32);
        }
    }
}
