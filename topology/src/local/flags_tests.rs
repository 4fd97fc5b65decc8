use super::*;
use crate::local::file;

fn spec(clusters: u64, metas: u64, replicas: u64) -> LocalSpec {
    LocalSpec { clusters, metas, replicas, ..LocalSpec::new("d".into(), "tern".into()) }
}

/// A picker that hands out 127.0.0.1:9000, :9001, …
fn counter() -> impl FnMut(&str) -> Result<String> {
    let mut next = 9000;
    move |host: &str| {
        next += 1;
        Ok(format!("{host}:{}", next - 1))
    }
}

#[test]
fn the_default_flags_are_the_bundled_two_dc_example() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/two-dc.yaml");
    let example = Topology::load(path).unwrap_or_else(|d| panic!("{d}"));
    let generated = topology(&LocalSpec::new("d".into(), "tern".into()), &State::default()).unwrap();
    assert_eq!(generated, example, "`tern up` and `tern up -f topology/examples/two-dc.yaml` run the same");
    assert_eq!(file::layout(&generated), file::layout(&example), "the same processes");
}

#[test]
fn counts_become_clusters_servers_copies_and_pairwise_links() {
    let t = topology(&spec(3, 3, 5), &State::default()).unwrap();
    let names: Vec<&str> = t.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["dc1", "dc2", "dc3"]);
    assert_eq!(t.clusters.iter().map(|c| *c.id).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(t.clusters.iter().all(|c| c.meta_servers.len() == 3 && c.replica_servers.len() == 5));
    let demo = &t.tables[0];
    assert_eq!((*demo.partitions, *demo.replicas), (4, 3), "replicas: at most 3");
    assert_eq!(demo.active(), Some("dc1"));
    let links: Vec<String> = demo.links.iter().map(|l| format!("{}>{}", *l.from, *l.to)).collect();
    assert_eq!(links, ["dc1>dc2", "dc2>dc1", "dc1>dc3", "dc3>dc1", "dc2>dc3", "dc3>dc2"]);
    assert_eq!(t.proxies.len(), 1);
    assert!(t.proxies[0].dr_voter);
    assert_eq!(t.proxies[0].redis.as_ref().map(|r| r.table.as_str()), Some("demo"));

    let one = topology(&spec(1, 1, 2), &State::default()).unwrap();
    assert_eq!(one.clusters[0].name.as_str(), SINGLE_CLUSTER);
    assert_eq!(
        one.clusters[0].data_dir.as_deref().map(String::as_str),
        Some(TOP),
        "data at the top, as before"
    );
    assert_eq!((one.proxies.len(), one.tables[0].links.len(), *one.tables[0].replicas), (0, 0, 2));

    let none = topology(&LocalSpec { table: String::new(), ..spec(2, 1, 1) }, &State::default()).unwrap();
    assert!(none.tables.is_empty());
    assert_eq!(none.proxies[0].redis, None, "no table, no Redis gateway");
}

#[test]
fn flags_the_meta_servers_would_refuse_are_named() {
    let bad = LocalSpec { table: "no spaces".into(), ..spec(2, 1, 3) };
    let e = topology(&bad, &State::default()).unwrap_err().to_string();
    assert!(
        e.contains("`tern up --clusters 2 --metas 1 --replicas 3 --table no spaces --partitions 4`"),
        "{e}"
    );
    assert!(e.contains("tables[0].name"), "{e}");
}

#[test]
fn a_directory_keeps_its_cluster_names_ports_and_proxy() {
    // Two clusters first, then one: dc1 stays dc1 (with its ports), as it always did.
    let first = file::resolve(
        &topology(&spec(2, 1, 3), &State::default()).unwrap(),
        &State::default(),
        &mut counter(),
    )
    .unwrap();
    let t = topology(&spec(1, 1, 3), &first).unwrap();
    assert_eq!(t.clusters[0].name.as_str(), "dc1");
    let mut never = |_: &str| -> Result<String> { panic!("every port is kept") };
    let again = file::resolve(&t, &first, &mut never).unwrap();
    assert_eq!(again.clusters[0].metas, first.clusters[0].metas);
    assert_eq!(again.clusters[0].replicas, first.clusters[0].replicas);
    assert_eq!(again.proxy, None, "one cluster: no proxy");
}

#[test]
fn a_state_of_an_older_version_keeps_its_ports() {
    // Older single-cluster state: no `clusters`.
    let old = r#"{"metas":{"1":"127.0.0.1:5"},"replicas":{"1":"127.0.0.1:6"},"pids":[7]}"#;
    let s = migrate(serde_json::from_str(old).unwrap());
    let t = topology(&spec(1, 1, 1), &s).unwrap();
    let mut never = |_: &str| -> Result<String> { panic!("every port is kept") };
    let r = file::resolve(&t, &s, &mut never).unwrap();
    assert_eq!((r.clusters[0].name.as_str(), r.clusters[0].data_dir.as_deref()), ("local", Some(TOP)));
    assert_eq!(r.clusters[0].meta_addrs(), ["127.0.0.1:5"]);
    assert_eq!(r.metas, s.metas, "the first cluster at the top level, for scripts");

    // Older two-cluster state: the proxy known by its address only; its Redis gateway is new.
    let old = r#"{"metas":{"1":"127.0.0.1:5"},"replicas":{"1":"127.0.0.1:6"},"pids":[],
        "clusters":[{"name":"dc1","id":1,"metas":{"1":"127.0.0.1:5"},"replicas":{"1":"127.0.0.1:6"}},
                    {"name":"dc2","id":2,"metas":{"1":"127.0.0.1:15"},"replicas":{"1":"127.0.0.1:16"}}],
        "proxy":"127.0.0.1:20"}"#;
    let s = migrate(serde_json::from_str(old).unwrap());
    let t = topology(&spec(2, 1, 1), &s).unwrap();
    let r = file::resolve(&t, &s, &mut counter()).unwrap();
    assert_eq!(r.clusters[1].meta_addrs(), ["127.0.0.1:15"]);
    assert_eq!(r.proxy.as_deref(), Some("127.0.0.1:20"));
    assert_eq!(r.proxies[0].redis.as_deref(), Some("127.0.0.1:9000"));
}
