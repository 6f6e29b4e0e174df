//! Quire's benchmarks: load generators, latency reports, and side-by-side
//! comparisons with the conventional tokio design, run in the same process
//! one after the other so that both see the same machine state.
//!
//! Run them with `cargo run --release -p quire-bench -- routing`.

pub mod capacity;
pub mod crash;
pub mod load;
pub mod net_suite;
pub mod output_commit;
pub mod peer_actix;
pub mod peer_sqlite;
pub mod peer_tokio;
pub mod peer_tokio_net;
pub mod profile_suite;
pub mod report;
pub mod routing;
pub mod routing_suite;
pub mod sandbox_suite;
pub mod storage_suite;
pub mod suite;
pub mod wasm_suite;
