//! Talk to a Quire node from any Rust program: the wire protocol
//! ([`protocol`]: frames and their codec, no I/O) and [`RemoteClient`], a
//! blocking connection to one node. Nothing of the node comes with it (no
//! glommio, hwloc or wasmer): it depends on `bytes`, `rmp`, `libc`,
//! `thiserror` and `rustls` (TLS, with ring) only.
//!
//! ```no_run
//! use std::time::Duration;
//! use quire_client::RemoteClient;
//!
//! let mut node = RemoteClient::connect("127.0.0.1:7400", None)?;
//! let reply = node.call("echo", b"hi", Duration::from_secs(1))?;
//! assert_eq!(&reply[..], b"hi");
//! # Ok::<(), quire_client::ClientError>(())
//! ```
//!
//! `examples/` has a runnable program (`cargo run -p quire-client
//! --example ping -- 127.0.0.1:7400`).

#![warn(missing_docs)]

pub mod protocol;
mod remote;
mod tls;

pub use protocol::{ErrorCode, Priority};
pub use remote::{ClientError, RemoteClient};
pub use tls::TlsOptions;
