//! A `DEPLOY`'s or `RELOAD`'s own settings made into the agent's
//! [`WasmOptions`]: the node's defaults with each named setting replaced,
//! by the names and with the checks of the `[wasm.limits]` and
//! `[wasm.supervision]` config sections, so that a deploy over the wire
//! can ask for nothing a config file could not.

use quire_client::protocol::{DeployOptions, OptionValue};
use quire_shards::wasm::{AgentLimits, Supervision};

use crate::wasm_agents::{WasmDefaults, WasmOptions};

/// The options of one deploy; `Err` names the setting refused and why.
pub(super) fn wasm_options(
    defaults: &WasmDefaults,
    options: &DeployOptions,
) -> Result<WasmOptions, String> {
    if options.is_empty() {
        return Ok(WasmOptions::default());
    }
    let mut limits = table(&defaults.limits)?;
    let mut supervision = table(&defaults.supervision)?;
    for (key, value) in options.settings() {
        let value = match value {
            OptionValue::Uint(n) => toml::Value::Integer(
                i64::try_from(*n)
                    .map_err(|_| format!("deploy setting {key} = {n} is too large"))?,
            ),
            OptionValue::Str(s) => toml::Value::String(s.clone()),
            OptionValue::Bool(b) => toml::Value::Boolean(*b),
        };
        let section = if limits.contains_key(key) {
            &mut limits
        } else if supervision.contains_key(key) {
            &mut supervision
        } else {
            return Err(format!(
                "no deploy setting is called {key:?} (limits: {}; supervision: {})",
                names(&limits),
                names(&supervision)
            ));
        };
        let wanted = section[key.as_str()].type_str();
        if value.type_str() != wanted {
            return Err(format!(
                "deploy setting {key} wants {} {wanted}, not {value}",
                if wanted == "integer" { "an" } else { "a" }
            ));
        }
        if key == "policy" && !matches!(value.as_str(), Some("restart" | "stop")) {
            return Err(format!(
                "deploy setting policy is restart or stop, not {value}"
            ));
        }
        section.insert(key.clone(), value);
    }
    let limits: AgentLimits = toml::Value::Table(limits)
        .try_into()
        .map_err(|e: toml::de::Error| format!("deploy settings: {}", e.message()))?;
    limits
        .validate()
        .map_err(|problem| format!("deploy settings: {problem}"))?;
    let supervision: Supervision = toml::Value::Table(supervision)
        .try_into()
        .map_err(|e: toml::de::Error| format!("deploy settings: {}", e.message()))?;
    if supervision.max_failures == 0 || supervision.window_ms == 0 {
        return Err("deploy settings: max_failures and window_ms must be at least 1".into());
    }
    Ok(WasmOptions::default()
        .limits(limits)
        .supervision(supervision))
}

fn table(value: &impl serde::Serialize) -> Result<toml::Table, String> {
    match toml::Value::try_from(value) {
        Ok(toml::Value::Table(t)) => Ok(t),
        other => Err(format!("the node's defaults do not serialize: {other:?}")),
    }
}

fn names(table: &toml::Table) -> String {
    table.keys().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> WasmDefaults {
        WasmDefaults {
            limits: AgentLimits::default(),
            supervision: Supervision::default(),
        }
    }

    #[test]
    fn named_settings_replace_the_defaults_and_the_rest_stay() {
        let options = DeployOptions::default()
            .set("fuel_per_message", 1_000)
            .set("policy", "stop")
            .set("quarantine_on_cost", true);
        let got = wasm_options(&defaults(), &options).unwrap();
        let limits = got.limits.unwrap();
        assert_eq!(limits.fuel_per_message, 1_000);
        assert_eq!(limits.max_time_us, AgentLimits::default().max_time_us);
        let supervision = got.supervision.unwrap();
        assert_eq!(
            supervision.policy,
            quire_shards::wasm::OnRepeatedFailure::Stop
        );
        assert!(supervision.quarantine_on_cost);
        assert_eq!(
            wasm_options(&defaults(), &DeployOptions::default()).unwrap(),
            WasmOptions::default()
        );
    }

    #[test]
    fn a_refused_setting_is_named() {
        for (options, named) in [
            (DeployOptions::default().set("fuel", 1), "\"fuel\""),
            (
                DeployOptions::default().set("max_memory_bytes", 100),
                "max_memory_bytes must be at least 65536",
            ),
            (DeployOptions::default().set("policy", "explode"), "explode"),
            (
                DeployOptions::default().set("max_time_us", "soon"),
                "max_time_us",
            ),
            (
                DeployOptions::default().set("max_failures", 0),
                "max_failures",
            ),
            (
                DeployOptions::default().set("fuel_per_message", u64::MAX),
                "too large",
            ),
        ] {
            let err = wasm_options(&defaults(), &options).unwrap_err();
            assert!(err.contains(named), "{options:?}: {err}");
        }
    }
}
