//! Bad input, as an attacker or an unlucky user brings it: every case ends with a clear message
//! naming the file and position, bounded memory, a summary that adds up, the documented exit
//! code, no secret in any output, and the rest of the input delivered.

mod common;

use common::proxy::FaultProxy;
use common::*;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Asserts that the summary's columns add up to what was read.
fn adds_up(run: &Run) {
    let s = &run.summary;
    let sum: u64 = [
        "events_indexed",
        "duplicates",
        "dead_lettered",
        "failed",
        "unsettled",
    ]
    .iter()
    .map(|k| s[*k].as_u64().unwrap_or_else(|| panic!("no {k} in {s}")))
    .sum();
    assert_eq!(
        run.n("events_read"),
        sum,
        "the summary does not add up: {s}"
    );
}

/// The dead letter file's lines.
fn dead_letters(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_line_nested_twenty_thousand_deep_is_dead_lettered_and_the_rest_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("poison");
    let input = dir.path().join("n.json");
    let dlq = dir.path().join("dlq.ndjson");
    let poison = "[".repeat(20_000);
    std::fs::write(
        &input,
        format!(
            "{{\"EventID\":1}}\n{poison}\n{{\"EventID\":2}}\n{{\"a\":{}1{}}}\n",
            "[".repeat(200),
            "]".repeat(200)
        ),
    )
    .unwrap();
    let args = |from_start: bool| {
        let mut a = vec![
            "run".to_owned(),
            "--input".into(),
            input.display().to_string(),
            "--index".into(),
            index.name.clone(),
            "--dead-letter".into(),
            dlq.display().to_string(),
        ];
        if from_start {
            a.push("--from-start".into());
        }
        a
    };
    let first = args(false);
    let run = evtship(
        &first.iter().map(String::as_str).collect::<Vec<_>>(),
        dir.path(),
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.n("events_indexed"), 2);
    assert_eq!(run.n("dead_lettered"), 2);
    adds_up(&run);
    assert!(
        run.stderr
            .contains("n.json: line 2: nested deeper than 128 levels"),
        "{}",
        run.stderr
    );
    let letters = dead_letters(&dlq);
    assert_eq!(letters[0]["line"], 2);
    assert_eq!(letters[1]["line"], 4);
    assert_eq!(letters[0]["record_text"].as_str().unwrap().len(), 20_000);
    assert_eq!(index.count(), 2);
    // A restart is not stopped by the line either: the file is finished.
    let again = evtship(
        &args(false).iter().map(String::as_str).collect::<Vec<_>>(),
        dir.path(),
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.n("events_read"), 0);
}

/// The peak resident memory of a child, read from /proc until it exits (VmHWM is the peak so
/// far, so the last reading is the peak up to the last 20 ms of its life).
fn peak_rss_kib(child: &mut std::process::Child) -> u64 {
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{}/status", child.id())) {
            if let Some(v) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            {
                peak = peak.max(v);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    peak
}

#[test]
fn a_line_of_four_hundred_megabytes_is_never_held_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("long.json.gz");
    let dlq = dir.path().join("dlq.ndjson");
    {
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&input).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(b"{\"EventID\":1}\n").unwrap();
        let block = vec![b'A'; 1 << 20];
        for _ in 0..400 {
            gz.write_all(&block).unwrap();
        }
        gz.write_all(b"\n{\"EventID\":2}\n").unwrap();
        gz.finish().unwrap();
    }
    let summary = dir.path().join("s.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_evtship"))
        .current_dir(root())
        .args(["run", "--input"])
        .arg(&input)
        .args(["--output", "ndjson:/dev/null", "--no-progress"])
        .arg("--dead-letter")
        .arg(&dlq)
        .arg("--summary-json")
        .arg(&summary)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let peak = peak_rss_kib(&mut child);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(s["events_read"], 3, "{s}");
    assert_eq!(s["events_indexed"], 2, "{s}");
    assert_eq!(s["dead_lettered"], 1, "{s}");
    assert!(
        stderr.contains("long.json.gz: line 2: line of 419430401 bytes is longer than"),
        "{stderr}"
    );
    let letters = dead_letters(&dlq);
    assert_eq!(letters[0]["line"], 2);
    assert_eq!(letters[0]["record_text"].as_str().unwrap().len(), 1024);
    // The default limit is 16 MiB: a run holding the line would need 400 MiB.
    eprintln!("peak RSS {peak} KiB");
    assert!(peak < 96 * 1024, "peak RSS {peak} KiB");
}

#[test]
fn directory_link_loops_end_and_every_file_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("w");
    std::fs::create_dir_all(w.join("sub")).unwrap();
    std::fs::write(w.join("a.json"), "{\"EventID\":1}\n").unwrap();
    std::fs::write(w.join("sub/b.json"), "{\"EventID\":2}\n").unwrap();
    for (link, to) in [("d1", "."), ("d2", "."), ("dot", "."), ("sub/up", "..")] {
        std::os::unix::fs::symlink(to, w.join(link)).unwrap();
    }
    std::os::unix::fs::symlink(&w, w.join("sub/abs")).unwrap();
    let started = Instant::now();
    let run = evtship(
        &[
            "run",
            "--input",
            w.to_str().unwrap(),
            "--output",
            "ndjson:/dev/null",
        ],
        dir.path(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.n("events_read"), 2);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        run.stderr.contains("a directory already walked"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_secret_in_an_invalid_url_or_setting_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("x.json");
    std::fs::write(&input, "{\"EventID\":1}\n").unwrap();
    let secret = "S3cretPW";
    let mut outputs = Vec::new();
    for url in [
        format!("user:{secret}@127.0.0.1:19200"),
        format!("http://127.0.0.1:19200,user:{secret}@127.0.0.1:19201"),
        format!("ftp://user:{secret}@h"),
    ] {
        let run = evtship_env(
            &["run", "--input", input.to_str().unwrap()],
            dir.path(),
            &[("ES_URL", &url)],
        );
        assert_eq!(run.code, 2, "{url}: {}", run.stderr);
        assert!(run.stderr.contains("is not an http:// or https:// URL"));
        outputs.push(run.stderr + &run.stdout);
    }
    for body in [
        format!("inputs = [\"x.json\"]\n[elasticsearch]\nurl = \"user:{secret}@h:9200\"\n"),
        format!("inputs = [\"x.json\"]\n[elasticsearch]\nurls = [\"https://h:9200/?user=u&password={secret}\", \"h2\"]\n"),
        format!("inputs = [\"x.json\"]\n[elasticsearch]\nuser = \"u\"\npassword = \"{secret}\n"),
        format!("inputs = [\"x.json\"]\n[elasticsearch]\nurl = \"https://u:{secret}@h:9200\"\nindex = 3\n"),
    ] {
        let p = dir.path().join("p.toml");
        std::fs::write(&p, &body).unwrap();
        // The file's own settings, not the test engine's ES_URL over them.
        let out = Command::new(env!("CARGO_BIN_EXE_evtship"))
            .current_dir(dir.path())
            .env_remove("ES_URL")
            .args(["check", p.to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{body}: {text}");
        outputs.push(text);
    }
    for out in &outputs {
        assert!(!out.contains(secret), "a secret was printed:\n{out}");
    }
    // The messages still say where the problem is.
    assert!(outputs[3].contains("***@h:9200"), "{}", outputs[3]);
    assert!(outputs[5].contains("line 4"), "{}", outputs[5]);
}

/// A copy of a fixture `.evtx` file in `dir`, changed by `f`.
fn evtx_copy(dir: &Path, name: &str, f: impl FnOnce(&mut Vec<u8>)) -> std::path::PathBuf {
    let mut bytes = std::fs::read(data("evtx/security.evtx")).unwrap();
    f(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_truncated_evtx_file_and_damaged_chunks_are_reported_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let run = |path: &Path| {
        evtship(
            &[
                "run",
                "--input",
                path.to_str().unwrap(),
                "--output",
                "ndjson:/dev/null",
            ],
            dir.path(),
        )
    };
    let cut = evtx_copy(dir.path(), "cut.evtx", |b| b.truncate(1_000_000));
    let r = run(&cut);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.n("input_errors") >= 1);
    assert!(
        r.stderr.contains(
            "cut.evtx: truncated at byte 1000000: its header declares 26 chunks of 64 KiB, the file holds 15"
        ),
        "{}",
        r.stderr
    );
    assert!(r.n("events_read") > 1000);
    adds_up(&r);
    let tiny = evtx_copy(dir.path(), "tiny.evtx", |b| b.truncate(65536));
    let r = run(&tiny);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(r.n("events_read"), 0);
    assert!(r.stderr.contains("tiny.evtx: truncated"), "{}", r.stderr);

    // Five bytes flipped in the event records of chunks 3 and 9: both reported, with the
    // records they hold; whatever can be read is read.
    let flipped = evtx_copy(dir.path(), "flipped.evtx", |b| {
        for at in [
            4096 + 3 * 65536 + 9000,
            4096 + 3 * 65536 + 20_001,
            4096 + 9 * 65536 + 700,
        ] {
            b[at] ^= 0x55;
        }
        for at in [4096 + 9 * 65536 + 30_000, 4096 + 9 * 65536 + 40_000] {
            b[at] ^= 0x01;
        }
    });
    let r = run(&flipped);
    assert_eq!(r.code, 3, "{}", r.stderr);
    for chunk in ["chunk 3:", "chunk 9:"] {
        assert!(
            r.stderr.contains(&format!(
                "flipped.evtx: {chunk} its event records CRC32 does not match"
            )),
            "{chunk}: {}",
            r.stderr
        );
    }
    assert!(r.n("input_errors") >= 2);
    assert!(r.n("events_read") > 2000);
    adds_up(&r);
}

#[test]
fn settings_that_cannot_work_are_refused_by_check_and_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.json"), "{\"EventID\":1}\n").unwrap();
    let as_dir = dir.path().join("a-directory");
    std::fs::create_dir(&as_dir).unwrap();
    for (section, field) in [
        (
            format!("[dead_letter]\npath = \"{}\"\n", as_dir.display()),
            "dead_letter.path",
        ),
        (
            "[bulk]\nmax_bytes = \"64GiB\"\n".to_owned(),
            "bulk.max_bytes",
        ),
        (
            "[bulk]\ninitial_backoff_ms = 5000\nmax_backoff_ms = 100\n".to_owned(),
            "bulk.initial_backoff_ms",
        ),
        (
            "[bulk]\nconcurrency = 1000000\n".to_owned(),
            "bulk.concurrency",
        ),
        (
            "[decode]\nmax_line_bytes = \"8GiB\"\n".to_owned(),
            "decode.max_line_bytes",
        ),
    ] {
        let p = dir.path().join("p.toml");
        std::fs::write(
            &p,
            format!(
                "inputs = [\"{}\"]\n{section}",
                dir.path().join("x.json").display()
            ),
        )
        .unwrap();
        for cmd in ["check", "run"] {
            let run = evtship(&[cmd, p.to_str().unwrap()], dir.path());
            assert_eq!(run.code, 2, "{cmd} {section}: {}", run.stderr);
            assert!(run.stderr.contains(field), "{cmd}: {}", run.stderr);
        }
    }
}

#[test]
fn odd_bytes_are_kept_exactly_and_never_echoed_raw() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("odd.json");
    let dlq = dir.path().join("dlq.ndjson");
    let mut bytes = b"{\"b\":\x00\x1b[31mred}\n".to_vec();
    bytes.extend_from_slice(b"\xff\xfe{}\n");
    bytes.extend_from_slice(
        b"{\"EventID\":-0,\"RecordNumber\":123456789012345678901234567890,\"Hostname\":\"h\",\"Channel\":\"c\"}\n",
    );
    std::fs::write(&input, &bytes).unwrap();
    let out = dir.path().join("docs.ndjson");
    let run = evtship(
        &[
            "run",
            "--input",
            input.to_str().unwrap(),
            "--output",
            &format!("ndjson:{}", out.display()),
            "--dead-letter",
            dlq.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        !run.stderr.contains('\0') && !run.stderr.contains('\x1b'),
        "{:?}",
        run.stderr
    );
    assert!(run.stderr.contains("\\u{0}"), "{}", run.stderr);
    let letters = dead_letters(&dlq);
    use base64::Engine;
    let exact = base64::engine::general_purpose::STANDARD
        .decode(letters[1]["record_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(exact, b"\xff\xfe{}");
    let doc: Value = serde_json::from_str(std::fs::read_to_string(&out).unwrap().trim()).unwrap();
    assert_eq!(doc["EventID"], 0);
    assert!(doc["EventID"].is_i64());
    assert_eq!(doc["RecordNumberText"], "123456789012345678901234567890");
}

#[test]
fn archives_inside_archives_are_read_one_level_deep_and_hard_links_are_said() {
    let dir = tempfile::tempdir().unwrap();
    let member = std::fs::read(data("archives/covenant_copy_smb_CreateRequest.zip")).unwrap();
    let outer = dir.path().join("outer.zip");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&outer).unwrap());
        let o = zip::write::SimpleFileOptions::default();
        z.start_file("inner.zip", o).unwrap();
        z.write_all(&member).unwrap();
        z.start_file("events.json.gz", o).unwrap();
        z.write_all(
            &std::fs::read(data("archives/covenant_copy_smb_CreateRequest.json.gz")).unwrap(),
        )
        .unwrap();
        z.finish().unwrap();
    }
    let run = evtship(
        &[
            "run",
            "--input",
            outer.to_str().unwrap(),
            "--output",
            "ndjson:/dev/null",
        ],
        dir.path(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.n("events_read"), 2 * 506);

    let tarred = dir.path().join("links.tar");
    {
        let mut t = tar::Builder::new(std::fs::File::create(&tarred).unwrap());
        let body = std::fs::read(data(
            "otrf/covenant_copy_smb_CreateRequest_2020-09-22145302.json",
        ))
        .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, "a.json", &body[..]).unwrap();
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Link);
        link.set_size(0);
        t.append_link(&mut link, "b.json", "a.json").unwrap();
        t.finish().unwrap();
    }
    let run = evtship(
        &[
            "run",
            "--input",
            tarred.to_str().unwrap(),
            "--output",
            "ndjson:/dev/null",
        ],
        dir.path(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.n("events_read"), 506);
    assert!(
        run.stderr
            .contains("links.tar!b.json: a hard link to a.json"),
        "{}",
        run.stderr
    );
}

#[test]
fn sigterm_mid_run_gives_a_summary_that_adds_up_and_exit_4_then_the_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("sigterm");
    let input = dir.path().join("r.json");
    let total = 60_000u64;
    write_records(&input, total as usize, "TERM");
    // Slow answers, so that the run is still going when the signal comes.
    let proxy = FaultProxy::start(&es_url());
    proxy.set(|f| f.delay = Some(Duration::from_millis(150)));
    let summary = dir.path().join("s.json");
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "inputs = [\"{}\"]\n[elasticsearch]\nindex = \"{}\"\n[bulk]\nmax_events = 500\nconcurrency = 2\n",
            input.display(),
            index.name
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_evtship"))
        .current_dir(root())
        .env("ES_URL", &proxy.url)
        .env("EVTSHIP_CHECKPOINT_DIR", dir.path().join("cp"))
        .args([
            "run",
            pipeline.to_str().unwrap(),
            "--no-progress",
            "--summary-json",
        ])
        .arg(&summary)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while index.count_so_far() < 3_000 {
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let run = Run {
        code: 4,
        stdout: String::new(),
        stderr: stderr.into_owned(),
        summary: s.clone(),
    };
    adds_up(&run);
    assert_eq!(s["interrupted"], true);
    assert!(run.n("events_read") < total, "{s}");
    assert_eq!(run.n("failed"), 0);
    // Everything read before the signal was delivered: nothing left in the air.
    assert_eq!(run.n("unsettled"), 0);
    // The rerun reads the rest, and the index ends with every record once.
    proxy.set(|f| f.delay = None);
    let rerun = evtship_env(
        &["run", pipeline.to_str().unwrap()],
        dir.path(),
        &[
            ("ES_URL", &proxy.url),
            (
                "EVTSHIP_CHECKPOINT_DIR",
                &dir.path().join("cp").display().to_string(),
            ),
        ],
    );
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    assert_each_once(&index, "RecordNumber", total);
}

#[test]
fn a_tailed_file_that_becomes_unreadable_is_followed_again_when_readable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let index = TestIndex::new("tailperm");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o777)).unwrap();
    let log = logs.join("app.json");
    let line = |i: u64| {
        format!("{{\"Hostname\":\"PERM\",\"Channel\":\"c\",\"EventID\":1,\"RecordNumber\":{i},\"@timestamp\":\"2020-05-02T02:55:56.157Z\"}}\n")
    };
    let append = |from: u64, to: u64| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        for i in from..to {
            f.write_all(line(i).as_bytes()).unwrap();
        }
    };
    append(0, 10);
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
    // Permissions only bind an unprivileged user: as root, evtship runs as nobody.
    let mut cmd = if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_evtship"),
        ]);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_evtship"))
    };
    let stderr_path = dir.path().join("stderr.log");
    let mut child = cmd
        .current_dir(dir.path())
        .env("ES_URL", es_url())
        .env("HOME", dir.path())
        .env("EVTSHIP_CHECKPOINT_DIR", dir.path().join("cp"))
        .args([
            "run",
            "--tail",
            "--no-progress",
            "--index",
            &index.name,
            "--input",
        ])
        .arg(logs.join("*.json"))
        .arg("--dead-letter")
        .arg(dir.path().join("dlq.ndjson"))
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let wait = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while index.count_so_far() < n {
            assert!(
                Instant::now() < deadline,
                "{} of {n} documents: {}",
                index.count_so_far(),
                std::fs::read_to_string(&stderr_path).unwrap()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait(10);
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    append(10, 20);
    wait(20);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("cannot be opened now"), "{stderr}");
    assert_each_once(&index, "RecordNumber", 20);
}

#[test]
fn sigterm_during_an_outage_leaves_records_unsettled_and_unacknowledged_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("termoutage");
    let input = dir.path().join("r.json");
    let total = 20_000u64;
    write_records(&input, total as usize, "GRACE");
    let proxy = FaultProxy::start(&es_url());
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "inputs = [\"{}\"]\n[elasticsearch]\nindex = \"{}\"\n[bulk]\nmax_events = 500\nconcurrency = 2\nmax_retries = 1000\nmax_backoff_ms = 500\nshutdown_grace_ms = 1500\n",
            input.display(),
            index.name
        ),
    )
    .unwrap();
    let summary = dir.path().join("s.json");
    let cp = dir.path().join("cp");
    let child = Command::new(env!("CARGO_BIN_EXE_evtship"))
        .current_dir(root())
        .env("ES_URL", &proxy.url)
        .env("EVTSHIP_CHECKPOINT_DIR", &cp)
        .args([
            "run",
            pipeline.to_str().unwrap(),
            "--no-progress",
            "--summary-json",
        ])
        .arg(&summary)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while index.count_so_far() < 1_000 {
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy.set(|f| f.refuse = true);
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(signalled.elapsed() < Duration::from_secs(20), "{stderr}");
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let run = Run {
        code: 4,
        stdout: String::new(),
        stderr: stderr.into_owned(),
        summary: s.clone(),
    };
    adds_up(&run);
    assert!(run.n("unsettled") > 0, "{s}");
    assert_eq!(run.n("dead_lettered"), 0, "{s}");
    assert!(
        run.stderr.contains("left undelivered at shutdown"),
        "{}",
        run.stderr
    );
    // Nothing unsettled was acknowledged: the rerun delivers every record, once.
    proxy.set(|f| f.refuse = false);
    let rerun = evtship_env(
        &["run", pipeline.to_str().unwrap()],
        dir.path(),
        &[
            ("ES_URL", &proxy.url),
            ("EVTSHIP_CHECKPOINT_DIR", &cp.display().to_string()),
        ],
    );
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    assert_each_once(&index, "RecordNumber", total);
}
