//! Client frames about one agent's life: `RELOAD` (hot, state and queue
//! kept), `STOP` / `START`, and `AGENT_INFO` (its row, as `LIST_AGENTS`
//! gives it); each through the node's [`crate::Client`] in a task of its
//! own, answered on the connection. A name another member owns is answered
//! `NOT_OWNER` with that member's address, as for `DEPLOY`.

use std::rc::Rc;

use quire_shards::{AgentId, AgentInfo, AgentState, RegisterError};

use super::client_frames::{error, owner_elsewhere, spawn_admin};
use super::deploy_settings::wasm_options;
use super::io::Outgoing;
use super::unanswered::Unanswered;
use super::NetShard;
use crate::client::DeployError;
use crate::protocol::{AgentRow, DeployOptions, ErrorCode, Frame};

/// `RELOAD`: the agent's new module, answered `OK` with its hash.
#[allow(clippy::too_many_arguments)]
pub(super) fn reload(
    net: &NetShard,
    out: &Rc<Outgoing>,
    pending: &Rc<Unanswered>,
    req: u64,
    name: String,
    module: bytes::Bytes,
    options: &DeployOptions,
) {
    let Some(id) = agent_here(net, out, req, &name) else {
        return;
    };
    let opts = match wasm_options(&net.client.wasm_defaults(), options) {
        Ok(opts) => opts,
        Err(problem) => {
            out.push(&error(req, ErrorCode::DeployFailed, problem));
            return;
        }
    };
    spawn_admin(out, pending, {
        let client = net.client.clone();
        async move {
            match client.reload_wasm(id, module.to_vec(), opts).await {
                Ok(hash) => Frame::Ok {
                    req,
                    value: Some(hash.to_string()),
                },
                Err(DeployError::Register(RegisterError::NotRegistered(id))) => not_found(req, &id),
                Err(e) => error(req, ErrorCode::DeployFailed, e.to_string()),
            }
        }
    });
}

/// `STOP` (`stopped`) or `START`, answered `OK`.
pub(super) fn set_stopped(
    net: &NetShard,
    out: &Rc<Outgoing>,
    pending: &Rc<Unanswered>,
    req: u64,
    name: String,
    stopped: bool,
) {
    let Some(id) = agent_here(net, out, req, &name) else {
        return;
    };
    spawn_admin(out, pending, {
        let client = net.client.clone();
        async move {
            let result = if stopped {
                client.stop_agent(id).await
            } else {
                client.start_agent(id).await
            };
            match result {
                Ok(()) => Frame::Ok { req, value: None },
                Err(RegisterError::NotRegistered(id)) => not_found(req, &id),
                Err(e) => error(req, ErrorCode::Rejected, e.to_string()),
            }
        }
    });
}

/// `AGENT_INFO`: the agent's row in an `AGENTS` frame of one.
pub(super) fn info(
    net: &NetShard,
    out: &Rc<Outgoing>,
    pending: &Rc<Unanswered>,
    req: u64,
    name: String,
) {
    if agent_here(net, out, req, &name).is_none() {
        return;
    }
    spawn_admin(out, pending, {
        let client = net.client.clone();
        async move {
            match client.agents().await.iter().find(|a| a.name == name) {
                Some(agent) => Frame::Agents {
                    req,
                    agents: vec![agent_row(agent)],
                },
                None => error(req, ErrorCode::NotFound, format!("no agent named {name}")),
            }
        }
    });
}

/// An agent's row as `AGENTS` carries it.
pub(super) fn agent_row(a: &AgentInfo) -> AgentRow {
    AgentRow {
        name: a.name.clone(),
        shard: u64::from(a.shard),
        state: match a.status.state {
            AgentState::Running => "running",
            AgentState::Idle => "idle",
            AgentState::Quarantined => "quarantined",
            AgentState::Throttled => "throttled",
            AgentState::Stopped => "stopped",
        }
        .to_string(),
        version: a.status.version.clone(),
        queued: a.queued as u64,
        failures: a.status.failures,
        restarts: a.status.restarts,
        activations: a.status.activations,
        memory_bytes: a.status.memory_bytes,
        busy_ns: a.status.busy_ns,
        state_bytes: a.state_bytes as u64,
        calls_waiting: a.calls_waiting as u64,
        last_error: a.status.last_error.clone(),
    }
}

/// The agent id of `name` when this node owns it; else the refusal is
/// queued (`NOT_OWNER`, or `NOT_FOUND` for a name no agent can have, such
/// as a pattern) and `None` returned.
fn agent_here(net: &NetShard, out: &Rc<Outgoing>, req: u64, name: &str) -> Option<AgentId> {
    if name.ends_with('*') {
        out.push(&error(
            req,
            ErrorCode::NotFound,
            format!("{name} is a pattern: name one of its agents"),
        ));
        return None;
    }
    if let Some(refusal) = owner_elsewhere(net, name, req) {
        out.push(&refusal);
        return None;
    }
    match AgentId::new(name) {
        Ok(id) => Some(id),
        Err(e) => {
            out.push(&error(req, ErrorCode::NotFound, e.to_string()));
            None
        }
    }
}

fn not_found(req: u64, id: &AgentId) -> Frame {
    error(req, ErrorCode::NotFound, format!("no agent named {id}"))
}
