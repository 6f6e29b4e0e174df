//! The crate stays light: what a program linking it gets is the protocol and
//! a socket, nothing of the node (no glommio, hwloc, wasmer, redb).

/// The crate's direct dependencies as Cargo.lock records them (normal and
/// dev together), so a new one is a decision someone makes here.
#[test]
fn the_client_links_nothing_of_the_node() {
    let lock = include_str!("../../../Cargo.lock");
    let entry = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"quire-client\""))
        .expect("quire-client in Cargo.lock");
    let deps: Vec<&str> = entry
        .lines()
        .skip_while(|l| !l.starts_with("dependencies"))
        .skip(1)
        .take_while(|l| !l.starts_with(']'))
        .map(|l| l.trim().trim_matches(|c| c == '"' || c == ','))
        .collect();
    // rustls (with ring, no aws-lc): TLS to nodes with `[network.tls]`.
    assert_eq!(
        deps,
        ["bytes", "libc", "proptest", "rmp", "rustls", "thiserror"]
    );
}
