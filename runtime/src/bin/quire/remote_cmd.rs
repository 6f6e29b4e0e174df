//! The client commands (`send`, `call`, `deploy`, ...): one connection
//! to a running node, errors in plain words.

use std::path::Path;

use quire_client::protocol::{AgentRow, DeployOptions};
use quire_client::{ClientError, RemoteClient};
use quire_runtime::protocol::ErrorCode;

use crate::args::Target;

/// Connects to `to` and runs `f`; errors in plain words.
pub fn remote(
    to: &Target,
    f: impl FnOnce(&mut RemoteClient) -> Result<(), ClientError>,
) -> Result<(), String> {
    let mut client = to.connect(&to.node).map_err(|e| e.to_string())?;
    f(&mut client).map_err(|e| match &e {
        ClientError::Node {
            detail: Some(d), ..
        } if e.code() == Some(ErrorCode::Rejected) => format!("{e} ({d})"),
        ClientError::Node {
            detail: Some(scope),
            ..
        } if e.code() == Some(ErrorCode::Unauthorized) => {
            format!("{e} (pass a token that grants {scope}: --token or QUIRE_ADMIN_TOKEN)")
        }
        _ => e.to_string(),
    })
}

/// Where `name` lives, in one line: asked of the node `c` talks to and,
/// when another node owns the name and is up, of that owner too.
pub fn where_is(c: &mut RemoteClient, name: &str, to: &Target) -> Result<String, ClientError> {
    let mut at = c.locate(name)?;
    if at.deployed.is_none() && at.state != "down" {
        at = to.connect(&at.addr)?.locate(name)?;
    }
    let deployed = match at.deployed {
        Some(true) => "deployed",
        Some(false) => "not deployed",
        None if at.state == "down" => "deployed or not: unknown (its node is down)",
        // The owner's members differ from the first node's (a join or a
        // leave not yet seen by both).
        None => "deployed or not: unknown (the nodes disagree on its owner; retry)",
    };
    Ok(format!(
        "{name}: node {} at {} ({}), shard {}, {deployed}",
        at.node, at.addr, at.state, at.shard
    ))
}

/// JSON becomes MessagePack of the same value; anything else a string.
pub fn encode_payload(text: &str) -> Vec<u8> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => rmp_serde::to_vec(&value).unwrap_or_else(|_| text.as_bytes().to_vec()),
        Err(_) => rmp_serde::to_vec(text).unwrap_or_else(|_| text.as_bytes().to_vec()),
    }
}

/// MessagePack as JSON, else the bytes as text.
pub fn decode_payload(bytes: &[u8]) -> String {
    match rmp_serde::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => value.to_string(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Agents as a table, one row each, under a header.
pub fn print_agents(agents: &[AgentRow]) {
    println!(
        "{:<32} {:>5} {:<12} {:>7} {:>8} {:>8} {:>10} {:>10} {:>10} {:>10} {:>7}  version",
        "agent",
        "shard",
        "state",
        "queued",
        "failures",
        "restarts",
        "activations",
        "memory",
        "state",
        "busy_ms",
        "calls"
    );
    for a in agents {
        println!(
            "{:<32} {:>5} {:<12} {:>7} {:>8} {:>8} {:>10} {:>10} {:>10} {:>10} {:>7}  {}",
            a.name,
            a.shard,
            a.state,
            a.queued,
            a.failures,
            a.restarts,
            a.activations,
            a.memory_bytes,
            a.state_bytes,
            a.busy_ns / 1_000_000,
            a.calls_waiting,
            a.version.as_deref().map_or("-", |v| &v[..v.len().min(16)])
        );
    }
}

/// A deploy's or reload's module file, read, and its `--set KEY=VALUE`
/// flags as options.
pub fn module_and_options(
    file: &Path,
    settings: &[String],
) -> Result<(Vec<u8>, DeployOptions), String> {
    let options = deploy_options(settings)?;
    let module = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    Ok((module, options))
}

fn deploy_options(settings: &[String]) -> Result<DeployOptions, String> {
    settings
        .iter()
        .try_fold(DeployOptions::default(), |options, setting| {
            options
                .parse_setting(setting)
                .map_err(|e| format!("--set {e}"))
        })
}
