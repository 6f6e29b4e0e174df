//! Fan-in: many senders send it u64 values (little-endian); it keeps their
//! sum and count in state. A call with payload `get` is answered with 16
//! bytes: sum then count, little-endian; `reset` clears both.
use quire_agent::{export, reply, state, Agent, Error, Message};

#[derive(Default)]
struct Aggregator;

impl Agent for Aggregator {
    fn handle(&mut self, msg: Message<'_>) -> Result<(), Error> {
        match msg.payload {
            b"get" => {
                let mut out = state::get_u64(b"sum").to_le_bytes().to_vec();
                out.extend_from_slice(&state::get_u64(b"count").to_le_bytes());
                reply(&out)
            }
            b"reset" => {
                state::delete(b"sum");
                state::delete(b"count");
                if msg.is_call() {
                    reply(b"ok")?;
                }
                Ok(())
            }
            value => {
                let v = u64::from_le_bytes(value.try_into().map_err(|_| Error::INVALID)?);
                state::put_u64(b"sum", state::get_u64(b"sum").wrapping_add(v))?;
                state::put_u64(b"count", state::get_u64(b"count") + 1)?;
                if msg.is_call() {
                    reply(b"ok")?;
                }
                Ok(())
            }
        }
    }
}

export!(Aggregator);
