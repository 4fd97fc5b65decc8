use super::*;
use crate::local::processes::{proxy_args, proxy_process};

const FILE: &str = r#"
version: 1
clusters:
  - name: dc1
    id: 1
    region: local
    meta-servers: ["127.0.0.1:0"]
    replica-servers: ["127.0.0.1:0", "127.0.0.1:7002"]
  - name: dc2
    id: 2
    meta-servers: ["127.0.0.1:7101"]
    replica-servers: ["127.0.0.1:0", "127.0.0.1:0"]
    data-dir: second
tables:
  - name: demo
    partitions: 2
    replicas: 2
    copies:
      - cluster: dc1
        role: active
      - cluster: dc2
    links:
      - from: dc1
        to: dc2
proxies:
  - name: p1
    listen: 127.0.0.1:0
    dr-voter: true
    redis:
      listen: 127.0.0.1:0
      table: demo
      databases: {1: demo}
    auto-failover:
      - table: demo
        after: 30s
  - name: proxy
    listen: 127.0.0.1:7300
"#;

fn topology(text: &str) -> Topology {
    Topology::from_yaml(text, "t.yaml").unwrap_or_else(|d| panic!("{d}"))
}

/// A picker that hands out 127.0.0.1:9000, :9001, … (whatever host is asked), and counts.
fn counter() -> impl FnMut(&str) -> Result<String> {
    let mut next = 9000;
    move |host: &str| {
        next += 1;
        Ok(format!("{host}:{}", next - 1))
    }
}

#[test]
fn port_zero_is_picked_other_addresses_are_the_files_and_data_dirs_default_to_the_name() {
    let t = topology(FILE);
    let s = resolve(&t, &State::default(), &mut counter()).unwrap();
    let dc1 = &s.clusters[0];
    assert_eq!((dc1.name.as_str(), dc1.id, dc1.data_dir.as_deref()), ("dc1", 1, Some("dc1")));
    assert_eq!(dc1.meta_addrs(), ["127.0.0.1:9000"]);
    assert_eq!(dc1.replicas.values().collect::<Vec<_>>(), ["127.0.0.1:9001", "127.0.0.1:7002"]);
    let dc2 = &s.clusters[1];
    assert_eq!((dc2.id, dc2.data_dir.as_deref()), (2, Some("second")));
    assert_eq!(dc2.meta_addrs(), ["127.0.0.1:7101"]);
    assert_eq!(dc2.replicas.values().collect::<Vec<_>>(), ["127.0.0.1:9002", "127.0.0.1:9003"]);
    assert_eq!(
        s.proxies,
        [
            ProxyState {
                name: "p1".into(),
                listen: "127.0.0.1:9004".into(),
                redis: Some("127.0.0.1:9005".into())
            },
            ProxyState { name: "proxy".into(), listen: "127.0.0.1:7300".into(), redis: None },
        ]
    );
    assert_eq!(s.proxy.as_deref(), Some("127.0.0.1:9004"), "the first proxy, for older readers");
    assert_eq!(s.metas, dc1.metas, "the first cluster at the top level, for scripts");
    assert_eq!(s.layout, Some(layout(&t)));
}

#[test]
fn a_second_run_keeps_the_picked_ports_and_a_picked_port_never_repeats_an_address() {
    let t = topology(FILE);
    let first = resolve(&t, &State::default(), &mut counter()).unwrap();
    let mut never = |_: &str| -> Result<String> { panic!("every port is kept") };
    let again = resolve(&t, &first, &mut never).unwrap();
    assert_eq!(again, first);

    // A picker that keeps answering an address of the file is asked again.
    let mut answers = ["127.0.0.1:7002", "127.0.0.1:7002", "127.0.0.1:7300", "127.0.0.1:8000"].into_iter();
    let mut picker = counter();
    let mut repeat = |h: &str| answers.next().map_or_else(|| picker(h), |a| Ok(a.to_string()));
    let s = resolve(&t, &State::default(), &mut repeat).unwrap();
    assert_eq!(s.clusters[0].meta_addrs(), ["127.0.0.1:8000"]);
}

#[test]
fn deployed_is_the_file_with_the_ports_and_validates_with_no_port_zero() {
    let t = topology(FILE);
    let s = resolve(&t, &State::default(), &mut counter()).unwrap();
    let d = deployed(&t, &s);
    assert_eq!(
        d.clusters[1].replica_servers.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        ["127.0.0.1:9002", "127.0.0.1:9003"]
    );
    assert_eq!(d.proxies[0].redis.as_ref().map(|r| r.listen.as_str()), Some("127.0.0.1:9005"));
    assert_eq!(d.tables, t.tables, "tables, links and roles unchanged");
    let yaml = deployed_yaml(&t, &s, "`tern up -f /x/t.yaml`").unwrap();
    assert!(yaml.starts_with("# Written by `tern up -f /x/t.yaml`"), "{yaml}");
    assert!(!yaml.contains(":0\""), "no port 0 left: {yaml}");
    assert_eq!(topology(&yaml), d, "reads back as the same topology");
}

#[test]
fn the_layout_changes_with_the_processes_not_with_tables_or_regions() {
    let t = topology(FILE);
    let fewer_tables = topology(&FILE.replace("    links:\n      - from: dc1\n        to: dc2\n", ""));
    assert_eq!(layout(&fewer_tables), layout(&t));
    assert_eq!(layout(&topology(&FILE.replace("region: local", "region: eu"))), layout(&t));
    let more = FILE.replace(
        r#"["127.0.0.1:0", "127.0.0.1:7002"]"#,
        r#"["127.0.0.1:0", "127.0.0.1:7002", "127.0.0.1:0"]"#,
    );
    assert_ne!(layout(&topology(&more)), layout(&t));
    assert_ne!(layout(&topology(&FILE.replace("7300", "7301"))), layout(&t));
}

#[test]
fn proxies_get_the_files_settings_and_only_voters_are_named_voters() {
    let t = topology(FILE);
    let s = resolve(&t, &State::default(), &mut counter()).unwrap();
    let v = voters(&t, &s);
    assert_eq!(v.as_deref(), Some("p1=127.0.0.1:9004"));
    let p1 = proxy_args(
        &t.proxies[0],
        &s.proxies[0].listen,
        s.proxies[0].redis.as_deref(),
        &s.clusters,
        v.as_deref(),
    );
    assert_eq!(
        p1.join(" "),
        [
            "proxy --listen 127.0.0.1:9004",
            "--cluster dc1=127.0.0.1:9000 --cluster dc2=127.0.0.1:7101",
            "--auto-failover demo,after=30s,rpo=5s",
            "--resp-listen 127.0.0.1:9005 --resp-table demo --resp-db 1=demo",
            "--dr-voters p1=127.0.0.1:9004 --dr-name p1",
        ]
        .join(" ")
    );
    let p2 = proxy_args(&t.proxies[1], &s.proxies[1].listen, None, &s.clusters, v.as_deref());
    assert!(p2.ends_with(&["--dr-voters".to_string(), "p1=127.0.0.1:9004".to_string()]), "{p2:?}");
    assert_eq!((proxy_process("p1").as_str(), proxy_process("proxy").as_str()), ("proxy-p1", "proxy"));
    let no_voters = topology(&FILE.replace("dr-voter: true", "dr-voter: false"));
    assert_eq!(voters(&no_voters, &s), None);
}

#[test]
fn the_bundled_two_dc_example_resolves_like_the_default_up() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/two-dc.yaml");
    let t = Topology::load(path).unwrap_or_else(|d| panic!("{d}"));
    let s = resolve(&t, &State::default(), &mut counter()).unwrap();
    let shape: Vec<(&str, u8, usize, usize)> =
        s.clusters.iter().map(|c| (c.name.as_str(), c.id, c.metas.len(), c.replicas.len())).collect();
    assert_eq!(shape, [("dc1", 1, 1, 3), ("dc2", 2, 1, 3)], "what `tern up` starts without a file");
    assert_eq!(voters(&t, &s), Some(format!("proxy={}", s.proxies[0].listen)), "the proxy is the one voter");
}
