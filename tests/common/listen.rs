//! Helpers for listener tests: the real clients (built by `scripts/build-clients`), a listening evtship process that can be killed and started again on the
//! same ports, and a fresh PKI (CA, server and client certificates, and an unrelated CA).

use super::{es_url, root, Run};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/build-clients` puts the clients.
fn tools_dir() -> PathBuf {
    if let Ok(d) = std::env::var("EVTSHIP_TOOLS_DIR") {
        return PathBuf::from(d);
    }
    let cache = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache"));
    cache.join("evtship/tools")
}

/// A real client built by `scripts/build-clients` (run first when the client is missing; the
/// test fails when it cannot be built).
pub fn tool(name: &str) -> PathBuf {
    let path = tools_dir().join(name);
    if !path.exists() {
        let client = name.split('/').next().unwrap_or(name);
        let status = Command::new(root().join("scripts/build-clients"))
            .arg(client)
            .status()
            .expect("running scripts/build-clients");
        assert!(status.success(), "scripts/build-clients {name} failed");
    }
    path
}

/// An evtship process running a pipeline with listeners.
pub struct Listening {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// Where state, logs and the summary go.
    pub dir: PathBuf,
    /// The engine URL it sends to.
    pub es_url: String,
    /// Its Prometheus endpoint.
    pub metrics: String,
    child: Option<Child>,
    starts: u32,
}

impl Listening {
    /// Starts `evtship run PIPELINE` sending to `es_url`, and waits until `ready` (an address
    /// it listens on) takes connections.
    pub fn start(pipeline: &Path, dir: &Path, es_url: &str, ready: &str) -> Self {
        let mut l = Self {
            pipeline: pipeline.to_owned(),
            dir: dir.to_owned(),
            es_url: es_url.to_owned(),
            metrics: format!("127.0.0.1:{}", super::free_port()),
            child: None,
            starts: 0,
        };
        l.restart(ready);
        l
    }

    /// Starts it (again), waiting for `ready`.
    pub fn restart(&mut self, ready: &str) {
        self.starts += 1;
        let stderr = std::fs::File::create(self.stderr_path()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_evtship"))
            .current_dir(root())
            .env("ES_URL", &self.es_url)
            .env("EVTSHIP_CHECKPOINT_DIR", self.dir.join("checkpoints"))
            .env("RUST_LOG", "info")
            .env("EVTSHIP_METRICS_ADDR", &self.metrics)
            .args(["run", self.pipeline.to_str().unwrap(), "--no-progress"])
            .arg("--summary-json")
            .arg(self.summary_path())
            .arg("--dead-letter")
            .arg(self.dir.join("dlq.ndjson"))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_for_port(ready, Duration::from_secs(30), || self.stderr());
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.join(format!("evtship-{}.stderr", self.starts))
    }

    fn summary_path(&self) -> PathBuf {
        self.dir.join(format!("summary-{}.json", self.starts))
    }

    /// What the current process wrote on standard error.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// A counter of its `/metrics` now (`evtship_events_duplicate_total`), 0 when absent.
    pub fn counter(&self, name: &str) -> u64 {
        let text = reqwest::blocking::get(format!("http://{}/metrics", self.metrics))
            .and_then(|r| r.text())
            .unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: nothing flushed, nothing answered.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, then its exit code and summary.
    pub fn stop(&mut self) -> Run {
        let mut child = self.child.take().expect("running");
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let status = child.wait().unwrap();
        let summary = std::fs::read_to_string(self.summary_path())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::new(),
            stderr: self.stderr(),
            summary,
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until `addr` takes TCP connections.
pub fn wait_for_port(addr: &str, limit: Duration, why: impl Fn() -> String) {
    let deadline = Instant::now() + limit;
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {addr}: {}",
            why()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The result `lumber-send` printed, and its exit code.
pub fn lumber_result(out: std::process::Output) -> (i32, Value) {
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "lumber-send printed no result: {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (out.status.code().unwrap_or(-1), v)
}

/// `lumber-send` to `addr` with `file`, and extra flags.
pub fn lumber_send(addr: &str, file: &Path, flags: &[&str]) -> Command {
    let mut c = Command::new(tool("lumber-send"));
    c.args(["-addr", addr, "-file", file.to_str().unwrap()])
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// A pipeline file listening on `listen` (TOML `[[listen]]` tables, or none) into `index`.
pub fn listen_pipeline(dir: &Path, index: &str, listen: &str, extra: &str) -> PathBuf {
    let p = dir.join("listen.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"listen\"\n{listen}\n[elasticsearch]\nindex = \"{index}\"\n[template]\nreplicas = 0\n{extra}"
        ),
    )
    .unwrap();
    p
}

/// The engine's URL (for listeners that send to it directly).
pub fn engine() -> String {
    es_url()
}

/// A fresh PKI in `dir`: `ca.pem`, `server.pem`/`server.key` (for 127.0.0.1 and localhost),
/// `client.pem`/`client.key` (signed by the CA), and `other-ca.pem` (an unrelated CA).
pub fn pki(dir: &Path) {
    let ca = |name: &str| {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        (cert, key)
    };
    let (ca_cert, ca_key) = ca("evtship test CA");
    let (other, _) = ca("some other CA");
    let leaf = |names: Vec<String>, file: &str| {
        let params = rcgen::CertificateParams::new(names).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
        std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    };
    leaf(vec!["127.0.0.1".into(), "localhost".into()], "server");
    leaf(vec!["client.example".into()], "client");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("other-ca.pem"), other.pem()).unwrap();
}

/// rsyslogd in the foreground with `conf`, killed when dropped.
pub struct Rsyslog(Child);

impl Rsyslog {
    /// Starts it with `conf` written into `dir`.
    pub fn start(dir: &Path, conf: &str) -> Self {
        let path = dir.join("rsyslog.conf");
        std::fs::create_dir_all(dir.join("rsyslog-work")).unwrap();
        std::fs::write(&path, conf).unwrap();
        let child = Command::new(tool("rsyslog/rsyslogd"))
            .args(["-n", "-f"])
            .arg(&path)
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("rsyslog.stderr")).unwrap())
            .spawn()
            .unwrap();
        Self(child)
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Filebeat (built by `scripts/build-clients`) reading `input` (JSON lines) with the
/// `output` section given, its home in `dir/name`.
pub fn filebeat(
    dir: &std::path::Path,
    name: &str,
    input: &std::path::Path,
    output: &str,
) -> Command {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).unwrap();
    let config = home.join("filebeat.yml");
    std::fs::write(
        &config,
        format!(
            "filebeat.inputs:\n- type: log\n  paths: [\"{}\"]\n  json.keys_under_root: true\n  json.overwrite_keys: true\n  json.add_error_key: true\n{output}\npath.home: {h}\npath.data: {h}/data\npath.logs: {h}/logs\nlogging.level: info\nlogging.to_files: false\nlogging.to_stderr: true\nfilebeat.registry.flush: 1s\n",
            input.display(),
            h = home.display()
        ),
    )
    .unwrap();
    let mut c = Command::new(tool("filebeat"));
    c.args(["-e", "--strict.perms=false", "-c", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(home.join("filebeat.stderr")).unwrap());
    c
}
