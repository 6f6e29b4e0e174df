//! Replies to every call with its payload.
use quire_agent::{export, reply, Agent, Error, Message};

#[derive(Default)]
struct Echo;

impl Agent for Echo {
    fn handle(&mut self, msg: Message<'_>) -> Result<(), Error> {
        if msg.is_call() {
            reply(msg.payload)?;
        }
        Ok(())
    }
}

export!(Echo);
