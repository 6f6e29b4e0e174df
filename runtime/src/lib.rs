//! A Quire node: topology, placement, pinned glommio executors, the SPSC
//! mesh between shards, configuration, and client handles.
//!
//! ```no_run
//! use std::time::Duration;
//! use quire_runtime::Node;
//! use quire_shards::{Agent, Context, Envelope};
//!
//! struct Echo;
//! impl Agent for Echo {
//!     fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
//!         let _ = ctx.reply(msg.payload);
//!     }
//! }
//!
//! let node = Node::builder().start().unwrap();
//! print!("{}", node.placement());
//! let client = node.client();
//! client.register_blocking("echo", || Echo).unwrap();
//! let reply = client.call_blocking("echo", "ping", Duration::from_secs(1)).unwrap();
//! assert_eq!(&reply.payload[..], b"ping");
//! println!("{}", node.shutdown());
//! ```

#![warn(missing_docs)]

mod activity;
pub mod admin_endpoint;
pub mod agent_kinds;
pub mod builtin_kinds;
pub mod certs;
pub mod client;
pub mod cluster;
mod command;
pub mod config;
pub mod cpuset;
pub mod demo;
pub mod doctor;
pub mod logging;
pub mod metrics;
pub mod net;
mod node;
pub mod ops;
pub mod placement;
pub mod ports;
pub mod preflight;
pub mod profile;
pub mod protocol;
mod shard_cell;
mod shard_runtime;
mod shard_storage;
mod signal;
mod thread_stat;
pub mod topology;
mod wasm_agents;
mod watchdog;

pub use agent_kinds::AgentKinds;
pub use client::{Client, DeployError, DurableError, DurableReceipt, PendingDurable};
pub use command::AgentFactory;
pub use node::{Node, NodeBuilder, ShutdownReport, StartError};
pub use shard_storage::RecoveryReport;
pub use wasm_agents::WasmOptions;
