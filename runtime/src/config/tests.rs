//! The configuration's unit tests: defaults, files, variables, bounds.

use super::*;

fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn environment_overrides_the_file() {
    let dir = std::env::temp_dir().join(format!("quire-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("q.toml");
    std::fs::write(
        &file,
        "[queues]\nmailbox_capacity = 10\nagent_batch = 3\n[wasm.limits]\nfuel_per_message = 5\n",
    )
    .unwrap();
    let cfg = NodeConfig::load(
        Some(&file),
        vars(&[
            ("QUIRE_QUEUES_MAILBOX_CAPACITY", "20"),
            ("QUIRE_WASM_LIMITS_FUEL_PER_MESSAGE", "7"),
            ("QUIRE_NETWORK_LISTEN", "127.0.0.1:7999"),
            ("QUIRE_CLUSTER_SEEDS", "a:1, b:2"),
            ("QUIRE_STORAGE_DURABILITY", "batched"),
            ("QUIRE_LOG", "debug"),
            ("PATH", "/bin"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.queues.mailbox_capacity, 20);
    assert_eq!(cfg.queues.agent_batch, 3, "the file's value stays");
    assert_eq!(cfg.wasm.limits.fuel_per_message, 7);
    assert_eq!(cfg.network.listen.as_deref(), Some("127.0.0.1:7999"));
    assert_eq!(
        cfg.cluster.seeds,
        vec!["a:1".to_string(), "b:2".to_string()]
    );
    assert!(cfg.storage.durability.is_persistent());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_environment_variables_are_named() {
    let err = NodeConfig::load(None, vars(&[("QUIRE_QUEUES_MAILBOX_CAPACTY", "2")])).unwrap_err();
    assert!(err.to_string().contains("mailbox_capacty"), "{err}");
    let err = NodeConfig::load(None, vars(&[("QUIRE_NOPE_X", "2")])).unwrap_err();
    assert!(err.to_string().contains("QUIRE_NOPE_X"), "{err}");
    let err =
        NodeConfig::load(None, vars(&[("QUIRE_QUEUES_MAILBOX_CAPACITY", "lots")])).unwrap_err();
    assert!(err.to_string().contains("mailbox_capacity"), "{err}");
}

#[test]
fn priorities_and_metrics_come_from_file_and_environment() {
    let cfg = NodeConfig::from_toml(
        "[priorities]\nexpress_scheduling = false\nurgent_headroom = 3\n[metrics]\nlisten = \"127.0.0.1:9401\"\nstall_threshold_ms = 0\n",
    )
    .unwrap();
    assert!(!cfg.priorities.express_scheduling);
    assert_eq!(cfg.priorities.urgent_headroom, 3);
    assert_eq!(
        cfg.metrics.listen_addr().unwrap(),
        Some("127.0.0.1:9401".parse().unwrap())
    );
    assert_eq!(cfg.metrics.stall_threshold_ms, 0);
    let cfg = NodeConfig::load(
        None,
        vars(&[
            ("QUIRE_PRIORITIES_URGENT_HEADROOM", "7"),
            ("QUIRE_METRICS_LISTEN", "127.0.0.1:9402"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.priorities.urgent_headroom, 7);
    assert_eq!(cfg.metrics.listen.as_deref(), Some("127.0.0.1:9402"));
    let err = NodeConfig::from_toml("[metrics]\nlisten = \"nowhere\"").unwrap_err();
    assert!(err.to_string().contains("metrics.listen"), "{err}");
    let err = NodeConfig::from_toml("[priorities]\nexpress = true").unwrap_err();
    assert!(err.to_string().contains("express"), "{err}");
}

#[test]
fn embedded_default_matches_the_code_defaults() {
    let parsed = NodeConfig::from_toml(DEFAULT_CONFIG_TOML).unwrap();
    let empty = NodeConfig::from_toml("").unwrap();
    assert_eq!(parsed, empty);
}

#[test]
fn errors_name_the_key() {
    let err = NodeConfig::from_toml("[queues]\nmailbox_capacity = 0").unwrap_err();
    assert!(
        err.to_string()
            .contains("queues.mailbox_capacity must be at least 1"),
        "{err}"
    );
    let err = NodeConfig::from_toml("[node]\nshards = 0").unwrap_err();
    assert!(err.to_string().contains("node.shards"), "{err}");
    let err = NodeConfig::from_toml("[node]\nsharts = 2").unwrap_err();
    assert!(err.to_string().contains("sharts"), "{err}");
    let err = NodeConfig::from_toml("[queues]\nmailbox_capacity = \"big\"").unwrap_err();
    assert!(err.to_string().contains("mailbox_capacity"), "{err}");
    let err = NodeConfig::from_toml("[storage]\ndurability = \"sometimes\"").unwrap_err();
    assert!(err.to_string().contains("sometimes"), "{err}");
    let err = NodeConfig::from_toml("[storage]\nbatch_max_messages = 0").unwrap_err();
    assert!(
        err.to_string().contains("storage.batch_max_messages"),
        "{err}"
    );
    let err =
        NodeConfig::from_toml("[storage]\ndurability = \"batched\"\ndata_dir = \"\"").unwrap_err();
    assert!(err.to_string().contains("storage.data_dir"), "{err}");
    let err = NodeConfig::from_toml("[node]\nspin_before_park_us = 5000000").unwrap_err();
    assert!(
        err.to_string().contains("node.spin_before_park_us"),
        "{err}"
    );
}

#[test]
fn missing_file_is_named() {
    let err = NodeConfig::from_file(Path::new("/nonexistent/quire.toml")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/quire.toml"));
}

#[test]
fn tokens_are_read_from_the_file_and_bad_ones_are_named() {
    let ok = NodeConfig::from_toml(
        "[network]\nanonymous_scopes = [\"read\"]\n[[network.tokens]]\nname = \"ingest\"\nsecret = \"s1\"\nscopes = [\"message\"]\n[[network.tokens]]\nname = \"ops\"\nsecret = \"s2\"\nscopes = [\"read\", \"admin\"]\n",
    )
    .unwrap();
    assert_eq!(ok.network.tokens.len(), 2);
    assert_eq!(ok.network.tokens[1].scopes, ["read", "admin"]);
    assert_eq!(ok.network.anonymous_scopes, ["read"]);

    let token = |name: &str, secret: &str, scopes: &str| {
        format!("[[network.tokens]]\nname = \"{name}\"\nsecret = \"{secret}\"\nscopes = {scopes}\n")
    };
    for (toml, names) in [
        (token("ingest", "s1", "[\"wirte\"]"), "\"wirte\""),
        (token("", "s1", "[\"read\"]"), "entry 1 has no name"),
        (
            token("admin", "s1", "[\"read\"]"),
            "may not be called \"admin\"",
        ),
        (token("ingest", "", "[\"read\"]"), "has no secret"),
        (
            token("ingest", "s1", "[\"read\"]") + "secret_file = \"/run/s\"\n",
            "both secret and secret_file",
        ),
        (token("ingest", "s1", "[]"), "grants no scope"),
        (
            token("a", "s1", "[\"read\"]") + &token("a", "s2", "[\"read\"]"),
            "named twice",
        ),
        (
            token("a", "s1", "[\"read\"]") + &token("b", "s1", "[\"admin\"]"),
            "token \"b\" has the same secret",
        ),
        (
            "[network]\nanonymous_scopes = [\"everything\"]\n".to_string(),
            "network.anonymous_scopes",
        ),
    ] {
        let err = NodeConfig::from_toml(&toml).unwrap_err();
        assert!(err.to_string().contains(names), "{toml}: {err}");
    }
    let err = NodeConfig::from_toml(
        "[[network.tokens]]\nname = \"x\"\nsecret = \"y\"\nscopes = [\"read\"]\nscope = \"typo\"\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("scope"), "{err}");
}

#[test]
fn anonymous_scopes_come_from_the_environment_as_a_list() {
    let cfg =
        NodeConfig::load(None, vars(&[("QUIRE_NETWORK_ANONYMOUS_SCOPES", "message")])).unwrap();
    assert_eq!(cfg.network.anonymous_scopes, ["message"]);
    let cfg = NodeConfig::load(None, vars(&[("QUIRE_NETWORK_ANONYMOUS_SCOPES", "")])).unwrap();
    assert!(cfg.network.anonymous_scopes.is_empty());
}
