//! Where a configuration comes from: a file (or the embedded default), then
//! every `QUIRE_<SECTION>_<KEY>` environment variable on top.

use std::path::Path;

use super::{ConfigError, NodeConfig};

/// `QUIRE_*` variables that are not config keys (read by other parts;
/// named here, not imported, so that the config depends on none of them).
const NOT_CONFIG_VARS: [&str; 6] = [
    "QUIRE_LOG",
    "QUIRE_NODE",
    "QUIRE_ADMIN_TOKEN",
    "QUIRE_SYSFS",
    "QUIRE_BIN",
    "QUIRE_SAFETY_NET_LOG", // the watchdog's SAFETY_NET_LOG
];

/// Config sections, longest first (so `wasm_limits_*` is not read as
/// `wasm.limits_*`).
const SECTIONS: [(&str, &[&str]); 11] = [
    ("PRIORITIES_", &["priorities"]),
    ("METRICS_", &["metrics"]),
    ("WASM_SUPERVISION_", &["wasm", "supervision"]),
    ("WASM_LIMITS_", &["wasm", "limits"]),
    ("NETWORK_", &["network"]),
    ("CLUSTER_", &["cluster"]),
    ("STORAGE_", &["storage"]),
    ("QUEUES_", &["queues"]),
    ("NODE_", &["node"]),
    ("DEMO_", &["demo"]),
    ("WASM_", &["wasm"]),
];

impl NodeConfig {
    /// The configuration a node starts with: `file` (or the embedded
    /// default), then every `QUIRE_<SECTION>_<KEY>` variable of `env` on top
    /// (e.g. `QUIRE_NODE_SHARDS=4`, `QUIRE_NETWORK_LISTEN=0.0.0.0:7400`,
    /// `QUIRE_CLUSTER_SEEDS=a:7400,b:7400`, `QUIRE_WASM_LIMITS_FUEL_PER_MESSAGE=1000`).
    /// Command-line flags go on top of this. Not validated yet: the caller
    /// validates once flags are applied.
    ///
    /// ```
    /// use quire_runtime::config::NodeConfig;
    /// let env = [("QUIRE_QUEUES_MAILBOX_CAPACITY".to_string(), "64".to_string())];
    /// let cfg = NodeConfig::load(None, env).unwrap();
    /// assert_eq!(cfg.queues.mailbox_capacity, 64);
    /// ```
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = match file {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?,
            None => String::new(),
        };
        let mut doc: toml::Table =
            toml::from_str(&text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("QUIRE_") && !NOT_CONFIG_VARS.contains(&k.as_str()))
            .collect();
        vars.sort();
        for (var, value) in vars {
            let rest = &var["QUIRE_".len()..];
            let Some((prefix, path)) = SECTIONS.iter().find(|(p, _)| rest.starts_with(p)) else {
                return Err(ConfigError::Env {
                    var,
                    problem: "names no config section (node, queues, storage, wasm, wasm_limits, wasm_supervision, network, cluster, demo)".into(),
                });
            };
            let key = rest[prefix.len()..].to_ascii_lowercase();
            let mut table = &mut doc;
            for section in *path {
                table = table
                    .entry(section.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .ok_or_else(|| ConfigError::Parse(format!("[{section}] is not a table")))?;
            }
            table.insert(key, env_value(&var, &value));
        }
        let cfg: Self = toml::Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        Ok(cfg)
    }
}

/// Keys whose values are strings even when they look like numbers.
const STRING_KEYS: [&str; 11] = [
    "_CPUSET",
    "_COMMIT_CPUSET",
    "_LISTEN",
    "_ADMIN_TOKEN",
    "_NODE_NAME",
    "_SECRET",
    "_DATA_DIR",
    "_NODE_ID",
    "_CACHE_DIR",
    "_DURABILITY",
    "_POLICY",
];

/// An environment value as TOML: a list for `seeds` and `*_scopes`
/// (comma-separated; empty: an empty list), a string for string
/// keys, else a number or boolean when it reads as one, else a string.
fn env_value(var: &str, value: &str) -> toml::Value {
    if STRING_KEYS.iter().any(|k| var.ends_with(k)) {
        return toml::Value::String(value.to_string());
    }
    if var.ends_with("_SEEDS") || var.ends_with("_SCOPES") {
        return toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        );
    }
    if let Ok(i) = value.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match value {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(value.to_string()),
    }
}
