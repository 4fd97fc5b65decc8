//! Links seeded from a backup (`Command::AddSeededLink`).

use super::*;
use crate::state::Command;

fn state_with_table(partitions: u32) -> MetaState {
    let mut s = MetaState::default();
    s.apply(&Command::CreateTable { name: "t".into(), partitions, replicas: 3 });
    s
}

fn new_link() -> NewLink {
    NewLink {
        table: 1,
        table_name: "t".into(),
        remote_cluster: "b".into(),
        remote_cluster_id: 2,
        remote_metas: vec!["10.0.0.1:34601".into()],
        remote_table: "t".into(),
        mode: LinkMode::OneWay,
        status: LinkStatus::Shipping,
        max_bytes_per_sec: 0,
        created_at_ms: 7,
    }
}

fn seed(decrees: Vec<u64>) -> LinkSeed {
    LinkSeed { backup: "20261208T010000Z-t-0a1b2c3d".into(), decrees }
}

#[test]
fn a_seeded_link_is_added_paused_with_every_partition_started_at_the_backup_decree() {
    let mut s = state_with_table(3);
    let r = s.apply(&Command::AddSeededLink { link: new_link(), seed: seed(vec![10, 20, 30]) });
    let Response::Link(l) = r else { panic!("expected a link, got {r:?}") };
    assert_eq!(l.status, LinkStatus::Paused, "it must not ship before the remote table holds the backup");
    assert_eq!(l.confirmed, vec![10, 20, 30]);
    assert_eq!(l.started, vec![true; 3], "started: replicas hold their log from confirmed + 1 on");
    assert_eq!(l.seed_backup.as_deref(), Some("20261208T010000Z-t-0a1b2c3d"));
    // What the replicas keep: the floor of a started link is confirmed + 1.
    let rules = tern_duplication::DupRules::default();
    let progress = LinkProgress { started: l.started[1], confirmed: Decree(l.confirmed[1]) };
    assert_eq!(rules.log_floor(true, [progress]), Some(Decree(21)));
    // Resuming ships from there.
    let r = s.apply(&Command::ChangeLink { id: l.id, change: LinkChange::Resume });
    let Response::Link(l) = r else { panic!("expected a link, got {r:?}") };
    assert_eq!(l.status, LinkStatus::Shipping);
    assert_eq!(l.confirmed, vec![10, 20, 30]);
}

#[test]
fn a_seed_of_another_partition_count_or_a_second_link_is_refused() {
    let mut s = state_with_table(3);
    let r = s.apply(&Command::AddSeededLink { link: new_link(), seed: seed(vec![10, 20]) });
    let Response::Refused(why) = r else { panic!("expected a refusal, got {r:?}") };
    assert!(why.contains("has 2 partitions") && why.contains("has 3"), "{why}");
    s.apply(&Command::AddSeededLink { link: new_link(), seed: seed(vec![1, 2, 3]) });
    let r = s.apply(&Command::AddSeededLink { link: new_link(), seed: seed(vec![1, 2, 3]) });
    let Response::Refused(why) = r else { panic!("expected a refusal, got {r:?}") };
    assert!(why.contains("already has link 1"), "{why}");
}

#[test]
fn an_unseeded_link_reads_and_writes_back_without_the_seed_field() {
    let l = LinkRecord::new(1, &new_link(), 2);
    let json = serde_json::to_string(&l).unwrap();
    assert!(!json.contains("seed_backup"), "older state must stay byte-identical: {json}");
    let seeded = LinkRecord::seeded(2, &new_link(), 2, &seed(vec![4, 5]));
    let back: LinkRecord = serde_json::from_str(&serde_json::to_string(&seeded).unwrap()).unwrap();
    assert_eq!(back, seeded);
}
