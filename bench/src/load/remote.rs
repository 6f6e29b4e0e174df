//! The open-loop request/reply load against a running node, over the wire:
//! WebAssembly echo agents deployed through the node (admin token), then
//! one connection on which a writer thread sends each `CALL` when it is
//! due while this thread reads the replies. The payload carries the
//! intended and actual send times and the echo sends it back, so a reply
//! is measured without any table of calls in flight.

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quire_client::protocol::{self, Frame};
use quire_client::{ClientError, Priority, RemoteClient};

use super::spec::{payload, LoadResult, LoadSpec, Pattern};

/// How long after the last due call replies may still come in.
const DRAIN: Duration = Duration::from_secs(2);

/// How long before a due instant the writer stops sleeping and spins: a
/// thread's sleep ends tens of µs late on a quiet VM (and a sleeping
/// writer measured its own wake-ups), while spinning through the whole gap
/// would take a core from the node on a 2-vCPU machine.
const SPIN_BEFORE_DUE: Duration = Duration::from_micros(150);

/// Waits for `due`: sleeps to [`SPIN_BEFORE_DUE`] before it, then spins;
/// returns the instant it ended.
fn wait_until(due: Instant) -> Instant {
    let mut now = Instant::now();
    if let Some(wake) = due.checked_sub(SPIN_BEFORE_DUE) {
        if wake > now {
            std::thread::sleep(wake - now);
            now = Instant::now();
        }
    }
    while now < due {
        std::hint::spin_loop();
        now = Instant::now();
    }
    now
}

/// Runs `spec` (request/reply only) against the node at `addr`, deploying
/// `echo` (a module replying with its request) as the targets; `tick` gets
/// the fraction done.
pub fn run(
    addr: &str,
    token: Option<&str>,
    echo: &[u8],
    spec: &LoadSpec,
    mut tick: impl FnMut(f64),
) -> Result<LoadResult, String> {
    if spec.pattern != Pattern::RequestReply {
        return Err("over the wire, only --pattern request-reply is measured (a reply brings the timestamps back)".into());
    }
    let names: Vec<String> = (0..spec.agents)
        .map(|i| format!("quire-bench/target-{i}"))
        .collect();
    let mut admin = RemoteClient::connect(addr, token).map_err(|e| e.to_string())?;
    for name in &names {
        admin
            .deploy(name, echo)
            .map_err(|e| format!("deploying {name} on {addr}: {e}"))?;
    }
    let result = drive(addr, &names, spec, &mut tick)?;
    for name in &names {
        let _ = admin.undeploy(name);
    }
    tick(1.0);
    Ok(result)
}

/// Drives `spec` open loop over one connection to echo agents `names`
/// (already deployed; each replies with its request), in turn.
pub fn drive(
    addr: &str,
    names: &[String],
    spec: &LoadSpec,
    tick: &mut impl FnMut(f64),
) -> Result<LoadResult, String> {
    let mut conn = RemoteClient::connect(addr, None).map_err(|e| e.to_string())?;
    let mut writer = conn.writer().map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let epoch = Instant::now();
    let start = epoch + Duration::from_millis(50);
    let measure_start = start + spec.warmup;
    let end = measure_start + spec.duration;
    let ns = move |t: Instant| t.duration_since(epoch).as_nanos() as u64;
    // The sender says how many calls it sent (and how many are measured)
    // once it is done.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<(u64, u64), String>>();
    let sender = {
        let (spec, names, addr) = (spec.clone(), names.to_vec(), addr.to_string());
        std::thread::spawn(move || {
            let result = (|| -> Result<(u64, u64), String> {
                let (mut sent, mut expected) = (0u64, 0u64);
                let mut out = Vec::with_capacity(64 * 1024);
                loop {
                    let due = start + spec.offset(sent);
                    if due >= end {
                        break;
                    }
                    let now = wait_until(due);
                    // Every call now due leaves in one write.
                    while start + spec.offset(sent) <= now && start + spec.offset(sent) < end {
                        let due = start + spec.offset(sent);
                        let measure = due >= measure_start;
                        expected += u64::from(measure);
                        protocol::encode(
                            &Frame::Call {
                                req: sent + 1,
                                to: names[(sent % names.len() as u64) as usize].clone(),
                                payload: Bytes::from(payload::encode(
                                    spec.message_size,
                                    measure,
                                    ns(due),
                                    ns(now),
                                )),
                                priority: Priority::Normal,
                                timeout_ms: (DRAIN + spec.duration).as_millis() as u64,
                            },
                            &mut out,
                        );
                        sent += 1;
                    }
                    writer
                        .write_all(&out)
                        .map_err(|e| format!("sending to {addr}: {e}"))?;
                    out.clear();
                }
                Ok((sent, expected))
            })();
            let _ = done_tx.send(result);
        })
    };
    let mut result = LoadResult::empty(spec);
    let mut answered = 0u64;
    let total = end.saturating_duration_since(Instant::now());
    let mut last_tick = Instant::now();
    let mut sent_total: Option<(u64, u64)> = None;
    loop {
        if sent_total.is_none() {
            if let Ok(done) = done_rx.try_recv() {
                sent_total = Some(done?);
            }
        }
        if let Some((sent, _)) = sent_total {
            if answered >= sent {
                break;
            }
        }
        if Instant::now() > end + DRAIN {
            break;
        }
        // Poll, then read: a blocking read would contend with the writer
        // thread for the socket's lock (see `RemoteClient::wait_readable`).
        match conn.wait_readable(Duration::from_millis(100)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => return Err(format!("reading replies: {e}")),
        }
        let frame = match conn.read_frame() {
            Ok(f) => f,
            Err(ClientError::Io { source, .. })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(format!("reading replies: {e}")),
        };
        match frame {
            Frame::Reply { payload: body, .. } => {
                answered += 1;
                let now = ns(Instant::now());
                if let Some((true, intended, actual)) = payload::decode(&body) {
                    result.record(
                        spec,
                        Duration::from_nanos(intended.saturating_sub(ns(measure_start))),
                        now.saturating_sub(intended),
                        now.saturating_sub(actual),
                    );
                }
            }
            Frame::Error { req, .. } if req != 0 => {
                answered += 1;
                result.rejected += 1;
            }
            Frame::Error { message, .. } => {
                return Err(format!("the node closed the connection: {message}"))
            }
            _ => {}
        }
        if last_tick.elapsed() > Duration::from_millis(100) {
            last_tick = Instant::now();
            let left = end.saturating_duration_since(Instant::now());
            tick(1.0 - left.as_secs_f64() / total.as_secs_f64().max(1e-9));
        }
    }
    let _ = sender.join();
    let (_, expected) = match sent_total {
        Some(t) => t,
        None => done_rx
            .try_recv()
            .map_err(|_| "the sender did not finish".to_string())??,
    };
    result.expected = expected;
    Ok(result)
}
