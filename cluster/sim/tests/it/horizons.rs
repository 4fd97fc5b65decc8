//! Two-cluster scenarios of issue #24 item 8: purge horizons and compaction, a link down for
//! longer than the tombstone retention, links added with a full sync, a cluster's clocks far
//! ahead, meta leader changes; each sweep asserts that its scenario happened, and a planted bug
//! per check proves that the check finds what it is for.

use tern_sim::{DupBugs, PlantedBugs, SimConfig, Stats};

use super::{assert_deterministic, assert_dup_bug_found_in, assert_found_by, run_seeds};

/// The retention of two-cluster runs (ms), `DupConfig::retention_ms`.
fn retention_ms() -> u64 {
    SimConfig::two_clusters(0).dup.map_or(0, |d| d.retention_ms)
}

/// Asserts that `what` happened in at least 80 % of `runs` (a single replayed seed: in it).
pub fn assert_in_most(runs: &[(u64, Stats)], what: &str, happened: impl Fn(&Stats) -> bool) {
    let n = runs.iter().filter(|(_, s)| happened(s)).count();
    assert!(n * 5 >= runs.len() * 4, "{what} in only {n} of {} runs", runs.len());
}

/// Asserts that `what` happened in at least one of `runs` (a single replayed seed: not checked).
pub fn assert_in_some(runs: &[(u64, Stats)], what: &str, happened: impl Fn(&Stats) -> bool) {
    assert!(runs.len() < 2 || runs.iter().any(|(_, s)| happened(s)), "{what} in none of {} runs", runs.len());
}

/// Asserts that `what` happened in every run.
fn assert_in_every(runs: &[(u64, Stats)], what: &str, happened: impl Fn(&Stats) -> bool) {
    let missing: Vec<u64> = runs.iter().filter(|(_, s)| !happened(s)).map(|(seed, _)| *seed).collect();
    assert!(missing.is_empty(), "{what} did not happen in seeds {missing:?}");
}

/// The link is cut both ways for 15 to 25 s while both clusters write, delete and re-create the
/// keys they share: the incoming links hold each purge horizon back for that long (tombstones
/// outlive the retention), and after the heal every write arrives, none is refused for its age,
/// the clusters converge and no deleted key comes back; compaction then drops the tombstones.
#[test]
fn seeds_two_clusters_long_outage() {
    let runs = run_seeds("seeds_two_clusters_long_outage", SimConfig::two_clusters_long_outage, 60);
    let retention = retention_ms();
    assert_in_every(&runs, "a link outage three times the retention", |s| {
        s.longest_link_cut_ms >= 3 * retention
    });
    assert_in_every(&runs, "a horizon held back past the retention", |s| s.max_horizon_held_ms > retention);
    assert_in_most(&runs, "compaction dropped tombstones", |s| s.purged_records > 0);
}

/// Both clusters write (and delete) before any link exists; then a link is added each way with
/// a full sync (records copied with their own timetags, tombstones included, other clusters'
/// records skipped, routed by hash key; then the log ships from where each copy began), while
/// clients go on writing. After healing the clusters converge and every key ends in its newest
/// write — but for deletes older than the horizon a table had when it first heard of the link
/// (dropped before any link held them: what the design says a link added later cannot
/// protect), counted as unprotected.
#[test]
fn seeds_two_clusters_full_sync() {
    let runs = run_seeds("seeds_two_clusters_full_sync", SimConfig::two_clusters_full_sync, 60);
    assert_in_every(&runs, "every partition of both tables copied its records", |s| {
        s.full_syncs_done >= 2 && s.full_sync_records > 0
    });
    assert_in_most(&runs, "compaction dropped tombstones", |s| s.purged_records > 0);
}

/// One cluster's wall clocks run two minutes ahead for 12 s: the other cluster refuses its
/// writes with `CLOCK_AHEAD` (the shared admission code) and its clocks never move past its own
/// most advanced wall clock plus the maximum offset (the online clock-bound check); the refused
/// batches are retried until its clock catches up, and the run converges. (In a few runs the
/// skewed cluster cannot take writes while its clocks are ahead: faults keep its partitions
/// without a serving primary.)
#[test]
fn seeds_two_clusters_skewed() {
    let runs = run_seeds("seeds_two_clusters_skewed", SimConfig::two_clusters_skewed, 30);
    assert_in_most(&runs, "CLOCK_AHEAD refusals", |s| s.clock_ahead_refusals > 0);
    assert_in_every(&runs, "convergence", |s| s.converged_at_ms.is_some());
}

/// Determinism of the scenario runs: same seed, same trace.
#[test]
fn two_cluster_scenarios_same_seed_same_trace() {
    assert_deterministic(SimConfig::two_clusters_long_outage);
    assert_deterministic(SimConfig::two_clusters_full_sync);
    assert_deterministic(SimConfig::two_clusters_skewed);
}

/// What the end-state checks report when a tombstone went too early.
fn purged_too_early(v: &str) -> bool {
    v.contains("came back") || v.contains("the clusters differ") || v.contains("newest write")
}

/// Proves the resurrection and convergence checks (and the online horizon check): purge
/// horizons that ignore the incoming links (a fixed retention, as before the horizons) drop a
/// tombstone while a long outage holds older writes back; after the heal an older write brings
/// the record back in one cluster.
#[test]
fn finds_a_planted_purge_ignoring_incoming_links() {
    let bugs = DupBugs { ignore_incoming_links: true, ..DupBugs::default() };
    let (_, violations) = assert_found_by(
        "purge horizons that ignore the incoming links",
        |seed| with_dup_bugs(SimConfig::two_clusters_long_outage(seed), &bugs),
        purged_too_early,
    );
    assert!(violations.iter().any(|v| v.starts_with("purge horizon")), "the online check saw it too");
}

/// Regression (seed 800083 of the full-sync runs): a partition's copy of its records restarted
/// (a ballot change) after a delete made since the first attempt had gone below the table's
/// purge horizon — held back only by the incoming links, while the outgoing link still copied —
/// and compaction had dropped the tombstone: the new copy could not send it, and the other
/// cluster kept the record for good (the clusters differ). A primary now applies no horizon past
/// what its own outgoing links have not shipped (`DupRules::links_purge_bound`, in the shared
/// executor). With that rule switched off the seed still finds it.
#[test]
fn seed_800083_a_restarted_copy_still_sends_the_deletes_it_owes() {
    let test = "seed_800083_a_restarted_copy_still_sends_the_deletes_it_owes";
    let r = tern_sim::run(&SimConfig::two_clusters_full_sync(800_083), false);
    assert!(r.violations.is_empty(), "{}", super::report(&r, test));
    let bugs = DupBugs { purge_past_unshipped: true, ..DupBugs::default() };
    let r = tern_sim::run(&with_dup_bugs(SimConfig::two_clusters_full_sync(800_083), &bugs), false);
    assert!(
        r.violations.iter().any(|v| purged_too_early(v)),
        "without the bound the seed no longer finds the lost delete: {:?}",
        r.violations
    );
}

/// Proves the online horizon check: a meta leader that counts the partitions it has not heard
/// from (since it took over, or since the link was registered) as caught up raises the horizon
/// past writes still on their way.
#[test]
fn finds_a_planted_horizon_raised_on_unheard_partitions() {
    assert_dup_bug_found_in(
        "a horizon raised on partitions not heard from",
        SimConfig::two_clusters,
        DupBugs { unheard_holds_nothing: true, ..DupBugs::default() },
        |v| v.starts_with("purge horizon"),
    );
}

/// Proves the clock-bound check: receiving servers configured with a maximum clock offset of an
/// hour admit the far-ahead cluster's writes, and their clocks jump two minutes ahead.
#[test]
fn finds_a_planted_unbounded_clock_offset() {
    assert_dup_bug_found_in(
        "an unbounded clock offset",
        SimConfig::two_clusters_skewed,
        DupBugs { unbounded_clock_offset: true, ..DupBugs::default() },
        |v| v.contains("bounded clocks"),
    );
}

/// Proves that the linearizability checker catches what only it can: an atomic op resolved
/// while an uncommitted write to its hash key is in flight reads a store without that write.
/// Every replica applies the same resolved result (the stores converge, no acknowledged write
/// is lost, no two primaries serve), so only the history shows it: an increment or a
/// check-and-set answered as if an acknowledged write had not happened.
#[test]
fn finds_a_planted_resolve_past_in_flight_by_linearizability_alone() {
    let bugs = PlantedBugs { resolve_past_in_flight: true, ..PlantedBugs::default() };
    let (seed, violations) = assert_found_by(
        "an atomic op resolved past an uncommitted write",
        |seed| SimConfig { bugs: bugs.clone(), ..SimConfig::standard(seed) },
        |v| v.contains("is not linearizable"),
    );
    let others: Vec<&String> = violations.iter().filter(|v| !v.contains("is not linearizable")).collect();
    assert!(others.is_empty(), "seed {seed}: other checks reported it too: {others:?}");
}

fn with_dup_bugs(mut cfg: SimConfig, bugs: &DupBugs) -> SimConfig {
    if let Some(d) = cfg.dup.as_mut() {
        d.bugs = bugs.clone();
    }
    cfg
}
