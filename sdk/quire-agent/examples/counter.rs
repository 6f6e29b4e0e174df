//! Counts the messages it handled in its durable state (key `count`, u64
//! little-endian); a call is answered with the count.
use quire_agent::{export, reply, state, Agent, Error, Message};

#[derive(Default)]
struct Counter;

impl Agent for Counter {
    fn handle(&mut self, msg: Message<'_>) -> Result<(), Error> {
        let count = state::get_u64(b"count") + 1;
        state::put_u64(b"count", count)?;
        if msg.is_call() {
            reply(&count.to_le_bytes())?;
        }
        Ok(())
    }
}

export!(Counter);
