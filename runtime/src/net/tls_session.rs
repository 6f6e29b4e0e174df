//! One connection's TLS session, shared by the connection's two tasks.
//!
//! A connection is read by one task and written by another, through two
//! descriptors of one socket (see [`super::io`]). With TLS both go through
//! one rustls state machine: the reader feeds it the bytes it reads and
//! takes plaintext out, the writer hands it plaintext and puts the sealed
//! records on the socket. Both tasks run on the shard's one thread, so a
//! `RefCell` is all the sharing needs; no borrow is held across an await.
//!
//! The handshake is done before the two tasks start ([`handshake`]), on
//! the task serving the connection, so that accepting goes on meanwhile.
//! After it, the only records the reader makes rustls owe (a key update
//! answer, an alert) are put on the socket by the writer, which the
//! reader wakes through the hook its owner set ([`TlsSession::on_records`]).

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use rustls::pki_types::ServerName;

/// The first byte of a TLS record carrying a handshake. A Quire frame
/// starts with its length, and no frame is that long (0x16 as the top
/// byte of a u32 length is ~369 MB), so a connection starting otherwise
/// is a clear-text client on a TLS port.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Why a handshake did not complete.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    /// The client spoke clear text to a TLS port.
    ClearText,
    /// TLS refused (a bad certificate, no common cipher, ...), the peer
    /// left, or the deadline passed.
    Failed(io::Error),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClearText => f.write_str("a clear-text client on a TLS port"),
            Self::Failed(e) => write!(f, "TLS handshake failed: {e}"),
        }
    }
}

/// A connection's TLS state.
pub(crate) struct TlsSession {
    conn: RefCell<rustls::Connection>,
    wake_writer: RefCell<Option<Box<dyn Fn()>>>,
}

impl TlsSession {
    /// Sets what wakes the connection's writer when rustls has records to
    /// send that no plaintext of the writer's will carry.
    pub fn on_records(&self, wake: impl Fn() + 'static) {
        *self.wake_writer.borrow_mut() = Some(Box::new(wake));
    }

    /// True when rustls holds records not yet put on the socket.
    pub fn has_records(&self) -> bool {
        self.conn.borrow().wants_write()
    }

    /// Ok when the peer's certificate names `name` (the peer presented one:
    /// node links require it).
    pub fn peer_named(&self, name: &ServerName<'_>) -> Result<(), String> {
        let conn = self.conn.borrow();
        let cert = conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .ok_or_else(|| "the peer presented no certificate".to_string())?;
        super::tls::certificate_names(cert, name)
    }

    /// Plaintext already decrypted, into `dst`: `Some(0)` once the peer
    /// said it closes, `None` when rustls holds none.
    fn read_plain(&self, dst: &mut [u8]) -> io::Result<Option<usize>> {
        match self.conn.borrow_mut().reader().read(dst) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Feeds rustls records read off the socket; returns how many bytes of
    /// `bytes` it took (it takes less when its buffers are full: take the
    /// plaintext out first).
    fn take_records(&self, bytes: &[u8]) -> io::Result<usize> {
        let mut conn = self.conn.borrow_mut();
        let mut rest = bytes;
        let taken = conn.read_tls(&mut rest)?;
        let outcome = conn.process_new_packets();
        let owes = conn.wants_write();
        drop(conn);
        if owes {
            if let Some(wake) = self.wake_writer.borrow().as_ref() {
                wake();
            }
        }
        outcome.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}")))?;
        Ok(taken)
    }

    /// Seals `plain` and whatever records rustls owes into `out`.
    fn seal(&self, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut conn = self.conn.borrow_mut();
        if !plain.is_empty() {
            conn.writer().write_all(plain)?;
        }
        while conn.wants_write() {
            conn.write_tls(out)?;
        }
        Ok(())
    }

    fn close_notify(&self) {
        self.conn.borrow_mut().send_close_notify();
    }
}

/// Runs the handshake of `conn` on `stream`, within `within`.
pub(crate) async fn handshake(
    stream: &mut TcpStream,
    conn: impl Into<rustls::Connection>,
    within: Duration,
) -> Result<Rc<TlsSession>, HandshakeError> {
    let mut conn = conn.into();
    // Our writer seals a whole batch of answers at once; the batch is
    // bounded by `network.max_unsent_bytes` already.
    conn.set_buffer_limit(None);
    let run = async {
        let mut raw = vec![0u8; 16 * 1024];
        let mut sealed = Vec::new();
        // Only an accepting side can meet a clear-text client, on its first read.
        let mut first = matches!(conn, rustls::Connection::Server(_));
        loop {
            while conn.wants_write() {
                conn.write_tls(&mut sealed)
                    .map_err(HandshakeError::Failed)?;
            }
            if !sealed.is_empty() {
                stream
                    .write_all(&sealed)
                    .await
                    .map_err(HandshakeError::Failed)?;
                sealed.clear();
            }
            if !conn.is_handshaking() {
                return Ok(());
            }
            let n = stream
                .read(&mut raw)
                .await
                .map_err(HandshakeError::Failed)?;
            if n == 0 {
                return Err(HandshakeError::Failed(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed during the TLS handshake",
                )));
            }
            if std::mem::take(&mut first) && raw[0] != TLS_HANDSHAKE_RECORD {
                return Err(HandshakeError::ClearText);
            }
            let mut rest = &raw[..n];
            while !rest.is_empty() {
                conn.read_tls(&mut rest).map_err(HandshakeError::Failed)?;
                if let Err(e) = conn.process_new_packets() {
                    // Tell the peer why (the alert), then give up.
                    while conn.wants_write() {
                        let _ = conn.write_tls(&mut sealed);
                    }
                    let _ = stream.write_all(&sealed).await;
                    return Err(HandshakeError::Failed(io::Error::new(
                        io::ErrorKind::InvalidData,
                        e.to_string(),
                    )));
                }
            }
        }
    };
    let late = async {
        glommio::timer::sleep(within).await;
        Err(HandshakeError::Failed(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no TLS handshake within {} ms", within.as_millis()),
        )))
    };
    futures_lite::future::or(run, late).await?;
    Ok(Rc::new(TlsSession {
        conn: RefCell::new(conn),
        wake_writer: RefCell::new(None),
    }))
}

/// The read side of a connection: clear text, or records opened by its
/// session.
pub(crate) enum ReadSide {
    Plain(TcpStream),
    Tls {
        stream: TcpStream,
        session: Rc<TlsSession>,
        /// Records read off the socket; `start..end` not fed to rustls yet.
        raw: Box<[u8]>,
        start: usize,
        end: usize,
    },
}

impl ReadSide {
    /// Opens records of `session` read from `stream`.
    pub fn tls(stream: TcpStream, session: Rc<TlsSession>) -> Self {
        Self::Tls {
            stream,
            session,
            raw: vec![0; 32 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The socket (for its timeouts).
    pub fn stream(&self) -> &TcpStream {
        match self {
            Self::Plain(stream) | Self::Tls { stream, .. } => stream,
        }
    }

    /// Reads some bytes of the connection's stream into `dst`; 0 at its end.
    pub async fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(stream) => stream.read(dst).await,
            Self::Tls {
                stream,
                session,
                raw,
                start,
                end,
            } => loop {
                if let Some(n) = session.read_plain(dst)? {
                    return Ok(n);
                }
                if start < end {
                    *start += session.take_records(&raw[*start..*end])?;
                    continue;
                }
                let n = stream.read(raw).await?;
                if n == 0 {
                    return Ok(0);
                }
                (*start, *end) = (0, n);
            },
        }
    }
}

/// The write side of a connection: clear text, or sealed by its session.
pub(crate) struct WriteSide {
    stream: TcpStream,
    session: Option<Rc<TlsSession>>,
    sealed: Vec<u8>,
}

impl WriteSide {
    /// Writes `stream` in clear text, or through `session`.
    pub fn new(stream: TcpStream, session: Option<Rc<TlsSession>>) -> Self {
        Self {
            stream,
            session,
            sealed: Vec::new(),
        }
    }

    /// True when the session owes records though no plaintext waits.
    pub fn has_records(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.has_records())
    }

    /// Writes all of `plain` (and any record the session owes).
    pub async fn write_all(&mut self, plain: &[u8]) -> io::Result<()> {
        let Some(session) = &self.session else {
            return self.stream.write_all(plain).await;
        };
        session.seal(plain, &mut self.sealed)?;
        let result = self.stream.write_all(&self.sealed).await;
        self.sealed.clear();
        result
    }

    /// Says the connection closes (a TLS close_notify), then shuts the
    /// socket down so that the peer sees the end even while our reader
    /// still holds its descriptor.
    pub async fn close(&mut self) {
        if let Some(session) = &self.session {
            session.close_notify();
            let _ = self.write_all(&[]).await;
        }
        let _ = self.stream.flush().await;
        let _ = self.stream.shutdown(std::net::Shutdown::Both).await;
    }
}
