//! A `_bulk` request being filled, and the items it carries.

use crate::ack::Outcome;
use crate::sink::wire::Actions;
use crate::sink::Accounting;
use crate::transform::EncodedChunk;
use bytes::Bytes;
use serde_json::Value;
use std::ops::Range;
use std::sync::Arc;

/// Bytes reserved at once for a request body.
const RESERVED_BODY: usize = 4 << 20;

/// One document of a request: its chunk (for accounting and the dead letter queue) and where
/// its action and document lines are in the request body.
#[derive(Debug, Clone)]
pub(super) struct Item {
    pub(super) chunk: Arc<EncodedChunk>,
    pub(super) doc: usize,
    pub(super) span: Range<usize>,
}

impl Item {
    pub(super) fn line(&self) -> usize {
        self.chunk.docs[self.doc].line
    }

    pub(super) fn resolve(
        &self,
        acct: &Accounting,
        outcome: Outcome,
        status: u16,
        error: Option<&Value>,
    ) {
        acct.resolve(&self.chunk.raw, self.line(), outcome, || {
            (status, error.cloned())
        });
    }
}

/// A `_bulk` request being filled: the body is written once, at its final size, and sent as it
/// is. Chunks give up their encoded bytes as soon as these are copied here, so that a request
/// in flight holds its body and the raw records of its documents, no more.
#[derive(Debug)]
pub(super) struct Batch {
    pub(super) body: Vec<u8>,
    pub(super) items: Vec<Item>,
}

impl Batch {
    pub(super) fn new(max_bytes: usize, max_events: usize) -> Self {
        // The default (2 MiB) at once; a larger bound is grown into only when documents come.
        Self {
            body: Vec::with_capacity(max_bytes.min(RESERVED_BODY)),
            items: Vec::with_capacity(max_events.min(RESERVED_BODY / 256)),
        }
    }

    /// Appends the action line of document `doc` of `chunk`, then its document line.
    pub(super) fn push(
        &mut self,
        chunk: &Arc<EncodedChunk>,
        doc: usize,
        actions: &Actions,
        line: &[u8],
    ) {
        let start = self.body.len();
        actions.write(&chunk.docs[doc], &mut self.body);
        self.body.extend_from_slice(line);
        self.push_item(chunk, doc, start);
    }

    /// Appends an item's lines as they were sent before.
    pub(super) fn push_sent(&mut self, item: Item, previous: &[u8]) {
        let start = self.body.len();
        self.body.extend_from_slice(&previous[item.span.clone()]);
        self.push_item(&item.chunk, item.doc, start);
    }

    pub(super) fn push_item(&mut self, chunk: &Arc<EncodedChunk>, doc: usize, start: usize) {
        self.items.push(Item {
            chunk: chunk.clone(),
            doc,
            span: start..self.body.len(),
        });
    }

    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The request, the body frozen for sending (and slicing, should items be retried).
    pub(super) fn freeze(self) -> (Bytes, Vec<Item>) {
        (Bytes::from(self.body), self.items)
    }
}

/// The body of a retry: only the items sent again, copied out of the previous body.
pub(super) fn retry_body(previous: &Bytes, items: Vec<Item>) -> (Bytes, Vec<Item>) {
    let size = items.iter().map(|i| i.span.len()).sum();
    let mut batch = Batch {
        body: Vec::with_capacity(size),
        items: Vec::with_capacity(items.len()),
    };
    for item in items {
        batch.push_sent(item, previous);
    }
    batch.freeze()
}
