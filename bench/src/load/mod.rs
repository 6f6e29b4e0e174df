//! Open-loop load at a constant rate, latency corrected for coordinated
//! omission.
//!
//! Message `i` of a run has an *intended* send time, `start + i / rate`,
//! fixed before the run begins. Its latency is measured from that instant,
//! not from when the generator got round to sending it: a generator held up
//! by a stall sends late, and the delay counts, as a user who kept sending
//! at the rate would have seen it. The same messages are also recorded from
//! their actual send time (the "uncorrected" histogram) so reports can show
//! what a closed-loop benchmark would have hidden. Messages whose intended
//! time falls in the warm-up are not recorded.
//!
//! - [`spec`]: what to run (pattern, agents, rate, duration, size);
//! - [`quire`]: the generator and sink agents on an embedded node;
//! - [`tokio_peer`]: the same load on the conventional tokio design;
//! - [`tokio_tpc`]: request/reply on tokio thread per core (pinned
//!   current-thread runtimes, agents placed by the same hash);
//! - [`remote`]: request/reply against a running node, over the wire;
//! - [`null_run`]: the generator alone, timing the same schedule: the
//!   ruler's own error, printed next to every open-loop figure;
//! - [`hgrm`], [`hlog`], [`plot`]: the percentile spectrum, the interval log
//!   and the PNG percentile plot of a result; [`rate_plot`]: latency against
//!   achieved rate, a sweep's PNG (both drawn on `canvas`).

pub(crate) mod canvas;
pub mod hgrm;
pub mod hlog;
pub mod null_run;
pub mod plot;
pub mod quire;
pub mod rate_plot;
pub mod remote;
pub mod spec;
pub mod tokio_peer;
pub mod tokio_tpc;

pub use spec::{LoadResult, LoadSpec, Pattern};
