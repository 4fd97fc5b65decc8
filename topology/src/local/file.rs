//! A topology (a file's, or the one `tern up`'s flags describe) as a local deployment. All pure (the free-port picker is
//! passed in):
//! - [`resolve`] turns the file and the state an earlier `up` left in the directory into the
//!   state to start: every cluster with its name, id, data directory and server addresses,
//!   every proxy with its addresses. An address with port 0 keeps the port of the last run on
//!   the same host, or gets one the picker finds free; other addresses are the file's.
//! - [`deployed`] is the file with those addresses: what `apply` runs against (it refuses
//!   port 0) and what `up` writes to `<dir>/topology.yaml` for `tern plan -f`/`tern apply -f`.
//! - [`layout`] digests the processes a file describes (not its tables), so that `up -f` on a
//!   running deployment can tell "the same deployment" from "another one".

use std::collections::{BTreeMap, BTreeSet};

use tern_core::{Error, Result};

use super::state::{ClusterState, ProxyState, State};
use crate::schema::Topology;

/// Name of the deployed topology in the deployment's directory.
pub const DEPLOYED_FILE: &str = "topology.yaml";

/// How many times [`resolve`] asks the picker for a port nobody else of the file has.
const PICK_TRIES: usize = 100;

/// The state to start for topology `t`, given the state `previous` left by an earlier `up` in
/// the same directory (clusters and proxies matched by name, servers by position). `pick(host)`
/// answers `HOST:PORT` with a port of `host` that is free (the OS picks it); it is asked again
/// when it answers an address the deployment already uses. `pids`, `processes`, `file` and
/// `binary` are left for the caller.
pub fn resolve(
    t: &Topology,
    previous: &State,
    pick: &mut dyn FnMut(&str) -> Result<String>,
) -> Result<State> {
    // Every address the file gives, so that a picked port never lands on one of them.
    let mut taken: BTreeSet<String> = t
        .clusters
        .iter()
        .flat_map(|c| c.meta_servers.iter().chain(&c.replica_servers))
        .chain(t.proxies.iter().map(|p| &p.listen))
        .chain(t.proxies.iter().filter_map(|p| p.redis.as_ref().map(|r| &r.listen)))
        .filter(|a| !port_zero(a))
        .map(|a| a.value.clone())
        .collect();
    let mut place = |want: &str, kept: Option<&String>| -> Result<String> {
        let Some((host, port)) = want.rsplit_once(':') else { return Ok(want.to_string()) };
        if port != "0" {
            return Ok(want.to_string());
        }
        if let Some(k) = kept
            && k.rsplit_once(':').is_some_and(|(h, p)| h == host && p != "0")
            && taken.insert(k.clone())
        {
            return Ok(k.clone());
        }
        for _ in 0..PICK_TRIES {
            let a = pick(host)?;
            if taken.insert(a.clone()) {
                return Ok(a);
            }
        }
        Err(Error::Unavailable(format!("no free port found on {host}")))
    };
    let mut s = State::default();
    for c in &t.clusters {
        let prev = previous.clusters.iter().find(|p| p.name == *c.name);
        let mut metas = BTreeMap::new();
        for (i, a) in c.meta_servers.iter().enumerate() {
            let id = i as u64 + 1;
            metas.insert(id, place(a, prev.and_then(|p| p.metas.get(&id)))?);
        }
        let mut replicas = BTreeMap::new();
        for (i, a) in c.replica_servers.iter().enumerate() {
            let id = i as u64 + 1;
            replicas.insert(id, place(a, prev.and_then(|p| p.replicas.get(&id)))?);
        }
        let id = u8::try_from(*c.id)
            .map_err(|_| Error::InvalidArgument(format!("cluster {}: id {} is over 127", *c.name, *c.id)))?;
        let data_dir = c.data_dir.as_ref().map_or_else(|| c.name.value.clone(), |d| d.value.clone());
        s.clusters.push(ClusterState {
            name: c.name.value.clone(),
            id,
            metas,
            replicas,
            data_dir: Some(data_dir),
        });
    }
    for p in &t.proxies {
        let prev = previous.proxies.iter().find(|q| q.name == *p.name);
        let listen = place(&p.listen, prev.map(|q| &q.listen))?;
        let redis = match &p.redis {
            Some(r) => Some(place(&r.listen, prev.and_then(|q| q.redis.as_ref()))?),
            None => None,
        };
        s.proxies.push(ProxyState { name: p.name.value.clone(), listen, redis });
    }
    s.proxy = s.proxies.first().map(|p| p.listen.clone());
    if let Some(first) = s.clusters.first() {
        s.metas = first.metas.clone();
        s.replicas = first.replicas.clone();
    }
    s.layout = Some(layout(t));
    Ok(s)
}

fn port_zero(addr: &str) -> bool {
    addr.rsplit_once(':').is_some_and(|(_, p)| p == "0")
}

/// `--dr-voters` of every meta server and proxy of `t` started as `s`: the proxies that are DR
/// voters, `NAME=ADDR` each; `None` when there is none (the clusters then have no DR lease).
pub fn voters(t: &Topology, s: &State) -> Option<String> {
    let v: Vec<String> = t
        .proxies
        .iter()
        .zip(&s.proxies)
        .filter(|(p, _)| p.dr_voter)
        .map(|(p, ps)| format!("{}={}", *p.name, ps.listen))
        .collect();
    (!v.is_empty()).then(|| v.join(","))
}

/// `t` with every address replaced by the one `s` gives it (port 0 resolved).
pub fn deployed(t: &Topology, s: &State) -> Topology {
    let mut d = t.clone();
    for (c, cs) in d.clusters.iter_mut().zip(&s.clusters) {
        c.meta_servers = cs.metas.values().map(|a| a.clone().into()).collect();
        c.replica_servers = cs.replicas.values().map(|a| a.clone().into()).collect();
    }
    for (p, ps) in d.proxies.iter_mut().zip(&s.proxies) {
        p.listen = ps.listen.clone().into();
        if let (Some(r), Some(a)) = (p.redis.as_mut(), &ps.redis) {
            r.listen = a.clone().into();
        }
    }
    d
}

/// [`deployed`] as the YAML `up` writes to `<dir>/topology.yaml`, with a comment saying where
/// it comes from (`origin`: the command that started it, "`tern up -f two-dc.yaml`").
pub fn deployed_yaml(t: &Topology, s: &State, origin: &str) -> Result<String> {
    let yaml = serde_saphyr::to_string(&deployed(t, s))
        .map_err(|e| Error::invariant(format!("write the deployed topology as YAML: {e}")))?;
    Ok(format!(
        "# Written by {origin}: what it runs, with the ports tern up picked.\n# `tern plan -f` and `tern apply -f` this file to compare or change the running deployment.\n{yaml}"
    ))
}

/// A digest of the processes `t` describes: its clusters (name, id, servers as the file gives
/// them, data directory; not `region`, which is informational) and its proxies. Two files with
/// the same layout run the same processes; tables, links and backups do not count.
pub fn layout(t: &Topology) -> String {
    let mut clusters = t.clusters.clone();
    for c in &mut clusters {
        c.region = None;
    }
    let bytes = serde_json::to_vec(&(&clusters, &t.proxies)).unwrap_or_default();
    format!("{:016x}", tern_core::hash::hash_key_hash(&bytes))
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
