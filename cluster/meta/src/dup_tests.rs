use super::*;
use crate::state::dup::LinkChange;
use crate::state::{ConfigRecord, PartitionRecord};

/// Table `t` with two partitions: partition 0 led by node 5 at ballot 3, partition 1 by
/// node 6 at ballot 4; link 1 to cluster b.
fn state() -> MetaState {
    let mut s = MetaState::default();
    s.apply(&Command::CreateTable { name: "t".into(), partitions: 2, replicas: 1 });
    for (partition, primary, ballot) in [(0, 5, 3), (1, 6, 4)] {
        let config =
            ConfigRecord { table: 1, partition, ballot, primary: Some(primary), secondaries: vec![] };
        s.apply(&Command::SetConfig {
            partition: PartitionRecord { config, replicas: 1, last_members: vec![primary], demoted: None },
        });
    }
    let link = NewLink {
        table: 1,
        table_name: "t".into(),
        remote_cluster: "b".into(),
        remote_cluster_id: 2,
        remote_metas: vec!["m:1".into()],
        remote_table: "t".into(),
        mode: LinkMode::OneWay,
        status: LinkStatus::Shipping,
        max_bytes_per_sec: 0,
        created_at_ms: 1,
    };
    s.apply(&Command::AddLink { link });
    s
}

fn report(link: u64, partition: u32, ballot: u64, confirmed: u64) -> pb::DupProgress {
    pb::DupProgress { link, partition, ballot, confirmed, committed: confirmed + 10, ..Default::default() }
}

#[test]
fn only_the_current_primary_at_its_ballot_is_heard() {
    let s = state();
    let reports = vec![
        report(1, 0, 3, 7), // node 5 is partition 0's primary at ballot 3: accepted
        report(1, 0, 2, 9), // an older ballot
        report(1, 1, 4, 9), // partition 1 belongs to node 6
        report(9, 0, 3, 9), // no such link
        report(1, 5, 3, 9), // no such partition
    ];
    let (updates, accepted) = accept_progress(&s, 5, reports);
    assert_eq!(accepted.len(), 1);
    assert_eq!(updates.len(), 1);
    assert_eq!((updates[0].partition, updates[0].confirmed, updates[0].node), (0, 7, 5));
}

#[test]
fn unchanged_progress_is_kept_in_memory_but_not_written() {
    let mut s = state();
    let (updates, _) = accept_progress(&s, 5, vec![report(1, 0, 3, 7)]);
    s.apply(&Command::RecordDupProgress { updates, journal: 10 });
    let mut again = report(1, 0, 3, 7);
    again.committed = 30;
    again.recent_conflicts = vec![];
    let (updates, accepted) = accept_progress(&s, 5, vec![again]);
    assert!(updates.is_empty());
    assert_eq!(accepted[0].committed, 30);
}

#[test]
fn journal_entries_are_written_not_kept_in_memory() {
    let s = state();
    let mut r = report(1, 1, 4, 7);
    r.conflicts = 1;
    let entry = pb::DupConflict {
        hash_key: b"h".to_vec(),
        sort_key: b"s".to_vec(),
        incoming: 1,
        stored: 2,
        kind: ConflictKind::RemoteOverwritten.to_pb(),
    };
    // The second entry comes from a server older than the kinds: counted, but not journaled
    // under a guessed kind.
    r.recent_conflicts = vec![entry.clone(), pb::DupConflict { kind: 0, ..entry }];
    let (updates, accepted) = accept_progress(&s, 6, vec![r]);
    assert_eq!(updates[0].new_conflicts.len(), 1);
    assert_eq!(updates[0].new_conflicts[0].kind, ConflictKind::RemoteOverwritten);
    assert!(accepted[0].recent_conflicts.is_empty());
}

#[test]
fn beacons_carry_each_partitions_share_of_a_throttled_link() {
    let mut s = state();
    assert!(beacon_links(&s, &ShareDemands::new())[0].partition_bytes_per_sec.is_empty(), "unlimited");
    s.apply(&Command::ChangeLink { id: 1, change: LinkChange::SetThrottle { max_bytes_per_sec: 8_000 } });
    // Nobody has reported: an equal split.
    assert_eq!(beacon_links(&s, &ShareDemands::new())[0].partition_bytes_per_sec, vec![4_000, 4_000]);
    // Partition 0 idles, partition 1 wants more: 1 gets all but 0's floor.
    let idle = pb::DupProgress { wire_bytes_per_sec: 0, ..report(1, 0, 3, 7) };
    let busy = pb::DupProgress { throttled: true, wire_bytes_per_sec: 4_000, ..report(1, 1, 4, 7) };
    let mut stats = DupStats::new();
    stats.insert((1, 0), ReportedProgress { progress: idle, age_ms: 100 });
    stats.insert((1, 1), ReportedProgress { progress: busy.clone(), age_ms: 100 });
    let demands = demands_of(&stats);
    assert_eq!(demands[&(1, 1)], ShareDemand::Saturated);
    assert_eq!(beacon_links(&s, &demands)[0].partition_bytes_per_sec, vec![250, 7_750]);
    // Status shows the same split and the rates measured.
    let st = link_status(&s, &s.links[&1], &stats);
    let shown: Vec<(u64, u64, bool)> =
        st.partitions.iter().map(|p| (p.share_bytes_per_sec, p.wire_bytes_per_sec, p.throttled)).collect();
    assert_eq!(shown, vec![(250, 0, false), (7_750, 4_000, true)]);
    // A report that stopped coming says nothing of what the partition wants now.
    assert_eq!(share_demand(&busy, 60_000), ShareDemand::Unknown);
}

#[test]
fn removed_links_are_neither_heard_nor_sent_to_replica_servers() {
    let mut s = state();
    assert_eq!(beacon_links(&s, &ShareDemands::new()).len(), 1);
    s.apply(&Command::ChangeLink { id: 1, change: LinkChange::Remove });
    assert!(beacon_links(&s, &ShareDemands::new()).is_empty());
    let (updates, accepted) = accept_progress(&s, 5, vec![report(1, 0, 3, 7)]);
    assert!(updates.is_empty() && accepted.is_empty());
}

/// The lag is measured on the partition's own clock (its newest applied write against what the
/// remote applied), and is unknown, with a reason, where it cannot be told: never 0.
#[test]
fn status_derives_lag_from_the_last_reports() {
    let mut s = state();
    let (updates, _) = accept_progress(&s, 5, vec![report(1, 0, 3, 7)]);
    s.apply(&Command::RecordDupProgress { updates, journal: 10 });
    let mut stats = DupStats::new();
    let progress = pb::DupProgress {
        committed: 20,
        committed_timetag: Timetag::at_physical_ms(12_500).as_u64(),
        replicated_up_to: Timetag::at_physical_ms(10_000).as_u64(),
        bytes_behind: 300,
        ..report(1, 0, 3, 7)
    };
    stats.insert((1, 0), ReportedProgress { progress, age_ms: 40 });
    // Partition 1 has reported nothing (so it has not started): its lag is unknown.
    stats.insert((1, 1), ReportedProgress { progress: report(1, 1, 4, 0), age_ms: 50 });
    let st = link_status(&s, &s.links[&1], &stats);
    let p0 = &st.partitions[0];
    assert_eq!((p0.confirmed, p0.committed, p0.decrees_behind, p0.bytes_behind), (7, 20, 13, 300));
    assert_eq!((p0.lag_known, p0.seconds_behind, p0.reported_ms_ago, p0.primary), (true, 2.5, 40, 5));
    let p1 = &st.partitions[1];
    assert_eq!((p1.decrees_behind, p1.lag_known, p1.primary), (0, false, 6));
    assert!(p1.lag_unknown.contains("not started"), "{}", p1.lag_unknown);
    let unreported = link_status(&s, &s.links[&1], &DupStats::new());
    assert_eq!(unreported.partitions[0].reported_ms_ago, u64::MAX);
    assert!(
        !unreported.partitions[0].lag_known && unreported.partitions[0].lag_unknown.contains("no report")
    );
}

#[test]
fn a_partition_still_copying_its_records_is_heard_but_not_started() {
    let s = state();
    let syncing = pb::DupProgress { syncing: true, sync_records: 500, ..report(1, 0, 3, 0) };
    let (updates, accepted) = accept_progress(&s, 5, vec![syncing]);
    assert!(updates.is_empty(), "no confirmed decree until the copy is done");
    assert_eq!(accepted[0].sync_records, 500, "its progress is shown");
}
