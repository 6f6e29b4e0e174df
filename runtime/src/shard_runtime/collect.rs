//! A shard's figures as samples, built on the shard's own thread when a
//! scrape asks (one command per shard per scrape).
//!
//! Everything here reads what the shard already keeps; the latency
//! histograms are summarised in place (a few quantile walks over the
//! recorded range), never copied.

use std::sync::atomic::Ordering;
use std::time::Instant;

use quire_shards::Rejection;

use super::Shared;
use crate::metrics::{LatencySummary, Sample, SampleKind, ShardMetrics, SummarySample};

fn counter(name: &'static str, help: &'static str, value: u64) -> Sample {
    Sample {
        name,
        help,
        kind: SampleKind::Counter,
        label: None,
        value: value as f64,
    }
}

fn gauge(name: &'static str, help: &'static str, value: f64) -> Sample {
    Sample {
        name,
        help,
        kind: SampleKind::Gauge,
        label: None,
        value,
    }
}

fn seconds_counter(name: &'static str, help: &'static str, value: f64) -> Sample {
    Sample {
        kind: SampleKind::Counter,
        ..gauge(name, help, value)
    }
}

fn labelled(mut s: Sample, key: &'static str, value: &'static str) -> Sample {
    s.label = Some((key, value.into()));
    s
}

/// Agents per shard that get series of their own (the costliest), so that
/// a shard of a million agents still gives a page of bounded size.
const AGENTS_WITH_SERIES: usize = 10;

/// Per-agent series of the shard's costliest agents (by handler time).
fn costliest_agents(samples: &mut Vec<Sample>, core: &quire_shards::ShardCore) {
    for agent in core.costliest_agents(AGENTS_WITH_SERIES) {
        let series = [
            seconds_counter(
                "quire_top_agent_busy_seconds_total",
                "Time the agent's handlers ran (the shard's costliest agents only).",
                agent.status.busy_ns as f64 / 1e9,
            ),
            gauge(
                "quire_top_agent_memory_bytes",
                "Memory of the agent's live instance, tables included (the shard's costliest agents only).",
                agent.status.memory_bytes as f64,
            ),
            gauge(
                "quire_top_agent_state_bytes",
                "Bytes of the agent's state (the shard's costliest agents only).",
                agent.state_bytes as f64,
            ),
            gauge(
                "quire_top_agent_calls_waiting",
                "Calls the agent made that wait for answers (the shard's costliest agents only).",
                agent.calls_waiting as f64,
            ),
        ];
        for mut s in series {
            s.label = Some(("agent", agent.name.clone().into()));
            samples.push(s);
        }
    }
}

/// An out and an in counter under one name, labelled `direction`.
fn both_directions(
    samples: &mut Vec<Sample>,
    name: &'static str,
    help: &'static str,
    (out, into): (u64, u64),
) {
    samples.push(labelled(counter(name, help, out), "direction", "out"));
    samples.push(labelled(counter(name, help, into), "direction", "in"));
}

fn summary(
    name: &'static str,
    help: &'static str,
    label: Option<(&'static str, &'static str)>,
    summary: LatencySummary,
) -> SummarySample {
    SummarySample {
        name,
        help,
        label,
        summary,
    }
}

/// This shard's figures now.
pub(crate) fn collect(shared: &Shared) -> ShardMetrics {
    let mut samples = Vec::with_capacity(64);
    let mut summaries = Vec::with_capacity(8);
    let core = shared.core.borrow();
    let s = core.counters();
    let shard = core.shard();

    samples.push(counter(
        "quire_messages_sent_total",
        "Ordinary messages (sends and calls) emitted on the shard, accepted or not.",
        s.sent,
    ));
    samples.push(counter(
        "quire_messages_handled_total",
        "Messages handed to an agent's handler on the shard.",
        s.handled,
    ));
    const REJECTED: &str = "Messages refused or failed on the shard, by reason.";
    for reason in Rejection::ALL {
        samples.push(labelled(
            counter(
                "quire_messages_rejected_total",
                REJECTED,
                s.rejected_for(reason),
            ),
            "reason",
            reason.as_str(),
        ));
    }
    samples.push(counter(
        "quire_replies_total",
        "Replies delivered to a waiting caller.",
        s.replies,
    ));
    samples.push(counter(
        "quire_late_replies_total",
        "Replies that arrived after their call had timed out.",
        s.late_replies,
    ));
    samples.push(counter(
        "quire_call_timeouts_total",
        "Calls that ended in a timeout.",
        s.call_timeouts,
    ));
    samples.push(counter(
        "quire_agent_panics_total",
        "Handler panics caught (the message is rejected as agent_failed).",
        s.agent_panics,
    ));
    both_directions(
        &mut samples,
        "quire_mesh_envelopes_total",
        "Envelopes between this shard and the node's other shards.",
        (s.cross_shard_out, s.cross_shard_in),
    );
    samples.push(counter(
        "quire_mesh_batches_total",
        "Batches this shard put on the mesh.",
        s.batches_out,
    ));
    both_directions(
        &mut samples,
        "quire_node_link_envelopes_total",
        "Envelopes between this shard and other nodes.",
        (s.cross_node_out, s.cross_node_in),
    );
    const DURABLE: &str = "Durable messages, by what became of them.";
    for (event, value) in [
        ("accepted", s.durable_accepted),
        ("duplicate", s.durable_duplicates),
        ("redelivered", s.durable_redelivered),
    ] {
        samples.push(labelled(
            counter("quire_durable_messages_total", DURABLE, value),
            "event",
            event,
        ));
    }
    samples.push(gauge(
        "quire_agents",
        "Agents registered on the shard.",
        core.agent_count() as f64,
    ));
    samples.push(gauge(
        "quire_queued_messages",
        "Messages waiting in the shard's mailboxes.",
        core.queued() as f64,
    ));
    costliest_agents(&mut samples, &core);
    let fullest = core.fullest_mailbox().map_or(0, |(_, n)| n);
    samples.push(gauge(
        "quire_mailbox_fullest_messages",
        "Messages waiting in the shard's fullest mailbox (one agent's).",
        fullest as f64,
    ));
    samples.push(gauge(
        "quire_mailbox_capacity_messages",
        "Messages one mailbox takes before refusing with queue_full (queues.mailbox_capacity).",
        core.config().mailbox_capacity as f64,
    ));
    samples.push(gauge(
        "quire_pending_calls",
        "Calls waiting for replies on the shard (agents' and clients').",
        core.pending_calls() as f64,
    ));
    summaries.push(summary(
        "quire_routing_latency_seconds",
        "Call round trips (call to reply) completed on the shard: local within the node \
         (agents' calls sampled 1 in 16, clients' all), remote to other nodes (sampled).",
        Some(("scope", "local")),
        LatencySummary::of_ns(&s.call_latency_ns),
    ));
    summaries.push(summary(
        "quire_routing_latency_seconds",
        "",
        Some(("scope", "remote")),
        LatencySummary::of_ns(&s.remote_call_latency_ns),
    ));
    summaries.push(summary(
        "quire_message_processing_seconds",
        "Time an agent's handler took for one message (1 in 16 timed).",
        None,
        LatencySummary::of_ns(&s.handle_ns),
    ));
    drop(core);

    samples.push(gauge(
        "quire_mesh_backlog_envelopes",
        "Envelopes waiting in this shard's outboxes for the mesh.",
        shared.mesh_backlog() as f64,
    ));

    let wasm = shared.wasm().stats();
    for (name, help, value) in [
        (
            "quire_wasm_activations_total",
            "WebAssembly agents given an instance on a message.",
            wasm.activations,
        ),
        (
            "quire_wasm_pool_hits_total",
            "Activations served from a pre-warmed pool.",
            wasm.pool_hits,
        ),
        (
            "quire_wasm_deactivations_total",
            "Idle WebAssembly agents that gave their instance up.",
            wasm.deactivations,
        ),
        (
            "quire_wasm_instances_created_total",
            "WebAssembly instances created.",
            wasm.instances_created,
        ),
        (
            "quire_wasm_failures_total",
            "WebAssembly messages failed by a limit or a trap.",
            wasm.failures,
        ),
        (
            "quire_wasm_quarantines_total",
            "WebAssembly agents quarantined.",
            wasm.quarantines,
        ),
        (
            "quire_wasm_preemptions_total",
            "WebAssembly handlers stopped while running, over their time limit.",
            wasm.preemptions,
        ),
        (
            "quire_wasm_throttles_total",
            "WebAssembly agents throttled for taking more than their share of a shard.",
            wasm.throttles,
        ),
        (
            "quire_wasm_answers_skipped_total",
            "Answers that came to WebAssembly agents while quarantined or throttled, not handed to them.",
            wasm.answers_skipped,
        ),
    ] {
        samples.push(counter(name, help, value));
    }
    samples.push(gauge(
        "quire_wasm_live_instances",
        "Live WebAssembly instances (active agents' and pools').",
        wasm.live_instances as f64,
    ));
    samples.push(gauge(
        "quire_agent_memory_bytes",
        "Memory (linear memories and tables) of the shard's active WebAssembly agents.",
        wasm.agent_memory_bytes as f64,
    ));
    summaries.push(summary(
        "quire_agent_startup_seconds",
        "Time to activate a WebAssembly agent (take or make its instance).",
        None,
        LatencySummary::of_ns(&wasm.activation_ns),
    ));

    if let Some(storage) = shared.storage() {
        let (commits, failures, latency) = storage.commit_figures();
        samples.push(counter(
            "quire_commits_total",
            "Commits of the shard's journal to its partition.",
            commits,
        ));
        samples.push(counter(
            "quire_commit_failures_total",
            "Commits that failed.",
            failures,
        ));
        samples.push(gauge(
            "quire_storage_available",
            "1 while the shard's partition takes commits, 0 from a failed commit until a retry succeeds.",
            if storage.failure().is_some() { 0.0 } else { 1.0 },
        ));
        samples.push(gauge(
            "quire_replies_held",
            "Replies to clients waiting for the commit of the writes they report (output commit).",
            shared.core.borrow().held_replies() as f64,
        ));
        summaries.push(summary(
            "quire_commit_seconds",
            "Time per commit, fsync included.",
            None,
            latency,
        ));
    }

    if let Some(net) = shared.net() {
        const MEMBERS: &str =
            "Other members of the cluster as this shard routes to them, by liveness.";
        let view = net.view.borrow();
        for state in [
            crate::cluster::MemberState::Alive,
            crate::cluster::MemberState::Suspect,
            crate::cluster::MemberState::Down,
        ] {
            let n = view.members().iter().filter(|m| m.state == state).count();
            samples.push(labelled(
                gauge("quire_cluster_members", MEMBERS, n as f64),
                "state",
                state.as_str(),
            ));
        }
    }
    if let Some(joins) = shared.net().and_then(|n| n.gossip_joins.borrow().clone()) {
        summaries.push(summary(
            "quire_gossip_join_seconds",
            "Gossip convergence for joins: from a member's start to this node seeing it up \
             (wall clocks; on the shard that runs the membership).",
            None,
            LatencySummary::of_ns(&joins.borrow()),
        ));
    }

    let reactor = &shared.pulse.counters;
    samples.push(counter(
        "quire_reactor_stalls_total",
        "Times the shard's reactor ran one task past metrics.stall_threshold_ms.",
        reactor.stalls.load(Ordering::Relaxed),
    ));
    samples.push(seconds_counter(
        "quire_reactor_stall_seconds_total",
        "Time the shard's reactor spent in counted stalls.",
        reactor.stall_ns.load(Ordering::Relaxed) as f64 / 1e9,
    ));
    samples.push(gauge(
        "quire_reactor_max_stall_seconds",
        "Longest counted stall of the shard's reactor.",
        reactor.max_stall_ns.load(Ordering::Relaxed) as f64 / 1e9,
    ));
    samples.push(counter(
        "quire_watchdog_nudges_total",
        "Times the watchdog woke the shard's reactor from a sleep past its timers.",
        reactor.nudges.load(Ordering::Relaxed),
    ));
    samples.push(counter(
        "quire_reactor_rescues_total",
        "Times the shard's heartbeat found work a lost wake-up had left waiting a whole heartbeat (a batch a peer rang for, a client command) and woke the shard for it.",
        reactor.rescues.load(Ordering::Relaxed),
    ));
    samples.push(counter(
        "quire_reactor_oversleeps_total",
        "Times the shard's reactor slept over 5 ms past the timer it was given (a lost wake-up, or a host that held the thread).",
        reactor.oversleeps.load(Ordering::Relaxed),
    ));
    samples.push(counter(
        "quire_reactor_missed_wakeups_total",
        "Times a signal ended a reactor sleep while its rings held completions whose wake-up never reached it (lost wake-ups).",
        reactor.missed_wakeups.load(Ordering::Relaxed),
    ));
    samples.push(counter(
        "quire_host_pauses_total",
        "Times the whole process was held up past 25 ms (hypervisor steal, a stopped process), seen by the watchdog; not counted as stalls.",
        reactor.host_pauses.load(Ordering::Relaxed),
    ));
    let now = Instant::now();
    let busy = shared.reactor_busy();
    samples.push(seconds_counter(
        "quire_shard_busy_seconds_total",
        "Time the shard's reactor spent running tasks (a spinning dispatcher included).",
        busy.as_secs_f64(),
    ));
    samples.push(gauge(
        "quire_shard_uptime_seconds",
        "Time since the shard started.",
        now.duration_since(shared.started).as_secs_f64(),
    ));
    let (since, busy_then) = shared
        .last_scrape
        .replace(Some((now, busy)))
        .unwrap_or((shared.started, std::time::Duration::ZERO));
    let wall = now.duration_since(since).as_secs_f64();
    let utilisation = if wall > 0.0 {
        (busy.saturating_sub(busy_then).as_secs_f64() / wall).min(1.0)
    } else {
        0.0
    };
    samples.push(gauge(
        "quire_shard_utilisation",
        "Share of the time since the previous scrape the reactor spent running tasks (0-1).",
        utilisation,
    ));
    ShardMetrics {
        shard,
        samples,
        summaries,
        storage_failure: shared
            .storage()
            .and_then(|s| s.failure())
            .map(|r| r.to_string()),
    }
}
