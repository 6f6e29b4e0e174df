//! What an operator runs against a node from outside it: profiles and
//! diagnosis over the node's admin endpoint (`quire profile`, `quire
//! diagnose`), and the offline checks of a config file or a data directory
//! (`quire config check`, `quire storage check`).

mod checks;
pub mod diagnose;
mod scrape;

use std::time::{Duration, Instant};

pub use checks::{check_config, check_storage};
pub use diagnose::{diagnose, Finding, HostLoad, Observations, Severity};
pub use scrape::{Scrape, ScrapeError, ScrapedSample};

use crate::profile::{CpuProfile, MemoryProfile};

/// Why an operator command could not get its answer.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The endpoint could not be reached or read.
    #[error("cannot reach the node's admin endpoint at {addr} ({problem}); is the node running with metrics on (--metrics ADDR)?")]
    Unreachable {
        /// The endpoint.
        addr: String,
        /// What the HTTP client said.
        problem: String,
    },
    /// It answered with an error.
    #[error("the node answered {status} for {path}: {body}")]
    Refused {
        /// The page asked for.
        path: String,
        /// The HTTP status.
        status: u16,
        /// Its text.
        body: String,
    },
    /// It answered something that is not what was asked for.
    #[error("the node's answer to {path} is not readable: {problem}")]
    Unreadable {
        /// The page asked for.
        path: String,
        /// What is wrong.
        problem: String,
    },
}

/// `GET http://addr{path}`, its body; `wait` is how long the node may take.
pub fn http_get(addr: &str, path: &str, wait: Duration) -> Result<String, OpsError> {
    let unreachable = |problem: String| OpsError::Unreachable {
        addr: addr.to_string(),
        problem,
    };
    let mut response = ureq::get(format!("http://{addr}{path}"))
        .config()
        .http_status_as_error(false)
        .timeout_global(Some(wait + Duration::from_secs(5)))
        .build()
        .call()
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_string()
        .map_err(|e| unreachable(e.to_string()))?;
    if status != 200 {
        return Err(OpsError::Refused {
            path: path.to_string(),
            status,
            body: body.trim().to_string(),
        });
    }
    Ok(body)
}

fn decode<T: serde::de::DeserializeOwned>(path: &str, body: &str) -> Result<T, OpsError> {
    serde_json::from_str(body).map_err(|e| OpsError::Unreadable {
        path: path.to_string(),
        problem: e.to_string(),
    })
}

/// A CPU profile of the node whose admin endpoint is `addr`.
pub fn profile_cpu(addr: &str, window: Duration, hz: u32) -> Result<CpuProfile, OpsError> {
    let path = format!("/profile/cpu?seconds={}&hz={hz}", window.as_secs_f64());
    decode(&path, &http_get(addr, &path, window)?)
}

/// A memory profile of the node whose admin endpoint is `addr`.
pub fn profile_memory(addr: &str, window: Duration) -> Result<MemoryProfile, OpsError> {
    let path = format!("/profile/memory?seconds={}", window.as_secs_f64());
    decode(&path, &http_get(addr, &path, window)?)
}

/// The node's `/metrics` page, parsed.
pub fn scrape(addr: &str) -> Result<Scrape, OpsError> {
    let body = http_get(addr, "/metrics", Duration::from_secs(2))?;
    Scrape::parse(&body).map_err(|e| OpsError::Unreadable {
        path: "/metrics".into(),
        problem: e.to_string(),
    })
}

/// This host's CPU counters: (steal, total) jiffies from /proc/stat.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice]:
    // guest time is already counted in user.
    let total = v.iter().take(8).sum();
    Some((*v.get(7)?, total))
}

/// A diagnosis of the node at `addr` over `window`: a scrape, a CPU profile
/// of the window, a scrape, and this host's load (when the node runs on
/// this host, that is the node's).
pub fn diagnose_node(addr: &str, window: Duration) -> Result<Vec<Finding>, OpsError> {
    let before = scrape(addr)?;
    let jiffies_before = cpu_jiffies();
    let started = Instant::now();
    let profile = profile_cpu(addr, window, 499);
    let after = scrape(addr)?;
    let seconds = started.elapsed().as_secs_f64();
    let host = match (jiffies_before, cpu_jiffies()) {
        (Some((s0, t0)), Some((s1, t1))) if t1 > t0 => Some(HostLoad {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|l| l.split_whitespace().next()?.parse().ok())
                .unwrap_or(0.0),
            steal_share: (s1 - s0) as f64 / (t1 - t0) as f64,
        }),
        _ => None,
    };
    let profile = match profile {
        Ok(p) => Some(p),
        // An endpoint without profiles still gets the rules on its metrics.
        Err(OpsError::Refused { status: 404, .. }) => None,
        Err(e) => return Err(e),
    };
    Ok(diagnose(&Observations {
        before: &before,
        after: &after,
        seconds,
        profile: profile.as_ref(),
        host,
    }))
}
