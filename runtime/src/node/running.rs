//! A running node: its handles, and a shutdown that accounts for every
//! message.

use super::*;

/// How long shutdown waits for a shard to take a command or answer a
/// probe beyond the grace (a shard that never does has lost a wake-up or is
/// held by an agent: it is named in the log).
const SHUTDOWN_ANSWER: Duration = Duration::from_secs(5);

/// A running node. Dropping it shuts it down (with the configured grace).
pub struct Node {
    pub(super) recovery: Vec<RecoveryReport>,
    pub(super) client: Client,
    pub(super) placement: Placement,
    pub(super) threads: Vec<JoinHandle<ShardStats>>,
    pub(super) watchdog: crate::watchdog::Watchdog,
    pub(super) metrics: Option<crate::admin_endpoint::MetricsEndpoint>,
    pub(super) grace: Duration,
}

/// How a shutdown went, with every shard's final figures.
#[derive(Debug, Clone)]
pub struct ShutdownReport {
    /// Final figures, in shard order.
    pub shards: Vec<ShardStats>,
    /// True when all queued work finished within the grace period.
    pub drained: bool,
    /// How long the drain took.
    pub drain_time: Duration,
}

impl ShutdownReport {
    /// Node-wide totals.
    pub fn totals(&self) -> ShardStats {
        ShardStats::total(&self.shards)
    }

    /// Ordinary messages rejected because the node stopped.
    pub fn rejected_at_shutdown(&self) -> u64 {
        self.totals().rejected_for(Rejection::ShuttingDown)
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.totals();
        write!(
            f,
            "shutdown {} in {:.1} ms: sent {}, handled {}, rejected {} (",
            if self.drained {
                "drained"
            } else {
                "cut the drain short"
            },
            self.drain_time.as_secs_f64() * 1e3,
            t.sent,
            t.handled,
            t.rejected_total()
        )?;
        let reasons: Vec<String> = Rejection::ALL
            .iter()
            .filter(|r| t.rejected_for(**r) > 0)
            .map(|r| format!("{} {}", r.as_str(), t.rejected_for(*r)))
            .collect();
        write!(
            f,
            "{})",
            if reasons.is_empty() {
                "none".to_string()
            } else {
                reasons.join(", ")
            }
        )
    }
}

impl Node {
    /// A builder with the embedded default configuration.
    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    /// Where the metrics endpoint listens (`metrics.listen`), if it does.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().map(|m| m.local_addr())
    }

    /// A handle for sending to agents and managing them.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Where the shards run.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// What each shard found in its partition at start (empty unless the
    /// node is durable).
    pub fn recovery(&self) -> &[RecoveryReport] {
        &self.recovery
    }

    /// Stops the node: clients are refused from now on, queued work gets the
    /// configured grace period to finish, then whatever is left is rejected
    /// (and counted) and every shard's thread ends.
    pub fn shutdown(mut self) -> ShutdownReport {
        let grace = self.grace;
        self.stop(grace)
    }

    /// [`Self::shutdown`] with another grace period.
    pub fn shutdown_with_grace(mut self, grace: Duration) -> ShutdownReport {
        self.stop(grace)
    }

    fn stop(&mut self, grace: Duration) -> ShutdownReport {
        // Scrapes end first: a scrape waiting on a stopping shard would
        // only time out.
        self.metrics.take();
        let started = Instant::now();
        // A shard that takes no command within the grace is named in the
        // log and left to its threads' join: shutdown itself never waits
        // on an answer without a deadline.
        let deadline = started + grace.max(SHUTDOWN_ANSWER);
        self.client.broadcast_until(|| Command::Drain, deadline);
        let drained = self.wait_for_quiescence(started + grace);
        let drain_time = started.elapsed();
        self.client
            .broadcast_until(|| Command::Stop, Instant::now() + SHUTDOWN_ANSWER);
        // Shards may still need a nudge while they stop; the watchdog ends
        // before any shard thread is joined (its thread ids stay valid).
        self.watchdog_until_stopped();
        let shards = std::mem::take(&mut self.threads)
            .into_iter()
            .enumerate()
            .map(|(i, t)| t.join().unwrap_or_else(|_| ShardStats::new(i as u16)))
            .collect();
        ShutdownReport {
            shards,
            drained,
            drain_time,
        }
    }

    /// Keeps the watchdog running until every shard thread has finished,
    /// then stops it.
    fn watchdog_until_stopped(&mut self) {
        let told = Instant::now();
        let mut warned = false;
        while !self.threads.iter().all(JoinHandle::is_finished) {
            if !warned && told.elapsed() >= SHUTDOWN_ANSWER {
                warned = true;
                let running: Vec<usize> = (0..self.threads.len())
                    .filter(|&i| !self.threads[i].is_finished())
                    .collect();
                tracing::warn!(
                    ?running,
                    "shards still running {} s after they were told to stop; waiting for them",
                    SHUTDOWN_ANSWER.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.watchdog.stop();
    }

    /// Quiescent: every shard idle and every envelope put on the mesh taken
    /// off it, seen twice in a row with the same counts (so nothing moved
    /// between the two looks).
    fn wait_for_quiescence(&self, deadline: Instant) -> bool {
        let mut previous = None;
        loop {
            let answers = self
                .client
                .probe_until(deadline.max(Instant::now() + SHUTDOWN_ANSWER));
            let missing: Vec<usize> = (0..answers.len())
                .filter(|&i| answers[i].is_none())
                .collect();
            if !missing.is_empty() {
                tracing::warn!(
                    ?missing,
                    "shards did not answer the shutdown's drain probe in time; the drain is cut short"
                );
                return false;
            }
            let probes: Vec<crate::command::Probe> = answers.into_iter().flatten().collect();
            let out: u64 = probes.iter().map(|p| p.cross_out).sum();
            let inn: u64 = probes.iter().map(|p| p.cross_in).sum();
            let settled = probes.iter().all(|p| p.idle) && out == inn;
            if settled && previous == Some(out) {
                return true;
            }
            previous = settled.then_some(out);
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            let grace = self.grace;
            self.stop(grace);
        }
    }
}
