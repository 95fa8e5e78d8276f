//! evtship parses and writes records with sonic-rs (SIMD) through serde, into serde_json's
//! `Value`. This checks, on every line of the fixtures, that sonic-rs reads the same value as
//! serde_json and writes the same bytes; and that both refuse the same broken lines.

mod common;

use common::*;
use serde_json::Value;

fn lines() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in ["otrf", "pitfalls"] {
        let mut files: Vec<_> = std::fs::read_dir(data(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read(&f).unwrap();
            for l in text.split(|b| *b == b'\n') {
                let l = l.strip_suffix(b"\r").unwrap_or(l);
                let l = l.strip_prefix("\u{feff}".as_bytes()).unwrap_or(l);
                if !l.iter().all(u8::is_ascii_whitespace) {
                    out.push(l.to_vec());
                }
            }
        }
    }
    out
}

#[test]
fn sonic_reads_and_writes_what_serde_json_does() {
    let lines = lines();
    assert!(lines.len() > 1900);
    for (i, line) in lines.iter().enumerate() {
        let a: Value = serde_json::from_slice(line).unwrap();
        let b: Value = sonic_rs::from_slice(line).unwrap();
        assert_eq!(a, b, "line {i}");
        let (mut x, mut y) = (Vec::new(), Vec::new());
        serde_json::to_writer(&mut x, &a).unwrap();
        sonic_rs::to_writer(&mut y, &b).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&x),
            String::from_utf8_lossy(&y),
            "line {i}"
        );
    }
}

#[test]
fn both_refuse_broken_records() {
    let cases: [&[u8]; 9] = [
        b"{\"a\":",
        b"{\"a\":1,}",
        b"{\"a\":tru}",
        b"{\"a\":\"\\x\"}",
        b"{\"a\":\"\xff\"}",
        b"{\"a\":1}}",
        b"{'a':1}",
        b"",
        b"{\"a\":\"\x01\"}",
    ];
    for c in cases {
        assert!(serde_json::from_slice::<Value>(c).is_err(), "{c:?}");
        assert!(sonic_rs::from_slice::<Value>(c).is_err(), "{c:?}");
    }
    // Numbers and escapes read alike (both must read this line, and read it the same).
    let odd = br#"{"i":-9223372036854775808,"u":18446744073709551615,"f":1.5e300,"z":-0,"s":"\u00e9\ud83d\ude00\/\n"}"#;
    let a = serde_json::from_slice::<Value>(odd).expect("serde_json reads it");
    let b = sonic_rs::from_slice::<Value>(odd).expect("sonic-rs reads it");
    assert_eq!(a, b);
    // A number out of range: both refuse it.
    let big = br#"{"big":1e400}"#;
    assert_eq!(
        serde_json::from_slice::<Value>(big).is_ok(),
        sonic_rs::from_slice::<Value>(big).is_ok()
    );
}
