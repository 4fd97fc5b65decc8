//! A Docker Compose file for the same processes: one service per meta server, replica server
//! and proxy, each with a named volume for its data, on one network where a service's name is
//! its host name. Only the proxies publish ports on the host.

use std::collections::BTreeMap;

use serde::Serialize;

use super::names::Names;
use super::{DATA_DIR, Placement, Result, TOPOLOGY_DIR, args, to_yaml};
use crate::schema::Topology;

/// The Compose file: the subset of the Compose specification it uses.
#[derive(Debug, Serialize)]
struct ComposeFile {
    name: String,
    services: BTreeMap<String, ComposeService>,
    volumes: BTreeMap<String, BTreeMap<String, String>>,
    configs: BTreeMap<String, InlineConfig>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
struct ComposeService {
    image: String,
    command: Vec<String>,
    restart: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<PortMapping>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    depends_on: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    configs: Vec<ConfigMount>,
}

/// The long syntax of a published port: `HOST:CONTAINER` strings can be read as base-60
/// numbers by YAML 1.1 readers.
#[derive(Debug, Serialize)]
struct PortMapping {
    target: u16,
    published: String,
}

impl PortMapping {
    fn same(port: u16) -> PortMapping {
        PortMapping { target: port, published: port.to_string() }
    }
}

/// A config whose content is in the file itself (Compose 2.23 and later).
#[derive(Debug, Serialize)]
struct InlineConfig {
    content: String,
}

#[derive(Debug, Serialize)]
struct ConfigMount {
    source: String,
    target: String,
}

/// The Compose file of `t` running `image` (the repository's `Dockerfile`; `tern` is its entry
/// point). Meta servers get the topology as deployed at `/etc/tern/topology.yaml`, for
/// `docker compose exec dc1-meta-1 tern apply -f /etc/tern/topology.yaml`.
pub fn compose(t: &Topology, image: &str) -> Result<String> {
    let names = Names::new(t)?;
    let host = |kind: &str, base: &str, i: usize| match kind {
        "proxy" => base.to_string(),
        _ => format!("{base}-{kind}-{i}"),
    };
    let place = Placement::new(t, &names, &host)?;
    let voters = place.voters(t);
    let mut file = ComposeFile {
        name: "tern".into(),
        services: BTreeMap::new(),
        volumes: BTreeMap::new(),
        configs: BTreeMap::from([(
            "topology".to_string(),
            InlineConfig { content: to_yaml(&place.deployed(t), "topology")? },
        )]),
    };
    let service = |command: Vec<String>, volume: Option<&str>, depends_on: Vec<String>| ComposeService {
        image: image.to_string(),
        command,
        restart: "unless-stopped".into(),
        volumes: volume.map(|v| format!("{v}:{DATA_DIR}")).into_iter().collect(),
        ports: Vec::new(),
        depends_on,
        configs: Vec::new(),
    };
    for ((c, cp), base) in t.clusters.iter().zip(&place.clusters).zip(&names.clusters) {
        let mut metas = Vec::new();
        for (id, _) in &cp.metas {
            let name = host("meta", base, *id as usize);
            let mut s = service(args::meta(c, cp, Some(*id), voters.as_deref()), Some(&name), vec![]);
            s.configs.push(ConfigMount {
                source: "topology".into(),
                target: format!("{TOPOLOGY_DIR}/{}", super::k8s::TOPOLOGY_KEY),
            });
            file.volumes.insert(name.clone(), BTreeMap::new());
            file.services.insert(name.clone(), s);
            metas.push(name);
        }
        for (i, addr) in cp.replicas.iter().enumerate() {
            let name = host("replica", base, i + 1);
            let s = service(args::replica(c, cp, addr), Some(&name), metas.clone());
            file.volumes.insert(name.clone(), BTreeMap::new());
            file.services.insert(name, s);
        }
    }
    for ((p, pp), name) in t.proxies.iter().zip(&place.proxies).zip(&names.proxies) {
        let all_metas = place.clusters.iter().zip(&names.clusters).flat_map(|(cp, base)| {
            cp.metas.iter().map(|(id, _)| host("meta", base, *id as usize)).collect::<Vec<_>>()
        });
        let mut s =
            service(args::proxy(p, pp, &t.clusters, &place, voters.as_deref()), None, all_metas.collect());
        // Published on the host at the file's ports (port 0 became the default port).
        s.ports.push(PortMapping::same(pp.port));
        s.ports.extend(pp.redis_port.map(PortMapping::same));
        file.services.insert(name.clone(), s);
    }
    to_yaml(&file, "Compose file")
}
