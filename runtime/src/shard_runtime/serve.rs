//! Serving one client command on the shard: registrations, deploys,
//! sends and calls from embedded clients, listings, figures, profiles and
//! lifecycle commands, each answered on its reply channel (after the commit
//! of what it changed, on a durable node).

use super::*;

/// Answers `done` with `result`: an error at once, a success once what
/// the core journaled so far is committed (at once on a node without
/// storage); a failed commit answers with `storage_error`.
fn answer_when_durable<T: Send + 'static, E: Send + 'static>(
    shared: &Shared,
    core: &ShardCore,
    result: Result<T, E>,
    done: flume::Sender<Result<T, E>>,
    storage_error: fn(String) -> E,
) {
    match (&shared.storage, result) {
        (Some(storage), Ok(value)) => storage.ack_after(
            core.journal_position(),
            Box::new(move |committed| {
                let _ = done.send(
                    committed
                        .map(|()| value)
                        .map_err(|e| storage_error(e.to_string())),
                );
            }),
        ),
        (_, result) => {
            let _ = done.send(result);
        }
    }
}

/// Builds the agent `record` describes and deploys it (journaled: the
/// caller answers once that is committed).
fn deploy_record(
    shared: &Shared,
    core: &mut ShardCore,
    record: AgentRecord,
) -> Result<(), DeployError> {
    let name = record.name.clone();
    let agent = shared
        .kinds
        .build(&record)
        .map_err(|reason| DeployError::Build { name, reason })?;
    core.deploy(record, agent).map_err(DeployError::Register)
}

pub(super) fn serve(shared: &Shared, cmd: Command) {
    let mut core = shared.core.borrow_mut();
    match cmd {
        Command::Register { id, factory, done } => {
            let _ = done.send(core.register(id, factory()));
        }
        Command::Unregister { id, done } => {
            let result = core.unregister(&id);
            answer_when_durable(shared, &core, result, done, RegisterError::Storage);
        }
        Command::Deploy { record, done } => {
            let built = deploy_record(shared, &mut core, record);
            answer_when_durable(shared, &core, built, done, DeployError::Storage);
        }
        Command::RegisterMany { agents, done } => {
            let results = agents
                .into_iter()
                .map(|(id, factory)| core.register(id, factory()))
                .collect();
            let _ = done.send(results);
        }
        Command::DeployMany { records, done } => {
            let results: Vec<Result<(), DeployError>> = records
                .into_iter()
                .map(|record| deploy_record(shared, &mut core, record))
                .collect();
            match &shared.storage {
                Some(storage) if results.iter().any(Result::is_ok) => storage.ack_after(
                    core.journal_position(),
                    Box::new(move |committed| {
                        let results = match committed {
                            Ok(()) => results,
                            Err(e) => results
                                .into_iter()
                                .map(|r| r.and(Err(DeployError::Storage(e.to_string()))))
                                .collect(),
                        };
                        let _ = done.send(results);
                    }),
                ),
                _ => {
                    let _ = done.send(results);
                }
            }
        }
        Command::SendDurable {
            to,
            payload,
            opts,
            dedup,
            done,
        } => {
            if let Some(reason) = shared.storage.as_ref().and_then(ShardStorage::failure) {
                let _ = done.send(Err(DurableError::Storage(reason.to_string())));
                return;
            }
            let receipt = core
                .admit_durable(to, payload, opts, dedup)
                .map(|admitted| match admitted {
                    DurableAdmission::Accepted(id) => DurableReceipt {
                        id: Some(id),
                        duplicate: false,
                    },
                    DurableAdmission::Duplicate => DurableReceipt {
                        id: None,
                        duplicate: true,
                    },
                })
                .map_err(DurableError::Rejected);
            answer_when_durable(shared, &core, receipt, done, DurableError::Storage);
        }
        Command::Send {
            to,
            payload,
            opts,
            done,
        } => {
            let _ = done.send(core.admit_client(to, payload, opts));
        }
        Command::Call {
            to,
            payload,
            opts,
            timeout,
            done,
        } => {
            // An embedded caller gets the reason; a failed handler's detail
            // is in the node's log.
            let waiter = Box::new(move |r: Result<Envelope, quire_shards::CallFailure>| {
                let _ = done.send(r.map_err(|failure| failure.error));
            });
            let _ = core.admit_client_call(to, payload, opts, timeout, waiter);
        }
        Command::Stats { done } => {
            drop(core);
            let _ = done.send(shared.stats());
        }
        Command::Redeploy { record, done } => {
            let result = core.redeploy(record).map_err(DeployError::Register);
            answer_when_durable(shared, &core, result, done, DeployError::Storage);
        }
        Command::SetStopped { id, stopped, done } => {
            let _ = done.send(core.set_stopped(&id, stopped));
        }
        Command::ListAgents { done } => {
            let _ = done.send(core.list_agents());
        }
        Command::DeployPattern { record, done } => {
            let name = record.name.clone();
            let result = shared
                .wasm
                .add_pattern(&record)
                .map(|()| core.log_definition(record))
                .map_err(|reason| DeployError::Build { name, reason });
            answer_when_durable(shared, &core, result, done, DeployError::Storage);
        }
        Command::UndeployPattern { pattern, done } => {
            let removed = shared.wasm.remove_pattern(&pattern);
            if removed {
                core.drop_definition(&pattern);
            }
            answer_when_durable(shared, &core, Ok(removed), done, DeployError::Storage);
        }
        Command::WasmStats { done } => {
            let _ = done.send(shared.wasm.stats());
        }
        Command::Patterns { done } => {
            let _ = done.send(shared.wasm.patterns());
        }
        Command::Metrics { done } => {
            drop(core);
            let _ = done.send(super::collect::collect(shared));
        }
        Command::NameSlots { slots, done } => {
            let names = slots
                .into_iter()
                .filter_map(|slot| Some((slot, core.slot_name(slot)?.to_string())))
                .collect();
            let fullest_mailbox = core
                .fullest_mailbox()
                .map(|(id, n)| (id.to_string(), n as u64));
            let _ = done.send(crate::command::ShardNames {
                names,
                fullest_mailbox,
            });
        }
        Command::Probe { done } => {
            let s = core.counters();
            let _ = done.send(Probe {
                idle: core.is_idle() && shared.in_flight.get() == 0,
                cross_out: s.cross_shard_out,
                cross_in: s.cross_shard_in,
            });
        }
        Command::Members { members } => {
            drop(core);
            if let Some(net) = &shared.net {
                net.apply_members(shared, members);
            }
        }
        Command::Drain => core.begin_drain(),
        Command::Stop => {
            drop(core);
            shared.stop();
        }
    }
}
