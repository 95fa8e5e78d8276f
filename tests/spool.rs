//! TCP, UDP and syslog listeners and their disk spool, with real senders (rsyslog from Debian,
//! plain sockets for NXLog's `om_tcp`/`om_udp` JSON lines), against the real engine: rsyslog's
//! three framings, a SIGKILL between the spool and the engine, an engine outage with a small
//! spool, and bad input of each kind.

mod common;

use common::listen::*;
use common::proxy::FaultProxy;
use common::*;
use serde_json::json;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

fn table(uri: &str, extra: &str) -> String {
    format!("[[listen]]\nuri = \"{uri}\"\n{extra}\n")
}

fn spooled(l: &Listening, uri: &str) -> u64 {
    l.counter(&format!(
        "evtship_listener_spooled_total{{listener=\"{uri}\"}}"
    ))
}

/// Waits for `done`, failing with evtship's log.
fn wait_until(what: &str, limit: Duration, l: &Listening, done: impl Fn() -> bool) {
    common::wait::until(what, limit, done, || l.stderr());
}

/// Documents of one host (0 while the index does not exist yet).
fn host_count(index: &TestIndex, host: &str) -> u64 {
    if !index.exists() {
        return 0;
    }
    index.count_query(json!({"term": {"Hostname.keyword": host}}))
}

fn send_tcp(addr: &str, file: &Path) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&std::fs::read(file).unwrap()).unwrap();
}

/// Its resident memory now; a process that is gone fails the test with what it wrote.
fn rss_kib(evtship: &Listening) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", evtship.pid())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("evtship is no longer running: {}", evtship.stderr()))
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn rsyslog_forwards_over_octet_counted_and_traditional_tcp_and_udp() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("rsyslog");
    let total = 50_000u64;
    let (octet, lf, udp) = (free_port(), free_port(), free_port());
    let listeners = [
        table(&format!("syslog://127.0.0.1:{octet}"), ""),
        table(&format!("syslog://127.0.0.1:{lf}"), ""),
        table(&format!("syslog+udp://127.0.0.1:{udp}"), ""),
    ]
    .concat();
    let p = listen_pipeline(dir.path(), &index.name, &listeners, "");
    let mut evtship = Listening::start(&p, dir.path(), &engine(), &format!("127.0.0.1:{octet}"));
    let mut inputs = String::new();
    for (host, port, action) in [
        (
            "RSYSOCTET",
            octet,
            r#"protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format""#,
        ),
        (
            "RSYSLF",
            lf,
            r#"protocol="tcp" TCP_Framing="traditional" template="RSYSLOG_ForwardFormat""#,
        ),
        (
            "RSYSUDP",
            udp,
            r#"protocol="udp" UDP.SendDelay="200" template="RSYSLOG_SyslogProtocol23Format""#,
        ),
    ] {
        let file = dir.path().join(format!("{host}.json"));
        write_records(&file, total as usize, host);
        inputs += &format!(
            "input(type=\"imfile\" File=\"{}\" Tag=\"sysmon\" ruleset=\"{host}\")\n\
             ruleset(name=\"{host}\") {{ action(type=\"omfwd\" target=\"127.0.0.1\" \
             port=\"{port}\" {action} action.resumeRetryCount=\"-1\") }}\n",
            file.display()
        );
    }
    let conf = format!(
        "global(workDirectory=\"{}\" maxMessageSize=\"64k\")\n\
         module(load=\"imfile\" mode=\"polling\" PollingInterval=\"1\")\n{inputs}",
        dir.path().join("rsyslog-work").display()
    );
    let _rsyslog = Rsyslog::start(dir.path(), &conf);
    let udp_uri = format!("syslog+udp://127.0.0.1:{udp}");
    wait_until(
        "rsyslog's records",
        Duration::from_secs(240),
        &evtship,
        || {
            host_count(&index, "RSYSOCTET") == total
                && host_count(&index, "RSYSLF") == total
                && spooled(&evtship, &udp_uri)
                    + evtship.counter(&format!(
                        "evtship_listener_dropped_total{{listener=\"{udp_uri}\"}}"
                    ))
                    >= total
        },
    );
    let run = evtship.stop();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let udp_summary = run.summary["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["listener"] == udp_uri.as_str())
        .unwrap()
        .clone();
    let dropped = udp_summary["dropped"].as_u64().unwrap();
    assert_eq!(host_count(&index, "RSYSOCTET"), total);
    assert_eq!(host_count(&index, "RSYSLF"), total);
    // UDP: what is indexed and what was counted dropped (by evtship or by the kernel) add up.
    eprintln!("UDP: {dropped} of {total} datagrams dropped");
    assert_eq!(
        host_count(&index, "RSYSUDP") + dropped,
        total,
        "{udp_summary}"
    );
    assert!(dropped < total / 20, "{udp_summary}");
    let v = index.search(json!({"size": 1, "query": {"term": {"Hostname.keyword": "RSYSLF"}}}));
    let doc = &v["hits"]["hits"][0]["_source"];
    assert_eq!(doc["SyslogAppName"], "sysmon", "{doc}");
    assert!(doc["Image"].as_str().unwrap().contains("cmd"), "{doc}");
    assert!(doc["SyslogFacility"].is_string(), "{doc}");
}

#[test]
fn tcp_json_lines_survive_a_sigkill_between_the_spool_and_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("tcpkill");
    let total = 100_000u64;
    let input = dir.path().join("events.json");
    write_records(&input, total as usize, "TCPKILL");
    // The engine indexes what evtship sends, but evtship never hears back.
    let proxy = FaultProxy::start(&engine());
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let uri = format!("tcp://{addr}");
    let p = listen_pipeline(dir.path(), &index.name, &table(&uri, ""), "");
    let mut evtship = Listening::start(&p, dir.path(), &proxy.url, &addr);
    proxy.set(|f| f.swallow = true);
    send_tcp(&addr, &input);
    wait_until("the spool", Duration::from_secs(60), &evtship, || {
        spooled(&evtship, &uri) == total
    });
    wait_until("some documents", Duration::from_secs(60), &evtship, || {
        index.count_so_far() > 0
    });
    evtship.kill();
    proxy.set(|f| f.swallow = false);
    evtship.restart(&addr);
    wait_until("every record", Duration::from_secs(120), &evtship, || {
        index.count_so_far() == total
    });
    let run = evtship.stop();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let s = &run.summary;
    let (indexed, duplicates) = (
        s["events_indexed"].as_u64().unwrap(),
        s["duplicates"].as_u64().unwrap(),
    );
    eprintln!("after the SIGKILL: {indexed} indexed, {duplicates} already there");
    // The spool was read again from its start: those the engine had are found by their ids.
    assert_eq!(indexed + duplicates, total, "{s}");
    assert!(duplicates > 0, "{s}");
    assert_each_once(&index, "RecordNumber", total);
}

#[test]
fn an_outage_holds_tcp_senders_once_the_spool_is_full_and_counts_udp_drops() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("spoolout");
    let (tcp_total, udp_total) = (40_000u64, 3_000u64);
    let input = dir.path().join("events.json");
    write_records(&input, tcp_total as usize, "SPOOLTCP");
    let proxy = FaultProxy::start(&engine());
    let (tcp, udp) = (free_port(), free_port());
    let addr = format!("127.0.0.1:{tcp}");
    let spool = dir.path().join("spool");
    let max = 2u64 << 20;
    let listeners = [
        table(&format!("tcp://{addr}"), ""),
        table(&format!("udp://127.0.0.1:{udp}"), ""),
    ]
    .concat();
    let extra = format!(
        "[spool]\ndir = \"{}\"\nmax_bytes = \"2MiB\"\n[bulk]\nmax_backoff_ms = 1000\n",
        spool.display()
    );
    let p = listen_pipeline(dir.path(), &index.name, &listeners, &extra);
    let mut evtship = Listening::start(&p, dir.path(), &proxy.url, &addr);
    // The listeners take connections while the template is still being installed: the outage
    // begins once that is done (an engine that cannot be reached at start ends the run).
    wait_until("the template", Duration::from_secs(30), &evtship, || {
        evtship.stderr().contains("installed for index")
    });
    proxy.set(|f| f.refuse = true);
    let sender = {
        let (addr, input) = (addr.clone(), input.clone());
        std::thread::spawn(move || send_tcp(&addr, &input))
    };
    let udp_sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let started = Instant::now();
    let (mut full, mut during, mut biggest, mut sent) = (0, 0, 0, 0u64);
    while started.elapsed() < Duration::from_secs(30) {
        // Memory once the spool is full and the queues with it, then for the rest of the outage.
        if started.elapsed() < Duration::from_secs(5) {
            full = rss_kib(&evtship);
        }
        if sent < udp_total {
            for _ in 0..20 {
                let rec = format!(
                    r#"{{"Hostname":"SPOOLUDP","Channel":"udp","EventID":1,"RecordNumber":{sent}}}"#
                );
                udp_sender
                    .send_to(rec.as_bytes(), ("127.0.0.1", udp))
                    .unwrap();
                sent += 1;
            }
        }
        during = during.max(rss_kib(&evtship));
        biggest = biggest.max(dir_bytes(&spool));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!sender.is_finished(), "the TCP sender was not held back");
    let held = spooled(&evtship, &format!("tcp://{addr}"));
    assert!(held < tcp_total, "{held} records spooled during the outage");
    proxy.set(|f| f.refuse = false);
    sender.join().unwrap();
    wait_until(
        "the TCP records",
        Duration::from_secs(120),
        &evtship,
        || host_count(&index, "SPOOLTCP") == tcp_total,
    );
    let run = evtship.stop();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let udp_line = run.summary["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["listener"].as_str().unwrap().starts_with("udp"))
        .unwrap()
        .clone();
    let dropped = udp_line["dropped"].as_u64().unwrap();
    eprintln!(
        "outage: RSS {full} KiB at 5 s, at most {during} KiB to 30 s; spool at most {biggest} \
         bytes (bound {max}); {held} TCP records on disk; UDP {dropped} of {udp_total} dropped"
    );
    assert!(dropped > 0, "the spool never filled: {udp_line}");
    assert_eq!(
        host_count(&index, "SPOOLUDP") + dropped,
        udp_total,
        "{udp_line}"
    );
    assert!(biggest <= max + 4096, "the spool grew to {biggest} bytes");
    let slack = (full / 20).max(4 * 1024);
    assert!(
        during <= full + slack,
        "RSS grew from {full} to {during} KiB"
    );
}

#[test]
fn bad_input_is_named_counted_and_harms_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("spoolbad");
    let (tcp, syslog) = (free_port(), free_port());
    let addr = format!("127.0.0.1:{tcp}");
    let spool = dir.path().join("spool");
    // A spool left by a crash: two whole records and a third cut short.
    std::fs::create_dir_all(&spool).unwrap();
    let mut seg = Vec::new();
    for n in 0..3 {
        let rec =
            format!(r#"{{"Hostname":"SPOOLOLD","Channel":"c","EventID":1,"RecordNumber":{n}}}"#);
        evtship::source::spool::segment::encode_legacy(&mut seg, 0, rec.as_bytes());
    }
    seg.truncate(seg.len() - 5);
    std::fs::write(spool.join("0000000000000001.seg"), &seg).unwrap();
    std::fs::write(spool.join("sources"), "tcp://127.0.0.1:1\n").unwrap();
    let listeners = [
        table(&format!("tcp://{addr}"), "max_frame_bytes = \"64KiB\""),
        table(&format!("syslog://127.0.0.1:{syslog}"), ""),
    ]
    .concat();
    let extra = format!("[spool]\ndir = \"{}\"\n", spool.display());
    let p = listen_pipeline(dir.path(), &index.name, &listeners, &extra);
    let mut evtship = Listening::start(&p, dir.path(), &engine(), &addr);
    let good = |n: u32| {
        format!(r#"{{"Hostname":"SPOOLBAD","Channel":"c","EventID":1,"RecordNumber":{n}}}"#)
    };
    let mut s = TcpStream::connect(&addr).unwrap();
    let big = "x".repeat(100_000);
    let body = format!(
        "{}\n{{\"broken\": \n{{\"big\":\"{big}\"}}\n{}\n",
        good(0),
        good(1)
    );
    s.write_all(body.as_bytes()).unwrap();
    drop(s);
    // A syslog sender with a bad octet count loses its connection; another is unaffected.
    let mut bad = TcpStream::connect(format!("127.0.0.1:{syslog}")).unwrap();
    bad.write_all(b"12x <13>1 - h a - - - nope\n").unwrap();
    let m = format!("<13>1 - h a - - - {}", good(2));
    let mut ok = TcpStream::connect(format!("127.0.0.1:{syslog}")).unwrap();
    ok.write_all(format!("{} {m}", m.len()).as_bytes()).unwrap();
    drop(ok);
    wait_until(
        "the good records",
        Duration::from_secs(30),
        &evtship,
        || host_count(&index, "SPOOLBAD") == 3 && host_count(&index, "SPOOLOLD") == 2,
    );
    let run = evtship.stop();
    // 3: delivered, with records dead-lettered.
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("cut short at byte"), "{}", run.stderr);
    assert!(
        run.stderr.contains("record 2 is no JSON object"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("over the limit of 65536 bytes"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("is no octet count"), "{}", run.stderr);
    let listeners = run.summary["listeners"].as_array().unwrap();
    assert_eq!(
        listeners[0]["refused"]["record_too_large"], 1,
        "{listeners:?}"
    );
    assert_eq!(listeners[1]["refused"]["framing"], 1, "{listeners:?}");
    assert_eq!(run.summary["dead_lettered"], 1, "{}", run.summary);
    let dlq = std::fs::read_to_string(dir.path().join("dlq.ndjson")).unwrap();
    assert!(dlq.contains("broken"), "{dlq}");
    assert!(
        std::fs::read_dir(&spool)
            .unwrap()
            .filter_map(Result::ok)
            .all(|e| !e.file_name().to_string_lossy().ends_with(".seg")),
        "settled segments are deleted"
    );
}
