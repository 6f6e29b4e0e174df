//! Per-deploy settings in `DEPLOY` and `RELOAD` (revision 1.3): the agent
//! limits and supervision settings one deploy overrides, by the names the
//! node's `[wasm.limits]` and `[wasm.supervision]` config sections use;
//! whatever a deploy leaves out keeps the node's default. The node checks
//! the names and values and refuses a deploy naming the one it cannot take.

/// One setting's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionValue {
    /// A number (limits, counts, durations).
    Uint(u64),
    /// A word (`policy`: `restart` or `stop`).
    Str(String),
    /// A flag (`quarantine_on_cost`).
    Bool(bool),
}

/// The settings one deploy overrides, in the order given.
///
/// ```
/// use quire_client::protocol::DeployOptions;
/// let options = DeployOptions::default()
///     .set("fuel_per_message", 50_000)
///     .set("max_time_us", 2_000)
///     .set("policy", "stop");
/// assert_eq!(options.settings().len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeployOptions(Vec<(String, OptionValue)>);

impl DeployOptions {
    /// The options with `key` set to `value` (a later value for the same
    /// key replaces the earlier).
    pub fn set(mut self, key: &str, value: impl Into<OptionValue>) -> Self {
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_string(), value.into()));
        self
    }

    /// Parses `KEY=VALUE` (a number, else a word), as the CLI's `--set`
    /// takes it.
    ///
    /// ```
    /// use quire_client::protocol::{DeployOptions, OptionValue};
    /// let o = DeployOptions::default().parse_setting("max_time_us=500").unwrap();
    /// assert_eq!(o.settings()[0].1, OptionValue::Uint(500));
    /// assert!(DeployOptions::default().parse_setting("nonsense").is_err());
    /// ```
    pub fn parse_setting(self, setting: &str) -> Result<Self, String> {
        let Some((key, value)) = setting.split_once('=') else {
            return Err(format!("{setting:?} is not KEY=VALUE"));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(format!("{setting:?} names no setting"));
        }
        Ok(match (value.parse::<u64>(), value) {
            (Ok(n), _) => self.set(key, n),
            (_, "true") => self.set(key, true),
            (_, "false") => self.set(key, false),
            _ => self.set(key, value),
        })
    }

    /// Every setting, in the order given.
    pub fn settings(&self) -> &[(String, OptionValue)] {
        &self.0
    }

    /// Whether no setting is overridden.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<u64> for OptionValue {
    fn from(v: u64) -> Self {
        OptionValue::Uint(v)
    }
}

impl From<&str> for OptionValue {
    fn from(v: &str) -> Self {
        OptionValue::Str(v.to_string())
    }
}

impl From<bool> for OptionValue {
    fn from(v: bool) -> Self {
        OptionValue::Bool(v)
    }
}
