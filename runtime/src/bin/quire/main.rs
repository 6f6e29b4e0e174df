//! The `quire` command: run a node, show its placement, handle its config,
//! talk to a running node, profile and diagnose it. This file picks the
//! subcommand; each group lives in a module of its own.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use quire_client::ClientError;
use quire_runtime::config::DEFAULT_CONFIG_TOML;
use quire_shards::owning_shard;

use args::{Cli, ConfigCommand, StorageCommand, Verb};
use node_cmd::{builder, doctor, run_node};
use ops_cmd::{diagnose, print_lines, profile};
use remote_cmd::{decode_payload, encode_payload, remote};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options: heap profiling compiled in but inactive, so
/// `quire profile memory` can sample a window of a running node while a
/// node not being profiled pays a branch per allocation and no backtraces.
/// jemalloc reads this (weak in the library) before `main`.
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8; 46] = b"prof:true,prof_active:false,lg_prof_sample:19\0";

mod args;
mod node_cmd;
mod ops_cmd;
mod remote_cmd;

fn main() -> ExitCode {
    // A compile child (see quire_shards::wasm::CompilerProcess) does that
    // one job, before anything else starts.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == quire_shards::wasm::COMPILE_SUBCOMMAND)
    {
        return ExitCode::from(quire_shards::wasm::compile_child_main() as u8);
    }
    let _log = quire_runtime::logging::init("warn");
    let cli = Cli::parse();
    let result = match &cli.command {
        Verb::Node {
            placement,
            spin_us,
            duration,
            net,
        } => run_node(placement, *spin_us, *duration, net),
        Verb::Send {
            to,
            agent,
            payload,
            durable: _,
            key,
        } => remote(to, |c| {
            match key {
                Some(key) => {
                    let id = c.send_durable(agent, &encode_payload(payload), key)?;
                    println!("committed {id}");
                }
                None => {
                    let id = c.send(agent, &encode_payload(payload))?;
                    println!("queued {id}");
                }
            }
            Ok(())
        }),
        Verb::Call {
            to,
            agent,
            payload,
            timeout_ms,
        } => remote(to, |c| {
            let reply = c.call(agent, &encode_payload(payload), Duration::from_millis(*timeout_ms))?;
            println!("{}", decode_payload(&reply));
            Ok(())
        }),
        Verb::Deploy {
            to,
            file,
            name,
            settings,
        } => {
            let read = remote_cmd::module_and_options(file, settings).and_then(|read| {
                if name.len() > 1 && !read.1.is_empty() {
                    return Err("--set applies to one agent: deploy the names one by one".into());
                }
                Ok(read)
            });
            match read {
                Err(e) => Err(e),
                Ok((module, options)) => remote(to, |c| {
                    if name.len() > 1 {
                        let (hash, failed) = c.deploy_many(name, &module)?;
                        println!("deployed {} agents ({hash})", name.len() - failed.len());
                        for (agent, reason) in &failed {
                            println!("not deployed {agent}: {reason}");
                        }
                        return if failed.is_empty() {
                            Ok(())
                        } else {
                            Err(ClientError::Protocol(format!(
                                "{} of {} names failed",
                                failed.len(),
                                name.len()
                            )))
                        };
                    }
                    let name = &name[0];
                    if name.ends_with('*') {
                        // A pattern is known node by node: deploy it on every member.
                        let members = c.cluster()?;
                        for m in members.iter().filter(|m| m.state != "down") {
                            let mut there = to.connect(&m.addr)?;
                            let hash = there.deploy_with(name, &module, &options)?;
                            println!("deployed pattern {name} on {} ({hash})", m.name);
                        }
                        return Ok(());
                    }
                    let hash = c.deploy_with(name, &module, &options)?;
                    println!("deployed {name} ({hash})");
                    Ok(())
                }),
            }
        }
        Verb::Undeploy { to, name } => remote(to, |c| {
            c.undeploy(name)?;
            println!("undeployed {name}");
            Ok(())
        }),
        Verb::Agents { to } => remote(to, |c| {
            let agents = c.agents()?;
            remote_cmd::print_agents(&agents);
            println!("{} agent(s) on {}", agents.len(), c.node());
            Ok(())
        }),
        Verb::Patterns { to } => remote(to, |c| {
            let patterns = c.patterns()?;
            for (pattern, version) in &patterns {
                println!("{pattern:<32} {version}");
            }
            println!("{} pattern(s) on {}", patterns.len(), c.node());
            Ok(())
        }),
        Verb::Info { to, name } => remote(to, |c| {
            let agent = c.info(name)?;
            remote_cmd::print_agents(std::slice::from_ref(&agent));
            println!(
                "last error: {}",
                agent.last_error.as_deref().unwrap_or("none")
            );
            Ok(())
        }),
        Verb::Reload {
            to,
            file,
            name,
            settings,
        } => {
            match remote_cmd::module_and_options(file, settings) {
                Err(e) => Err(e),
                Ok((module, options)) => remote(to, |c| {
                    let hash = c.reload_with(name, &module, &options)?;
                    println!("reloaded {name} ({hash})");
                    Ok(())
                }),
            }
        }
        Verb::Stop { to, name } => remote(to, |c| {
            c.stop(name)?;
            println!("stopped {name}");
            Ok(())
        }),
        Verb::Start { to, name } => remote(to, |c| {
            c.start(name)?;
            println!("started {name}");
            Ok(())
        }),
        Verb::Stats { to } => remote(to, |c| {
            for row in c.stats()? {
                let line: Vec<String> = row.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("{}", line.join(" "));
            }
            Ok(())
        }),
        Verb::Where { name, to } => remote(to, |c| {
            println!("{}", remote_cmd::where_is(c, name, to)?);
            Ok(())
        }),
        Verb::Cluster { to } => remote(to, |c| {
            println!("{:<24} {:<24} {:<8} shards", "node", "address", "state");
            for m in c.cluster()? {
                println!("{:<24} {:<24} {:<8} {}", m.name, m.addr, m.state, m.shards);
            }
            Ok(())
        }),
        Verb::Certs {
            out,
            nodes,
            hosts,
            days,
        } => {
            let request = quire_runtime::certs::CertRequest {
                nodes: nodes.clone(),
                hosts: hosts.clone(),
                days: *days,
            };
            quire_runtime::certs::write(out, &request)
                .map(|files| {
                    for file in files {
                        println!("wrote {}", file.display());
                    }
                })
                .map_err(|e| e.to_string())
        }
        Verb::Placement { placement } => builder(placement)
            .and_then(|(b, _)| b.plan().map_err(|e| e.to_string()))
            .map(|plan| print!("{plan}")),
        Verb::Doctor {
            placement,
            root,
            limits,
        } => doctor(placement, root.as_deref(), limits),
        Verb::Profile {
            kind,
            admin,
            duration,
            out,
            hz,
            folded,
        } => profile(*kind, admin, *duration, out.as_deref(), *hz, *folded),
        Verb::Diagnose { admin, duration } => diagnose(admin, *duration),
        Verb::Config(ConfigCommand::Default) => {
            print!("{DEFAULT_CONFIG_TOML}");
            Ok(())
        }
        Verb::Config(ConfigCommand::Check { file, shards }) => {
            quire_runtime::ops::check_config(file, *shards).map(print_lines)
        }
        Verb::Storage(StorageCommand::Reshard { data_dir, shards }) => {
            quire_storage::reshard::reshard(data_dir, *shards, |name, n| {
                owning_shard(name, n) as usize
            })
            .map(|r| {
                println!(
                    "resharded {} from {} to {} shards: {} agents, {} state entries, {} unfinished messages moved; old partitions kept in {}",
                    data_dir.display(),
                    r.from,
                    r.to,
                    r.agents,
                    r.state_entries,
                    r.messages,
                    r.backup.display()
                )
            })
            .map_err(|e| e.to_string())
        }
        Verb::Storage(StorageCommand::Check { data_dir }) => {
            quire_runtime::ops::check_storage(data_dir).map(print_lines)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quire: {e}");
            ExitCode::FAILURE
        }
    }
}
