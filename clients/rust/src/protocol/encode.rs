//! Frames to bytes, length prefix included.

use super::deploy_options::{DeployOptions, OptionValue};
use super::frame::*;
use super::msgpack::Writer;

/// Appends `frame`, length prefix included, to `out`.
///
/// ```
/// use quire_client::protocol::{encode, Frame};
/// let mut out = Vec::new();
/// encode(&Frame::Ping { req: 1 }, &mut out);
/// // 4-byte length, then [15, 1] as MessagePack.
/// assert_eq!(out, [0, 0, 0, 3, 0x92, 15, 1]);
/// ```
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    let start = begin(out);
    let mut w = Writer(out);
    match frame {
        Frame::Hello {
            version,
            role,
            credential,
            node,
        } => {
            w.array(6);
            w.uint(code::HELLO);
            w.str(MAGIC);
            w.uint(*version);
            w.str(match role {
                Role::Client => "client",
                Role::Peer => "peer",
            });
            w.opt_str(credential.as_deref());
            w.opt_str(node.as_deref());
        }
        Frame::Welcome {
            version,
            node,
            shard,
            shards,
            limits,
            access,
        } => {
            // Fields are appended by protocol revision; access comes only
            // after limits (a decoder reads them by position).
            let access = access.as_ref().filter(|_| limits.is_some());
            w.array(match (limits, access) {
                (None, _) => 5,
                (Some(_), None) => 7,
                (Some(_), Some(_)) => 10,
            });
            w.uint(code::WELCOME);
            w.uint(*version);
            w.str(node);
            w.uint(*shard);
            w.uint(*shards);
            if let Some(limits) = limits {
                w.uint(limits.max_frame_bytes);
                w.uint(limits.max_unsent_bytes);
            }
            if let (Some(limits), Some(access)) = (limits, access) {
                w.str(&access.credential);
                let scopes: Vec<_> = access.scopes.iter().collect();
                w.array(scopes.len());
                for scope in scopes {
                    w.str(scope.as_str());
                }
                w.uint(limits.max_requests_in_flight.unwrap_or(0));
            }
        }
        Frame::Send {
            req,
            to,
            payload,
            priority,
            ttl_ms,
            durable_key,
        } => {
            w.array(if durable_key.is_some() { 7 } else { 6 });
            w.uint(code::SEND);
            w.uint(*req);
            w.str(to);
            w.bin(payload);
            w.uint(priority.code());
            w.opt_uint(*ttl_ms);
            if let Some(key) = durable_key {
                w.str(key);
            }
        }
        Frame::Call {
            req,
            to,
            payload,
            priority,
            timeout_ms,
        } => {
            w.array(6);
            w.uint(code::CALL);
            w.uint(*req);
            w.str(to);
            w.bin(payload);
            w.uint(priority.code());
            w.uint(*timeout_ms);
        }
        Frame::Reply { req, payload } => {
            w.array(3);
            w.uint(code::REPLY);
            w.uint(*req);
            w.bin(payload);
        }
        Frame::Ok { req, value } => {
            w.array(3);
            w.uint(code::OK);
            w.uint(*req);
            w.opt_str(value.as_deref());
        }
        Frame::Deploy {
            req,
            name,
            module,
            options,
        } => with_module(&mut w, code::DEPLOY, *req, name, module, options),
        Frame::Reload {
            req,
            name,
            module,
            options,
        } => with_module(&mut w, code::RELOAD, *req, name, module, options),
        Frame::DeployMany { req, names, module } => {
            w.array(4);
            w.uint(code::DEPLOY_MANY);
            w.uint(*req);
            w.array(names.len());
            for name in names {
                w.str(name);
            }
            w.bin(module);
        }
        Frame::Deployed { req, hash, failed } => {
            w.array(4);
            w.uint(code::DEPLOYED);
            w.uint(*req);
            w.str(hash);
            w.array(failed.len());
            for (name, reason) in failed {
                w.array(2);
                w.str(name);
                w.str(reason);
            }
        }
        Frame::Undeploy { req, name } => {
            w.array(3);
            w.uint(code::UNDEPLOY);
            w.uint(*req);
            w.str(name);
        }
        Frame::ListAgents { req } => request(&mut w, code::LIST_AGENTS, *req),
        Frame::ListPatterns { req } => request(&mut w, code::LIST_PATTERNS, *req),
        Frame::Patterns { req, patterns } => {
            w.array(3);
            w.uint(code::PATTERNS);
            w.uint(*req);
            w.array(patterns.len());
            for (pattern, version) in patterns {
                w.array(2);
                w.str(pattern);
                w.str(version);
            }
        }
        Frame::Agents { req, agents } => {
            w.array(3);
            w.uint(code::AGENTS);
            w.uint(*req);
            w.array(agents.len());
            for a in agents {
                // The 13th field only when there is an error to tell, so
                // rows without one read as before.
                w.array(if a.last_error.is_some() { 13 } else { 12 });
                w.str(&a.name);
                w.uint(a.shard);
                w.str(&a.state);
                w.opt_str(a.version.as_deref());
                w.uint(a.queued);
                w.uint(a.failures);
                w.uint(a.restarts);
                w.uint(a.activations);
                w.uint(a.memory_bytes);
                w.uint(a.busy_ns);
                w.uint(a.state_bytes);
                w.uint(a.calls_waiting);
                if let Some(e) = &a.last_error {
                    w.str(e);
                }
            }
        }
        Frame::Stats { req } => request(&mut w, code::STATS, *req),
        Frame::StatsReply { req, shards } => {
            w.array(3);
            w.uint(code::STATS_REPLY);
            w.uint(*req);
            w.array(shards.len());
            for row in shards {
                w.map(row.len());
                for (k, v) in row {
                    w.str(k);
                    w.uint(*v);
                }
            }
        }
        Frame::Cluster { req } => request(&mut w, code::CLUSTER, *req),
        Frame::Members { req, members } => {
            w.array(3);
            w.uint(code::MEMBERS);
            w.uint(*req);
            w.array(members.len());
            for m in members {
                w.array(4);
                w.str(&m.name);
                w.str(&m.addr);
                w.str(&m.state);
                w.uint(m.shards);
            }
        }
        Frame::Where { req, name } => named(&mut w, code::WHERE, *req, name),
        Frame::Stop { req, name } => named(&mut w, code::STOP, *req, name),
        Frame::Start { req, name } => named(&mut w, code::START, *req, name),
        Frame::AgentInfo { req, name } => named(&mut w, code::AGENT_INFO, *req, name),

        Frame::Location { req, location } => {
            w.array(7);
            w.uint(code::LOCATION);
            w.uint(*req);
            w.str(&location.node);
            w.str(&location.addr);
            w.str(&location.state);
            w.uint(location.shard);
            match location.deployed {
                Some(here) => w.bool(here),
                None => w.nil(),
            }
        }
        Frame::Ping { req } => request(&mut w, code::PING, *req),
        Frame::Pong { req } => request(&mut w, code::PONG, *req),
        Frame::Error {
            req,
            code: c,
            message,
            detail,
        } => {
            w.array(5);
            w.uint(code::ERROR);
            w.uint(*req);
            w.uint(*c as u64);
            w.str(message);
            w.opt_str(detail.as_deref());
        }
    }
    finish(out, start);
}

fn request(w: &mut Writer<'_>, code: u64, req: u64) {
    w.array(2);
    w.uint(code);
    w.uint(req);
}

/// A request whose only field is an agent name.
fn named(w: &mut Writer<'_>, code: u64, req: u64, name: &str) {
    w.array(3);
    w.uint(code);
    w.uint(req);
    w.str(name);
}

/// `DEPLOY` or `RELOAD`: the options map is appended only when there are
/// options, so a deploy without them is the frame older nodes know.
fn with_module(
    w: &mut Writer<'_>,
    code: u64,
    req: u64,
    name: &str,
    module: &[u8],
    options: &DeployOptions,
) {
    w.array(if options.is_empty() { 4 } else { 5 });
    w.uint(code);
    w.uint(req);
    w.str(name);
    w.bin(module);
    if !options.is_empty() {
        w.map(options.settings().len());
        for (key, value) in options.settings() {
            w.str(key);
            match value {
                OptionValue::Uint(n) => w.uint(*n),
                OptionValue::Str(s) => w.str(s),
                OptionValue::Bool(b) => w.bool(*b),
            }
        }
    }
}
