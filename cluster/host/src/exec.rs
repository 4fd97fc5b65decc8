//! What each action does, and the loop that feeds a replica one event and its follow-ups.

use std::collections::VecDeque;

use tern_core::{Decree, Error, ReplicaStatus, Result, Timetag};
use tern_replica::{Action, CheckpointRef, Event, Now, PeerMessage, Replica, Reply};
use tern_storage::log::contiguous_run;
use tern_storage::{ApplyEntry, LogEntry, PartitionStore};

use crate::ReplicaHost;

/// Feeds `event` to the replica and carries out every action it returns, in order. Events the
/// actions produce on the spot (an atomic op's resolution, an apply or log reset that failed)
/// are queued and fed once the whole action list has run, in the order they arose; their
/// actions are carried out the same way, until nothing is left. `now` is the time of `event`
/// (follow-ups happen at the same moment: no clock is read in between).
pub fn drive<H: ReplicaHost>(host: &mut H, sm: &mut Replica, now: Now, event: Event) {
    let event = match event {
        Event::PurgeHorizon { below } if sm.status() == ReplicaStatus::Primary => {
            Event::PurgeHorizon { below: within_links(host, below) }
        }
        other => other,
    };
    let mut followups = VecDeque::from([event]);
    let mut actions = Vec::new();
    while let Some(event) = followups.pop_front() {
        let before = (sm.status(), sm.ballot());
        sm.handle(now, event, &mut actions);
        let after = (sm.status(), sm.ballot());
        if before != after {
            host.role_changed(before, after, sm.failure());
        }
        for action in actions.drain(..) {
            execute(host, action, &mut followups);
        }
    }
}

/// The meta server's purge horizon `below`, bounded by what this partition's own outgoing links
/// have not shipped yet (`DupRules::links_purge_bound`): a copy of its records could not send a
/// tombstone compaction had dropped.
fn within_links<H: ReplicaHost>(host: &H, below: Timetag) -> Timetag {
    let floor = host.dup_log_floor();
    let applied = host.store().map_or(Decree::ZERO, |s| s.last_applied_decree());
    let at_floor = floor
        .filter(|d| *d > Decree::ZERO && *d <= applied)
        .and_then(|d| {
            host.read_log(d, 1).ok().and_then(|(_, entries)| entries.into_iter().find(|e| e.decree == d))
        })
        .map(|e| e.timetag);
    match host.dup_rules().links_purge_bound(floor, applied, at_floor) {
        Some(bound) => below.min(bound),
        None => below,
    }
}

fn execute<H: ReplicaHost>(host: &mut H, action: Action, followups: &mut VecDeque<Event>) {
    match action {
        Action::Append { entries } => host.append(entries),
        Action::ResetLog => reset_log(host, followups),
        Action::Apply { entries, replies } => apply(host, entries, replies, followups),
        Action::Send { to, msg } => host.send(to, msg),
        Action::SendLearnResponse { to, learner_applied, through, config, reign, committed } => {
            match learn_response(host, learner_applied, through) {
                Ok((checkpoint, entries)) => {
                    let msg =
                        PeerMessage::LearnResponse { config, reign, committed, through, checkpoint, entries };
                    host.send(to, msg);
                }
                Err(e) => host.trouble(format!("cannot answer learner {to}: {e}")),
            }
        }
        Action::InstallCheckpoint { from, checkpoint } => host.fetch_checkpoint(from, checkpoint),
        Action::Propose { gpid, ballot, change } => host.propose(gpid, ballot, change),
        Action::ServeRead { req, read, ballot } => {
            let result = host.store().and_then(|s| s.read(&read));
            host.read_done(req, ballot, result);
        }
        Action::Resolve { req, op, now_secs } => {
            // Evaluated here, in its place among the actions (after every earlier `Apply`);
            // its result is fed once the rest of the list has run.
            let result = host.store().and_then(|s| s.resolve(&op, now_secs));
            followups.push_back(Event::Resolved { req, result });
        }
        Action::Refuse { req, error, not_applied } => host.refused(req, error, not_applied),
    }
}

/// The log no longer holds what the store applied once it is emptied: make the store durable
/// first, then empty it, keeping the committed entries a duplication link still needs.
fn reset_log<H: ReplicaHost>(host: &mut H, followups: &mut VecDeque<Event>) {
    let applied = match host.sync_store() {
        Ok(applied) => applied,
        Err(error) => {
            // The log must stay as it is, and the replica stop.
            host.trouble(format!("store flush before a log reset failed: {error}"));
            followups.push_back(Event::AppendFailed { error });
            return;
        }
    };
    let keep = needed_entries(host, applied).unwrap_or_else(|e| {
        host.trouble(format!("cannot keep the log a duplication link needs: {e}"));
        vec![]
    });
    if let Err(error) = host.reset_log(keep) {
        followups.push_back(Event::AppendFailed { error });
    }
}

/// The committed entries of the log that the links still need, through `upto`.
fn needed_entries<H: ReplicaHost>(host: &H, upto: Decree) -> Result<Vec<LogEntry>> {
    let Some(range) = host.dup_rules().needed_range(host.dup_log_floor(), upto) else { return Ok(vec![]) };
    let n = usize::try_from(range.1.0 - range.0.0 + 1).unwrap_or(usize::MAX);
    let (_, entries) = host.read_log(range.0, n)?;
    Ok(host.dup_rules().select(entries, range))
}

fn apply<H: ReplicaHost>(
    host: &mut H,
    entries: Vec<LogEntry>,
    replies: Vec<Reply>,
    followups: &mut VecDeque<Event>,
) {
    let result = {
        let batch: Vec<ApplyEntry<'_>> = entries.iter().map(ApplyEntry::from).collect();
        host.store_mut().and_then(|s| s.apply_batch(&batch))
    };
    let outcomes = match result {
        Ok(o) => o,
        Err(error) => {
            // The store cannot take committed mutations: stop serving rather than diverge. The
            // writes are committed (every member logged them), so their outcome is unknown here.
            let (first, last) = (entries.first().map(|e| e.decree), entries.last().map(|e| e.decree));
            host.trouble(format!("applying decrees {first:?}..={last:?} failed: {error}"));
            for r in replies {
                let e = Error::OutcomeUnknown(format!("committed, but applying it here failed: {error}"));
                host.write_done(r.req, r.decree, Err(e));
            }
            followups.push_back(Event::AppendFailed { error });
            return;
        }
    };
    host.applied(&entries);
    for reply in replies {
        // A missing outcome is a broken invariant, never an acknowledgement.
        let outcome = reply.outcome(&entries, &outcomes).map_err(|e| {
            host.trouble(format!("answering a write: {e}"));
            Error::OutcomeUnknown(format!("{e}; the write is committed"))
        });
        host.write_done(reply.req, reply.decree, outcome);
    }
}

/// Entries after `learner_applied` through `through` from the log, preceded by a checkpoint
/// (carrying the log the links need) when the log no longer reaches back that far.
fn learn_response<H: ReplicaHost>(
    host: &mut H,
    learner_applied: Decree,
    through: Decree,
) -> Result<(Option<CheckpointRef>, Vec<LogEntry>)> {
    if let Some(entries) = log_run(host, learner_applied.next(), through)? {
        return Ok((None, entries));
    }
    let checkpoint = host.make_checkpoint()?;
    // The learner's log will start after the checkpoint: it carries what a link still needs.
    let carried = needed_entries(host, checkpoint.decree)
        .and_then(|entries| host.carry_with_checkpoint(&checkpoint, entries));
    if let Err(e) = carried {
        host.trouble(format!("checkpoint {} carries no log for duplication: {e}", checkpoint.id));
    }
    let from = checkpoint.decree.next();
    let entries = log_run(host, from, through)?.ok_or_else(|| {
        let held = host.read_log(from, 1).map(|(range, _)| range);
        Error::invariant(format!(
            "the log lacks decrees {from}..={through} after checkpoint {} (it holds {held:?})",
            checkpoint.id
        ))
    })?;
    Ok((Some(checkpoint), entries))
}

/// The log's entries `from..=through`, if it holds every one of them.
fn log_run<H: ReplicaHost>(host: &H, from: Decree, through: Decree) -> Result<Option<Vec<LogEntry>>> {
    if from > through {
        return Ok(Some(vec![]));
    }
    let n = usize::try_from(through.0 - from.0 + 1).unwrap_or(usize::MAX);
    let (_, entries) = host.read_log(from, n)?;
    Ok(contiguous_run(entries, from, through))
}

/// After a checkpoint at `decree` replaced the store: appends the entries it carried for the
/// links (`DupRules::carried_to_append`). An `Err` is a log that could not be written: the host
/// stops the replica (`AppendFailed`) instead of reporting the installation.
pub fn keep_carried<H: ReplicaHost>(host: &mut H, carried: Vec<LogEntry>, decree: Decree) -> Result<()> {
    let entries = host.dup_rules().carried_to_append(carried, decree);
    if entries.is_empty() {
        return Ok(());
    }
    host.append_applied(entries)
}

/// The periodic store flush: the log is then collected below what the store holds durably and
/// the links no longer need.
pub fn flush<H: ReplicaHost>(host: &mut H) {
    match host.flush_store() {
        Ok(durable) => {
            let below = host.dup_rules().gc_below(durable, host.dup_log_floor());
            host.gc_log(below);
        }
        Err(e) => host.trouble(format!("store flush failed: {e}")),
    }
}

#[cfg(test)]
#[path = "exec_tests.rs"]
mod tests;
