//! The settings of a listener: its URI, TLS, limits and authentication, from `--listen URI` or
//! a `[[listen]]` table, checked before anything is bound.

use crate::common::ByteSize;
use serde::Deserialize;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// Why a listener cannot be set up.
#[derive(Debug, Error)]
pub enum ListenError {
    /// The URI is not one evtship listens on.
    #[error("listener `{uri}`: {problem}")]
    Uri {
        /// The URI as given.
        uri: String,
        /// What is wrong.
        problem: String,
    },
    /// The address cannot be bound.
    #[error("listener `{uri}`: cannot listen")]
    Bind {
        /// The URI.
        uri: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS files cannot be used.
    #[error("listener TLS: {0}")]
    Tls(String),
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Lumberjack v2 (and v1): Winlogbeat's, Filebeat's and Elastic Agent's Logstash output.
    Beats,
    /// HTTP: NDJSON and JSON-array POSTs, and an Elasticsearch-compatible `_bulk`.
    Http,
    /// JSON lines over TCP (NXLog's `om_tcp` with `to_json()`), through the spool.
    Tcp,
    /// One JSON object (or several lines) per UDP datagram, through the spool.
    Udp,
    /// Syslog over TCP, LF or octet-counted framing, through the spool.
    Syslog,
    /// Syslog over UDP, one message per datagram, through the spool.
    SyslogUdp,
}

impl Kind {
    /// Whether it goes through the disk spool (its senders get no acknowledgement).
    pub fn spooled(self) -> bool {
        matches!(self, Self::Tcp | Self::Udp | Self::Syslog | Self::SyslogUdp)
    }

    /// Whether it listens on UDP.
    pub fn datagram(self) -> bool {
        matches!(self, Self::Udp | Self::SyslogUdp)
    }
}

/// Whose index a `_bulk` document goes to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexMode {
    /// The pipeline's (the default): every document lands in the pipeline's index.
    #[default]
    Pipeline,
    /// The one the client's action names (or its URL's `/{index}/_bulk`).
    Client,
}

/// Whether a TLS listener asks its clients for a certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificate asked for (the default).
    #[default]
    None,
    /// A client certificate, when given, must be signed by `client_ca`.
    Optional,
    /// A client certificate signed by `client_ca` is required.
    Required,
}

/// The `[listen.tls]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenTls {
    /// PEM file of the server's certificate chain.
    pub cert: PathBuf,
    /// PEM file of its private key (PKCS#8, or RSA/PKCS#1).
    pub key: PathBuf,
    /// PEM file of the CAs that sign client certificates.
    pub client_ca: Option<PathBuf>,
    /// `none`, `optional` or `required`.
    #[serde(default)]
    pub client_auth: ClientAuth,
}

/// The `[listen.auth]` table: what an HTTP client must send.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenAuth {
    /// `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// Basic auth: the user.
    pub user: Option<String>,
    /// Basic auth: the password.
    pub password: Option<String>,
}

/// Limits of a listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest frame (Beats: an event, or a compressed frame, before and after inflating),
    /// request body (HTTP, after gunzipping), line (TCP) or message (syslog, UDP).
    pub max_frame_bytes: usize,
    /// Most events in one Beats window.
    pub max_window: u32,
    /// Most connections open at once.
    pub max_connections: usize,
    /// A connection that sends nothing this long while evtship waits on it (between frames,
    /// requests or lines, or inside a window) is closed.
    pub idle_timeout_seconds: u64,
    /// A frame (Beats), request body (HTTP) or record (TCP, syslog) that was begun must come
    /// whole within this, or the connection is closed: a sender cannot hold a slot by
    /// trickling bytes.
    pub read_timeout_seconds: u64,
    /// A TLS handshake must end within this.
    pub handshake_timeout_seconds: u64,
    /// While a Beats window waits for the engine, an ACK of 0 goes out this often, so that
    /// the sender does not time out and send it again.
    pub keepalive_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 32 << 20,
            max_window: 16_384,
            max_connections: 1024,
            idle_timeout_seconds: 60,
            read_timeout_seconds: 60,
            handshake_timeout_seconds: 10,
            keepalive_seconds: 5,
        }
    }
}

impl Limits {
    /// The TLS handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_seconds)
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_seconds)
    }

    /// The read timeout of a frame, body or record.
    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.read_timeout_seconds.max(1))
    }

    /// The keep-alive interval.
    pub fn keepalive(&self) -> Duration {
        Duration::from_secs(self.keepalive_seconds.max(1))
    }
}

/// The memory budget of all listeners together when `[listeners] max_buffered_bytes` is
/// unset: room for four bodies or frames of the default `max_frame_bytes` (each costs about
/// twice its size: its bytes and the records made of them) beside many small ones.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 256 << 20;

/// The `[listeners]` table: what all listeners of a run share.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenersSection {
    /// The most bytes that all listeners together hold of what they received and the engine
    /// has not answered for yet (frames, bodies, lines and the records made of them).
    pub max_buffered_bytes: Option<ByteSize>,
}

impl ListenersSection {
    /// The budget, checked against the listeners' frame limits: each must fit twice.
    pub fn budget(&self, listeners: &[ListenSettings]) -> Result<usize, String> {
        let budget = self
            .max_buffered_bytes
            .map_or(DEFAULT_MAX_BUFFERED_BYTES, |b| b.0);
        for l in listeners {
            let need = 2 * l.limits.max_frame_bytes + (1 << 20);
            if budget < need {
                return Err(format!(
                    "{budget} bytes cannot hold one frame of listener {} (max_frame_bytes {} \
                     costs up to {need} bytes): raise max_buffered_bytes or lower max_frame_bytes",
                    l.uri, l.limits.max_frame_bytes
                ));
            }
        }
        Ok(budget)
    }
}

/// A `[[listen]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSection {
    /// `beats://HOST:PORT` or `http://HOST:PORT`.
    pub uri: String,
    /// TLS (`[listen.tls]`).
    pub tls: Option<ListenTls>,
    /// Authentication of HTTP clients (`[listen.auth]`).
    pub auth: Option<ListenAuth>,
    /// Whose index `_bulk` documents go to: `pipeline` (default) or `client`.
    #[serde(default)]
    pub index: IndexMode,
    /// See [`Limits::max_frame_bytes`].
    pub max_frame_bytes: Option<ByteSize>,
    /// See [`Limits::max_window`].
    pub max_window: Option<u32>,
    /// See [`Limits::max_connections`].
    pub max_connections: Option<usize>,
    /// See [`Limits::idle_timeout_seconds`].
    pub idle_timeout_seconds: Option<u64>,
    /// See [`Limits::read_timeout_seconds`].
    pub read_timeout_seconds: Option<u64>,
    /// See [`Limits::handshake_timeout_seconds`].
    pub handshake_timeout_seconds: Option<u64>,
    /// See [`Limits::keepalive_seconds`].
    pub keepalive_seconds: Option<u64>,
}

/// A `[[listen]]` table, checked as it is read, so that an error names the file and line.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "ListenSection")]
pub struct ListenTable(pub ListenSection);

impl TryFrom<ListenSection> for ListenTable {
    type Error = String;

    fn try_from(s: ListenSection) -> Result<Self, String> {
        if let Some(auth) = &s.auth {
            check_auth(&s.uri, auth)?;
        }
        Ok(Self(s))
    }
}

/// Refuses `[listen.auth]` that cannot work: on a listener whose senders send no credentials,
/// or with an empty secret (which no client could send, or which every client would).
fn check_auth(uri: &str, auth: &ListenAuth) -> Result<(), String> {
    if !(uri.starts_with("http://") || uri.starts_with("https://")) {
        return Err(format!(
            "listener `{uri}`: [listen.auth] works on http:// listeners only (Beats, TCP, UDP \
             and syslog senders send no token or password, so nothing would be checked); to \
             admit only known senders use [listen.tls] with client_ca and \
             client_auth = \"required\""
        ));
    }
    let empty = |v: &Option<String>| v.as_deref().is_some_and(|v| v.trim().is_empty());
    if empty(&auth.bearer_token) {
        return Err(format!(
            "listener `{uri}`: [listen.auth] bearer_token is empty (is its ${{VARIABLE}} set?)"
        ));
    }
    if empty(&auth.user) || empty(&auth.password) {
        return Err(format!(
            "listener `{uri}`: [listen.auth] user and password must not be empty"
        ));
    }
    match (&auth.user, &auth.password, &auth.bearer_token) {
        (Some(_), None, _) | (None, Some(_), _) => Err(format!(
            "listener `{uri}`: [listen.auth] needs both user and password"
        )),
        (None, None, None) => Err(format!(
            "listener `{uri}`: [listen.auth] names neither bearer_token nor user and password"
        )),
        _ => Ok(()),
    }
}

/// A listener's settings, checked.
#[derive(Debug, Clone)]
pub struct ListenSettings {
    /// The URI as given.
    pub uri: String,
    /// What it speaks.
    pub kind: Kind,
    /// Where it listens.
    pub addr: SocketAddr,
    /// TLS, if any.
    pub tls: Option<ListenTls>,
    /// Authentication of HTTP clients, if any.
    pub auth: Option<ListenAuth>,
    /// Whose index `_bulk` documents go to.
    pub index: IndexMode,
    /// Limits.
    pub limits: Limits,
}

impl ListenSettings {
    /// A listener from a URI alone (`--listen`), with the default limits.
    pub fn from_uri(uri: &str) -> Result<Self, ListenError> {
        Self::from_section(ListenSection {
            uri: uri.to_owned(),
            tls: None,
            auth: None,
            index: IndexMode::Pipeline,
            max_frame_bytes: None,
            max_window: None,
            max_connections: None,
            idle_timeout_seconds: None,
            read_timeout_seconds: None,
            handshake_timeout_seconds: None,
            keepalive_seconds: None,
        })
    }

    /// A listener from a `[[listen]]` table.
    pub fn from_section(s: ListenSection) -> Result<Self, ListenError> {
        let bad = |problem: &str| ListenError::Uri {
            uri: s.uri.clone(),
            problem: problem.to_owned(),
        };
        let (scheme, rest) = s
            .uri
            .split_once("://")
            .ok_or_else(|| bad("not a URI such as beats://0.0.0.0:5044"))?;
        let kind = match scheme {
            "beats" | "lumberjack" => Kind::Beats,
            "http" | "https" => Kind::Http,
            "tcp" => Kind::Tcp,
            "udp" => Kind::Udp,
            "syslog" | "syslog+tcp" => Kind::Syslog,
            "syslog+udp" => Kind::SyslogUdp,
            other => {
                return Err(bad(&format!(
                    "unknown kind `{other}`: use beats://, http://, tcp://, udp://, syslog:// \
                     or syslog+udp:// with HOST:PORT"
                )))
            }
        };
        if scheme == "https" && s.tls.is_none() {
            return Err(bad("https needs a [listen.tls] table with cert and key"));
        }
        if kind.datagram() && s.tls.is_some() {
            return Err(bad("UDP listeners take no TLS"));
        }
        let hostport = rest.trim_end_matches('/');
        let addr = hostport
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| bad("no HOST:PORT to listen on (e.g. 0.0.0.0:5044)"))?;
        if let Some(tls) = &s.tls {
            if tls.client_auth != ClientAuth::None && tls.client_ca.is_none() {
                return Err(bad(
                    "client_auth needs client_ca (the CAs of client certificates)",
                ));
            }
        }
        let d = Limits::default();
        let limits = Limits {
            max_frame_bytes: s.max_frame_bytes.map_or(d.max_frame_bytes, |b| b.0),
            max_window: s.max_window.unwrap_or(d.max_window),
            max_connections: s.max_connections.unwrap_or(d.max_connections).max(1),
            idle_timeout_seconds: s.idle_timeout_seconds.unwrap_or(d.idle_timeout_seconds),
            read_timeout_seconds: s.read_timeout_seconds.unwrap_or(d.read_timeout_seconds),
            handshake_timeout_seconds: s
                .handshake_timeout_seconds
                .unwrap_or(d.handshake_timeout_seconds),
            keepalive_seconds: s.keepalive_seconds.unwrap_or(d.keepalive_seconds),
        };
        Ok(Self {
            uri: s.uri,
            kind,
            addr,
            tls: s.tls,
            auth: s.auth,
            index: s.index,
            limits,
        })
    }

    /// The listener's name: its URI, with the port it got when 0 was asked for.
    pub fn label(&self, bound: SocketAddr) -> String {
        let scheme = match (self.kind, self.tls.is_some()) {
            (Kind::Beats, false) => "beats",
            (Kind::Beats, true) => "beats+tls",
            (Kind::Http, false) => "http",
            (Kind::Http, true) => "https",
            (Kind::Tcp, false) => "tcp",
            (Kind::Tcp, true) => "tcp+tls",
            (Kind::Syslog, false) => "syslog",
            (Kind::Syslog, true) => "syslog+tls",
            (Kind::Udp, _) => "udp",
            (Kind::SyslogUdp, _) => "syslog+udp",
        };
        format!("{scheme}://{bound}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_a_kind_and_an_address() {
        let s = ListenSettings::from_uri("beats://127.0.0.1:5044").unwrap();
        assert_eq!((s.kind, s.addr.port()), (Kind::Beats, 5044));
        assert_eq!(
            ListenSettings::from_uri("http://0.0.0.0:0").unwrap().kind,
            Kind::Http
        );
        assert_eq!(
            ListenSettings::from_uri("syslog+udp://0.0.0.0:514")
                .unwrap()
                .kind,
            Kind::SyslogUdp
        );
        assert!(ListenSettings::from_uri("tcp://0.0.0.0:3515")
            .unwrap()
            .kind
            .spooled());
        for bad in ["beats:5044", "ftp://h:1", "beats://nohost", "https://h:1"] {
            assert!(ListenSettings::from_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn auth_that_cannot_work_is_refused_with_its_line() {
        #[derive(Deserialize)]
        struct File {
            #[allow(dead_code)]
            listen: Vec<ListenTable>,
        }
        let parse = |t: &str| toml::from_str::<File>(t).err().map(|e| e.to_string());
        let ok = "[[listen]]\nuri = \"http://0.0.0.0:1\"\n[listen.auth]\nbearer_token = \"t\"\n";
        assert_eq!(parse(ok), None);
        for (table, says) in [
            (
                "uri = \"tcp://0.0.0.0:1\"\n[listen.auth]\nbearer_token = \"t\"",
                "http:// listeners only",
            ),
            (
                "uri = \"beats://0.0.0.0:1\"\n[listen.auth]\nuser = \"u\"\npassword = \"p\"",
                "http:// listeners only",
            ),
            (
                "uri = \"http://0.0.0.0:1\"\n[listen.auth]\nbearer_token = \"\"",
                "is empty",
            ),
            (
                "uri = \"http://0.0.0.0:1\"\n[listen.auth]\nuser = \"u\"",
                "both user and password",
            ),
        ] {
            let text = format!("name = \"x\"\n\n[[listen]]\n{table}\n");
            let e = parse(&text).unwrap_or_else(|| panic!("accepted: {table}"));
            assert!(e.contains(says) && e.contains("line 3"), "{e}");
        }
    }
}
