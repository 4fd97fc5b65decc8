//! The shipped examples parse and validate, and say what they are meant to say.

use std::path::Path;

use tern_topology::Topology;
use tern_topology::schema::Role;

fn load(name: &str) -> Topology {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
    Topology::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_two_dc_example_is_what_tern_up_runs() {
    let t = load("two-dc.yaml");
    let names: Vec<(&str, u32)> = t.clusters.iter().map(|c| (c.name.as_str(), *c.id)).collect();
    assert_eq!(names, [("dc1", 1), ("dc2", 2)]);
    for c in &t.clusters {
        assert_eq!((c.meta_servers.len(), c.replica_servers.len()), (1, 3), "{}", *c.name);
        assert!(
            c.meta_servers.iter().chain(&c.replica_servers).all(|a| a.ends_with(":0")),
            "ports are picked"
        );
    }
    let [demo] = t.tables.as_slice() else { panic!("one table: {:?}", t.tables) };
    assert_eq!((demo.name.as_str(), *demo.partitions, *demo.replicas), ("demo", 4, 3));
    assert_eq!(demo.active(), Some("dc1"));
    assert_eq!(*demo.copies[1].role, Role::Standby);
    assert!(demo.has_link("dc1", "dc2") && demo.has_link("dc2", "dc1"));
    let [proxy] = t.proxies.as_slice() else { panic!("one proxy") };
    assert!(proxy.dr_voter);
    assert_eq!(proxy.redis.as_ref().map(|r| r.table.as_str()), Some("demo"));
    assert!(t.backup.is_none());
}

#[test]
fn the_annotated_example_uses_every_part_of_the_format() {
    let t = load("everything.yaml");
    let users = t.table("users").expect("users");
    assert_eq!(users.default_ttl.as_ref().map(|d| d.0.as_secs()), Some(30 * 86400));
    assert_eq!(users.links[0].max_bytes_per_sec.as_ref().map(|b| b.0), Some(10 << 20));
    assert!(users.links[1].paused);
    assert_eq!(*users.copies[1].role, Role::Standby, "the default role");
    let f = &t.proxies[0].auto_failover[0];
    assert_eq!((f.after.0.as_secs(), f.rpo_budget.0.as_secs()), (30, 2));
    let b = t.backup.as_ref().expect("backup");
    assert_eq!(b.policies[0].retention.keep.as_ref().map(|k| **k), Some(7));
    // Positions are kept for validation messages.
    let pos = users.partitions.pos.expect("a position");
    assert_eq!((pos.line, pos.column), (27, 17));
}

#[test]
fn every_problem_is_reported_at_once_in_file_order() {
    let text = "version: 1
clusters:
  - {name: dc1, id: 0, meta-servers: [a:1], replica-servers: [a:2]}
  - {name: dc1, id: 2, meta-servers: [a:1], replica-servers: [a:3]}
tables:
  - name: t
    partitions: 0
    replicas: 1
    copies: [{cluster: dc1}]
";
    let e = Topology::from_yaml(text, "t.yaml").expect_err("invalid");
    let want = "\
t.yaml:3:21: clusters[0].id: cluster id 0 is out of range: it must be 1..=127
t.yaml:4:12: clusters[1].name: duplicate cluster name `dc1`: also clusters[0].name (line 3)
t.yaml:4:39: clusters[1].meta-servers[0]: port 1 on a is already used by clusters[0].meta-servers[0] (line 3)
t.yaml:6:11: tables[0].copies: table `t` has no active copy: give exactly one copy `role: active`
t.yaml:7:17: tables[0].partitions: partition count 0 is out of range 1..=4096";
    assert_eq!(e.to_string(), want);
    assert_eq!(e.len(), 5);
}

#[test]
fn a_topology_round_trips_through_json() {
    // What `--output json` and a Kubernetes ConfigMap would carry: the same topology, without
    // positions (equality ignores them).
    for name in ["two-dc.yaml", "everything.yaml"] {
        let t = load(name);
        let json = serde_json::to_string(&t).expect("to json");
        let back: Topology = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}\n{json}"));
        assert_eq!(back, t, "{name}");
        assert_eq!(back.tables[0].partitions.pos, None);
    }
}
