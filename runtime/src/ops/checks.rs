//! The offline checks: a config file with the socket layout it makes, and
//! a data directory with every partition in it.

use crate::config::NodeConfig;
use crate::Node;

/// `quire config check`: the file's keys and bounds, then its socket
/// layout for `shards` (default: as the file places them on this machine);
/// the lines to print.
pub fn check_config(file: &std::path::Path, shards: Option<usize>) -> Result<Vec<String>, String> {
    let config = NodeConfig::from_file(file).map_err(|e| e.to_string())?;
    let shards = match shards {
        Some(n) => n,
        None => Node::builder()
            .config(config.clone())
            .plan()
            .map_err(|e| format!("{e} (give --shards N to check the layout anyway)"))?
            .len(),
    };
    let ports = crate::ports::check(&config, shards).map_err(|e| e.to_string())?;
    let mut lines = vec![format!("{}: ok ({shards} shards)", file.display())];
    lines.extend(ports.iter().map(|p| format!("  {p}")));
    Ok(lines)
}

/// `quire storage check`: the same checks a node makes when it starts on
/// `dir`, partition by partition; the lines to print.
pub fn check_storage(dir: &std::path::Path) -> Result<Vec<String>, String> {
    use quire_storage::partition_path;
    let manifest = quire_storage::integrity::inspect_data_dir(dir).map_err(|e| e.to_string())?;
    let mut lines = vec![format!(
        "{}: node {}, {} shard(s), format {}",
        dir.display(),
        manifest.node_id,
        manifest.shards,
        manifest.format_version
    )];
    for shard in 0..manifest.shards {
        let path = partition_path(dir, shard);
        let rec = quire_storage::integrity::verify_partition(&path).map_err(|e| e.to_string())?;
        lines.push(format!(
            "{}: ok, {} agents, {} state entries ({} bytes), {} unfinished durable messages",
            path.display(),
            rec.agents.len(),
            rec.state.len(),
            rec.state_bytes,
            rec.inbox.len()
        ));
    }
    Ok(lines)
}
