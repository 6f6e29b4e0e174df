//! Certificates for a cluster's TLS (`quire certs`): one certificate
//! authority and, for each node, a certificate naming it, signed by that
//! authority, good both for the client port (`[network.tls]`) and for
//! mutual TLS on node links (`[cluster.tls]`).
//!
//! Made for clusters that have no PKI of their own, and for tests. A node
//! takes any PEM certificate and key, so an organisation's own authority
//! works as well.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let request = quire_runtime::certs::CertRequest {
//!     nodes: vec!["node-a".into()],
//!     hosts: vec!["127.0.0.1".into()],
//!     days: 30,
//! };
//! let written = quire_runtime::certs::write(dir.path(), &request).unwrap();
//! assert!(dir.path().join("ca.pem").exists() && dir.path().join("node-a.key").exists());
//! assert_eq!(written.len(), 4);
//! ```

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// What to make.
#[derive(Debug, Clone)]
pub struct CertRequest {
    /// Node names: one certificate each, naming the node (a DNS name).
    pub nodes: Vec<String>,
    /// More names every node certificate carries: the host names and IP
    /// addresses clients reach the nodes by (`127.0.0.1`, `localhost`,
    /// a load balancer's name).
    pub hosts: Vec<String>,
    /// How long the certificates are valid, from now.
    pub days: u32,
}

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A name rcgen cannot put in a certificate.
    #[error("{name:?} cannot be a certificate name: {source}")]
    Name {
        /// The name.
        name: String,
        /// Why.
        source: rcgen::Error,
    },
    /// Key generation or signing failed.
    #[error("cannot make the certificate: {0}")]
    Make(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The request names no node.
    #[error("name at least one node")]
    NoNodes,
}

/// Writes `ca.pem`, `ca.key` and, for each node, `NODE.pem` and `NODE.key`
/// into `dir` (created if missing; keys readable by their owner only).
/// Returns the files written.
pub fn write(dir: &Path, request: &CertRequest) -> Result<Vec<PathBuf>, CertError> {
    if request.nodes.is_empty() {
        return Err(CertError::NoNodes);
    }
    std::fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let now = time::OffsetDateTime::now_utc();
    // Valid from a day back, so that nodes whose clocks lag accept it.
    let not_before = now - time::Duration::days(1);
    let not_after = now + time::Duration::days(i64::from(request.days.max(1)));

    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "Quire cluster authority");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let mut written = vec![
        put(dir, "ca.pem", &ca_cert.pem(), false)?,
        put(dir, "ca.key", &ca_key.serialize_pem(), true)?,
    ];
    let issuer = Issuer::new(ca, ca_key);

    for node in &request.nodes {
        let mut names = vec![node.clone()];
        names.extend(request.hosts.iter().filter(|h| *h != node).cloned());
        let mut params = CertificateParams::new(names).map_err(|source| CertError::Name {
            name: node.clone(),
            source,
        })?;
        params
            .distinguished_name
            .push(DnType::CommonName, node.as_str());
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        written.push(put(dir, &format!("{node}.pem"), &cert.pem(), false)?);
        written.push(put(
            dir,
            &format!("{node}.key"),
            &key.serialize_pem(),
            true,
        )?);
    }
    Ok(written)
}

fn put(dir: &Path, file: &str, text: &str, secret: bool) -> Result<PathBuf, CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(file);
    let failed = |source| CertError::Write {
        path: path.clone(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if secret {
        options.mode(0o600);
    }
    let mut out = options.open(&path).map_err(failed)?;
    out.write_all(text.as_bytes()).map_err(failed)?;
    Ok(path)
}
