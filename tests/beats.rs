//! The Beats listener with a real Beats client (elastic/go-lumber's v2 client, as Beats use
//! it), against the real engine: crashes, an engine outage, item faults, TLS and oversize
//! frames. A window is ACKed only once the engine has its events, so nothing is lost, and
//! stable ids make every resend harmless.

mod common;

use common::listen::*;
use common::proxy::FaultProxy;
use common::*;
use std::time::{Duration, Instant};

fn beats_table(port: u16, extra: &str) -> String {
    format!("[[listen]]\nuri = \"beats://127.0.0.1:{port}\"\n{extra}")
}

fn wait_count(index: &TestIndex, n: u64, limit: Duration, l: &Listening) {
    let deadline = Instant::now() + limit;
    while index.count_so_far() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} documents: {}",
            index.count_so_far(),
            l.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn beats_events_sent_through_two_sigkills_land_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("beatskill");
    let total = 100_000u64;
    let input = dir.path().join("events.json");
    write_records(&input, total as usize, "BEATSKILL");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let p = listen_pipeline(dir.path(), &index.name, &beats_table(port, ""), "");
    let mut evtship = Listening::start(&p, dir.path(), &engine(), &addr);
    let sender = lumber_send(&addr, &input, &["-window", "2000", "-timeout", "10s"])
        .spawn()
        .unwrap();
    for at in [20_000, 55_000] {
        wait_count(&index, at, Duration::from_secs(120), &evtship);
        evtship.kill();
        std::thread::sleep(Duration::from_millis(700));
        evtship.restart(&addr);
    }
    let (code, result) = lumber_result(sender.wait_with_output().unwrap());
    assert_eq!(code, 0, "{result}");
    // Every window was ACKed in the end: all events, each window once or more.
    assert_eq!(result["events"], total, "{result}");
    assert!(result["resent"].as_u64().unwrap() >= 2, "{result}");
    let run = evtship.stop();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_each_once(&index, "RecordNumber", total);
}

#[test]
fn a_30_second_engine_outage_holds_the_sender_with_keepalives_and_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("beatsoutage");
    let total = 60_000u64;
    let input = dir.path().join("events.json");
    write_records(&input, total as usize, "BEATSOUT");
    let proxy = FaultProxy::start(&engine());
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let p = listen_pipeline(
        dir.path(),
        &index.name,
        &beats_table(port, "keepalive_seconds = 2"),
        "[bulk]\nmax_backoff_ms = 2000\n",
    );
    let mut evtship = Listening::start(&p, dir.path(), &proxy.url, &addr);
    // A 10 s ACK timeout: without keep-alives the sender would give up during the outage.
    let sender = lumber_send(
        &addr,
        &input,
        &["-window", "1000", "-timeout", "10s", "-once"],
    )
    .spawn()
    .unwrap();
    wait_count(&index, 10_000, Duration::from_secs(60), &evtship);
    let mut before = 0;
    for _ in 0..10 {
        before = before.max(rss_kib(evtship.pid()));
        std::thread::sleep(Duration::from_millis(100));
    }
    proxy.set(|f| f.refuse = true);
    let started = Instant::now();
    let mut during = 0;
    while started.elapsed() < Duration::from_secs(30) {
        during = during.max(rss_kib(evtship.pid()));
        std::thread::sleep(Duration::from_millis(200));
    }
    proxy.set(|f| f.refuse = false);
    let (code, result) = lumber_result(sender.wait_with_output().unwrap());
    assert_eq!(
        code,
        0,
        "the sender gave up: {result}\n{}",
        evtship.stderr()
    );
    assert_eq!(result["resent"], 0, "{result}");
    assert_eq!(result["connection_failures"], 0, "{result}");
    assert_eq!(result["events"], total);
    let run = evtship.stop();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let keepalives = run.summary["listeners"][0]["keepalives"].as_u64().unwrap();
    assert!(keepalives >= 5, "{}", run.summary);
    assert_each_once(&index, "RecordNumber", total);
    eprintln!("RSS before the outage {before} KiB, during it {during} KiB");
    let slack = (before / 20).max(4 * 1024);
    assert!(
        during <= before + slack,
        "RSS grew from {before} to {during} KiB"
    );
}

#[test]
fn a_fifth_of_the_items_refused_by_the_engine_are_retried_and_acked_only_after() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("beatsfaults");
    let total = 30_000u64;
    let input = dir.path().join("events.json");
    write_records(&input, total as usize, "BEATSFAULT");
    let proxy = FaultProxy::start(&engine());
    proxy.set(|f| {
        f.item_fault_rate = 0.2;
        f.item_statuses = vec![429, 503];
    });
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let p = listen_pipeline(
        dir.path(),
        &index.name,
        &beats_table(port, ""),
        "[bulk]\ninitial_backoff_ms = 50\nmax_backoff_ms = 500\n",
    );
    let mut evtship = Listening::start(&p, dir.path(), &proxy.url, &addr);
    let out = lumber_send(
        &addr,
        &input,
        &["-window", "1000", "-timeout", "30s", "-once"],
    )
    .output()
    .unwrap();
    let (code, result) = lumber_result(out);
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["resent"], 0);
    // The ACKs came only once every item was in: the index is complete when the sender ends.
    assert_eq!(index.count(), total);
    assert!(
        proxy
            .seen
            .faulted_items
            .load(std::sync::atomic::Ordering::SeqCst)
            > 1000
    );
    let run = evtship.stop();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.n("retries") > 0);
    assert_each_once(&index, "RecordNumber", total);
}

#[test]
fn tls_refuses_a_wrong_ca_and_a_missing_client_certificate_and_takes_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("beatstls");
    pki(dir.path());
    let input = dir.path().join("events.json");
    write_records(&input, 500, "BEATSTLS");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let d = dir.path().display();
    let tls = format!(
        "[listen.tls]\ncert = \"{d}/server.pem\"\nkey = \"{d}/server.key\"\nclient_ca = \"{d}/ca.pem\"\nclient_auth = \"required\"\n"
    );
    let p = listen_pipeline(dir.path(), &index.name, &beats_table(port, &tls), "");
    let mut evtship = Listening::start(&p, dir.path(), &engine(), &addr);
    let send = |flags: Vec<String>| {
        let mut all = vec!["-once".to_owned(), "-timeout".into(), "5s".into()];
        all.extend(flags);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        lumber_result(lumber_send(&addr, &input, &all).output().unwrap())
    };
    let file = |name: &str| dir.path().join(name).display().to_string();
    let (code, _) = send(vec!["-tls-ca".into(), file("other-ca.pem")]);
    assert_eq!(
        code, 1,
        "a server certificate of an unknown CA must be refused"
    );
    let (code, _) = send(vec!["-tls-ca".into(), file("ca.pem")]);
    assert_eq!(code, 1, "no client certificate: refused");
    assert!(
        !index.exists(),
        "nothing may be indexed without a client certificate"
    );
    let (code, result) = send(vec![
        "-tls-ca".into(),
        file("ca.pem"),
        "-tls-cert".into(),
        file("client.pem"),
        "-tls-key".into(),
        file("client.key"),
    ]);
    assert_eq!(code, 0, "{result}\n{}", evtship.stderr());
    assert_eq!(result["events"], 500);
    let run = evtship.stop();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let refused = &run.summary["listeners"][0]["refused"];
    assert!(refused["tls"].as_u64().unwrap_or(0) >= 1, "{}", run.summary);
    assert_eq!(index.count(), 500);
}

#[test]
fn an_oversize_frame_closes_its_connection_only() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestIndex::new("beatsbig");
    let good = dir.path().join("good.json");
    write_records(&good, 20_000, "BEATSOK");
    let big = dir.path().join("big.json");
    std::fs::write(
        &big,
        format!(
            "{{\"Hostname\":\"BIG\",\"Channel\":\"c\",\"RecordNumber\":1,\"x\":\"{}\"}}\n",
            "y".repeat(300_000)
        ),
    )
    .unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let p = listen_pipeline(
        dir.path(),
        &index.name,
        &beats_table(port, "max_frame_bytes = \"64KiB\""),
        "",
    );
    let mut evtship = Listening::start(&p, dir.path(), &engine(), &addr);
    let steady = lumber_send(&addr, &good, &["-window", "100", "-once", "-compress", "0"])
        .spawn()
        .unwrap();
    let (code, _) = lumber_result(
        lumber_send(&addr, &big, &["-once", "-compress", "0", "-timeout", "5s"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 1, "the oversize event must be refused");
    let (code, result) = lumber_result(steady.wait_with_output().unwrap());
    assert_eq!(code, 0, "the other connection must go on: {result}");
    assert_eq!(result["events"], 20_000);
    let run = evtship.stop();
    let refused = &run.summary["listeners"][0]["refused"];
    assert!(
        refused["frame_too_large"].as_u64().unwrap_or(0) >= 1,
        "{}",
        run.summary
    );
    assert!(
        run.stderr.contains("larger than the limit"),
        "{}",
        run.stderr
    );
    assert_each_once(&index, "RecordNumber", 20_000);
}
