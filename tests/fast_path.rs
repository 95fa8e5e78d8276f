//! The encoder's fast path (raw members, a view for the rules) against its reference path
//! (the whole record parsed and serialised): the same document, key for key and in the same
//! order, for every record of the fixtures and of ../shared/datasets when it is there.

mod common;

use common::*;
use evtship::config::IndexName;
use evtship::transform::dialect::Dialect;
use evtship::transform::{Encoder, Settings};
use std::io::Read;
use std::path::Path;

const NOW: &str = "2030-01-01T00:00:00.000Z";

/// Lines of a JSON-lines file, or of the JSON members of a zip.
fn lines_of(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let mut text = Vec::new();
    if path.extension().is_some_and(|e| e == "zip") {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        for i in 0..zip.len() {
            let mut m = zip.by_index(i).unwrap();
            if m.name().ends_with(".json") && !m.name().contains("__MACOSX") {
                m.read_to_end(&mut text).unwrap();
                text.push(b'\n');
            }
        }
    } else {
        text = bytes;
    }
    text.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .map(|l| l.strip_prefix("\u{feff}".as_bytes()).unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(<[u8]>::to_vec)
        .collect()
}

/// Compares both paths on every line; returns (records, taken by the fast path).
fn compare(files: &[std::path::PathBuf], settings: Settings) -> (usize, usize) {
    let encoder = Encoder::new(&IndexName::try_from("x".to_owned()).unwrap(), settings);
    let (mut records, mut fast) = (0, 0);
    for f in files {
        for (n, line) in lines_of(f).iter().enumerate() {
            records += 1;
            let reference = encoder.reference(line, NOW);
            let Some(doc) = encoder.fast(line, NOW) else {
                continue;
            };
            fast += 1;
            let reference = reference.unwrap_or_else(|e| {
                panic!(
                    "{}:{}: fast path took a bad record: {e}",
                    f.display(),
                    n + 1
                )
            });
            assert!(
                doc.keys().eq(reference.keys()) && doc == reference,
                "{}:{}: the paths differ\nfast:      {}\nreference: {}",
                f.display(),
                n + 1,
                serde_json::Value::Object(doc),
                serde_json::Value::Object(reference)
            );
        }
    }
    (records, fast)
}

fn files_in(dir: &Path, exts: &[&str]) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| exts.iter().any(|x| e == *x)))
        .collect();
    files.sort();
    files
}

#[test]
fn both_paths_give_the_same_documents_for_the_fixtures() {
    let mut files = files_in(&data("otrf"), &["json"]);
    files.extend(files_in(&data("pitfalls"), &["json"]));
    let (records, fast) = compare(&files, Settings::default());
    assert!(records > 1900, "{records}");
    // Most records take the fast path (Winlogbeat and Azure records do not).
    assert!(
        fast * 10 > records * 8,
        "{fast} of {records} on the fast path"
    );
    // Forced dialects and ECS take the reference path or agree with it.
    for dialect in [Dialect::Nxlog, Dialect::Powershell] {
        let s = Settings {
            dialect,
            ..Settings::default()
        };
        compare(&files, s);
    }
    let ecs = Settings {
        ecs: true,
        ..Settings::default()
    };
    assert_eq!(compare(&files, ecs).1, 0, "ECS takes the reference path");
}

#[test]
fn both_paths_give_the_same_documents_for_the_shared_datasets() {
    let dir = root().join("../shared/datasets/otrf-security-datasets");
    if !dir.exists() {
        // Outside this workplace the shared datasets are not there; CI always has them.
        assert!(
            std::env::var("CI").is_err(),
            "CI must have ../shared/datasets"
        );
        return;
    }
    let (records, fast) = compare(&files_in(&dir, &["json", "zip"]), Settings::default());
    assert!(records > 90_000, "{records}");
    assert!(
        fast * 10 > records * 8,
        "{fast} of {records} on the fast path"
    );
}

#[test]
fn odd_records_take_the_reference_path_or_agree_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.json");
    let odd = [
        r#"{"Hostname":"h","RecordNumber":1,"Channel":"c","a":1,"a":2}"#,
        r#"{"Hostname":"h","RecordNumber":2,"Channel":"c","x.y":"dotted","x_y":"taken"}"#,
        r#"{"Hostname":"h","RecordNumber":3,"Channel":"c","CommandLine":"a &amp;&amp; b","Other":"\u0026lt;x\u0026gt;"}"#,
        r#"{"Hostname":"h","RecordNumber":4,"Channel":"c","nested":{"a":{"b":1}},"list":[{"k":1},2]}"#,
        r#"{"Hostname":"h","RecordNumber":"0x10","Channel":"c","EventID":"x","Keywords":-9223372036854775808,"Opcode":1}"#,
        r#"{"Hostname":"h","RecordNumber":6,"Channel":"c","Message":null,"EventID":null,"u":"\u00e9\ud83d\ude00","n":1.5e3}"#,
        r#"{"Hostname":"h","RecordNumber":7,"Channel":"Microsoft-Windows-Sysmon/Operational","EventID":13,"EventType":"INFO","Image":"kept","Message":"Registry value set:\r\nEventType: SetValue\r\nImage: from message\r\nTargetObject: HKLM\\x\r\nUser: %9"}"#,
        r#"{"\u0048ostname":"h","RecordNumber":8,"Channel":"c","k\"q":"v"}"#,
        r#"[1,2]"#,
        r#"{"broken":"#,
    ];
    std::fs::write(&path, odd.join("\n")).unwrap();
    let (records, fast) = compare(&[path], Settings::default());
    assert_eq!(records, odd.len());
    // Duplicate keys, dotted keys, objects and non-objects take the reference path.
    assert_eq!(fast, 5, "records 3, 5, 6, 7 and 8 take the fast path");
}
