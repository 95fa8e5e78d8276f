//! Stable document ids, so that reading the same record twice adds nothing to the index.

use super::fields::Fields;
use xxhash_rust::xxh3::Xxh3;

/// The id of a record: from the event's identity (`Hostname` + `Channel` + `RecordNumber`, or
/// `Computer` + `Channel` + `EventRecordID`, with `EventID` and the record's creation time:
/// `EventTime`, `TimeCreated` or `UtcTime`, the first present) when present, else from the
/// record's bytes and its line number in its stream.
///
/// A record number alone repeats once a log is cleared, and lab hosts are rebuilt under the
/// same names: the OTRF datasets hold 93 distinct events that share host, channel and record
/// number. EventID and creation time tell them apart, and are stable for the same record. The line number keeps apart events that are byte-identical (real
/// exports hold such: two Sysmon process-access events in the same millisecond) while the same
/// record read again, from the plain file or from an archive of it, gets the same id.
///
/// 32 hex digits of a 128-bit xxh3 hash; the identity is hashed with a separator that cannot
/// occur in the parts, and under a different prefix from the bytes. The parts are fed to the
/// hasher in turn, without building the string they make (the same hash: ids never change).
pub fn document_id<D: Fields + ?Sized>(doc: &D, raw: &[u8], line: u64) -> String {
    id_of(doc, raw, line).as_str().to_owned()
}

/// A document id: 32 lower-case hex digits, held without an allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DocId([u8; 32]);

impl DocId {
    /// An id given as text (32 lower-case hex digits), as evtship writes them.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes: [u8; 32] = text.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            .then_some(Self(bytes))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }
}

impl std::fmt::Debug for DocId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for DocId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// [`document_id`] as a [`DocId`].
pub fn id_of<D: Fields + ?Sized>(doc: &D, raw: &[u8], line: u64) -> DocId {
    let identity = [("Hostname", "RecordNumber"), ("Computer", "EventRecordID")]
        .iter()
        .find_map(|(host, record)| {
            Some((doc.text(host)?, doc.text("Channel")?, doc.text(record)?))
        });
    let mut h = Xxh3::new();
    match identity {
        Some((host, channel, record)) => {
            let event = doc.text("EventID").unwrap_or_default();
            let created = ["EventTime", "TimeCreated", "UtcTime"]
                .iter()
                .find_map(|k| doc.text(k))
                .unwrap_or_default();
            h.update(b"event");
            for part in [&host, &channel, &record, &event, &created] {
                h.update(b"\0");
                h.update(part.as_bytes());
            }
        }
        None => {
            h.update(b"bytes\0");
            h.update(line.to_string().as_bytes());
            h.update(b"\0");
            h.update(raw);
        }
    }
    hex(h.digest128())
}

/// 32 lower-case hex digits, as `{:032x}` writes them.
fn hex(digest: u128) -> DocId {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 32];
    for (i, digit) in text.iter_mut().enumerate() {
        *digit = DIGITS[((digest >> ((31 - i) * 4)) & 0xf) as usize];
    }
    DocId(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map, Value};

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    /// The first form of the id: the parts joined into one string, hashed at once.
    fn joined(doc: &Map<String, Value>, raw: &[u8], line: u64) -> String {
        let t = |k: &str| doc.text(k).map(|c| c.into_owned());
        let identity = [("Hostname", "RecordNumber"), ("Computer", "EventRecordID")]
            .iter()
            .find_map(|(h, r)| Some((t(h)?, t("Channel")?, t(r)?)));
        let hash = match identity {
            Some((host, channel, record)) => {
                let event = t("EventID").unwrap_or_default();
                let created = ["EventTime", "TimeCreated", "UtcTime"]
                    .iter()
                    .find_map(|k| t(k))
                    .unwrap_or_default();
                xxhash_rust::xxh3::xxh3_128(
                    format!("event\0{host}\0{channel}\0{record}\0{event}\0{created}").as_bytes(),
                )
            }
            None => {
                let mut buf = format!("bytes\0{line}\0").into_bytes();
                buf.extend_from_slice(raw);
                xxhash_rust::xxh3::xxh3_128(&buf)
            }
        };
        format!("{hash:032x}")
    }

    #[test]
    fn ids_are_those_of_the_first_form() {
        let long = "x".repeat(5000);
        for v in [
            json!({"Hostname":"H","Channel":"C","RecordNumber":5,"EventID":1,"EventTime":"2020-09-04 16:09:56"}),
            json!({"Hostname":"H","Channel":"C","RecordNumber":"5","UtcTime":"2020-09-04 16:09:56.1"}),
            json!({"Computer":"H","Channel":"C","EventRecordID":7,"TimeCreated":"t"}),
            json!({"Channel":"C","Message":long}),
            json!({}),
        ] {
            let doc = map(v);
            for raw in [&b""[..], b"{}", long.as_bytes()] {
                assert_eq!(document_id(&doc, raw, 42), joined(&doc, raw, 42));
            }
        }
        // A known value (evtship 0.1.0 gave it), so that a change of hash or layout cannot go
        // unseen: a changed id would duplicate every record of a re-run.
        let doc = map(json!({"Hostname":"H","Channel":"C","RecordNumber":5}));
        assert_eq!(
            document_id(&doc, b"", 1),
            "bb54b39136875b0e059561454edc5e4e"
        );
    }

    #[test]
    fn identity_beats_bytes_and_number_forms_agree() {
        let a = map(json!({"Hostname":"H","Channel":"C","RecordNumber":5,"x":1}));
        let b = map(json!({"Hostname":"H","Channel":"C","RecordNumber":"5","x":2}));
        assert_eq!(document_id(&a, b"a", 1), document_id(&b, b"b", 2));
        let c = map(json!({"Hostname":"H","Channel":"c","RecordNumber":5}));
        assert_ne!(document_id(&a, b"", 1), document_id(&c, b"", 1));
        // The same record number after a log was cleared: another event.
        let d = map(
            json!({"Hostname":"H","Channel":"C","RecordNumber":5,"EventTime":"2020-09-04 16:09:56"}),
        );
        assert_ne!(document_id(&a, b"", 1), document_id(&d, b"", 1));
    }

    #[test]
    fn evtx_shape_and_fallback() {
        let a = map(json!({"Computer":"H","Channel":"C","EventRecordID":5}));
        assert_eq!(document_id(&a, b"x", 1).len(), 32);
        let none = map(json!({"Channel":"C"}));
        assert_eq!(document_id(&none, b"x", 1), document_id(&none, b"x", 1));
        assert_ne!(document_id(&none, b"x", 1), document_id(&none, b"y", 1));
        assert_ne!(document_id(&none, b"x", 1), document_id(&none, b"x", 2));
    }
}
