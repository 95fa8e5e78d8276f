//! Inputs beyond JSON lines: `.evtx` files, standard input, URLs; against the real engine.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// How many records the chunks of an `.evtx` file declare, read from the chunk headers
/// themselves (first and last record number of every chunk with a chunk's magic): an oracle
/// that shares no code with the `evtx` crate. It counts right for whole files; a damaged
/// file's chunks may declare records that cannot be read.
fn declared_records(path: &std::path::Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let chunks = bytes.len().saturating_sub(4096) / 65536;
    (0..chunks)
        .map(|i| &bytes[4096 + i * 65536..4096 + (i + 1) * 65536])
        .filter(|c| c.starts_with(b"ElfChnk\0"))
        .map(|c| {
            let n = |at: usize| u64::from_le_bytes(c[at..at + 8].try_into().unwrap());
            n(16) - n(8) + 1
        })
        .sum()
}

/// Chunks of never-used space (all zeros) at the end of an `.evtx` file: the crate yields an
/// error for each, though no record is lost there.
fn empty_chunks(path: &std::path::Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let chunks = bytes.len().saturating_sub(4096) / 65536;
    (0..chunks)
        .filter(|i| {
            bytes[4096 + i * 65536..4096 + i * 65536 + 8]
                .iter()
                .all(|b| *b == 0)
        })
        .count() as u64
}

/// What the `evtx` crate itself yields for a file: the records and the number of errors.
fn crate_records(path: &std::path::Path) -> (Vec<Value>, usize) {
    let mut parser = evtx::EvtxParser::from_path(path).unwrap();
    let mut records = Vec::new();
    let mut errors = 0;
    for r in parser.records_json_value() {
        match r {
            Ok(r) => records.push(r.data),
            Err(_) => errors += 1,
        }
    }
    (records, errors)
}

fn terms(index: &TestIndex, field: &str) -> BTreeMap<String, u64> {
    let v =
        index.search(json!({"size": 0, "aggs": {"t": {"terms": {"field": field, "size": 10000}}}}));
    v["aggregations"]["t"]["buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("no buckets in {v}"))
        .iter()
        .map(|b| {
            let key = match &b["key"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (key, b["doc_count"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn evtx_files_index_every_record_the_crate_yields_with_searchable_fields() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("evtx");
    let path = data("evtx/sysmon.evtx");
    let (records, crate_errors) = crate_records(&path);
    assert_eq!(records.len() as u64, declared_records(&path));
    assert_eq!(records.len(), 358);
    // Seven chunks are damaged (their magic is gone) and one is never-used space: the crate
    // yields an error for each; evtship reports the seven, as the records lost there.
    assert_eq!(crate_errors, 8);
    let lost = crate_errors as u64 - empty_chunks(&path);
    assert_eq!(lost, 7);

    let run = evtship(
        &[
            "run",
            "--input",
            path.to_str().unwrap(),
            "--index",
            &index.name,
        ],
        dir.path(),
    );
    // sysmon.evtx has damaged chunks: what can be read is indexed, the rest reported.
    assert_eq!(run.code, 3, "stderr:\n{}", run.stderr);
    assert_eq!(run.n("events_read"), records.len() as u64);
    assert_eq!(run.n("events_indexed"), records.len() as u64);
    assert_eq!(run.n("input_errors"), lost, "{}", run.stderr);
    assert!(run.stderr.contains("sysmon.evtx: chunk"), "{}", run.stderr);
    assert_eq!(index.count(), records.len() as u64);

    let mut images: BTreeMap<String, u64> = BTreeMap::new();
    let mut targets: BTreeMap<String, u64> = BTreeMap::new();
    let mut event_ids: BTreeMap<String, u64> = BTreeMap::new();
    for r in &records {
        let data = &r["Event"]["EventData"];
        if let Some(i) = data["Image"].as_str() {
            *images.entry(i.to_owned()).or_default() += 1;
        }
        if let Some(t) = data["TargetObject"].as_str() {
            *targets.entry(t.to_owned()).or_default() += 1;
        }
        *event_ids
            .entry(r["Event"]["System"]["EventID"].to_string())
            .or_default() += 1;
    }
    assert!(!targets.is_empty());
    assert_eq!(terms(&index, "Image.keyword"), images);
    assert_eq!(terms(&index, "TargetObject.keyword"), targets);
    assert_eq!(terms(&index, "EventID"), event_ids);
    let hits = index.search(json!({"query": {"term": {"RecordNumber": 1742}}}));
    let doc = &hits["hits"]["hits"][0]["_source"];
    assert_eq!(doc["Hostname"], "DESKTOP-2KGM189");
    assert_eq!(doc["Channel"], "Microsoft-Windows-Sysmon/Operational");
    assert_eq!(doc["Image"], "C:\\Windows\\SysWOW64\\PING.EXE");
    assert_eq!(doc["@timestamp"], "2017-12-26T13:10:29.136Z");

    // A second run adds nothing: ids come from Hostname + Channel + RecordNumber.
    let again = evtship(
        &[
            "run",
            "--input",
            path.to_str().unwrap(),
            "--index",
            &index.name,
            "--from-start",
        ],
        dir.path(),
    );
    assert_eq!(again.n("duplicates"), records.len() as u64);
    assert_eq!(index.count(), records.len() as u64);
}

#[test]
fn all_evtx_samples_go_into_one_index_and_damage_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("evtxall");
    let folder = data("evtx");
    let mut expected = 0;
    let mut damaged = 0;
    for entry in std::fs::read_dir(&folder).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "evtx") {
            let (records, errors) = crate_records(&p);
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with("sample_with_a_bad_chunk") {
                // Whole files: the chunk headers agree with the crate.
                assert_eq!(records.len() as u64, declared_records(&p), "{name}");
            }
            expected += records.len() as u64;
            damaged += (errors as u64).saturating_sub(empty_chunks(&p));
        }
    }
    assert!(damaged > 0, "the samples hold damage to report");
    let run = evtship(
        &[
            "run",
            "--input",
            folder.to_str().unwrap(),
            "--index",
            &index.name,
        ],
        dir.path(),
    );
    assert_eq!(run.code, 3, "stderr:\n{}", run.stderr);
    assert_eq!(run.n("events_read"), expected);
    assert_eq!(run.n("events_indexed"), expected);
    assert_eq!(run.n("dead_lettered"), 0);
    // Every error the crate meets is reported (evtship also checks the chunks' CRC32s, which
    // the crate leaves alone by default: more may be reported, never fewer).
    assert!(run.n("input_errors") >= damaged, "{}", run.stderr);
    assert!(
        run.stderr.contains("sample_with_a_bad_chunk_magic.evtx"),
        "{}",
        run.stderr
    );
    assert_eq!(index.count(), expected);
}

#[test]
fn evtx_is_recognised_by_its_magic_not_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("evtxmagic");
    let renamed = dir.path().join("exported.log");
    std::fs::copy(data("evtx/new-user-security.evtx"), &renamed).unwrap();
    let run = evtship(
        &[
            "run",
            "--input",
            renamed.to_str().unwrap(),
            "--index",
            &index.name,
        ],
        dir.path(),
    );
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    assert_eq!(run.n("events_indexed"), 4);
    let hits = index.search(json!({"query": {"term": {"EventID": 4720}}}));
    assert_eq!(hits["hits"]["total"]["value"], 1);
    assert_eq!(hits["hits"]["hits"][0]["_source"]["Channel"], "Security");
}

#[test]
fn a_url_input_is_downloaded_once_then_read_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let index = TestIndex::new("url");
    let body = std::fs::read(data("archives/covenant_copy_smb_CreateRequest.zip")).unwrap();
    let server = FileServer::start(body);
    let url = format!(
        "{}/datasets/covenant_copy_smb_CreateRequest.zip",
        server.url
    );
    let args = [
        "run",
        "--input",
        &url,
        "--index",
        &index.name,
        "--cache-dir",
        cache.to_str().unwrap(),
    ];

    let first = evtship(&args, dir.path());
    assert_eq!(first.code, 0, "stderr:\n{}", first.stderr);
    assert_eq!(first.n("events_indexed"), 506);
    assert_eq!(server.gets(), 1);
    assert_eq!(first.summary["inputs"][0]["input"], url.as_str());
    assert_eq!(index.count(), 506);

    let mut again = args.to_vec();
    again.push("--from-start");
    let second = evtship(&again, dir.path());
    assert_eq!(second.code, 0, "stderr:\n{}", second.stderr);
    assert_eq!(second.n("duplicates"), 506);
    assert_eq!(server.gets(), 1, "the second run must use the cache");
    assert!(
        second.stderr.contains("using the cached download"),
        "{}",
        second.stderr
    );
}

#[test]
fn standard_input_is_read_as_ndjson_gzip_or_zip() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    for (name, file) in [
        (
            "stdinplain",
            "otrf/covenant_copy_smb_CreateRequest_2020-09-22145302.json",
        ),
        (
            "stdingz",
            "archives/covenant_copy_smb_CreateRequest.json.gz",
        ),
        ("stdinzip", "archives/covenant_copy_smb_CreateRequest.zip"),
    ] {
        let index = TestIndex::new(name);
        let summary = dir.path().join(format!("{name}.json"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_evtship"))
            .current_dir(root())
            .env("ES_URL", es_url())
            // Never the developer's own checkpoints.
            .env("EVTSHIP_CHECKPOINT_DIR", dir.path().join("checkpoints"))
            .args([
                "run",
                "--input",
                "-",
                "--no-progress",
                "--index",
                &index.name,
            ])
            .arg("--summary-json")
            .arg(&summary)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&std::fs::read(data(file)).unwrap())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
        assert_eq!(s["events_indexed"], 506, "{name}");
        assert_eq!(s["inputs"][0]["input"], "-");
        assert_eq!(index.count(), 506, "{name}");
    }
}
