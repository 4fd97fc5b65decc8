//! The checks apply makes before changing anything (pure). Running steps is tested end to end
//! against real clusters (e2e/tests/topology_apply.rs).

use tern_core::LinkStatus;

use super::{ApplyError, check};
use crate::observed::Observed;
use crate::plan::plan;
use crate::schema::Topology;

fn two_dc() -> Topology {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/two-dc.yaml");
    Topology::load(path).expect("the example is valid")
}

#[test]
fn a_plan_at_the_expected_version_with_safe_steps_passes() {
    let t = two_dc();
    let p = plan(&t, &Observed::default().versioned());
    assert!(!p.is_empty());
    check(&p, Some(&p.version), false).expect("creation only: nothing destructive");
    check(&p, None, false).expect("no version expected");
}

#[test]
fn a_moved_version_is_refused_as_state_changed() {
    let t = two_dc();
    let p = plan(&t, &Observed::default().versioned());
    let e = check(&p, Some("0123456789abcdef"), true).expect_err("another version");
    assert!(matches!(e, ApplyError::StateChanged { .. }));
    assert!(e.to_string().contains("state changed since plan"), "{e}");
    assert!(e.to_string().contains("run tern plan again"), "{e}");
}

#[test]
fn destructive_steps_are_refused_by_name_unless_allowed() {
    let t = two_dc();
    let mut observed = Observed::of_topology(&t);
    // A table the file does not have, with a link: both are to go.
    let dc1 = observed.clusters.get_mut("dc1").expect("dc1");
    let mut old = dc1.tables["demo"].clone();
    old.epoch = 0;
    dc1.tables.insert("old".into(), old);
    let mut link = dc1.links[0].clone();
    (link.id, link.table, link.remote_table, link.status) =
        (9, "old".into(), "old".into(), LinkStatus::Shipping);
    dc1.links.push(link);
    let observed = observed.versioned();
    let p = plan(&t, &observed);
    let e = check(&p, Some(&observed.version), false).expect_err("destructive");
    let ApplyError::Refused { blocked, destructive } = &e else { panic!("{e}") };
    assert!(blocked.is_empty());
    assert_eq!(destructive.len(), 2, "{destructive:?}");
    assert!(destructive[0].starts_with("remove link 9 old: dc1 → dc2: "), "{destructive:?}");
    assert!(destructive[1].starts_with("drop table old in dc1: "), "{destructive:?}");
    assert!(e.to_string().contains("nothing was changed"), "{e}");
    assert!(e.to_string().contains("--allow-destructive"), "{e}");
    check(&p, Some(&observed.version), true).expect("allowed");
}

#[test]
fn blocked_steps_are_refused_with_their_reason_even_when_destructive_is_allowed() {
    let t = two_dc();
    let mut observed = Observed::of_topology(&t);
    let demo = observed.clusters.get_mut("dc2").and_then(|c| c.tables.get_mut("demo")).expect("demo");
    demo.partitions = 8;
    let p = plan(&t, &observed.versioned());
    let e = check(&p, None, true).expect_err("blocked");
    let ApplyError::Refused { blocked, destructive } = &e else { panic!("{e}") };
    assert!(destructive.is_empty(), "allowed");
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert!(blocked[0].contains("alter table demo in dc2: the meta servers cannot change"), "{blocked:?}");
    assert!(!e.is_retryable());
}

#[test]
fn a_link_progressing_on_its_own_does_not_move_the_version_but_a_pause_does() {
    let t = two_dc();
    let mut observed = Observed::of_topology(&t);
    let link = |o: &mut Observed| o.clusters.get_mut("dc1").expect("dc1").links[0].status;
    assert_eq!(link(&mut observed), LinkStatus::Shipping);
    let shipping = observed.digest();
    for status in [LinkStatus::Init, LinkStatus::SyncingCheckpoint] {
        observed.clusters.get_mut("dc1").expect("dc1").links[0].status = status;
        assert_eq!(observed.digest(), shipping, "{status}");
    }
    observed.clusters.get_mut("dc1").expect("dc1").links[0].status = LinkStatus::Paused;
    assert_ne!(observed.digest(), shipping);
}

#[test]
fn the_plan_version_covers_each_clusters_topology_version() {
    let t = two_dc();
    let mut o = Observed::of_topology(&t);
    o.topology_versions = [("dc1".to_string(), 4), ("dc2".to_string(), 0)].into();
    let before = o.digest();
    o.topology_versions.insert("dc2".into(), 1);
    assert_ne!(o.digest(), before, "another apply's bump moves the plan's version");
}

#[test]
fn every_cluster_is_bumped_by_name_expecting_the_planned_version() {
    let mut t = two_dc();
    t.clusters.reverse();
    let mut o = Observed::of_topology(&t);
    o.topology_versions = [("dc2".to_string(), 7), ("dc1".to_string(), 3)].into();
    let b = super::version::bumps(&t, &o).expect("both versions read");
    assert_eq!(b, [("dc1".to_string(), 3), ("dc2".to_string(), 7)]);
    o.topology_versions.remove("dc2");
    let e = super::version::bumps(&t, &o).expect_err("dc2 unread");
    assert!(matches!(&e, ApplyError::NoVersion { cluster } if cluster == "dc2"), "{e}");
}

#[test]
fn a_refused_bump_says_state_changed_and_to_re_plan() {
    let e = ApplyError::VersionMoved {
        cluster: "dc2".into(),
        why: "cluster \"dc2\" is at topology version 5, not the expected 4".into(),
        bumped: vec!["dc1".into()],
    };
    let text = e.to_string();
    assert!(text.starts_with("state changed since plan: cluster \"dc2\" is at topology version 5"), "{text}");
    assert!(text.contains("tern plan -f FILE"), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");
    assert!(text.contains("dc1 was bumped first"), "{text}");
    assert!(!e.is_retryable(), "re-plan first");
}
