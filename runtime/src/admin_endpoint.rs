//! The admin HTTP endpoint: `GET /metrics` (Prometheus text) and
//! `GET /health`, served by a thread of its own so that a scrape never runs
//! on a shard. A scrape sends each shard one command and waits at most
//! [`SCRAPE_TIMEOUT`] for the answers; a shard that does not answer is
//! reported down (`quire_shard_up 0`) and makes `/health` answer 503.
//! `GET /profile/cpu?seconds=S&hz=H` and `GET /profile/memory?seconds=S`
//! answer JSON profiles (see [`crate::profile`]) from a thread of their
//! own, so scrapes go on while a profile samples.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::client::Client;
use crate::metrics::SCRAPE_TIMEOUT;
use crate::profile::Profiler;

/// A running endpoint; stops when dropped.
///
/// ```no_run
/// use quire_runtime::admin_endpoint::MetricsEndpoint;
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
        Self::serve(addr, client, None)
    }

    /// As [`Self::start`], with the node's profiles.
    pub(crate) fn with_profiler(
        addr: SocketAddr,
        client: Client,
        profiler: Profiler,
    ) -> std::io::Result<Self> {
        Self::serve(addr, client, Some(profiler))
    }

    fn serve(
        addr: SocketAddr,
        client: Client,
        profiler: Option<Profiler>,
    ) -> std::io::Result<Self> {
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
                    if request.url().starts_with("/profile/") {
                        let Some(profiler) = profiler.clone() else {
                            respond(
                                request,
                                (404, TEXT, "no profiles on this endpoint\n".into()),
                            );
                            continue;
                        };
                        let spawned = std::thread::Builder::new()
                            .name("quire-profile".into())
                            .spawn(move || {
                                let answer = profile(&profiler, request.url());
                                respond(request, answer);
                            });
                        if let Err(e) = spawned {
                            tracing::warn!("cannot start a profile thread: {e}");
                        }
                        continue;
                    }
                    let answer = answer(&client, request.method(), request.url());
                    respond(request, answer);
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

fn respond(request: tiny_http::Request, (status, content_type, body): (u16, &str, String)) {
    let response = tiny_http::Response::from_string(body)
        .with_status_code(status)
        .with_header(
            tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes())
                .expect("static header is valid"),
        );
    let _ = request.respond(response);
}

/// A query parameter of `url` as a number, `default` when absent.
fn query_number(url: &str, key: &str, default: f64) -> Result<f64, String> {
    let Some((_, query)) = url.split_once('?') else {
        return Ok(default);
    };
    match query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    {
        None => Ok(default),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(|| format!("{key}={v} is not a positive number\n")),
    }
}

fn profile(profiler: &Profiler, url: &str) -> (u16, &'static str, String) {
    let path = url.split('?').next().unwrap_or(url);
    let window = match query_number(url, "seconds", 5.0) {
        Ok(s) if s <= crate::profile::MAX_WINDOW.as_secs_f64() => Duration::from_secs_f64(s),
        Ok(s) => {
            return (
                400,
                TEXT,
                format!(
                    "seconds={s} is over the {} s a profile may take\n",
                    crate::profile::MAX_WINDOW.as_secs()
                ),
            )
        }
        Err(e) => return (400, TEXT, e),
    };
    let json = match path {
        "/profile/cpu" => {
            let hz = match query_number(url, "hz", 499.0) {
                Ok(hz) if hz <= 10_000.0 => hz as u32,
                Ok(hz) => return (400, TEXT, format!("hz={hz} is over 10000\n")),
                Err(e) => return (400, TEXT, e),
            };
            serde_json::to_string(&profiler.cpu(window, hz.max(1)))
        }
        "/profile/memory" => serde_json::to_string(&profiler.memory(window)),
        _ => {
            return (
                404,
                TEXT,
                format!("no such profile: {path} (cpu, memory)\n"),
            )
        }
    };
    match json {
        Ok(body) => (200, JSON, body),
        Err(e) => (500, TEXT, format!("cannot encode the profile: {e}\n")),
    }
}

const JSON: &str = "application/json";
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
            let mut text = crate::metrics::render(
                &shards,
                &[
                    (
                        "quire_shards",
                        "Shards on the node.",
                        client.shard_count() as f64,
                    ),
                    (
                        "quire_log_lines_dropped_total",
                        "Log lines dropped because the log writer was behind (no shard waits on the log).",
                        crate::logging::lines_dropped() as f64,
                    ),
                ],
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
            "Quire node: GET /metrics (Prometheus text), GET /health, \
             GET /profile/cpu?seconds=S&hz=H, GET /profile/memory?seconds=S (JSON)\n"
                .into(),
        ),
        _ => (404, TEXT, format!("no such page: {path}\n")),
    }
}
