//! The simulator's tests: a batch of seeds, replay of one seed, the determinism self-check, and
//! proof that the checkers find planted bugs. See docs/simulation.md. The two-cluster scenarios
//! of purge horizons, long outages, full sync, clock skew and meta leader changes are in
//! `horizons.rs`.
#![allow(clippy::unwrap_used)]

mod horizons;

use tern_sim::{DrBugs, DrStats, DupBugs, PlantedBugs, RunResult, SimConfig, Stats, run};

/// Prints a failed run readably: the seed (to replay), the violations, the trace tail.
fn report(r: &RunResult, test: &str) -> String {
    let mut s = format!(
        "seed {} failed (replay: TERN_SIM_SEED={} cargo test --release -p tern-sim --test it {test} -- --exact --nocapture)\n",
        r.seed, r.seed
    );
    for v in r.violations.iter().take(10) {
        s.push_str(&format!("  violation: {v}\n"));
    }
    s.push_str(&format!("  stats: {:?}\n  last trace lines:\n", r.stats));
    for l in r.trace_tail.iter().rev().take(60).collect::<Vec<_>>().into_iter().rev() {
        s.push_str(&format!("    {l}\n"));
    }
    s
}

/// The seeds to run: `TERN_SIM_SEED` alone, or `TERN_SIM_SEEDS` (default `default_n`) from
/// `TERN_SIM_FIRST_SEED` (default 0).
fn seed_list(default_n: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("TERN_SIM_SEED") {
        return vec![s.parse().expect("TERN_SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("TERN_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default_n);
    let first: u64 = std::env::var("TERN_SIM_FIRST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    (first..first + n).collect()
}

#[test]
fn seeds() {
    run_seeds("seeds", SimConfig::standard, 300);
}

/// Two clusters with a two-way duplication link, under the same faults plus cuts between the
/// clusters and meta leader changes: after healing they hold the same records (but for
/// tombstones below a purge horizon), no shipped write is lost, nothing loops, no deleted key
/// comes back, and each cluster keeps the single-cluster invariants. The scenario happened:
/// compaction dropped tombstones and meta leaders changed in most runs.
#[test]
fn seeds_two_clusters() {
    let runs = run_seeds("seeds_two_clusters", SimConfig::two_clusters, 300);
    horizons::assert_in_most(&runs, "compaction dropped tombstones", |s| s.purged_records > 0);
    horizons::assert_in_some(&runs, "a meta leader changed", |s| s.meta_leader_changes > 0);
}

/// Runs `config` for each seed (`default_n` of them unless the environment says otherwise),
/// reports the failures and panics if any; returns every run's statistics.
fn run_seeds(test: &str, config: fn(u64) -> SimConfig, default_n: u64) -> Vec<(u64, Stats)> {
    let full = std::env::var("TERN_SIM_SEED").is_ok();
    let mut failed = Vec::new();
    let mut runs = Vec::new();
    // Wall time of the sweep, for the report only: the runs themselves never read a clock.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let seeds = seed_list(default_n);
    for &seed in &seeds {
        let r = run(&config(seed), full);
        if let Some(trace) = &r.trace
            && let Ok(path) = std::env::var("TERN_SIM_TRACE")
        {
            std::fs::write(&path, trace.join("\n")).unwrap();
            eprintln!("full trace of seed {seed} written to {path}");
        }
        eprintln!(
            "seed {seed}: {} events, {} ops ({} completed), {} acked writes, {} crashes, {} balancer changes, {} decommissioned, {} recommissioned, converged at {:?} ms, {} violations",
            r.stats.events,
            r.stats.ops,
            r.stats.completed_ops,
            r.stats.acked_writes,
            r.stats.crashes,
            r.stats.balancer_changes,
            r.stats.decommissioned,
            r.stats.recommissioned,
            r.stats.converged_at_ms,
            r.violations.len()
        );
        if r.stats.clients_started_ms.is_some() {
            eprintln!(
                "  link: clients started at {:?} ms, {} cuts, {} shippers started, {} batches acked ({} puts, {} conflicts), {} failed",
                r.stats.clients_started_ms,
                r.stats.link_cuts,
                r.stats.shippers_started,
                r.stats.batches_acked,
                r.stats.puts_acked,
                r.stats.conflicts,
                r.stats.batches_failed
            );
            eprintln!(
                "  horizons: {} raises, {} records purged, held back at most {} ms; {} unprotected deletes; longest cut {} ms; {} meta leader changes, {} clock-ahead refusals, {} records copied ({} copies done)",
                r.stats.horizon_raises,
                r.stats.purged_records,
                r.stats.max_horizon_held_ms,
                r.stats.unprotected_deletes,
                r.stats.longest_link_cut_ms,
                r.stats.meta_leader_changes,
                r.stats.clock_ahead_refusals,
                r.stats.full_sync_records,
                r.stats.full_syncs_done
            );
            if r.stats.resyncs > 0 {
                eprintln!("  {} resyncs (a primary's log lacked what it had to ship)", r.stats.resyncs);
            }
        }
        if r.stats.dr != DrStats::default() {
            eprintln!("  dr: {:?}", r.stats.dr);
        }
        if !r.violations.is_empty() {
            eprintln!("{}", report(&r, test));
            failed.push(seed);
        }
        runs.push((seed, r.stats));
    }
    eprintln!("{} seeds in {:.1} s, {} failed", seeds.len(), started.elapsed().as_secs_f64(), failed.len());
    assert!(failed.is_empty(), "failing seeds: {failed:?} (each is replayable, see above)");
    runs
}

/// Regression: a primary told of a newer ballot by a member stepped down, its beacon reported
/// it inactive, the manager promoted another replica on that report, and the configuration at
/// the newer ballot (naming the old primary) made it primary again while its lease ran: two
/// primaries served reads in overlapping lease windows. A replica now never reigns at a ballot
/// it stepped down at (`Replica::on_config`).
#[test]
fn seed_3052_a_primary_never_reigns_at_a_ballot_it_stepped_down_at() {
    let r = run(&SimConfig::standard(3052), false);
    assert!(
        r.violations.is_empty(),
        "{}",
        report(&r, "seed_3052_a_primary_never_reigns_at_a_ballot_it_stepped_down_at")
    );
}

/// Regression: a partition whose successive primaries crashed or were cut off from their meta
/// server, the last one while the clusters were cut apart, never counted as started: a primary
/// reported its start point only once it knew the other cluster's routes. The start point does
/// not depend on the other cluster, so it is reported at once (and writes made while the other
/// cluster is unreachable ship once it is back).
#[test]
fn seed_702592_a_link_starts_while_the_other_cluster_is_unreachable() {
    let r = run(&SimConfig::two_clusters(702_592), false);
    let test = "seed_702592_a_link_starts_while_the_other_cluster_is_unreachable";
    assert!(r.violations.is_empty(), "{}", report(&r, test));
    assert!(r.stats.clients_started_ms.is_some_and(|ms| ms < 40_000), "the link started in the fault phase");
}

/// The simulator's own check, for the runs `config` makes from a seed: one seed, run twice,
/// gives the same trace (hash), and another seed gives another.
fn assert_deterministic(config: fn(u64) -> SimConfig) {
    let a = run(&config(7), false);
    let b = run(&config(7), false);
    assert_eq!(a.trace_hash, b.trace_hash, "seed 7 is not deterministic");
    assert_eq!(a.stats.events, b.stats.events);
    let c = run(&config(8), false);
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn same_seed_same_trace() {
    assert_deterministic(SimConfig::standard);
}

/// Runs seeds (each configured by `config`, which plants the bug `what`) until a checker finds a
/// violation, and says at which; panics if 100 seeds find none.
fn assert_found(what: &str, config: impl Fn(u64) -> SimConfig) {
    assert_found_by(what, config, |_| true);
}

/// As `assert_found`, counting only runs where some violation satisfies `by` (which check found
/// it); returns the seed and every violation of that run.
fn assert_found_by(
    what: &str,
    config: impl Fn(u64) -> SimConfig,
    by: impl Fn(&str) -> bool,
) -> (u64, Vec<String>) {
    let found = (0..100).find_map(|seed| {
        let r = run(&config(seed), false);
        r.violations.iter().any(|v| by(v)).then_some((seed, r.violations))
    });
    let (seed, violations) = found.unwrap_or_else(|| panic!("{what} (planted) went unnoticed for 100 seeds"));
    let v = violations.iter().find(|v| by(v)).expect("found above");
    eprintln!("{what} (planted) found at seed {seed}: {v}");
    (seed, violations)
}

/// Runs seeds with a planted bug until a checker finds a violation.
fn assert_planted_found(what: &str, bugs: PlantedBugs) {
    assert_found(what, |seed| SimConfig { bugs: bugs.clone(), ..SimConfig::standard(seed) });
}

/// Proves the harness: commit once a majority (not every member) logged a mutation, and an
/// acknowledged write can be lost when the majority that had it fails.
#[test]
fn finds_a_planted_commit_on_majority() {
    assert_planted_found(
        "a commit on a majority",
        PlantedBugs { commit_on_majority: true, ..PlantedBugs::default() },
    );
}

/// Proves the harness: a primary that serves reads without a lease serves stale data once a
/// new primary took over.
#[test]
fn finds_a_planted_read_without_lease() {
    assert_planted_found(
        "a read without a lease",
        PlantedBugs { read_without_lease: true, ..PlantedBugs::default() },
    );
}

/// Determinism of two-cluster runs: same seed, same trace.
#[test]
fn two_clusters_same_seed_same_trace() {
    assert_deterministic(SimConfig::two_clusters);
}

/// Runs two-cluster seeds with planted duplication bugs until a check finds a violation.
fn assert_dup_bug_found(what: &str, bugs: DupBugs) {
    assert_dup_bug_found_in(what, SimConfig::two_clusters, bugs, |_| true);
}

/// Runs seeds of `config` with planted duplication bugs until a violation satisfies `by`.
fn assert_dup_bug_found_in(
    what: &str,
    config: fn(u64) -> SimConfig,
    bugs: DupBugs,
    by: impl Fn(&str) -> bool,
) {
    let config = |seed| {
        let mut cfg = config(seed);
        cfg.dup.as_mut().unwrap().bugs = bugs.clone();
        cfg
    };
    assert_found_by(what, config, by);
}

/// Proves the duplication checks: a new primary that ships from its committed decree instead
/// of the meta server's confirmed one skips what its predecessor had not shipped.
#[test]
fn finds_a_planted_start_from_committed() {
    assert_dup_bug_found(
        "shipping from the committed decree",
        DupBugs { start_from_committed: true, ..DupBugs::default() },
    );
}

/// Proves that a bug in the shared retention rules (the servers' own code) is caught: a log
/// floor one decree too high lets garbage collection drop a decree the link still has to ship.
#[test]
fn finds_a_planted_floor_past_confirmed() {
    assert_dup_bug_found(
        "a log floor past the confirmed decree",
        DupBugs { floor_past_confirmed: true, ..DupBugs::default() },
    );
}

/// Proves that the shared retention rules are needed: a replica that empties its log to learn
/// and keeps nothing for the link leaves a later primary unable to ship what its predecessor
/// had not.
#[test]
fn finds_a_planted_log_forgotten_when_learning() {
    assert_dup_bug_found(
        "a log forgotten when learning",
        DupBugs { forget_log_when_learning: true, ..DupBugs::default() },
    );
}

/// Proves the duplication checks: a refused batch counted as acknowledged (dropped instead of
/// retried) is a lost write.
#[test]
fn finds_a_planted_dropped_batch() {
    assert_dup_bug_found("a dropped batch", DupBugs { failed_as_acked: true, ..DupBugs::default() });
}

/// Proves the loop check: writes that arrived by duplication shipped back.
#[test]
fn finds_a_planted_loop() {
    assert_dup_bug_found("a duplication loop", DupBugs { reship_duplicated: true, ..DupBugs::default() });
}

// ---- The DR lease (docs/simulation.md, "The DR lease") ----

/// Two clusters, the table active in one and standby in the other, the DR lease through two
/// proxies and a witness, automatic failover, and cuts of the active cluster from the voters
/// while its clients still reach it: no two copies ever take client writes at once, and each
/// cluster keeps every other invariant of two-cluster runs.
#[test]
fn seeds_dr() {
    run_seeds("seeds_dr", SimConfig::two_clusters_dr, 300);
}

/// Determinism of runs with the DR lease: same seed, same trace.
#[test]
fn dr_same_seed_same_trace() {
    assert_deterministic(SimConfig::two_clusters_dr);
}

/// Runs seeds of `two_clusters_dr` with a bug planted in the shared DR rules until the
/// split-brain check finds it in the scenario it is for (within 100 seeds): a promotion that took
/// effect while the old active cluster was cut off from the voters, and client writes that
/// cluster took, while cut off, after it. (Seeds where the check finds the bug another way, e.g.
/// a promotion after a partition lost its primary while the old copy kept its lease, are
/// reported on the way.)
fn assert_dr_bug_found(what: &str, bugs: DrBugs) {
    let found = (0..100).find_map(|seed| {
        let mut cfg = SimConfig::two_clusters_dr(seed);
        cfg.dr.as_mut().unwrap().bugs = bugs.clone();
        let r = run(&cfg, false);
        let v = r.violations.iter().find(|v| v.starts_with("split brain")).cloned()?;
        let dr = &r.stats.dr;
        if dr.promotions_while_cut == 0 || dr.split_brain_in_cut == 0 {
            eprintln!("{what} (planted) found at seed {seed}, not while cut off from the voters: {v}");
            return None;
        }
        Some((seed, v, r.stats.dr))
    });
    let (seed, v, dr) = found.unwrap_or_else(|| panic!("{what} (planted) went unnoticed for 100 seeds"));
    eprintln!("{what} (planted) found at seed {seed}: {v}\n  {dr:?}");
}

/// Proves the split-brain check: replica servers that take client writes without the DR lease
/// keep taking them in the old active cluster after a proxy promoted the standby.
#[test]
fn finds_a_planted_lease_not_checked() {
    assert_dr_bug_found(
        "client writes without the DR lease",
        DrBugs { lease_not_checked: true, ..DrBugs::default() },
    );
}

/// Proves the split-brain check: a promoter that does not wait for the old copy's lease makes
/// the standby active while the old active copy, cut off from the voters, still holds it.
#[test]
fn finds_a_planted_promotion_without_waiting() {
    assert_dr_bug_found(
        "a promotion without waiting for the old lease",
        DrBugs { promote_without_waiting: true, ..DrBugs::default() },
    );
}

/// Regression: a proxy's promotion under way whose target it could no longer see (made active
/// at the promised epoch by the other proxy, then cut off) made the old copy, back, active at
/// that same epoch; the voters renewed both copies' leases and both took client writes. The
/// shared `failover::finish` now makes only the target active at the promised epoch, and the
/// old copy only after new promises deposing the target (docs/meta-proxy.md, "Found by the
/// simulator").
#[test]
fn seed_900408_the_old_copy_never_becomes_active_at_the_targets_epoch() {
    let r = run(&SimConfig::two_clusters_dr(900_408), false);
    assert!(
        r.violations.is_empty(),
        "{}",
        report(&r, "seed_900408_the_old_copy_never_becomes_active_at_the_targets_epoch")
    );
}

/// Regression: a replica server that restarted took client writes as soon as its replica was
/// primary again, before the roles of a beacon answer told it that its cluster runs a DR lease
/// (which it had lost). The shared write gate refuses until the first beacon answer.
#[test]
fn seed_900425_a_restarted_server_takes_no_write_before_it_knows_the_lease() {
    let r = run(&SimConfig::two_clusters_dr(900_425), false);
    let test = "seed_900425_a_restarted_server_takes_no_write_before_it_knows_the_lease";
    assert!(r.violations.is_empty(), "{}", report(&r, test));
}
