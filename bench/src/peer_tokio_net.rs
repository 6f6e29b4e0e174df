//! The conventional tokio design over loopback, for the network figures:
//! a multi-threaded runtime, one task per connection that decodes frames
//! (Quire's own codec, so that encoding costs the same) and hands each
//! envelope to an actor task through an mpsc channel; the actor answers
//! through a oneshot.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use quire_runtime::protocol::{self, LinkFrame, DEFAULT_MAX_FRAME_BYTES};
use quire_shards::{new_latency_histogram, Address, Envelope, Kind, MessageId, Priority};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::routing::PAYLOAD;

type Request = (Envelope, Option<oneshot::Sender<Envelope>>);

fn envelope(seq: u64, kind: Kind) -> Envelope {
    Envelope {
        id: MessageId::new(0, seq.max(1)).expect("non-zero"),
        from: Address::Agent("tokio/driver".into()),
        to: Address::Agent("tokio/echo".into()),
        conversation: None,
        in_reply_to: None,
        priority: Priority::Normal,
        deadline: None,
        kind,
        payload: Bytes::from_static(&PAYLOAD),
    }
}

/// Hands every whole frame in `buf` to `f`; reads more from `stream` only
/// when there was none. False when the stream ended.
async fn read_frames(
    stream: &mut (impl AsyncReadExt + Unpin),
    buf: &mut Vec<u8>,
    filled: &mut usize,
    mut f: impl FnMut(LinkFrame),
) -> bool {
    let mut at = 0;
    while let Ok(Some((frame, used))) =
        protocol::decode_link(&buf[at..*filled], DEFAULT_MAX_FRAME_BYTES, Instant::now())
    {
        f(frame);
        at += used;
    }
    buf.copy_within(at..*filled, 0);
    *filled -= at;
    if at > 0 {
        // Frames were handed out: let the caller act on them first.
        return true;
    }
    if *filled == buf.len() {
        buf.resize(buf.len() * 2, 0);
    }
    match stream.read(&mut buf[*filled..]).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            *filled += n;
            true
        }
    }
}

async fn serve(mut stream: TcpStream, actor: mpsc::Sender<Request>) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.split();
    let mut buf = vec![0u8; 64 * 1024];
    let mut filled = 0;
    let mut out = Vec::new();
    loop {
        let mut requests = Vec::new();
        let open = read_frames(&mut rd, &mut buf, &mut filled, |frame| {
            if let LinkFrame::Envelope(env) = frame {
                requests.push(env);
            }
        })
        .await;
        for env in requests {
            if env.kind == Kind::Call {
                let (tx, rx) = oneshot::channel();
                if actor.send((env, Some(tx))).await.is_err() {
                    return;
                }
                if let Ok(reply) = rx.await {
                    protocol::encode_envelope(&reply, Instant::now(), &mut out);
                }
            } else if actor.send((env, None)).await.is_err() {
                return;
            }
        }
        if !out.is_empty() {
            if wr.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if !open {
            return;
        }
    }
}

/// The echo/sink actor: answers calls, counts one-way messages and says
/// when `expected` arrived.
async fn actor(mut rx: mpsc::Receiver<Request>, expected: u64, done: oneshot::Sender<Instant>) {
    let mut done = Some(done);
    let mut count = 0u64;
    while let Some((env, answer)) = rx.recv().await {
        match answer {
            Some(tx) => {
                let mut reply = env.clone();
                reply.kind = Kind::Reply;
                reply.in_reply_to = Some(env.id);
                std::mem::swap(&mut reply.from, &mut reply.to);
                let _ = tx.send(reply);
            }
            None => {
                count += 1;
                if count == expected {
                    if let Some(d) = done.take() {
                        let _ = d.send(Instant::now());
                    }
                }
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Request/reply over one loopback connection, one call at a time.
pub fn remote_request_reply(warmup: u64, samples: u64) -> Histogram<u64> {
    runtime().block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = mpsc::channel(4096);
        let (done, _) = oneshot::channel();
        tokio::spawn(actor(rx, u64::MAX, done));
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(serve(s, tx.clone()));
            }
        });
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let mut h = new_latency_histogram();
        let mut buf = vec![0u8; 64 * 1024];
        let mut filled = 0;
        let mut out = Vec::new();
        for i in 0..warmup + samples {
            let started = Instant::now();
            out.clear();
            protocol::encode_envelope(&envelope(i + 1, Kind::Call), started, &mut out);
            stream.write_all(&out).await.expect("write");
            let mut got = false;
            while !got {
                let open = read_frames(&mut stream, &mut buf, &mut filled, |_| got = true).await;
                assert!(open || got, "tokio peer closed");
            }
            if i >= warmup {
                h.saturating_record(started.elapsed().as_nanos() as u64);
            }
        }
        h
    })
}

/// One-way messages over one loopback connection, written in batches of
/// `batch`; returns messages per second at the receiving actor.
pub fn one_way(messages: u64, batch: usize) -> u64 {
    runtime().block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = mpsc::channel(4096);
        let (done_tx, done_rx) = oneshot::channel();
        tokio::spawn(actor(rx, messages, done_tx));
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(serve(s, tx.clone()));
            }
        });
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let started = Instant::now();
        let mut out = Vec::with_capacity(batch * 128);
        let mut sent = 0;
        while sent < messages {
            out.clear();
            let now = Instant::now();
            for _ in 0..batch.min((messages - sent) as usize) {
                sent += 1;
                protocol::encode_envelope(&envelope(sent, Kind::Send), now, &mut out);
            }
            stream.write_all(&out).await.expect("write");
        }
        let finished = tokio::time::timeout(Duration::from_secs(120), done_rx)
            .await
            .expect("tokio one-way finished")
            .expect("actor");
        (messages as f64 / finished.duration_since(started).as_secs_f64()) as u64
    })
}
