use tern_client::admin::{Link, LinkReport, TableInfo};
use tern_core::{DrRole, LinkMode, LinkStatus, TableId, TableStatus};

use super::render::describe;
use super::*;
use crate::observed::{Observed, ObservedLink, ObservedPolicy, observed_from};

fn example(name: &str) -> Topology {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
    Topology::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn actions(p: &Plan) -> Vec<&Action> {
    p.steps.iter().map(|s| &s.action).collect()
}

fn s(x: &str) -> String {
    x.to_string()
}

#[test]
fn a_plan_against_an_empty_deployment_creates_everything() {
    let desired = example("two-dc.yaml");
    let empty = Observed {
        clusters: [(s("dc1"), Default::default()), (s("dc2"), Default::default())].into(),
        ..Default::default()
    };
    let p = plan(&desired, &empty.versioned());
    let create = |cluster: &str| Action::CreateTable {
        cluster: s(cluster),
        table: s("demo"),
        partitions: 4,
        replicas: 3,
    };
    let link = |from: &str, to: &str| Action::AddLink {
        cluster: s(from),
        table: s("demo"),
        to: s(to),
        two_way: true,
        max_bytes_per_sec: 0,
        paused: false,
    };
    assert_eq!(
        actions(&p),
        [
            &create("dc1"),
            &create("dc2"),
            &Action::SetRole { cluster: s("dc2"), table: s("demo"), role: Role::Standby },
            &link("dc1", "dc2"),
            &link("dc2", "dc1"),
        ]
    );
    assert!(!p.has_destructive() && p.steps.iter().all(|s| s.blocked.is_none()));
    assert_eq!((p.summary.add, p.summary.change, p.summary.destroy), (4, 1, 0));
    assert_eq!(p.notes, ["the proxies were not asked: their settings are not planned"]);
}

#[test]
fn a_plan_of_the_deployment_the_file_describes_is_empty() {
    for file in ["two-dc.yaml", "everything.yaml"] {
        let desired = example(file);
        let p = plan(&desired, &Observed::of_topology(&desired));
        assert!(p.is_empty(), "{file}: {}", p.render());
        assert!(p.notes.is_empty(), "{file}: {:?}", p.notes);
        assert_eq!(p.render(), "No changes: the deployment matches the file.\n");
    }
}

#[test]
fn what_tern_up_leaves_running_plans_as_no_change() {
    let table = |role, epoch| TableInfo {
        id: TableId(1),
        name: s("demo"),
        partitions: 4,
        replicas: 3,
        status: TableStatus::Serving,
        role,
        epoch,
        restoring: None,
    };
    let dropped =
        TableInfo { name: s("old"), status: TableStatus::Dropped { at_ms: 5 }, ..table(DrRole::Active, 0) };
    let link = |id, to: &str, status| LinkReport {
        link: Link {
            id,
            table: TableId(1),
            table_name: s("demo"),
            remote_cluster: s(to),
            remote_cluster_id: 2,
            remote_metas: vec![s("127.0.0.1:1")],
            remote_table: s("demo"),
            status,
            mode: LinkMode::TwoWay,
            max_bytes_per_sec: 0,
            confirmed: vec![],
            started: vec![],
            created_at_ms: 0,
        },
        partitions: vec![],
        conflicts: 0,
        overwritten: 0,
        conflicts_dropped: 0,
    };
    let (t1, t2) = ([table(DrRole::Active, 0), dropped], [table(DrRole::Standby, 1)]);
    let (l1, l2) = (
        [link(1, "dc2", LinkStatus::Shipping), link(2, "dc3", LinkStatus::Removed)],
        [link(1, "dc1", LinkStatus::Shipping)],
    );
    let observed = observed_from(&[("dc1", &t1, &l1), ("dc2", &t2, &l2)], None);
    assert_eq!(observed.version, observed.digest());
    assert!(!observed.version.is_empty());
    let p = plan(&example("two-dc.yaml"), &observed);
    assert!(p.is_empty(), "{}", p.render());
}

#[test]
fn changing_one_throttle_is_exactly_one_step() {
    let desired = example("everything.yaml");
    let mut observed = Observed::of_topology(&desired);
    let link = observed
        .clusters
        .get_mut("dc1")
        .and_then(|c| c.links.iter_mut().find(|l| l.to == "dc2"))
        .expect("link");
    link.max_bytes_per_sec = 0;
    let id = link.id;
    let p = plan(&desired, &observed);
    assert_eq!(
        actions(&p),
        [&Action::SetThrottle {
            cluster: s("dc1"),
            table: s("users"),
            to: s("dc2"),
            id,
            from_bytes_per_sec: 0,
            to_bytes_per_sec: 10 << 20
        }]
    );
    assert_eq!(p.steps[0].destructive, None);
    assert!(
        p.render().contains("  ~ throttle link 1 users: dc1 → dc2: unlimited → 10MiB/s\n"),
        "{}",
        p.render()
    );
    assert!(p.render().ends_with("Plan: 0 to add, 1 to change, 0 to destroy.\n"), "{}", p.render());
}

#[test]
fn removals_are_destructive_and_come_last_in_dependency_order() {
    let desired = example("two-dc.yaml");
    let mut observed = Observed::of_topology(&desired);
    let dc1 = observed.clusters.get_mut("dc1").expect("dc1");
    dc1.tables.insert(s("old"), dc1.tables["demo"].clone());
    dc1.links.push(ObservedLink {
        id: 9,
        table: s("old"),
        to: s("dc2"),
        remote_table: s("old"),
        status: LinkStatus::Paused,
        mode: LinkMode::OneWay,
        max_bytes_per_sec: 0,
    });
    // And a new table, so that creations and removals mix.
    let mut desired2 = desired.clone();
    let mut t = desired.tables[0].clone();
    t.name = s("fresh").into();
    t.links.clear();
    desired2.tables.push(t);
    let p = plan(&desired2, &observed);
    let kinds: Vec<_> = p.steps.iter().map(|s| (describe(&s.action), s.destructive.is_some())).collect();
    assert_eq!(
        kinds,
        [
            (s("create table fresh in dc1 (4 partitions, 3 replicas)"), false),
            (s("create table fresh in dc2 (4 partitions, 3 replicas)"), false),
            (s("make table fresh standby in dc2"), false),
            (s("remove link 9 old: dc1 → dc2"), true),
            (s("drop table old in dc1"), true),
        ]
    );
    let text = p.render();
    assert!(
        text.contains(
            "  - drop table old in dc1 (destructive)\n      destructive: drops the data of table old in dc1"
        ),
        "{text}"
    );
    assert!(
        text.ends_with(
            "Plan: 2 to add, 1 to change, 2 to destroy. 2 destructive (apply needs --allow-destructive).\n"
        ),
        "{text}"
    );
}

#[test]
fn moving_the_active_copy_is_a_destructive_switchover() {
    let desired = example("two-dc.yaml");
    let mut observed = Observed::of_topology(&desired);
    // A DR switchover made dc2 active at epoch 2; the file still says dc1.
    for (c, role, epoch) in [("dc1", DrRole::Standby, 2), ("dc2", DrRole::Active, 2)] {
        let t = observed.clusters.get_mut(c).and_then(|c| c.tables.get_mut("demo")).expect("demo");
        (t.role, t.epoch) = (role, epoch);
    }
    let p = plan(&desired, &observed);
    assert_eq!(actions(&p), [&Action::MoveActive { table: s("demo"), from: s("dc2"), to: s("dc1") }]);
    assert!(
        p.steps[0]
            .destructive
            .as_deref()
            .is_some_and(|w| w.contains("clients of demo switch from dc2 to dc1"))
    );
    assert_eq!(p.steps[0].blocked, None, "apply moves it through the DR switchover");
    // A stale active copy at a lower epoch is fenced, not moved.
    let t = observed.clusters.get_mut("dc2").and_then(|c| c.tables.get_mut("demo")).expect("demo");
    t.epoch = 1;
    let t = observed.clusters.get_mut("dc1").and_then(|c| c.tables.get_mut("demo")).expect("demo");
    (t.role, t.epoch) = (DrRole::Active, 3);
    let p = plan(&desired, &observed);
    assert_eq!(actions(&p), [&Action::SetRole { cluster: s("dc2"), table: s("demo"), role: Role::Standby }]);
}

#[test]
fn links_pause_resume_and_blocked_shape_changes() {
    let desired = example("everything.yaml");
    let mut observed = Observed::of_topology(&desired);
    let dc1 = observed.clusters.get_mut("dc1").expect("dc1");
    dc1.links[0].status = LinkStatus::Paused;
    let users = dc1.tables.get_mut("users").expect("users");
    users.partitions = 16;
    users.replicas = 5;
    users.default_ttl = None;
    let dc2 = observed.clusters.get_mut("dc2").expect("dc2");
    dc2.links[0].status = LinkStatus::Shipping;
    let p = plan(&desired, &observed);
    let lines: Vec<_> =
        p.steps.iter().map(|s| (describe(&s.action), s.destructive.is_some(), s.blocked.is_some())).collect();
    assert_eq!(
        lines,
        [
            (s("alter table users in dc1"), true, true),
            (s("alter table users in dc1"), true, true),
            (s("alter table users in dc1"), false, true),
            (s("resume link 1 users: dc1 → dc2"), false, false),
            (s("pause link 2 users: dc2 → dc1"), false, false),
        ]
    );
    let text = p.render();
    assert!(
        text.contains("      partitions: 16 → 8\n      destructive: a table's partition count is fixed"),
        "{text}"
    );
    assert!(text.contains("      default-ttl: none → 30days\n"), "{text}");
}

#[test]
fn policies_are_applied_and_proxies_planned_but_blocked() {
    let desired = example("everything.yaml");
    let mut observed = Observed::of_topology(&desired);
    let nightly: ObservedPolicy = observed.backup_policies["nightly"].clone();
    observed.backup_policies.insert(s("hourly"), ObservedPolicy { tables: vec![s("sessions")], ..nightly });
    observed.backup_policies.get_mut("nightly").expect("nightly").keep = Some(3);
    let p1 = observed.proxies.as_mut().and_then(|p| p.get_mut("p1")).expect("p1");
    p1.auto_failover.clear();
    let p = plan(&desired, &observed);
    let kinds: Vec<_> = p.steps.iter().map(|s| describe(&s.action)).collect();
    assert_eq!(kinds, ["alter backup policy nightly", "change proxy p1", "remove backup policy hourly"]);
    let blocked: Vec<bool> = p.steps.iter().map(|s| s.blocked.is_some()).collect();
    assert_eq!(blocked, [false, true, false], "policies are applied; a proxy takes flags when it starts");
    assert!(p.steps[2].destructive.is_some(), "removing a policy needs --allow-destructive");
    // Clusters report a policy's tables in their own order: not a change.
    let nightly = observed.backup_policies.get_mut("nightly").expect("nightly");
    (nightly.keep, nightly.tables) = (Some(7), vec![s("users")]);
    let hourly = observed.backup_policies.get_mut("hourly").expect("hourly");
    hourly.tables = vec![s("sessions"), s("users")];
    let mut want = desired.clone();
    let b = want.backup.as_mut().expect("backup");
    let mut h = b.policies[0].clone();
    h.name.value = s("hourly");
    h.tables = vec![h.tables[0].clone(), h.tables[0].clone()];
    (h.tables[0].value, h.tables[1].value) = (s("users"), s("sessions"));
    b.policies.push(h);
    let kinds: Vec<_> = plan(&want, &observed).steps.iter().map(|s| describe(&s.action)).collect();
    assert_eq!(kinds, ["change proxy p1"]);
    let text = p.render();
    assert!(text.contains("      retention.keep: 3 → 7\n"), "{text}");
    assert!(text.contains("      auto-failover.users: off → after 30s, rpo-budget 2s\n"), "{text}");
}

#[test]
fn the_whole_diff_reads_like_this() {
    let desired = example("two-dc.yaml");
    let mut observed = Observed::of_topology(&desired);
    observed.clusters.remove("dc2");
    observed.version = s("v7");
    let p = plan(&desired, &observed);
    let want = "\
note: cluster dc2 was not observed: it is planned as if it held nothing

Steps, in the order apply runs them (state version v7):

  + create table demo in dc2 (4 partitions, 3 replicas)
  ~ make table demo standby in dc2
  + add link demo: dc2 → dc1 (two-way, unlimited)

Plan: 2 to add, 1 to change, 0 to destroy.
";
    assert_eq!(p.render(), want);
}

#[test]
fn the_json_form_names_each_step_by_kind() {
    let desired = example("two-dc.yaml");
    let mut observed = Observed::of_topology(&desired);
    observed.clusters.get_mut("dc1").expect("dc1").links[0].max_bytes_per_sec = 1024;
    let p = plan(&desired, &observed);
    let json = serde_json::to_value(&p).expect("json");
    assert_eq!(
        json["steps"][0],
        serde_json::json!({
            "kind": "set-throttle", "cluster": "dc1", "table": "demo", "to": "dc2", "id": 1,
            "from_bytes_per_sec": 1024, "to_bytes_per_sec": 0, "destructive": null, "blocked": null
        })
    );
    assert_eq!(json["summary"]["change"], 1);
    assert_eq!(json["version"], serde_json::json!(observed.version));
}
