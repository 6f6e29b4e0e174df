//! The sockets a node will open, laid out before any is bound, so that a
//! layout that collides with itself is refused with both uses named
//! instead of failing later with the OS's "Address already in use" (which
//! reads as if another program held the port).
//!
//! The layout is derived from two keys: `network.listen` (clients on TCP
//! `port`, membership gossip on UDP `port`, shard `i`'s node links on TCP
//! `port + 1 + i`; peers derive the link ports the same way, so they cannot
//! be chosen one by one) and `metrics.listen` (the admin HTTP endpoint).

use std::fmt;
use std::net::SocketAddr;

use crate::config::{ConfigError, NodeConfig};

/// TCP or UDP: ports of different protocols never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// A listening stream socket.
    Tcp,
    /// A datagram socket.
    Udp,
}

/// One socket of the layout and what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortUse {
    /// What the socket is for, with the key it comes from.
    pub purpose: String,
    /// The configuration key that places it.
    pub key: &'static str,
    /// Its protocol.
    pub protocol: Protocol,
    /// Its address (port 0: any free port, never a collision).
    pub addr: SocketAddr,
}

impl fmt::Display for PortUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        write!(f, "{proto} {:<22} {}", self.addr, self.purpose)
    }
}

/// Every socket a node of `shards` shards opens under `config`, in the
/// order it binds them.
///
/// ```
/// use quire_runtime::config::NodeConfig;
/// let mut config = NodeConfig::default();
/// config.network.listen = Some("127.0.0.1:7400".into());
/// config.metrics.listen = Some("127.0.0.1:9400".into());
/// let ports = quire_runtime::ports::layout(&config, 2).unwrap();
/// let list: Vec<u16> = ports.iter().map(|p| p.addr.port()).collect();
/// assert_eq!(list, [7400, 7400, 7401, 7402, 9400]);
/// ```
pub fn layout(config: &NodeConfig, shards: usize) -> Result<Vec<PortUse>, ConfigError> {
    let mut uses = Vec::new();
    if let Some(listen) = config.network.listen_addr()? {
        uses.push(PortUse {
            purpose: "client connections (network.listen)".into(),
            key: "network.listen",
            protocol: Protocol::Tcp,
            addr: listen,
        });
        uses.push(PortUse {
            purpose: "membership gossip (network.listen)".into(),
            key: "network.listen",
            protocol: Protocol::Udp,
            addr: listen,
        });
        for shard in 0..shards {
            let port = u32::from(listen.port()) + 1 + shard as u32;
            let port = u16::try_from(port).map_err(|_| ConfigError::Invalid {
                key: "network.listen",
                problem: format!(
                    "port {} leaves no room for {shards} link ports above it \
                     (shard {shard} would need port {port})",
                    listen.port()
                ),
            })?;
            uses.push(PortUse {
                purpose: format!("node links of shard {shard} (network.listen port + 1 + {shard})"),
                key: "network.listen",
                protocol: Protocol::Tcp,
                addr: SocketAddr::new(listen.ip(), port),
            });
        }
    }
    if let Some(metrics) = config.metrics.listen_addr()? {
        uses.push(PortUse {
            purpose: "the metrics endpoint (metrics.listen)".into(),
            key: "metrics.listen",
            protocol: Protocol::Tcp,
            addr: metrics,
        });
    }
    Ok(uses)
}

/// Two uses that would take the same socket.
fn collide(a: &PortUse, b: &PortUse) -> bool {
    let port = a.addr.port();
    // An unspecified address (0.0.0.0, ::) takes the port on every
    // interface, so it collides with any address of its family's port.
    let same_ip =
        a.addr.ip() == b.addr.ip() || a.addr.ip().is_unspecified() || b.addr.ip().is_unspecified();
    port != 0 && port == b.addr.port() && a.protocol == b.protocol && same_ip
}

/// Refuses a layout in which the node's own sockets collide, naming both
/// uses.
///
/// ```
/// use quire_runtime::config::NodeConfig;
/// let mut config = NodeConfig::default();
/// config.network.listen = Some("127.0.0.1:7400".into());
/// config.metrics.listen = Some("127.0.0.1:7401".into());
/// let err = quire_runtime::ports::check(&config, 2).unwrap_err().to_string();
/// assert!(err.contains("metrics.listen") && err.contains("shard 0"), "{err}");
/// ```
pub fn check(config: &NodeConfig, shards: usize) -> Result<Vec<PortUse>, ConfigError> {
    let uses = layout(config, shards)?;
    for (i, a) in uses.iter().enumerate() {
        if let Some(b) = uses[i + 1..].iter().find(|b| collide(a, b)) {
            return Err(ConfigError::Invalid {
                key: b.key,
                problem: format!(
                    "collides with the node's own sockets: {} would take {} \
                     that {} already takes (move one of them)",
                    b.purpose, b.addr, a.purpose
                ),
            });
        }
    }
    Ok(uses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listen: &str, metrics: Option<&str>) -> NodeConfig {
        let mut c = NodeConfig::default();
        c.network.listen = Some(listen.into());
        c.metrics.listen = metrics.map(Into::into);
        c
    }

    #[test]
    fn metrics_on_a_link_port_is_refused_naming_both() {
        let err = check(&config("127.0.0.1:7400", Some("127.0.0.1:7402")), 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("metrics endpoint"), "{err}");
        assert!(err.contains("node links of shard 1"), "{err}");
        // One shard has no link on 7402: the same layout is fine.
        check(&config("127.0.0.1:7400", Some("127.0.0.1:7402")), 1).unwrap();
    }

    #[test]
    fn metrics_on_the_client_port_is_refused_but_udp_does_not_collide() {
        let err = check(&config("127.0.0.1:7400", Some("127.0.0.1:7400")), 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("client connections"), "{err}");
        // The gossip socket is UDP on the client port: that is by design.
        check(&config("127.0.0.1:7400", None), 4).unwrap();
    }

    #[test]
    fn unspecified_addresses_collide_with_every_interface() {
        let err = check(&config("0.0.0.0:7400", Some("127.0.0.1:7401")), 2).unwrap_err();
        assert!(err.to_string().contains("shard 0"), "{err}");
        check(&config("127.0.0.1:7400", Some("127.0.0.2:7401")), 2).unwrap();
        check(&config("127.0.0.1:7400", Some("127.0.0.1:0")), 2).unwrap();
    }

    #[test]
    fn link_ports_past_65535_are_refused() {
        let err = check(&config("127.0.0.1:65534", None), 2).unwrap_err();
        assert!(
            err.to_string().contains("shard 1 would need port 65536"),
            "{err}"
        );
    }
}
