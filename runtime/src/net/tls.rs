//! A node's TLS settings: the rustls configurations its client port and its
//! node links use, built once when the node starts from `[network.tls]` and
//! `[cluster.tls]`. Every file is read and checked here, so a missing key,
//! a certificate that does not name the node or an empty authority stops
//! the start with an error naming the key and the file, instead of failing
//! each handshake later.
//!
//! The crypto provider is ring (aws-lc-rs would need cmake and a long C
//! build on a bare machine). TLS 1.2 and 1.3 with rustls' safe defaults.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::config::{ClientTls, ClusterSection, ConfigError, LinkTls, NetworkSection};

/// What a node's sockets need for TLS; `None` parts speak clear text.
#[derive(Clone, Default)]
pub(crate) struct TlsSetup {
    /// The client port's server side.
    pub clients: Option<Arc<rustls::ServerConfig>>,
    /// Mutual TLS on node links.
    pub links: Option<LinkTlsConfig>,
}

/// Both sides of mutual TLS on node links.
#[derive(Clone)]
pub(crate) struct LinkTlsConfig {
    /// For links other nodes open to this one: their certificate is
    /// required and checked against the cluster's authority.
    pub accept: Arc<rustls::ServerConfig>,
    /// For links this node opens: it presents its own certificate and
    /// checks that the other end's names the node it meant to reach.
    pub dial: Arc<rustls::ClientConfig>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsSetup {
    /// Reads the certificates the config names; `node_name` is this
    /// node's name, which its link certificate must carry.
    pub fn from_config(
        network: &NetworkSection,
        cluster: &ClusterSection,
        node_name: &str,
    ) -> Result<Self, ConfigError> {
        let clients = network.tls.as_ref().map(client_port_config).transpose()?;
        let links = cluster
            .tls
            .as_ref()
            .map(|tls| link_configs(tls, node_name))
            .transpose()?;
        Ok(Self { clients, links })
    }
}

fn client_port_config(tls: &ClientTls) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let certs = read_certs("network.tls.cert_file", &tls.cert_file)?;
    let key = read_key("network.tls.key_file", &tls.key_file)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("network.tls", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            invalid(
                "network.tls.key_file",
                format!(
                    "{} does not fit the certificate: {e}",
                    tls.key_file.display()
                ),
            )
        })?;
    // Clients reconnect with a full handshake; tickets would only cost.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

fn link_configs(tls: &LinkTls, node_name: &str) -> Result<LinkTlsConfig, ConfigError> {
    let authority = read_certs("cluster.tls.ca_file", &tls.ca_file)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in authority {
        roots.add(cert).map_err(|e| {
            invalid(
                "cluster.tls.ca_file",
                format!(
                    "{} holds a certificate rustls refuses: {e}",
                    tls.ca_file.display()
                ),
            )
        })?;
    }
    let roots = Arc::new(roots);
    let certs = read_certs("cluster.tls.cert_file", &tls.cert_file)?;
    let name = link_name(node_name).map_err(|problem| invalid("cluster.node_name", problem))?;
    certificate_names(&certs[0], &name).map_err(|problem| {
        invalid(
            "cluster.tls.cert_file",
            format!("{}: {problem}", tls.cert_file.display()),
        )
    })?;
    let key = read_key("cluster.tls.key_file", &tls.key_file)?;
    let key_misfit = |e: rustls::Error| {
        invalid(
            "cluster.tls.key_file",
            format!(
                "{} does not fit the certificate: {e}",
                tls.key_file.display()
            ),
        )
    };
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| invalid("cluster.tls.ca_file", e.to_string()))?;
    let mut accept = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("cluster.tls", e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs.clone(), key.clone_key())
        .map_err(key_misfit)?;
    accept.send_tls13_tickets = 0;
    let dial = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("cluster.tls", e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(key_misfit)?;
    Ok(LinkTlsConfig {
        accept: Arc::new(accept),
        dial: Arc::new(dial),
    })
}

/// A node name as the DNS name its link certificate must carry.
pub(crate) fn link_name(node_name: &str) -> Result<ServerName<'static>, String> {
    match ServerName::try_from(node_name.to_string()) {
        Ok(name @ ServerName::DnsName(_)) => Ok(name),
        _ => Err(format!(
            "{node_name:?} is not a DNS name (letters, digits, '-' and '.'), which a node's \
             name must be with [cluster.tls]: its link certificate names it"
        )),
    }
}

/// Ok when `cert` (DER) names `name`; otherwise what it does not.
pub(crate) fn certificate_names(
    cert: &CertificateDer<'_>,
    name: &ServerName<'_>,
) -> Result<(), String> {
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| format!("the certificate cannot be read: {e}"))?;
    parsed
        .verify_is_valid_for_subject_name(name)
        .map_err(|_| format!("the certificate does not name {}", name.to_str()))
}

fn read_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            invalid(
                key,
                format!("cannot read certificates from {}: {e}", path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(invalid(
            key,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(certs)
}

fn read_key(key: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        invalid(
            key,
            format!("cannot read a PEM private key from {}: {e}", path.display()),
        )
    })
}

fn invalid(key: &'static str, problem: String) -> ConfigError {
    ConfigError::Invalid { key, problem }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{self, CertRequest};

    fn files(dir: &Path, node: &str) -> LinkTls {
        certs::write(
            dir,
            &CertRequest {
                nodes: vec![node.to_string()],
                hosts: vec!["127.0.0.1".into()],
                days: 1,
            },
        )
        .unwrap();
        LinkTls {
            ca_file: dir.join("ca.pem"),
            cert_file: dir.join(format!("{node}.pem")),
            key_file: dir.join(format!("{node}.key")),
        }
    }

    #[test]
    fn a_link_certificate_must_name_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let tls = files(dir.path(), "node-a");
        assert!(link_configs(&tls, "node-a").is_ok());
        let err = link_configs(&tls, "node-b").err().unwrap().to_string();
        assert!(err.contains("cluster.tls.cert_file"), "{err}");
        assert!(err.contains("does not name node-b"), "{err}");
    }

    #[test]
    fn a_node_name_that_is_no_dns_name_is_refused_with_link_tls() {
        let dir = tempfile::tempdir().unwrap();
        let tls = files(dir.path(), "node-a");
        let err = link_configs(&tls, "node a").err().unwrap().to_string();
        assert!(
            err.contains("cluster.node_name") && err.contains("not a DNS name"),
            "{err}"
        );
    }

    #[test]
    fn missing_and_mismatched_files_name_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let tls = files(dir.path(), "node-a");
        let missing = ClientTls {
            cert_file: dir.path().join("nope.pem"),
            key_file: tls.key_file.clone(),
        };
        let err = client_port_config(&missing).err().unwrap().to_string();
        assert!(
            err.contains("network.tls.cert_file") && err.contains("nope.pem"),
            "{err}"
        );
        let other = files(&dir.path().join("other"), "node-b");
        let mismatched = ClientTls {
            cert_file: tls.cert_file.clone(),
            key_file: other.key_file,
        };
        let err = client_port_config(&mismatched).err().unwrap().to_string();
        assert!(
            err.contains("network.tls.key_file") && err.contains("does not fit"),
            "{err}"
        );
    }
}
