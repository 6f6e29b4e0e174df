//! One client frame handled on the shard that accepted its connection:
//! sends and calls into the core, durable sends, deploys and listings in
//! tasks of their own, each answer queued on the connection.

use std::rc::Rc;
use std::time::Duration;

use quire_shards::{
    owning_shard, AgentId, CallError, CallFailure, Envelope, SendOptions, ShardStats,
};

use super::client_lifecycle::{self as lifecycle, agent_row};
use super::deploy_settings::wasm_options;
use super::io::Outgoing;
use super::unanswered::Unanswered;
use super::NetShard;
use crate::client::DurableError;
use crate::cluster::MemberState;
use crate::protocol::{
    core_priority, AgentLocation, AgentRow, ErrorCode, Frame, MemberRow, StatsRow,
};
use crate::shard_cell::ShardCell;
use crate::wasm_agents::WasmOptions;

/// A call with no timeout of its own gets this one.
pub(super) const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The waiter of a request admitted into the core: queues its answer on the
/// connection (`ok` of the reply, or the error), counted as pending until then.
pub(super) fn answer_waiter(
    out: &Rc<Outgoing>,
    pending: &Rc<Unanswered>,
    req: u64,
    timeout_message: String,
    ok: impl FnOnce(Envelope) -> Frame + 'static,
) -> quire_shards::ClientWaiter {
    let (answer_to, waiting) = (out.clone(), pending.clone());
    waiting.owe();
    Box::new(move |result: Result<Envelope, CallFailure>| {
        answer_to.push(&match result {
            Ok(reply) => ok(reply),
            Err(failure) => match failure.error {
                CallError::Timeout => error(req, ErrorCode::Timeout, timeout_message),
                CallError::Rejected(reason) => match failure.detail {
                    Some(detail) => rejected_saying(req, reason, &detail),
                    None => rejected(req, reason),
                },
            },
        });
        waiting.answered();
    })
}

pub(super) fn rejected(req: u64, reason: quire_shards::Rejection) -> Frame {
    Frame::Error {
        req,
        code: ErrorCode::Rejected,
        message: reason.to_string(),
        detail: Some(reason.as_str().to_string()),
    }
}

/// A rejection whose handler failed: `message` is what the node saw (a
/// sentence of its own, e.g. "the agent trapped: unreachable").
pub(super) fn rejected_saying(req: u64, reason: quire_shards::Rejection, detail: &str) -> Frame {
    Frame::Error {
        req,
        code: ErrorCode::Rejected,
        message: detail.to_string(),
        detail: Some(reason.as_str().to_string()),
    }
}

pub(super) fn error(req: u64, code: ErrorCode, message: impl Into<String>) -> Frame {
    Frame::Error {
        req,
        code,
        message: message.into(),
        detail: None,
    }
}

/// Handles one frame; `Err` closes the connection with that error.
pub(super) fn handle(
    shared: &Rc<ShardCell>,
    net: &Rc<NetShard>,
    out: &Rc<Outgoing>,
    pending: &Rc<Unanswered>,
    frame: Frame,
) -> Result<(), (ErrorCode, String)> {
    match frame {
        Frame::Send {
            req,
            to,
            payload,
            priority,
            ttl_ms,
            durable_key,
        } => {
            let id = AgentId::new(&to).map_err(|e| (ErrorCode::BadFrame, e.to_string()))?;
            let opts = SendOptions {
                priority: core_priority(priority),
                ttl: ttl_ms.map(Duration::from_millis),
                conversation: None,
            };
            if let Some(key) = durable_key {
                if !shared.durable {
                    out.push(&error(
                        req,
                        ErrorCode::Rejected,
                        "this node keeps nothing on disk (storage.durability = \"none\"): \
                         a durable SEND cannot be acknowledged as durable",
                    ));
                } else {
                    send_durable(net, out, pending, req, id, payload, opts, &key);
                }
                return Ok(());
            }
            if req == 0 {
                // Fire and forget: nothing is answered, whatever happens.
                let _ = shared.core.borrow_mut().admit_client(id, payload, opts);
                return Ok(());
            }
            // Answered once the message is queued at its agent, wherever that
            // lives (this shard, another, another node), or refused there.
            let waiter = answer_waiter(
                out,
                pending,
                req,
                format!(
                    "not confirmed queued within {} ms",
                    DEFAULT_CALL_TIMEOUT.as_millis()
                ),
                move |confirmation| Frame::Ok {
                    req,
                    value: confirmation.in_reply_to.map(|id| id.to_string()),
                },
            );
            let _ = shared.core.borrow_mut().admit_client_confirmed(
                id,
                payload,
                opts,
                DEFAULT_CALL_TIMEOUT,
                waiter,
            );
        }
        Frame::Call {
            req,
            to,
            payload,
            priority,
            timeout_ms,
        } => {
            let id = AgentId::new(&to).map_err(|e| (ErrorCode::BadFrame, e.to_string()))?;
            let timeout = if timeout_ms == 0 {
                DEFAULT_CALL_TIMEOUT
            } else {
                Duration::from_millis(timeout_ms)
            };
            let opts = SendOptions {
                priority: core_priority(priority),
                ttl: None,
                conversation: None,
            };
            let waiter = answer_waiter(
                out,
                pending,
                req,
                format!("no reply within {} ms", timeout.as_millis()),
                move |reply| Frame::Reply {
                    req,
                    payload: reply.payload,
                },
            );
            let _ = shared
                .core
                .borrow_mut()
                .admit_client_call(id, payload, opts, timeout, waiter);
        }
        Frame::Deploy {
            req,
            name,
            module,
            options,
        } => {
            if let Some(refusal) = owner_elsewhere(net, &name, req) {
                out.push(&refusal);
                return Ok(());
            }
            let opts = match wasm_options(&net.client.wasm_defaults(), &options) {
                Ok(opts) => opts,
                Err(problem) => {
                    out.push(&error(req, ErrorCode::DeployFailed, problem));
                    return Ok(());
                }
            };
            spawn_admin(out, pending, {
                let client = net.client.clone();
                async move {
                    let result = if name.ends_with('*') {
                        client
                            .deploy_wasm_pattern(&name, module.to_vec(), opts)
                            .await
                    } else {
                        match AgentId::new(&name) {
                            Ok(id) => client.deploy_wasm(id, module.to_vec(), opts).await,
                            Err(e) => {
                                return error(req, ErrorCode::DeployFailed, e.to_string());
                            }
                        }
                    };
                    match result {
                        Ok(hash) => Frame::Ok {
                            req,
                            value: Some(hash.to_string()),
                        },
                        Err(e) => error(req, ErrorCode::DeployFailed, e.to_string()),
                    }
                }
            });
        }
        Frame::DeployMany { req, names, module } => {
            // Names another member owns fail naming it; the rest are
            // deployed here. Failures are answered in the order given.
            let mut failed: Vec<(usize, String, String)> = Vec::new();
            let mut here = Vec::with_capacity(names.len());
            for (i, name) in names.into_iter().enumerate() {
                match (owner_elsewhere(net, &name, req), AgentId::new(&name)) {
                    (Some(Frame::Error { message, .. }), _) => failed.push((i, name, message)),
                    (_, Err(e)) => failed.push((i, name, e.to_string())),
                    (_, Ok(_)) if name.ends_with('*') => {
                        failed.push((i, name, "patterns are deployed one by one (DEPLOY)".into()))
                    }
                    (_, Ok(id)) => here.push((i, id)),
                }
            }
            spawn_admin(out, pending, {
                let client = net.client.clone();
                async move {
                    let (positions, ids): (Vec<usize>, Vec<AgentId>) = here.into_iter().unzip();
                    let mut hash = String::new();
                    if !ids.is_empty() {
                        let names: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
                        match client
                            .deploy_wasm_many(ids, module.to_vec(), WasmOptions::default())
                            .await
                        {
                            Ok((h, results)) => {
                                hash = h.to_string();
                                for ((i, name), r) in positions.into_iter().zip(names).zip(results)
                                {
                                    if let Err(e) = r {
                                        failed.push((i, name, e.to_string()));
                                    }
                                }
                            }
                            Err(e) => return error(req, ErrorCode::DeployFailed, e.to_string()),
                        }
                    }
                    failed.sort_by_key(|f| f.0);
                    Frame::Deployed {
                        req,
                        hash,
                        failed: failed.into_iter().map(|(_, n, r)| (n, r)).collect(),
                    }
                }
            });
        }
        Frame::Undeploy { req, name } => {
            if let Some(refusal) = owner_elsewhere(net, &name, req) {
                out.push(&refusal);
                return Ok(());
            }
            spawn_admin(out, pending, {
                let client = net.client.clone();
                async move {
                    if name.ends_with('*') {
                        return match client.undeploy_wasm_pattern(&name).await {
                            Ok(true) => Frame::Ok { req, value: None },
                            Ok(false) => {
                                error(req, ErrorCode::NotFound, format!("no pattern {name}"))
                            }
                            Err(e) => error(req, ErrorCode::DeployFailed, e.to_string()),
                        };
                    }
                    let id = match AgentId::new(&name) {
                        Ok(id) => id,
                        Err(e) => return error(req, ErrorCode::NotFound, e.to_string()),
                    };
                    match client.undeploy(id).await {
                        Ok(_) => Frame::Ok { req, value: None },
                        Err(e) => error(req, ErrorCode::NotFound, e.to_string()),
                    }
                }
            });
        }
        Frame::ListAgents { req } => {
            spawn_admin(out, pending, {
                let client = net.client.clone();
                async move {
                    // No last error in listings: readers older than
                    // revision 1.3 take at most 12 fields a row
                    // (AGENT_INFO, which they cannot send, carries it).
                    let agents = client
                        .agents()
                        .await
                        .iter()
                        .map(|a| AgentRow {
                            last_error: None,
                            ..agent_row(a)
                        })
                        .collect();
                    Frame::Agents { req, agents }
                }
            });
        }
        Frame::AgentInfo { req, name } => lifecycle::info(net, out, pending, req, name),
        Frame::Reload {
            req,
            name,
            module,
            options,
        } => lifecycle::reload(net, out, pending, req, name, module, &options),
        Frame::Stop { req, name } => lifecycle::set_stopped(net, out, pending, req, name, true),
        Frame::Start { req, name } => lifecycle::set_stopped(net, out, pending, req, name, false),
        Frame::ListPatterns { req } => {
            spawn_admin(out, pending, {
                let client = net.client.clone();
                async move {
                    Frame::Patterns {
                        req,
                        patterns: client.patterns().await,
                    }
                }
            });
        }
        Frame::Stats { req } => {
            spawn_admin(out, pending, {
                let client = net.client.clone();
                async move {
                    let shards = client.stats().await.iter().map(stats_row).collect();
                    Frame::StatsReply { req, shards }
                }
            });
        }
        Frame::Where { req, name } => locate(net, out, pending, req, name),
        Frame::Cluster { req } => {
            let view = net.view.borrow();
            let mut members = vec![MemberRow {
                name: view.me().to_string(),
                addr: net.settings.listen.to_string(),
                state: MemberState::Alive.as_str().to_string(),
                shards: u64::from(net.settings.shards),
            }];
            members.extend(view.members().iter().map(|m| MemberRow {
                name: m.name.clone(),
                addr: m.addr.to_string(),
                state: m.state.as_str().to_string(),
                shards: u64::from(m.shards),
            }));
            out.push(&Frame::Members { req, members });
        }
        Frame::Ping { req } => {
            out.push(&Frame::Pong { req });
        }
        other => {
            return Err((
                ErrorCode::UnknownFrame,
                format!("a client may not send {}", other.name()),
            ))
        }
    }
    Ok(())
}

/// A `NOT_OWNER` answer when another node owns `name` (patterns are
/// deployed node by node, so they are never redirected).
pub(super) fn owner_elsewhere(net: &NetShard, name: &str, req: u64) -> Option<Frame> {
    if name.ends_with('*') || !net.settings.clustered() {
        return None;
    }
    let view = net.view.borrow();
    let owner = view.owner_of(name)?;
    Some(Frame::Error {
        req,
        code: ErrorCode::NotOwner,
        message: format!(
            "agent {name} belongs to node {} at {}",
            owner.name, owner.addr
        ),
        detail: Some(owner.addr.to_string()),
    })
}

/// A durable SEND: taken by the agent's owning shard (through the node's
/// client, so from any connection), answered `OK` once committed there.
#[allow(clippy::too_many_arguments)]
pub(super) fn send_durable(
    net: &Rc<NetShard>,
    out: &Rc<Outgoing>,
    pending: &Rc<Unanswered>,
    req: u64,
    to: AgentId,
    payload: bytes::Bytes,
    opts: SendOptions,
    key: &str,
) {
    if req == 0 {
        out.push(&error(
            0,
            ErrorCode::BadFrame,
            "a durable SEND needs req > 0: its acknowledgement is the point",
        ));
        return;
    }
    let dedup = durable_key_id(key);
    spawn_admin(out, pending, {
        let client = net.client.clone();
        async move {
            match client.send_durable_with(to, payload, opts, dedup).await {
                Ok(receipt) => Frame::Ok {
                    req,
                    value: Some(match receipt.id {
                        Some(id) if !receipt.duplicate => id.to_string(),
                        _ => "duplicate".into(),
                    }),
                },
                Err(DurableError::Rejected(reason)) => rejected(req, reason),
                Err(DurableError::Storage(detail)) => Frame::Error {
                    req,
                    code: ErrorCode::Rejected,
                    message: format!("{}: {detail}", quire_shards::Rejection::StorageUnavailable),
                    detail: Some(quire_shards::Rejection::StorageUnavailable.as_str().into()),
                },
            }
        }
    });
}

/// The de-duplication id of a client's idempotency key: 64 bits of its
/// BLAKE3 hash (keys are the client's; a collision needs ~2^32 keys alive
/// in one shard's window at once).
pub(crate) fn durable_key_id(key: &str) -> u64 {
    let hash = blake3::hash(key.as_bytes());
    u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// Runs an admin request in a task of its own and queues its answer.
pub(super) fn spawn_admin(
    out: &Rc<Outgoing>,
    pending: &Rc<Unanswered>,
    work: impl std::future::Future<Output = Frame> + 'static,
) {
    let out = out.clone();
    let pending = pending.clone();
    pending.owe();
    glommio::spawn_local(async move {
        let answer = work.await;
        out.push(&answer);
        pending.answered();
    })
    .detach();
}

/// Answers `WHERE`: the owner by placement over the members this shard
/// sees; on this node, whether the agent is there (asked of the shards, so
/// in a task of its own).
fn locate(net: &NetShard, out: &Rc<Outgoing>, pending: &Rc<Unanswered>, req: u64, name: String) {
    if let Some(owner) = net.view.borrow().owner_of(&name) {
        out.push(&Frame::Location {
            req,
            location: AgentLocation {
                node: owner.name.clone(),
                addr: owner.addr.to_string(),
                state: owner.state.as_str().to_string(),
                shard: u64::from(owning_shard(&name, usize::from(owner.shards))),
                deployed: None,
            },
        });
        return;
    }
    let location = AgentLocation {
        node: net.settings.node_name.clone(),
        addr: net.settings.listen.to_string(),
        state: MemberState::Alive.as_str().to_string(),
        shard: u64::from(owning_shard(&name, usize::from(net.settings.shards))),
        deployed: Some(false),
    };
    spawn_admin(out, pending, {
        let client = net.client.clone();
        async move {
            let here = client.agents().await.iter().any(|a| a.name == name);
            Frame::Location {
                req,
                location: AgentLocation {
                    deployed: Some(here),
                    ..location
                },
            }
        }
    });
}

/// A shard's counters by name, as `STATS_REPLY` carries them.
pub(crate) fn stats_row(s: &ShardStats) -> StatsRow {
    let mut row: StatsRow = vec![
        ("shard".into(), u64::from(s.shard)),
        ("agents".into(), s.agents),
        ("queued".into(), s.queued),
        ("sent".into(), s.sent),
        ("handled".into(), s.handled),
        ("replies".into(), s.replies),
        ("late_replies".into(), s.late_replies),
        ("call_timeouts".into(), s.call_timeouts),
        ("rejected".into(), s.rejected_total()),
        ("cross_shard_out".into(), s.cross_shard_out),
        ("cross_shard_in".into(), s.cross_shard_in),
        ("cross_node_out".into(), s.cross_node_out),
        ("cross_node_in".into(), s.cross_node_in),
        ("durable_accepted".into(), s.durable_accepted),
        ("commits".into(), s.commits),
        (
            "call_p50_ns".into(),
            s.call_latency_ns.value_at_quantile(0.5),
        ),
        (
            "call_p99_ns".into(),
            s.call_latency_ns.value_at_quantile(0.99),
        ),
    ];
    for reason in quire_shards::Rejection::ALL {
        let n = s.rejected_for(reason);
        if n > 0 {
            row.push((format!("rejected_{}", reason.as_str()), n));
        }
    }
    row
}
