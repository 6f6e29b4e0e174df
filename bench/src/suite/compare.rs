//! Figures, summaries and `compare --baseline`: a regression is judged on
//! its ratio to the in-run peer, so that machine noise cancels.

use super::*;

/// Which way a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Latencies, memory, recovery time.
    Lower,
    /// Rates.
    Higher,
}

/// One figure of a report, with its peer's from the same run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// The scenario, e.g. `latency`.
    pub scenario: String,
    /// What is measured, e.g. `p99`.
    pub metric: String,
    /// Unit of `quire` and `peer`.
    pub unit: String,
    /// Which way is better.
    pub better: Better,
    /// Quire's value.
    pub quire: f64,
    /// The peer measured in the same run, if any.
    pub peer_name: Option<String>,
    /// The peer's value.
    pub peer: Option<f64>,
}

impl Figure {
    /// A figure without a peer; [`Self::vs`] adds one.
    pub fn new(
        scenario: impl Into<String>,
        metric: impl Into<String>,
        unit: &str,
        better: Better,
        quire: f64,
    ) -> Self {
        Self {
            scenario: scenario.into(),
            metric: metric.into(),
            unit: unit.into(),
            better,
            quire,
            peer_name: None,
            peer: None,
        }
    }

    /// With the peer `name` measured at `value` in the same run.
    pub fn vs(self, name: impl Into<String>, value: f64) -> Self {
        self.vs_maybe(Some((name, value)))
    }

    /// [`Self::vs`] when the peer ran.
    pub fn vs_maybe(mut self, peer: Option<(impl Into<String>, f64)>) -> Self {
        if let Some((name, value)) = peer {
            self.peer_name = Some(name.into());
            self.peer = Some(value);
        }
        self
    }

    /// Quire's advantage over the peer: above 1 means Quire did better
    /// (peer/quire for lower-is-better figures, quire/peer otherwise).
    pub fn ratio(&self) -> Option<f64> {
        let peer = self.peer?;
        if self.quire <= 0.0 || peer <= 0.0 {
            return None;
        }
        Some(match self.better {
            Better::Lower => peer / self.quire,
            Better::Higher => self.quire / peer,
        })
    }

    fn key(&self) -> (String, String, Option<String>) {
        (
            self.scenario.clone(),
            self.metric.clone(),
            self.peer_name.clone(),
        )
    }

    fn shown(&self, v: f64) -> String {
        match self.unit.as_str() {
            "ns" => human_ns(v as u64),
            "msg/s" | "agents/s" => format!("{:.0}", v),
            "bytes" => format!("{:.0} B", v),
            "ms" => format!("{v:.1} ms"),
            "x" => format!("{v:.2}x"),
            _ => format!("{v:.3}"),
        }
    }
}

/// A report: where it ran and its figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// `standard`, `custom`, `stress`.
    pub suite: String,
    /// The machine.
    pub machine: MachineInfo,
    /// Every figure.
    pub figures: Vec<Figure>,
}

impl Summary {
    /// The markdown report; with a baseline, each figure's change from it
    /// (judged on the ratio to the peer where there is one).
    pub fn markdown(&self, baseline: Option<&Summary>) -> String {
        let mut out = format!(
            "# quire-bench {}\n\nMachine: {} ({} CPUs, kernel {}).\n\n",
            self.suite, self.machine.cpu_model, self.machine.cpus, self.machine.kernel
        );
        out.push_str("| metric | baseline | current | change | peer (same run) | ratio |\n|---|---|---|---|---|---|\n");
        for f in &self.figures {
            let base = baseline.and_then(|b| b.figures.iter().find(|g| g.key() == f.key()));
            let (base_text, change) = match base {
                Some(b) => (b.shown(b.quire), change_text(b, f)),
                None => ("-".to_string(), "-".to_string()),
            };
            let peer = match (&f.peer_name, f.peer) {
                (Some(name), Some(v)) => format!("{name}: {}", f.shown(v)),
                _ => "-".into(),
            };
            let ratio = f.ratio().map_or("-".into(), |r| format!("{r:.2}x"));
            out.push_str(&format!(
                "| {} {} | {} | {} | {} | {} | {} |\n",
                f.scenario,
                f.metric,
                base_text,
                f.shown(f.quire),
                change,
                peer,
                ratio
            ));
        }
        out.push_str("\nratio: Quire's advantage over the peer measured in the same run (above 1: Quire better).\n");
        out
    }
}

fn change_text(base: &Figure, now: &Figure) -> String {
    match (base.ratio(), now.ratio()) {
        (Some(b), Some(n)) => format!("{:+.1}% (ratio {b:.2}x -> {n:.2}x)", (n / b - 1.0) * 100.0),
        _ if base.quire > 0.0 => format!("{:+.1}%", (now.quire / base.quire - 1.0) * 100.0),
        _ => "-".into(),
    }
}

/// Figures that got worse than `baseline` by more than `threshold` (0.1 =
/// 10%): judged on the ratio to the in-run peer where both have one, else
/// (with `absolute`) on the value itself.
pub fn regressions(
    current: &Summary,
    baseline: &Summary,
    threshold: f64,
    absolute: bool,
) -> Vec<String> {
    let mut found = Vec::new();
    for b in &baseline.figures {
        let Some(c) = current.figures.iter().find(|f| f.key() == b.key()) else {
            found.push(format!(
                "{} {}: missing from the current run",
                b.scenario, b.metric
            ));
            continue;
        };
        let worse = match (b.ratio(), c.ratio()) {
            (Some(br), Some(cr)) => (cr < br * (1.0 - threshold)).then(|| {
                format!(
                    "{} {} (vs {}): ratio {br:.2}x -> {cr:.2}x",
                    b.scenario,
                    b.metric,
                    b.peer_name.as_deref().unwrap_or("peer")
                )
            }),
            _ if absolute && b.quire > 0.0 => {
                let change = c.quire / b.quire - 1.0;
                let bad = match b.better {
                    Better::Lower => change > threshold,
                    Better::Higher => change < -threshold,
                };
                bad.then(|| {
                    format!(
                        "{} {}: {} -> {}",
                        b.scenario,
                        b.metric,
                        b.shown(b.quire),
                        c.shown(c.quire)
                    )
                })
            }
            _ => None,
        };
        found.extend(worse);
    }
    found
}

/// Options of `quire-bench compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareOptions {
    /// The baseline summary (JSON from `run` or `custom`).
    #[arg(long)]
    pub baseline: PathBuf,
    /// The current summary.
    #[arg(long, default_value = "bench-results/standard/summary.json")]
    pub current: PathBuf,
    /// Largest regression tolerated (0.1 = 10%).
    #[arg(long, default_value_t = 0.10)]
    pub threshold: f64,
    /// Also judge figures without a peer on their value (noisy).
    #[arg(long)]
    pub absolute: bool,
}

pub(super) fn read_summary(path: &Path) -> Result<Summary, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a quire-bench summary: {e}", path.display()))
}

/// Compares; `Err` lists the regressions (the command exits non-zero).
pub fn compare(opts: &CompareOptions) -> Result<(), String> {
    let baseline = read_summary(&opts.baseline)?;
    let current = read_summary(&opts.current)?;
    print!("{}", current.markdown(Some(&baseline)));
    let found = regressions(&current, &baseline, opts.threshold, opts.absolute);
    if found.is_empty() {
        println!("\nno regression beyond {:.0}%", opts.threshold * 100.0);
        Ok(())
    } else {
        Err(format!(
            "{} regression(s) beyond {:.0}%:\n  {}",
            found.len(),
            opts.threshold * 100.0,
            found.join("\n  ")
        ))
    }
}
