//! The command lines of the exported processes: flags of `tern meta`, `tern replica` and
//! `tern proxy` (the same ones `tern up` passes, `local::processes`), for every target.

use super::{ClusterPlace, DATA_DIR, METRICS_PORT, Placement, ProxyPlace};
use crate::proxy_command::{ProxyEndpoints, proxy_command};
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

/// `tern proxy …` of proxy `p` in front of every cluster of the deployment, listening on every
/// interface ([`crate::proxy_command`]).
pub fn proxy(
    p: &Proxy,
    place: &ProxyPlace,
    clusters: &[Cluster],
    all: &Placement,
    voters: Option<&str>,
) -> Vec<String> {
    let clusters = clusters
        .iter()
        .zip(&all.clusters)
        .map(|(c, cp)| (c.name.to_string(), cp.metas.iter().map(|(_, a)| a.clone()).collect()))
        .collect();
    proxy_command(
        p,
        &ProxyEndpoints {
            listen: format!("0.0.0.0:{}", place.port),
            redis_listen: place.redis_port.map(|port| format!("0.0.0.0:{port}")),
            metrics_listen: Some(format!("0.0.0.0:{METRICS_PORT}")),
            clusters,
            voters,
        },
    )
}
