//! TLS for a [`crate::RemoteClient`]: which authority to trust and which
//! name the node's certificate must carry, and the socket a connection
//! reads and writes (clear text or TLS).
//!
//! ```no_run
//! use quire_client::{RemoteClient, TlsOptions};
//! let tls = TlsOptions::from_ca_file("/etc/quire/ca.pem")?;
//! let mut node = RemoteClient::connect_tls("127.0.0.1:7400", None, &tls)?;
//! node.ping()?;
//! # Ok::<(), quire_client::ClientError>(())
//! ```

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::ClientError;

/// How a client checks the node it connects to.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    config: Arc<rustls::ClientConfig>,
    server_name: Option<String>,
}

impl TlsOptions {
    /// Trusts the certificate authorities in the PEM file `path` (a node
    /// made by `quire certs` is signed by its `ca.pem`).
    pub fn from_ca_file(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let bad = |problem: String| ClientError::Tls(format!("{}: {problem}", path.display()));
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(format!("cannot read certificates: {e}")))?;
        if certs.is_empty() {
            return Err(bad("holds no PEM certificate".into()));
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| bad(format!("a certificate rustls refuses: {e}")))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
            server_name: None,
        })
    }

    /// Checks the node's certificate for `name` instead of the host of the
    /// address connected to.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The name to check for a node reached at `addr` (`host:port`).
    fn name_for(&self, addr: &str) -> Result<ServerName<'static>, ClientError> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => host_of(addr).to_string(),
        };
        ServerName::try_from(name.clone())
            .map_err(|_| ClientError::Tls(format!("{name:?} is not a host name or IP address")))
    }
}

/// `host` of `host:port`, `[v6]:port` or a bare host.
fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() && !host.contains(':') => host,
        _ => addr,
    }
}

/// A connection's socket: clear text, or TLS over it.
#[derive(Debug)]
pub(crate) enum Wire {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Wire {
    /// Does the TLS handshake on `tcp` for a node reached at `addr`.
    pub fn tls(tcp: TcpStream, addr: &str, options: &TlsOptions) -> Result<Self, ClientError> {
        let name = options.name_for(addr)?;
        let conn = rustls::ClientConnection::new(options.config.clone(), name)
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| ClientError::Tls(format!("handshake with {addr}: {e}")))?;
        }
        Ok(Self::Tls(Box::new(stream)))
    }

    /// The socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(tcp) => tcp,
            Self::Tls(stream) => &stream.sock,
        }
    }

    /// True when plaintext already decrypted waits to be read.
    pub fn has_buffered(&mut self) -> bool {
        match self {
            Self::Plain(_) => false,
            Self::Tls(stream) => stream
                .conn
                .process_new_packets()
                .is_ok_and(|state| state.plaintext_bytes_to_read() > 0),
        }
    }

    /// Ends the sending side (after a TLS close_notify).
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        if let Self::Tls(stream) = self {
            stream.conn.send_close_notify();
            stream.flush()?;
        }
        self.tcp().shutdown(std::net::Shutdown::Write)
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.read(buf),
            Self::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.write(buf),
            Self::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => tcp.flush(),
            Self::Tls(stream) => stream.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_host_of_an_address() {
        assert_eq!(host_of("127.0.0.1:7400"), "127.0.0.1");
        assert_eq!(host_of("node-a.example:7400"), "node-a.example");
        assert_eq!(host_of("[::1]:7400"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }
}
