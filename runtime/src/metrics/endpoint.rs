//! The admin HTTP endpoint: `GET /metrics` (Prometheus text) and
//! `GET /health`, served by a thread of its own so that a scrape never runs
//! on a shard. A scrape sends each shard one command and waits at most
//! [`SCRAPE_TIMEOUT`] for the answers; a shard that does not answer is
//! reported down (`quire_shard_up 0`) and makes `/health` answer 503.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::client::Client;

/// How long a scrape waits for a shard's answer.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);

/// A running endpoint; stops when dropped.
///
/// ```no_run
/// use quire_runtime::metrics::MetricsEndpoint;
/// use quire_runtime::Node;
///
/// let node = Node::builder().shards(1).start().unwrap();
/// let endpoint = MetricsEndpoint::start("127.0.0.1:9400".parse().unwrap(), node.client()).unwrap();
/// println!("curl http://{}/metrics", endpoint.local_addr());
/// ```
pub struct MetricsEndpoint {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl MetricsEndpoint {
    /// Binds `addr` (port 0: any free port) and serves `client`'s node.
    pub fn start(addr: SocketAddr, client: Client) -> std::io::Result<Self> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| std::io::Error::other(format!("metrics endpoint {addr}: {e}")))?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("metrics endpoint is not on an IP socket"))?;
        let server = Arc::new(server);
        let serving = server.clone();
        let thread = std::thread::Builder::new()
            .name("quire-metrics".into())
            .spawn(move || {
                for request in serving.incoming_requests() {
                    let (status, content_type, body) =
                        answer(&client, request.method(), request.url());
                    let response = tiny_http::Response::from_string(body)
                        .with_status_code(status)
                        .with_header(
                            tiny_http::Header::from_bytes(
                                &b"Content-Type"[..],
                                content_type.as_bytes(),
                            )
                            .expect("static header is valid"),
                        );
                    let _ = request.respond(response);
                }
            })?;
        Ok(Self {
            server,
            addr,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

fn answer(client: &Client, method: &tiny_http::Method, url: &str) -> (u16, &'static str, String) {
    if *method != tiny_http::Method::Get && *method != tiny_http::Method::Head {
        return (405, TEXT, "only GET\n".into());
    }
    let path = url.split('?').next().unwrap_or(url);
    match path {
        "/metrics" => {
            let answers = client.metrics_blocking(SCRAPE_TIMEOUT);
            let up: Vec<(String, f64)> = answers
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("{i}"), if a.is_some() { 1.0 } else { 0.0 }))
                .collect();
            let shards: Vec<_> = answers.into_iter().flatten().collect();
            let mut text = super::render(
                &shards,
                &[(
                    "quire_shards",
                    "Shards on the node.",
                    client.shard_count() as f64,
                )],
            );
            text.push_str("# HELP quire_shard_up 1 if the shard answered this scrape in time.\n");
            text.push_str("# TYPE quire_shard_up gauge\n");
            for (shard, v) in up {
                text.push_str(&format!("quire_shard_up{{shard=\"{shard}\"}} {v}\n"));
            }
            (200, PROMETHEUS, text)
        }
        "/health" => {
            let answers = client.metrics_blocking(SCRAPE_TIMEOUT);
            let mut body = String::new();
            let mut healthy = answers.len() == client.shard_count();
            for (i, a) in answers.iter().enumerate() {
                match a {
                    Some(m) => match &m.storage_failure {
                        None => body.push_str(&format!("shard {i}: ok\n")),
                        Some(reason) => {
                            healthy = false;
                            body.push_str(&format!(
                                "shard {i}: storage unavailable (commits are retried): {reason}\n"
                            ));
                        }
                    },
                    None => {
                        healthy = false;
                        body.push_str(&format!(
                            "shard {i}: no answer within {} ms\n",
                            SCRAPE_TIMEOUT.as_millis()
                        ));
                    }
                }
            }
            if healthy {
                (200, TEXT, format!("ok\n{body}"))
            } else {
                (503, TEXT, format!("unhealthy\n{body}"))
            }
        }
        "/" => (
            200,
            TEXT,
            "Quire node: GET /metrics (Prometheus text), GET /health\n".into(),
        ),
        _ => (404, TEXT, format!("no such page: {path}\n")),
    }
}
