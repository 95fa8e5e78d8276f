//! The fast path for flat records gives the same documents and ids as the general path: on
//! every record of the test data (OTRF exports, pitfalls, Winlogbeat and Azure samples), on
//! records made to reach each of its rules, and on lines it must leave to the general path.
//! `EVTSHIP_FAST_PATH_DATA=<dir>` adds every `.json` file under a directory (the shared
//! datasets, say).

mod common;

use evtship::decode::{read_lines, Flow, RawChunk, StreamPos};
use evtship::transform::timestamp::parse_utc;
use evtship::transform::{EncodedChunk, Encoder, Settings};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn chunks(text: &[u8]) -> Vec<RawChunk> {
    let origin: Arc<str> = Arc::from("t");
    let mut out = Vec::new();
    read_lines(text, 0, &origin, StreamPos::default(), &mut |c| {
        out.push(c);
        Flow::Continue
    })
    .unwrap();
    out
}

fn encoder(settings: Settings) -> Encoder {
    Encoder::new(settings)
}

/// A document line as JSON text with its keys in order and numbers as JSON writes them, the
/// time of reading (`@timestamp` of records without one) taken out.
fn canonical(line: &[u8]) -> (String, Option<String>) {
    let mut doc: Value = serde_json::from_slice(line).unwrap();
    let stamp = doc["@timestamp"].as_str().map(str::to_owned);
    doc["@timestamp"] = Value::Null;
    (serde_json::to_string(&doc).unwrap(), stamp)
}

/// Encodes `text` both ways and compares every line; returns how many records took the fast
/// path and how many were read.
fn compare(text: &[u8], settings: Settings, name: &str) -> (usize, usize) {
    let fast = encoder(settings);
    let general = encoder(settings).with_fast_path(false);
    let (mut taken, mut total) = (0, 0);
    for (chunk, copy) in chunks(text).into_iter().zip(chunks(text)) {
        for i in 0..chunk.lines.len() {
            total += 1;
            taken += usize::from(fast.takes_fast_path(chunk.line(i)));
        }
        let a: EncodedChunk = fast.encode(chunk);
        let b: EncodedChunk = general.encode(copy);
        assert_eq!(a.docs.len(), b.docs.len(), "{name}: documents");
        assert_eq!(a.rejected.len(), b.rejected.len(), "{name}: rejected");
        for (x, y) in a.rejected.iter().zip(&b.rejected) {
            assert_eq!((x.line, &x.reason), (y.line, &y.reason), "{name}");
        }
        for i in 0..a.docs.len() {
            let line = a.raw.lines[a.docs[i].line].number;
            // The ids, which the action lines name.
            assert_eq!(a.docs[i].id, b.docs[i].id, "{name} line {line}: id");
            let (doc_a, stamp_a) = canonical(a.doc_line(i));
            let (doc_b, stamp_b) = canonical(b.doc_line(i));
            assert_eq!(doc_a, doc_b, "{name} line {line}");
            if stamp_a != stamp_b {
                // Both are the time of reading, taken a moment apart.
                let (ta, tb) = (
                    parse_utc(&stamp_a.unwrap()).unwrap(),
                    parse_utc(&stamp_b.unwrap()).unwrap(),
                );
                assert!((ta - tb).num_seconds().abs() < 60, "{name} line {line}");
            }
        }
    }
    (taken, total)
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let path = e.path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "json") {
            out.push(path);
        }
    }
}

#[test]
fn test_data_gives_the_same_documents_both_ways() {
    let mut files = Vec::new();
    json_files(&common::data("otrf"), &mut files);
    json_files(&common::data("pitfalls"), &mut files);
    json_files(&common::data("winlogbeat8"), &mut files);
    if let Ok(extra) = std::env::var("EVTSHIP_FAST_PATH_DATA") {
        json_files(Path::new(&extra), &mut files);
    }
    let (mut taken, mut total) = (0, 0);
    for path in &files {
        let text = std::fs::read(path).unwrap();
        let name = path.display().to_string();
        let (t, n) = compare(&text, Settings::default(), &name);
        eprintln!("{name}: {t} of {n} records on the fast path");
        taken += t;
        total += n;
    }
    eprintln!("all: {taken} of {total} records on the fast path");
    // The NXLog exports are flat: most records must take the fast path, or it is not one.
    assert!(taken * 10 > total * 6, "{taken} of {total}");
}

#[test]
fn each_rule_gives_the_same_document_both_ways() {
    let sysmon =
        r#""Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"h","RecordNumber":7"#;
    let lines = [
        // Registry event: Sysmon's EventType replaces INFO; Message fields fill the rest.
        format!(r#"{{{sysmon},"EventID":13,"EventType":"INFO","TargetObject":"HKLM\\a%5Cb","Message":"Registry value set:\r\nRuleName: -\r\nEventType: SetValue\r\nUtcTime: 2019-12-05 04:47:33.003\r\nTargetObject: HKLM\\a10080Cb\r\nDetails: DWORD (0x00000001)"}}"#),
        // Not a registry event: INFO stays; an unexpanded insert is not taken; a repeated key.
        format!(r#"{{{sysmon},"EventID":1,"EventType":"INFO","Message":"Process Create:\r\nEventType: X\r\nUser: %9\r\nImage: a\r\nImage: b\r\nUtcTime: 2020-05-02 02:55:56.157"}}"#),
        // Security: MessageData with a repeated key as an array; MessageTitle already present.
        r#"{"Channel":"Security","EventID":4624,"Computer":"c","EventRecordID":12.0,"MessageTitle":"t","Message":"An account was logged on.\r\n\r\nSubject:\r\n\tSecurity ID:\t\tS-1-5-18\r\n\tSecurity ID:\t\tS-1-5-19\r\n\tLogon ID:\t\t%9\r\n\r\nPrivileges:\t\tSeA\r\n\t\t\tSeB"}"#.to_owned(),
        // Keywords in each form; numbers as JSON writes them; escapes, unicode and booleans.
        r#"{"Keywords":-9223372036854775808,"Level":4,"Ratio":1.50,"Big":1e3,"Neg":-1,"ok":true,"none":null,"tags":["a","b"],"Path":"C:\\Users\\x\/y","Name":"caf\u00e9 é","Hostname":"h","Channel":"c","RecordNumber":18446744073709551615,"EventTime":"2020-01-01 00:00:00"}"#.to_owned(),
        r#"{"Keywords":"0x8020000000000000","TimeCreated":"2020-09-22T18:53:04+02:00","Hostname":"h","Task":"13313","Level":" 0x4 "}"#.to_owned(),
        r#"{"Keywords":"Audit Success","@timestamp":"2019-05-18T20:36:46.254Z","@version":"0"}"#.to_owned(),
        // Each thing the fast path leaves to the general path.
        r#"{"EventID":"13x","Message":"x"}"#.to_owned(),
        r#"{"EventID":null,"Opcode":0}"#.to_owned(),
        r#"{"Keywords":1.5,"Level":"high"}"#.to_owned(),
        r#"{"PipeName":"&lt;Anonymous Pipe&gt;","Message":"a &amp; b"}"#.to_owned(),
        r#"{"a":1,"a":2,"b.c":3}"#.to_owned(),
        r#"{"Zero":-0,"a":1}"#.to_owned(),
        r#"{"nested":{"x":[1,{"y":2}]},"list":[[1],{"z":1}]}"#.to_owned(),
        r#"{"log_name":"Security","computer_name":"c","event_id":4624,"event_data":{"A":"1"}}"#.to_owned(),
        r#"{"EventData":"{\"A\":\"1\"}","TimeGenerated":"2021-12-10T10:00:00Z","Computer":"c"}"#.to_owned(),
        r#"{"Pair":"\ud83d\ude00","Lone":"x"}"#.to_owned(),
        r#"{"k\u0041":"escaped key"}"#.to_owned(),
        // Not records at all, and broken ones.
        r#"{"a":1} trailing"#.to_owned(),
        r#"{"a":1}}"#.to_owned(),
        r#"{"a":tru}"#.to_owned(),
        "{}".to_owned(),
        "[1,2]".to_owned(),
        "  {\"a\" : 1 }  ".to_owned(),
    ];
    let text = lines.join("\n") + "\n";
    for settings in [
        Settings::default(),
        Settings {
            ecs: true,
            ..Settings::default()
        },
        Settings {
            timestamp: evtship::transform::timestamp::TimestampMode::Event,
            timezone: Some(chrono_tz::Europe::Paris),
            ..Settings::default()
        },
        Settings {
            dialect: evtship::transform::dialect::Dialect::Nxlog,
            ..Settings::default()
        },
    ] {
        compare(text.as_bytes(), settings, &format!("{settings:?}"));
    }
    // The lines made for the fast path take it; the others do not.
    let fast = encoder(Settings::default());
    let taken: Vec<bool> = text
        .lines()
        .map(|l| fast.takes_fast_path(l.as_bytes()))
        .collect();
    assert_eq!(&taken[..6], &[true; 6]);
    assert_eq!(taken[6..22], [false; 16]);
    assert!(taken[22], "blanks around an object");
}
