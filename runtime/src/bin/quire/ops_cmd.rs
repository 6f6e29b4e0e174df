//! `quire profile`, `quire diagnose` and the offline checks: what an
//! operator runs against a node from outside it.

use std::time::Duration;

use crate::args::{AdminTarget, ProfileKind};

pub fn seconds(value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("--duration {value} is not a positive number of seconds"))
}

pub fn profile(
    kind: ProfileKind,
    admin: &AdminTarget,
    duration: f64,
    out: Option<&std::path::Path>,
    hz: u32,
    folded: bool,
) -> Result<(), String> {
    use quire_runtime::ops;
    let window = seconds(duration)?;
    let (report, file) = match kind {
        ProfileKind::Cpu => {
            let p = ops::profile_cpu(&admin.metrics, window, hz).map_err(|e| e.to_string())?;
            let file = if folded {
                p.folded()
            } else {
                serde_json::to_string_pretty(&p).map_err(|e| e.to_string())?
            };
            (p.render(), Some(file))
        }
        ProfileKind::Memory => {
            let p = ops::profile_memory(&admin.metrics, window).map_err(|e| e.to_string())?;
            (p.render(), p.heap_profile.ok())
        }
    };
    print!("{report}");
    if let (Some(out), Some(file)) = (out, file) {
        std::fs::write(out, file).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        println!("written to {}", out.display());
    }
    Ok(())
}

pub fn diagnose(admin: &AdminTarget, duration: f64) -> Result<(), String> {
    let window = seconds(duration)?;
    let found =
        quire_runtime::ops::diagnose_node(&admin.metrics, window).map_err(|e| e.to_string())?;
    if found.is_empty() {
        println!(
            "no bottleneck found over {duration} s: every shard answered, none saturated, \
             no queue near full, nothing refused"
        );
    }
    for f in found {
        println!("{f}");
    }
    Ok(())
}

pub fn print_lines(lines: Vec<String>) {
    for line in lines {
        println!("{line}");
    }
}
