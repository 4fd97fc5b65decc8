//! The exported manifests read back into the Kubernetes API types and say what the topology
//! says. Their check against the Kubernetes schemas is `topology/tests/it/export.rs`.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use serde::de::DeserializeOwned;

use super::*;

fn example(name: &str) -> Topology {
    let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    Topology::load(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every document of a multi-document YAML text, as the value its `kind` names.
#[derive(Debug, Default)]
struct Objects {
    namespaces: Vec<Namespace>,
    config_maps: Vec<ConfigMap>,
    services: Vec<Service>,
    stateful_sets: Vec<StatefulSet>,
    deployments: Vec<Deployment>,
}

fn typed<T: DeserializeOwned>(doc: &str) -> T {
    serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{e}\nin:\n{doc}"))
}

fn objects(text: &str) -> Objects {
    let mut o = Objects::default();
    for doc in text.split("---\n").filter(|d| !d.trim().is_empty()) {
        let v: serde_json::Value = typed(doc);
        match v["kind"].as_str().unwrap_or_default() {
            "Namespace" => o.namespaces.push(typed(doc)),
            "ConfigMap" => o.config_maps.push(typed(doc)),
            "Service" => o.services.push(typed(doc)),
            "StatefulSet" => o.stateful_sets.push(typed(doc)),
            "Deployment" => o.deployments.push(typed(doc)),
            k => panic!("unexpected kind {k:?} in:\n{doc}"),
        }
    }
    o
}

fn stateful_set<'a>(o: &'a Objects, name: &str) -> &'a StatefulSet {
    o.stateful_sets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no {name}"))
}

fn args_of(s: &StatefulSet) -> Vec<String> {
    let spec = s.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod spec");
    spec.containers[0].args.clone().expect("args")
}

fn flag<'a>(args: &'a [String], name: &str) -> Vec<&'a str> {
    args.windows(2).filter(|w| w[0] == name).map(|w| w[1].as_str()).collect()
}

#[test]
fn k8s_manifests_read_back_into_the_api_types_and_follow_the_topology() {
    let t = example("everything.yaml");
    let text = k8s(&t, &K8sOptions::default()).unwrap();
    let o = objects(&text);
    assert_eq!(o.namespaces.len(), 1);
    assert_eq!(o.stateful_sets.len(), 4, "meta and replica servers of dc1 and dc2");
    assert_eq!(o.deployments.len(), 1, "one proxy");
    // Two headless Services per cluster, one per proxy.
    assert_eq!(o.services.len(), 5);

    for (c, metas, replicas) in [("dc1", 3, 3), ("dc2", 1, 3)] {
        let m = stateful_set(&o, &format!("{c}-meta"));
        let spec = m.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(metas));
        assert_eq!(spec.ordinals.as_ref().and_then(|o| o.start), Some(1));
        let claims = spec.volume_claim_templates.as_ref().unwrap();
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
        let a = args_of(m);
        assert_eq!(flag(&a, "--listen"), ["0.0.0.0:34601"]);
        assert_eq!(flag(&a, "--cluster-name"), [c]);
        assert_eq!(flag(&a, "--members")[0].split(',').count(), metas as usize);
        assert_eq!(flag(&a, "--dr-voters"), ["p1=proxy-p1.tern.svc.cluster.local:34700"]);

        let r = stateful_set(&o, &format!("{c}-replica"));
        let rs = r.spec.as_ref().unwrap();
        assert_eq!(rs.replicas, Some(replicas));
        let req = rs.volume_claim_templates.as_ref().unwrap()[0].spec.as_ref().unwrap();
        assert_eq!(req.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0, "20Gi");
        let a = args_of(r);
        assert_eq!(
            flag(&a, "--advertise"),
            [format!("$(POD_NAME).{c}-replica.tern.svc.cluster.local:34801").as_str()]
        );
        let pod = rs.template.spec.as_ref().unwrap();
        let container = &pod.containers[0];
        assert!(container.readiness_probe.as_ref().unwrap().tcp_socket.is_some());
        assert!(container.liveness_probe.as_ref().unwrap().http_get.is_some());
        assert!(container.resources.as_ref().unwrap().requests.as_ref().unwrap().contains_key("cpu"));
    }
    assert_eq!(
        flag(&args_of(stateful_set(&o, "dc1-meta")), "--members"),
        [
            "1=dc1-meta-1.dc1-meta.tern.svc.cluster.local:34601,2=dc1-meta-2.dc1-meta.tern.svc.cluster.local:34601,3=dc1-meta-3.dc1-meta.tern.svc.cluster.local:34601"
        ]
    );

    let proxy = &o.deployments[0];
    let c = &proxy.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
    let a = c.args.clone().unwrap();
    assert_eq!(flag(&a, "--resp-listen"), ["0.0.0.0:6379"]);
    assert_eq!(flag(&a, "--resp-db"), ["1=sessions"]);
    assert_eq!(flag(&a, "--auto-failover"), ["users,after=30s,rpo=2s"]);
    assert_eq!(flag(&a, "--cluster").len(), 2);
    let svc = o.services.iter().find(|s| s.metadata.name.as_deref() == Some("proxy-p1")).unwrap();
    let ports: Vec<i32> = svc.spec.as_ref().unwrap().ports.as_ref().unwrap().iter().map(|p| p.port).collect();
    assert_eq!(ports, [34700, METRICS_PORT as i32, 6379]);
}

#[test]
fn the_config_map_holds_the_topology_as_deployed_and_it_validates() {
    let t = example("two-dc.yaml");
    let o = objects(&k8s(&t, &K8sOptions { namespace: "prod".into(), ..Default::default() }).unwrap());
    let data = o.config_maps[0].data.as_ref().unwrap();
    let deployed =
        Topology::from_yaml(&data[TOPOLOGY_KEY], "deployed.yaml").unwrap_or_else(|e| panic!("{e}"));
    let dc2 = deployed.cluster("dc2").unwrap();
    assert_eq!(*dc2.meta_servers[0], "dc2-meta-1.dc2-meta.prod.svc.cluster.local:34601");
    assert_eq!(dc2.replica_servers.len(), 3);
    assert_eq!(*deployed.proxies[0].listen, "proxy-proxy.prod.svc.cluster.local:34700");
    assert_eq!(deployed.tables, t.tables);
}

#[test]
fn k8s_files_are_one_per_cluster_and_make_up_the_whole() {
    let t = example("two-dc.yaml");
    let files = k8s_files(&t, &K8sOptions::default()).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["common.yaml", "dc1.yaml", "dc2.yaml", "proxies.yaml"]);
    let dc2 = objects(&files[2].text);
    assert!(dc2.stateful_sets.iter().all(|s| s.metadata.name.as_deref().unwrap().starts_with("dc2-")));
}

#[test]
fn names_that_clash_as_object_names_are_refused() {
    let mut t = example("two-dc.yaml");
    t.clusters[1].name = "DC1".to_string().into();
    let e = k8s(&t, &K8sOptions::default()).unwrap_err().to_string();
    assert_eq!(
        e,
        "cluster `dc1` and cluster `DC1` both become the object name `dc1-meta`: rename one of them"
    );
    let e = k8s(&example("two-dc.yaml"), &K8sOptions { namespace: "Prod".into(), ..Default::default() })
        .unwrap_err()
        .to_string();
    assert!(e.contains("namespace `Prod`"), "{e}");
}

#[test]
fn compose_runs_every_process_with_the_same_flags() {
    let t = example("everything.yaml");
    let text = compose(&t, "tern:test").unwrap();
    let v: serde_json::Value = typed(&text);
    let services = v["services"].as_object().unwrap();
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "dc1-meta-1",
            "dc1-meta-2",
            "dc1-meta-3",
            "dc1-replica-1",
            "dc1-replica-2",
            "dc1-replica-3",
            "dc2-meta-1",
            "dc2-replica-1",
            "dc2-replica-2",
            "dc2-replica-3",
            "proxy-p1"
        ]
    );
    let cmd: Vec<String> = serde_json::from_value(services["dc1-meta-2"]["command"].clone()).unwrap();
    assert_eq!(flag(&cmd, "--id"), ["2"]);
    assert_eq!(flag(&cmd, "--members"), ["1=dc1-meta-1:34601,2=dc1-meta-2:34601,3=dc1-meta-3:34601"]);
    let cmd: Vec<String> = serde_json::from_value(services["dc2-replica-3"]["command"].clone()).unwrap();
    assert_eq!(flag(&cmd, "--advertise"), ["dc2-replica-3:34801"]);
    assert_eq!(flag(&cmd, "--meta"), ["dc2-meta-1:34601"]);
    assert_eq!(
        services["proxy-p1"]["ports"],
        serde_json::json!([
            {"target": 34700, "published": "34700"},
            {"target": 6379, "published": "6379"}
        ])
    );
    let deployed = v["configs"]["topology"]["content"].as_str().unwrap();
    Topology::from_yaml(deployed, "deployed.yaml").unwrap_or_else(|e| panic!("{e}"));
}
