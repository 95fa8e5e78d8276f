//! A recording HTTP server standing in for services that cannot run here (Kibana, an
//! Elasticsearch node with machine learning): it answers each request with what a handler
//! says and keeps every request, so that tests can compare them with Elastic's documented
//! request bodies. It proves what evtship sends, never what those services would do with it.

use super::proxy::{read_request, respond, Request};
use std::io::BufReader;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// Picks the status and JSON body of the answer to a request.
pub type Handler = dyn Fn(&Request) -> (u16, serde_json::Value) + Send + Sync;

/// A running recorder.
pub struct Recorder {
    /// Its URL.
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Recorder {
    /// Starts a recorder on loopback answering with `handler`.
    pub fn start(
        handler: impl Fn(&Request) -> (u16, serde_json::Value) + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (seen, handler) = (seen.clone(), handler.clone());
                std::thread::spawn(move || {
                    let mut writer = stream.try_clone().unwrap();
                    let mut reader = BufReader::new(stream);
                    while let Some(req) = read_request(&mut reader) {
                        let (status, body) = handler(&req);
                        seen.lock().unwrap().push(req);
                        if respond(&mut writer, status, body.to_string().as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { url, requests }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}
