//! The command lines of the exported processes: flags of `tern meta`, `tern replica` and
//! `tern proxy` (the same ones `tern up` passes, `local::processes`), for every target.

use super::{ClusterPlace, DATA_DIR, METRICS_PORT, Placement, ProxyPlace};
use crate::schema::{Cluster, Proxy};

/// `tern meta …` of a meta server of cluster `c` listening on every interface. `id`: its
/// `--id`, or `None` when the target sets `TERN_META_ID` (Kubernetes, from the pod's index).
pub fn meta(c: &Cluster, place: &ClusterPlace, id: Option<u32>, voters: Option<&str>) -> Vec<String> {
    let members: Vec<String> = place.metas.iter().map(|(id, a)| format!("{id}={a}")).collect();
    let mut a = vec!["meta".to_string()];
    if let Some(id) = id {
        a.extend(["--id".into(), id.to_string()]);
    }
    a.extend([
        "--listen".into(),
        format!("0.0.0.0:{}", place.meta_port),
        "--members".into(),
        members.join(","),
        "--data-dir".into(),
        format!("{DATA_DIR}/meta"),
        "--cluster-name".into(),
        c.name.to_string(),
        "--cluster-id".into(),
        c.id.to_string(),
    ]);
    if let Some(v) = voters {
        a.extend(["--dr-voters".into(), v.to_string()]);
    }
    a
}

/// `tern replica …` of a replica server of cluster `c` that others reach at `advertise`.
pub fn replica(c: &Cluster, place: &ClusterPlace, advertise: &str) -> Vec<String> {
    let metas: Vec<&str> = place.metas.iter().map(|(_, a)| a.as_str()).collect();
    vec![
        "replica".into(),
        "--listen".into(),
        format!("0.0.0.0:{}", place.replica_port),
        "--advertise".into(),
        advertise.to_string(),
        "--meta".into(),
        metas.join(","),
        "--data-dir".into(),
        format!("{DATA_DIR}/replica"),
        "--cluster-id".into(),
        c.id.to_string(),
        "--metrics-listen".into(),
        format!("0.0.0.0:{METRICS_PORT}"),
    ]
}

/// `tern proxy …` of proxy `p` in front of every cluster of the deployment.
pub fn proxy(
    p: &Proxy,
    place: &ProxyPlace,
    clusters: &[Cluster],
    all: &Placement,
    voters: Option<&str>,
) -> Vec<String> {
    let mut a = vec!["proxy".to_string(), "--listen".into(), format!("0.0.0.0:{}", place.port)];
    for (c, cp) in clusters.iter().zip(&all.clusters) {
        let metas: Vec<&str> = cp.metas.iter().map(|(_, a)| a.as_str()).collect();
        a.extend(["--cluster".into(), format!("{}={}", *c.name, metas.join(","))]);
    }
    for f in &p.auto_failover {
        a.extend([
            "--auto-failover".into(),
            format!("{},after={},rpo={}", *f.table, *f.after, *f.rpo_budget),
        ]);
    }
    a.extend(["--metrics-listen".into(), format!("0.0.0.0:{METRICS_PORT}")]);
    if let (Some(r), Some(port)) = (&p.redis, place.redis_port) {
        a.extend([
            "--resp-listen".into(),
            format!("0.0.0.0:{port}"),
            "--resp-table".into(),
            r.table.to_string(),
        ]);
        for (n, table) in &r.databases {
            a.extend(["--resp-db".into(), format!("{n}={}", **table)]);
        }
    }
    if let Some(v) = voters {
        a.extend(["--dr-voters".into(), v.to_string()]);
        if p.dr_voter {
            a.extend(["--dr-name".into(), p.name.to_string()]);
        }
    }
    a
}
