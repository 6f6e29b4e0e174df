//! Client connections: the handshake, then every client frame handled on
//! the shard that accepted the connection.
//!
//! Sends and calls go straight into this shard's core (which routes them
//! over the mesh or a link when another shard or node owns the agent);
//! their answers are queued on the connection as they come. Deploys,
//! listings and stats go through the node's [`crate::Client`] in a task of
//! their own, so the connection keeps reading meanwhile.

use std::rc::Rc;

use super::access::refusal;
use super::client_frames::*;
use super::io::{closing_error, ReadEnd};
use super::unanswered::Unanswered;
use super::{Accepted, NetShard};
use crate::protocol::{Access, ErrorCode, Frame, Limits, Role, Scope, VERSION};
use crate::shard_cell::ShardCell;

/// The largest frame body a connection may send: connections with the
/// admin scope may send deploys up to the module limit.
fn max_frame(net: &NetShard, access: &Access) -> usize {
    let plain = net.settings.network.max_frame_bytes;
    if access.scopes.contains(Scope::Admin) {
        net.settings.max_admin_frame.max(plain)
    } else {
        plain
    }
}

/// Serves one client connection: the handshake, then its frames.
pub(crate) async fn serve_client(shared: Rc<ShardCell>, net: Rc<NetShard>, conn: Accepted) {
    let Accepted {
        mut frames,
        out,
        writer,
        ..
    } = conn;
    let window = net.settings.network.max_requests_in_flight;
    let access = match frames.first(net.settings.hello_timeout()).await {
        Ok(Frame::Hello {
            version,
            role: Role::Client,
            credential,
            ..
        }) if version == VERSION => {
            let Some(access) = net.settings.credentials.grant(credential.as_deref()) else {
                out.close_with(Some(&closing_error(
                    ErrorCode::Unauthorized,
                    "the credential in HELLO is none of this node's tokens",
                )));
                writer.await;
                return;
            };
            out.push(&Frame::Welcome {
                version: VERSION,
                node: net.settings.node_name.clone(),
                shard: u64::from(net.shard),
                shards: u64::from(net.settings.shards),
                limits: Some(Limits {
                    max_frame_bytes: max_frame(&net, &access) as u64,
                    max_unsent_bytes: net.settings.network.max_unsent_bytes as u64,
                    max_requests_in_flight: Some(window as u64),
                }),
                access: Some(access.clone()),
            });
            access
        }
        Ok(Frame::Hello {
            role: Role::Client,
            version,
            ..
        }) => {
            out.close_with(Some(&closing_error(
                ErrorCode::UnsupportedVersion,
                format!("this node speaks protocol version {VERSION}, not {version}"),
            )));
            writer.await;
            return;
        }
        Ok(Frame::Hello { .. }) => {
            out.close_with(Some(&closing_error(
                ErrorCode::Unauthorized,
                "node links go to port + 1 + shard, not the client port",
            )));
            writer.await;
            return;
        }
        Ok(_) => {
            out.close_with(Some(&closing_error(
                ErrorCode::HandshakeRequired,
                "the first frame must be HELLO",
            )));
            writer.await;
            return;
        }
        Err(ReadEnd::Refused(code, message)) => {
            out.close_with(Some(&closing_error(code, message)));
            writer.await;
            return;
        }
        Err(_) => {
            out.close_with(None);
            writer.await;
            return;
        }
    };
    frames.set_max_frame(max_frame(&net, &access));
    let pending = Rc::new(Unanswered::default());
    loop {
        match frames.next().await {
            Ok(frame) => match refusal(&access, pending.get(), window, &frame) {
                Some(closing @ Frame::Error { req: 0, .. }) => {
                    out.close_with(Some(&closing));
                    break;
                }
                Some(answer) => {
                    out.push(&answer);
                }
                None => {
                    if let Err((code, message)) = handle(&shared, &net, &out, &pending, frame) {
                        out.close_with(Some(&closing_error(code, message)));
                        break;
                    }
                }
            },
            Err(ReadEnd::Closed) => {
                // The client finished sending: answer what it asked (each
                // answer wakes this task; a connection closed meanwhile, as
                // a slow reader's, has nothing more to wait for), then close.
                let (owed, gone) = (pending.clone(), out.clone());
                let _ = glommio::timer::timeout(DEFAULT_CALL_TIMEOUT * 2, async move {
                    owed.settled(|| gone.is_closed()).await;
                    Ok(())
                })
                .await;
                out.close_with(None);
                break;
            }
            Err(ReadEnd::Refused(code, message)) => {
                out.close_with(Some(&closing_error(code, message)));
                break;
            }
            Err(ReadEnd::Io(e)) => {
                tracing::debug!("client connection failed: {e}");
                out.close_with(None);
                break;
            }
        }
        if frames.drained() {
            shared.work.notify();
        }
        shared.make_room().await;
        // A connection closed for not reading its answers (by the push
        // that passed the limit) reads no more either.
        if out.is_closing() {
            break;
        }
    }
    shared.work.notify();
    writer.await;
}
