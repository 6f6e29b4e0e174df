//! Pipelined calls on one connection: keeps `WINDOW` calls in flight to
//! one agent and reports calls per second and the median round trip. The
//! Python client's `examples/pipeline.py` does the same, for comparison.
//!
//! ```sh
//! quire deploy sdk/prebuilt/echo.wasm --name echo --token T
//! cargo run --release -p quire-client --example pipeline -- 127.0.0.1:7400 echo 200000 64
//! ```
//!
//! With `QUIRE_TLS_CA=ca.pem` in the environment it connects over TLS (a
//! node with `[network.tls]`), checking the node's certificate against
//! that authority.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use quire_client::protocol::Frame;
use quire_client::{ClientError, Priority, RemoteClient, TlsOptions};

fn main() -> Result<(), ClientError> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7400".into());
    let agent = args.next().unwrap_or_else(|| "echo".into());
    let calls: u64 = args.next().map_or(200_000, |n| n.parse().expect("CALLS"));
    let window: u64 = args.next().map_or(64, |n| n.parse().expect("WINDOW"));
    let tls = match std::env::var_os("QUIRE_TLS_CA") {
        Some(ca) => Some(TlsOptions::from_ca_file(ca)?),
        None => None,
    };
    let mut node = RemoteClient::open(addr.as_str(), None, tls.as_ref())?;
    let mut sent_at = HashMap::with_capacity(window as usize);
    let mut rtts = Vec::with_capacity(calls as usize);
    let start = Instant::now();
    let (mut sent, mut answered) = (0, 0);
    while answered < calls {
        while sent < calls && sent - answered < window {
            let req = node.next_req();
            node.queue_frame(&Frame::Call {
                req,
                to: agent.clone(),
                payload: b"ping".to_vec().into(),
                priority: Priority::Normal,
                timeout_ms: 0,
            });
            sent_at.insert(req, Instant::now());
            sent += 1;
        }
        node.flush()?;
        match node.read_frame()? {
            Frame::Reply { req, .. } => {
                rtts.push(sent_at.remove(&req).map_or(Duration::ZERO, |t| t.elapsed()));
                answered += 1;
            }
            Frame::Error { message, .. } => panic!("call refused: {message}"),
            other => panic!("unexpected {}", other.name()),
        }
    }
    let elapsed = start.elapsed();
    rtts.sort_unstable();
    println!(
        "{calls} calls, window {window}: {:.0} calls/s, round trip p50 {:?} p99 {:?}",
        calls as f64 / elapsed.as_secs_f64(),
        rtts[rtts.len() / 2],
        rtts[rtts.len() * 99 / 100],
    );
    Ok(())
}
