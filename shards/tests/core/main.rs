//! The shard state machine driven by hand: several `ShardCore`s whose outboxes
//! a test pumps into each other, with no threads and no executor.

mod refusals;
mod routing;
mod sim;
