//! Socket plumbing shared by client and node-to-node connections: a frame
//! reader with size and progress limits, and a coalescing writer.
//!
//! A connection is served by two tasks of its shard: one reads and handles
//! frames, one writes. They use two descriptors of the same socket (a
//! `dup`), so that neither ever waits on the other and no lock is needed.
//! Everything handled while reading one batch of input is appended to one
//! [`Outgoing`] buffer, which the writer puts on the socket in one write at
//! the end of the reactor turn (or after `coalesce_delay`). With TLS the
//! two tasks share the connection's session (see [`super::tls_session`]).

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::net::TcpStream;

use super::tls_session::{ReadSide, WriteSide};
use crate::protocol::{self, ErrorCode, Frame, LinkFrame};
use crate::signal::Signal;

/// Two handles on one socket: one to read, one to write.
pub fn split(stream: TcpStream) -> io::Result<(TcpStream, TcpStream)> {
    // SAFETY: dup returns a fresh descriptor of the same socket (or -1,
    // checked), owned from here on by the new stream alone.
    let fd = unsafe { libc::dup(stream.as_raw_fd()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let writer = unsafe { TcpStream::from_raw_fd(fd) };
    Ok((stream, writer))
}

/// Bytes waiting to go out on one connection.
pub struct Outgoing {
    buf: RefCell<Vec<u8>>,
    ready: Signal,
    closing: Cell<bool>,
    closed: Cell<bool>,
    max_unsent: usize,
    /// Set when the writer was woken, so that a busy dispatcher yields.
    io_pending: Rc<Cell<bool>>,
}

impl Outgoing {
    /// An empty buffer that refuses to hold more than `max_unsent` bytes.
    pub fn new(max_unsent: usize, io_pending: Rc<Cell<bool>>) -> Rc<Self> {
        Rc::new(Self {
            buf: RefCell::new(Vec::with_capacity(4096)),
            ready: Signal::default(),
            closing: Cell::new(false),
            closed: Cell::new(false),
            max_unsent,
            io_pending,
        })
    }

    /// Queues `frame`. False when the connection is closed, or when its
    /// reader let more than `max_unsent` bytes pile up: then this answer is
    /// not queued and the connection is closed at once with `SLOW_CLIENT`
    /// (after what was queued before), so that no answer owed is dropped
    /// without the client being told.
    pub fn push(&self, frame: &Frame) -> bool {
        self.push_with(|buf| protocol::encode(frame, buf))
    }

    /// Queues whatever `write` appends (see [`Self::push`]).
    pub fn push_with(&self, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        if self.closed.get() || self.closing.get() {
            return false;
        }
        let mut buf = self.buf.borrow_mut();
        if buf.len() > self.max_unsent {
            drop(buf);
            self.close_with(Some(&closing_error(
                ErrorCode::SlowClient,
                format!(
                    "the client does not read its answers: more than {} bytes of them wait unsent; \
                     answers owed after this one are not sent",
                    self.max_unsent
                ),
            )));
            return false;
        }
        write(&mut buf);
        drop(buf);
        self.wake();
        true
    }

    /// True once the connection is being closed (by this side, for any
    /// reason: a slow reader among them) or is closed.
    pub fn is_closing(&self) -> bool {
        self.closing.get() || self.closed.get()
    }

    /// Wakes the writer (with nothing queued: to send what the connection's
    /// TLS session owes).
    pub fn wake(&self) {
        if !self.ready.is_set() {
            self.io_pending.set(true);
            self.ready.notify();
        }
    }

    /// Sends `last` (an error frame, usually), then closes the connection.
    pub fn close_with(&self, last: Option<&Frame>) {
        if let Some(frame) = last {
            if !self.closed.get() && !self.closing.get() {
                protocol::encode(frame, &mut self.buf.borrow_mut());
            }
        }
        self.closing.set(true);
        self.wake();
    }

    /// True once the writer stopped (the peer is gone or we closed).
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Writes until closed; then says so on the socket (see
    /// [`WriteSide::close`]).
    pub async fn write_loop(self: Rc<Self>, mut writer: WriteSide, coalesce: Option<Duration>) {
        let mut spare = Vec::with_capacity(4096);
        loop {
            self.ready.wait().await;
            if let Some(delay) = coalesce {
                glommio::timer::sleep(delay).await;
            }
            std::mem::swap(&mut *self.buf.borrow_mut(), &mut spare);
            if !spare.is_empty() || writer.has_records() {
                if writer.write_all(&spare).await.is_err() {
                    break;
                }
                spare.clear();
            }
            if self.closing.get() && self.buf.borrow().is_empty() {
                break;
            }
        }
        self.closed.set(true);
        self.buf.borrow_mut().clear();
        writer.close().await;
    }
}

/// Why a connection stopped reading.
#[derive(Debug)]
pub enum ReadEnd {
    /// The peer closed between frames.
    Closed,
    /// A frame could not be taken; answer with this code and close.
    Refused(ErrorCode, String),
    /// The socket failed.
    Io(io::Error),
}

/// Reads frames off one socket.
pub struct FrameReader {
    source: ReadSide,
    /// Allocated (and zeroed) once; `start..end` holds unread bytes.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_frame: usize,
    frame_timeout: Duration,
}

impl FrameReader {
    /// Reads frames of at most `max_frame` body bytes; a frame begun and
    /// not finished within `frame_timeout` of its last progress is refused.
    pub fn new(source: ReadSide, max_frame: usize, frame_timeout: Duration) -> Self {
        Self {
            source,
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
            max_frame,
            frame_timeout,
        }
    }

    /// Raises (or lowers) the largest frame taken from now on.
    pub fn set_max_frame(&mut self, max: usize) {
        self.max_frame = max;
    }

    /// True when no unread byte waits in the buffer: whatever was read has
    /// been handed out (so replies can be flushed as one batch).
    pub fn drained(&self) -> bool {
        self.start == self.end
    }

    /// The next frame of the client protocol; reads from the socket only
    /// when the buffer holds no whole frame.
    pub async fn next(&mut self) -> Result<Frame, ReadEnd> {
        self.next_decoded(protocol::decode).await
    }

    /// The first frame of a connection (its `HELLO`), refused as
    /// `SLOW_CLIENT` unless it is whole within `within` of the call.
    pub async fn first(&mut self, within: Duration) -> Result<Frame, ReadEnd> {
        let late = async {
            glommio::timer::sleep(within).await;
            Err(ReadEnd::Refused(
                ErrorCode::SlowClient,
                format!("no HELLO within {} ms of connecting", within.as_millis()),
            ))
        };
        futures_lite::future::or(self.next(), late).await
    }

    /// The next frame on a node link (envelopes included).
    pub async fn next_link(&mut self) -> Result<LinkFrame, ReadEnd> {
        self.next_decoded(|buf, max| protocol::decode_link(buf, max, Instant::now()))
            .await
    }

    async fn next_decoded<T>(
        &mut self,
        decode: impl Fn(&[u8], usize) -> Result<Option<(T, usize)>, protocol::DecodeError>,
    ) -> Result<T, ReadEnd> {
        loop {
            match decode(&self.buf[self.start..self.end], self.max_frame) {
                Ok(Some((frame, used))) => {
                    self.start += used;
                    return Ok(frame);
                }
                Ok(None) => {}
                Err(e) => return Err(ReadEnd::Refused(e.code(), e.to_string())),
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> Result<(), ReadEnd> {
        let pending = self.end - self.start;
        // The whole frame must fit: its length was checked against the
        // maximum above, so this grows at most to that.
        let need = match protocol::body_len(&self.buf[self.start..self.end], self.max_frame) {
            Ok(Some(len)) => protocol::PREFIX_BYTES + len,
            _ => protocol::PREFIX_BYTES,
        };
        if pending == 0 {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.start < need || self.end == self.buf.len() {
            // Move the partial frame to the front (cheap: less than one frame).
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = pending;
        }
        if self.buf.len() < need {
            self.buf.resize(need.next_power_of_two(), 0);
        }
        // Idle between frames is fine; a frame started must keep coming.
        let partial = pending > 0;
        let _ = self
            .source
            .stream()
            .set_read_timeout(partial.then_some(self.frame_timeout));
        let result = self.source.read(&mut self.buf[self.end..]).await;
        match result {
            Ok(0) if partial => Err(ReadEnd::Refused(
                ErrorCode::BadFrame,
                format!("connection closed inside a frame ({pending} bytes of it arrived)"),
            )),
            Ok(0) => Err(ReadEnd::Closed),
            Ok(n) => {
                self.end += n;
                Ok(())
            }
            Err(e)
                if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock =>
            {
                Err(ReadEnd::Refused(
                    ErrorCode::SlowClient,
                    format!(
                        "a frame was started and not finished within {} ms",
                        self.frame_timeout.as_millis()
                    ),
                ))
            }
            Err(e) => Err(ReadEnd::Io(e)),
        }
    }
}

/// An `ERROR` frame that closes a connection (`req` 0).
pub fn closing_error(code: ErrorCode, message: impl Into<String>) -> Frame {
    Frame::Error {
        req: 0,
        code,
        message: message.into(),
        detail: None,
    }
}
