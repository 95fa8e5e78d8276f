//! A TLS terminator in front of the engine, enforcing basic auth, for connection tests: a CA and
//! a server certificate for `127.0.0.1` and `localhost` are made fresh (rcgen), the server speaks
//! rustls, and each request (one per connection) is checked, then forwarded to the engine.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

/// A running terminator.
pub struct TlsFront {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The CA certificate (PEM) that signed the server's certificate.
    pub ca_file: PathBuf,
    /// Requests forwarded to the engine.
    pub forwarded: Arc<AtomicU64>,
    /// Requests refused with 401.
    pub refused: Arc<AtomicU64>,
}

impl TlsFront {
    /// Starts a terminator to `upstream` accepting `user`:`password`; writes the CA into `dir`.
    pub fn start(upstream: &str, dir: &Path, user: &str, password: &str) -> Self {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "evtship test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let expected = format!(
            "Basic {}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("{user}:{password}")
            )
        );
        let (forwarded, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (f, r, up) = (forwarded.clone(), refused.clone(), upstream.to_owned());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(tcp) = stream else { continue };
                let (config, expected, f, r, up) = (
                    config.clone(),
                    expected.clone(),
                    f.clone(),
                    r.clone(),
                    up.clone(),
                );
                std::thread::spawn(move || {
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    let Some((head, body)) = read_request(&mut tls) else {
                        return;
                    };
                    let auth_ok = head.lines().any(|l| {
                        l.to_ascii_lowercase().starts_with("authorization:")
                            && l[14..].trim() == expected
                    });
                    let (status, answer) = if auth_ok {
                        f.fetch_add(1, SeqCst);
                        forward(&up, &head, body)
                    } else {
                        r.fetch_add(1, SeqCst);
                        (
                            401,
                            br#"{"error":"missing or wrong credentials","status":401}"#.to_vec(),
                        )
                    };
                    let _ = write!(
                        tls,
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        answer.len()
                    );
                    let _ = tls.write_all(&answer);
                    let _ = tls.flush();
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        Self {
            url,
            ca_file,
            forwarded,
            refused,
        }
    }
}

fn read_request(stream: &mut impl Read) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((head, buf[head_end..head_end + length].to_vec()))
}

fn forward(upstream: &str, head: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let mut first = head.lines().next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or("GET");
    let target = first.next().unwrap_or("/");
    let client = reqwest::blocking::Client::new();
    let mut req = client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{upstream}{target}"),
        )
        .header("Content-Type", "application/json")
        .body(body);
    // A gzip body (evtship compresses _bulk bodies) goes on as it came.
    for line in head.lines() {
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-encoding") {
                req = req.header("Content-Encoding", v.trim());
            }
        }
    }
    match req.send() {
        Ok(r) => (
            r.status().as_u16(),
            r.bytes().map(|b| b.to_vec()).unwrap_or_default(),
        ),
        Err(e) => (502, e.to_string().into_bytes()),
    }
}
