//! A server's life: it comes up and accepts while the engine is away and delivers everything
//! once when it comes; it stops within its grace when the engine hangs, and at once when a
//! signal comes while it starts; syslog and TCP edges (an oversize octet count, a record cut by
//! the close or by the stop); settings that cannot work are refused by `check`; the engine
//! scripts name a busy port in one line.

mod common;

use common::listen::*;
use common::proxy::FaultProxy;
use common::wait::{until, Guard};
use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Documents of one host (0 while the index does not exist yet).
fn host_count(index: &TestIndex, host: &str) -> u64 {
    if !index.exists() {
        return 0;
    }
    index.count_query(json!({"term": {"Hostname.keyword": host}}))
}

fn listener<'a>(run: &'a Run, prefix: &str) -> &'a Value {
    run.summary["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["listener"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} listener: {}", run.summary))
}

fn rsyslog_to(dir: &Path, port: u16, file: &Path) -> Rsyslog {
    std::fs::create_dir_all(dir).unwrap();
    let conf = format!(
        "global(workDirectory=\"{w}\" maxMessageSize=\"64k\")\n\
         module(load=\"imfile\" mode=\"polling\" PollingInterval=\"1\")\n\
         input(type=\"imfile\" File=\"{f}\" Tag=\"sysmon\" ruleset=\"out\")\n\
         ruleset(name=\"out\") {{ action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{port}\" \
         protocol=\"tcp\" TCP_Framing=\"octet-counted\" \
         template=\"RSYSLOG_SyslogProtocol23Format\" action.resumeRetryCount=\"-1\") }}\n",
        w = dir.join("rsyslog-work").display(),
        f = file.display()
    );
    Rsyslog::start(dir, &conf)
}

#[test]
fn listeners_start_with_the_engine_down_and_deliver_everything_once_when_it_comes() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("upbefore");
    let proxy = FaultProxy::start(&engine());
    proxy.set(|f| f.refuse = true);
    let (beats, syslog, http) = (free_port(), free_port(), free_port());
    let tables = format!(
        "[[listen]]\nuri = \"beats://127.0.0.1:{beats}\"\n\
         [[listen]]\nuri = \"syslog://127.0.0.1:{syslog}\"\n\
         [[listen]]\nuri = \"http://127.0.0.1:{http}\"\n"
    );
    let p = listen_pipeline(dir.path(), &index.name, &tables, "");
    // On 529c900 this run exited at once: `error: cannot reach ...`, exit 1.
    let mut l = Listening::start(&p, dir.path(), &proxy.url, &format!("127.0.0.1:{http}"));
    // HTTP says to come back later.
    let r = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{http}/ingest"))
        .body("{\"Hostname\":\"HTTPUP\",\"n\":1}\n")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 503, "{}", l.stderr());
    assert!(r.headers().contains_key("retry-after"));
    // rsyslog's records are spooled; Filebeat's windows wait on keep-alives.
    let records = dir.path().join("rsyslog.json");
    write_records(&records, 2000, "RSYSUP");
    let _rsyslog = rsyslog_to(&dir.path().join("rsyslog"), syslog, &records);
    let output = format!("output.logstash:\n  hosts: [\"127.0.0.1:{beats}\"]\n");
    let input = data("otrf/covenant_copy_smb_CreateRequest_2020-09-22145302.json");
    let fb = Guard::spawn(&mut filebeat(dir.path(), "fb", &input, &output));
    let spooled =
        format!("evtship_listener_spooled_total{{listener=\"syslog://127.0.0.1:{syslog}\"}}");
    until(
        "rsyslog's records on the spool",
        Duration::from_secs(60),
        || l.counter(&spooled) == 2000,
        || l.stderr(),
    );
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        proxy
            .seen
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    // The engine comes.
    proxy.set(|f| f.refuse = false);
    until(
        "every record once",
        Duration::from_secs(120),
        || host_count(&index, "RSYSUP") == 2000 && index.count_so_far() == 2506,
        || format!("{} documents; {}", index.count_so_far(), l.stderr()),
    );
    let r = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{http}/ingest"))
        .body("{\"Hostname\":\"HTTPUP\",\"n\":1}\n")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    std::thread::sleep(Duration::from_secs(3));
    drop(fb);
    let run = l.stop();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(index.count(), 2507);
    assert_eq!(host_count(&index, "RSYSUP"), 2000);
    assert!(
        run.summary["engine_reached_after_seconds"]
            .as_f64()
            .unwrap()
            >= 6.0,
        "{}",
        run.summary
    );
    assert!(listener(&run, "beats")["keepalives"].as_u64().unwrap() > 0);
    let waits = run.stderr.matches("evtship tries again").count();
    assert!((1..=2).contains(&waits), "{waits}: {}", run.stderr);
}

fn batch_run(dir: &Path, es_url: &str, input: &Path, grace_ms: u64) -> Guard {
    let p = dir.join("batch.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"hung\"\ninputs = [\"{}\"]\n[elasticsearch]\nindex = \"evtship-test-hung-{}\"\n\
             [bulk]\nshutdown_grace_ms = {grace_ms}\nmax_events = 200\n",
            input.display(),
            std::process::id()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_evtship"));
    cmd.current_dir(root())
        .env("ES_URL", es_url)
        .env("EVTSHIP_CHECKPOINT_DIR", dir.join("checkpoints"))
        .args([
            "run",
            p.to_str().unwrap(),
            "--no-progress",
            "--summary-json",
        ])
        .arg(dir.join("summary.json"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap());
    Guard::spawn(&mut cmd)
}

#[test]
fn sigterm_against_a_hung_engine_exits_within_the_grace_and_the_summary_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = FaultProxy::start(&engine());
    let input = dir.path().join("in.json");
    write_records(&input, 20_000, "HUNG");
    let mut run = batch_run(dir.path(), &proxy.url, &input, 3000);
    let log = || std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
    until(
        "a few _bulk requests",
        Duration::from_secs(60),
        || {
            proxy
                .seen
                .requests
                .load(std::sync::atomic::Ordering::SeqCst)
                >= 5
        },
        log,
    );
    // The engine takes requests and never answers them.
    proxy.set(|f| f.delay = Some(Duration::from_secs(600)));
    std::thread::sleep(Duration::from_secs(2));
    run.term();
    // On 529c900 the exit came after the request timeout (120 s), far past the grace.
    let (code, took) = run.wait_within(Duration::from_secs(60));
    eprintln!("exit {code} {took:?} after SIGTERM (grace 3 s)");
    assert!(took < Duration::from_secs(3 + 5), "{took:?}: {}", log());
    assert_eq!(code, 4, "{}", log());
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    let settled = [
        "events_indexed",
        "duplicates",
        "dead_lettered",
        "failed",
        "unsettled",
    ]
    .iter()
    .map(|k| s[k].as_u64().unwrap())
    .sum::<u64>();
    assert_eq!(s["events_read"].as_u64().unwrap(), settled, "{s}");
    assert!(s["unsettled"].as_u64().unwrap() > 0, "{s}");
    assert!(log().contains("left undelivered at shutdown"), "{}", log());
}

#[test]
fn a_signal_while_the_engine_does_not_answer_at_start_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = FaultProxy::start(&engine());
    proxy.set(|f| f.delay = Some(Duration::from_secs(600)));
    let input = dir.path().join("in.json");
    write_records(&input, 10, "START");
    let mut run = batch_run(dir.path(), &proxy.url, &input, 30_000);
    until(
        "GET / sent",
        Duration::from_secs(30),
        || {
            proxy
                .seen
                .requests
                .load(std::sync::atomic::Ordering::SeqCst)
                >= 1
        },
        String::new,
    );
    run.term();
    let (code, took) = run.wait_within(Duration::from_secs(60));
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(code, 4);
}

fn octet(msg: &str) -> Vec<u8> {
    format!("{} {msg}", msg.len()).into_bytes()
}

fn syslog_msg(host: &str, n: u32) -> String {
    format!("<13>1 2020-05-02T02:55:56Z ws01 sysmon - - - {{\"Hostname\":\"{host}\",\"n\":{n}}}")
}

#[test]
fn syslog_over_the_limit_is_skipped_by_its_count_and_cut_records_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("syslogedges");
    let (syslog, tcp) = (free_port(), free_port());
    let tables = format!(
        "[[listen]]\nuri = \"syslog://127.0.0.1:{syslog}\"\nmax_frame_bytes = \"64KiB\"\n\
         [[listen]]\nuri = \"tcp://127.0.0.1:{tcp}\"\n"
    );
    let p = listen_pipeline(dir.path(), &index.name, &tables, "");
    let mut l = Listening::start(&p, dir.path(), &engine(), &format!("127.0.0.1:{syslog}"));
    // An octet count over max_frame_bytes, its bytes, then a message: the connection goes on.
    let mut s = TcpStream::connect(("127.0.0.1", syslog)).unwrap();
    s.write_all(&octet(&syslog_msg("EDGE", 1))).unwrap();
    let big = format!("<13>1 - - - - - - {}", "x".repeat(1 << 20));
    s.write_all(&octet(&big)).unwrap();
    s.write_all(&octet(&syslog_msg("EDGE", 2))).unwrap();
    // A record cut by the sender's close.
    let cut = octet(&syslog_msg("EDGE", 3));
    s.write_all(&cut[..cut.len() - 10]).unwrap();
    drop(s);
    // A JSON line, then half of one, and SIGTERM while the sender keeps the connection open.
    let mut t = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    t.write_all(b"{\"Hostname\":\"HALF\",\"n\":1}\n{\"Hostname\":\"HALF\",\"n\":")
        .unwrap();
    until(
        "the whole records",
        Duration::from_secs(60),
        || host_count(&index, "EDGE") == 2 && host_count(&index, "HALF") == 1,
        || l.stderr(),
    );
    let run = l.stop();
    drop(t);
    // On 529c900 the half line was spooled and dead-lettered (and again after a restart).
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.n("dead_lettered"), 0, "{}", run.stderr);
    let (sys, tcp_l) = (listener(&run, "syslog"), listener(&run, "tcp"));
    assert_eq!(sys["refused"]["record_too_large"], 1, "{sys}");
    assert_eq!(sys["refused"]["record_cut"], 1, "{sys}");
    assert!(sys["refused"].get("framing").is_none(), "{sys}");
    assert_eq!(tcp_l["refused"]["record_cut"], 1, "{tcp_l}");
    assert_eq!(sys["received"], 2);
    assert_eq!(tcp_l["received"], 1);
    // Nothing waits in the spool: a restart sends and dead-letters nothing.
    let mut again = Listening::start(&p, dir.path(), &engine(), &format!("127.0.0.1:{syslog}"));
    std::thread::sleep(Duration::from_secs(2));
    let rerun = again.stop();
    assert_eq!(
        (rerun.code, rerun.n("events_read")),
        (0, 0),
        "{}",
        rerun.stderr
    );
    assert_eq!(index.count(), 3);
    assert!(!dir.path().join("dlq.ndjson").exists() || rerun.n("dead_lettered") == 0);
}

#[test]
fn check_refuses_auth_that_cannot_work_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    for (name, table, says) in [
        (
            "tcp-auth.toml",
            "[[listen]]\nuri = \"tcp://0.0.0.0:3515\"\n[listen.auth]\nbearer_token = \"t\"\n",
            "http:// listeners only",
        ),
        (
            "beats-auth.toml",
            "[[listen]]\nuri = \"beats://0.0.0.0:5044\"\n[listen.auth]\nuser = \"u\"\npassword = \"p\"\n",
            "http:// listeners only",
        ),
        (
            "empty-token.toml",
            "[[listen]]\nuri = \"http://0.0.0.0:8080\"\n[listen.auth]\nbearer_token = \"${EVTSHIP_UNSET_TOKEN:-}\"\n",
            "bearer_token is empty",
        ),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("name = \"x\"\n\n{table}")).unwrap();
        let run = evtship(&["check", p.to_str().unwrap()], dir.path());
        assert_eq!(run.code, 2, "{name}: {}", run.stderr);
        assert!(
            run.stderr.contains(says) && run.stderr.contains(name) && run.stderr.contains("line 3"),
            "{name}: {}",
            run.stderr
        );
    }
}

#[test]
fn the_engine_scripts_name_a_busy_port_and_its_variable_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let free = free_port().to_string();
    for (script, env) in [
        (
            "opensearch-local",
            vec![
                ("EVTSHIP_ENGINE_PORT", port.as_str()),
                ("EVTSHIP_ENGINE_TRANSPORT_PORT", free.as_str()),
            ],
        ),
        (
            "opensearch-local",
            vec![
                ("EVTSHIP_ENGINE_PORT", free.as_str()),
                ("EVTSHIP_ENGINE_TRANSPORT_PORT", port.as_str()),
            ],
        ),
        (
            "elasticsearch-local",
            vec![
                ("EVTSHIP_ES_PORT", port.as_str()),
                ("EVTSHIP_ES_TRANSPORT_PORT", free.as_str()),
            ],
        ),
    ] {
        let out = Command::new(root().join("scripts").join(script))
            .arg("start")
            .envs(env.iter().copied())
            .env("EVTSHIP_ENGINE_HOME", dir.path().join("os"))
            .env("EVTSHIP_ES_HOME", dir.path().join("es"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let named = env.iter().find(|(_, v)| *v == port).unwrap().0;
        assert_eq!(out.status.code(), Some(1), "{script}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{script}: {stderr}");
        assert!(
            stderr.contains(&port) && stderr.contains(named),
            "{script}: {stderr}"
        );
    }
}
