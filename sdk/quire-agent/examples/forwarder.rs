//! Forwards every message to another agent. A message `target:<name>` sets
//! the target (kept in state, default `sink`); anything else is sent on as
//! it is. A call is answered with `forwarded` once the message left, or the
//! error; a message that comes back undelivered is counted under `lost`.
use quire_agent::{export, reply, send, state, Agent, Error, Message};

#[derive(Default)]
struct Forwarder;

impl Agent for Forwarder {
    fn handle(&mut self, msg: Message<'_>) -> Result<(), Error> {
        if let Some(target) = msg.payload.strip_prefix(b"target:") {
            state::put(b"target", target)?;
            if msg.is_call() {
                reply(b"ok")?;
            }
            return Ok(());
        }
        let target = state::get(b"target").unwrap_or_else(|| b"sink".to_vec());
        let target = core::str::from_utf8(&target).map_err(|_| Error::INVALID)?;
        let sent = send(target, msg.payload);
        if msg.is_call() {
            match sent {
                Ok(_) => reply(b"forwarded")?,
                Err(e) => reply(format!("error {}", e.0).as_bytes())?,
            }
        }
        Ok(())
    }

    fn on_undelivered(&mut self, _message: u64, _payload: &[u8], _reason: Error) {
        let _ = state::put_u64(b"lost", state::get_u64(b"lost") + 1);
    }
}

export!(Forwarder);
