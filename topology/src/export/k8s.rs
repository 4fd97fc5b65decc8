//! Kubernetes manifests from the typed API objects of `k8s-openapi`: per cluster a headless
//! Service and a StatefulSet for its meta servers and the same for its replica servers, per
//! proxy a Service and a Deployment, and the topology as deployed in a ConfigMap, all in one
//! namespace and labelled with `app.kubernetes.io/{name,instance,component}`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, StatefulSet, StatefulSetOrdinals, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    Namespace, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Service, ServicePort, ServiceSpec,
    TCPSocketAction, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::Names;
use super::{DATA_DIR, ExportError, METRICS_PORT, Placement, Result, TOPOLOGY_DIR, args, to_yaml};
use crate::schema::Topology;

/// The ConfigMap holding the topology as deployed (key [`TOPOLOGY_KEY`]).
pub const CONFIG_MAP: &str = "tern-topology";
pub const TOPOLOGY_KEY: &str = "topology.yaml";
/// The uid and gid the image runs as (the `Dockerfile` creates it).
const TERN_UID: i64 = 10001;

/// What the manifests need beyond the topology.
#[derive(Clone, Debug)]
pub struct K8sOptions {
    /// The namespace of every object (it is created too).
    pub namespace: String,
    /// The image with `tern` at its entry point (the repository's `Dockerfile`).
    pub image: String,
    /// The cluster's DNS domain, for the pods' names (`cluster.local` unless changed).
    pub cluster_domain: String,
    /// Volume size of each meta server (its Raft log and snapshots).
    pub meta_storage: String,
    /// Volume size of each replica server (its replicas and log).
    pub replica_storage: String,
    /// The storage class of the volumes; `None`: the cluster's default.
    pub storage_class: Option<String>,
}

impl Default for K8sOptions {
    fn default() -> K8sOptions {
        K8sOptions {
            namespace: "tern".into(),
            image: format!("tern:{}", env!("CARGO_PKG_VERSION")),
            cluster_domain: "cluster.local".into(),
            meta_storage: "1Gi".into(),
            replica_storage: "20Gi".into(),
            storage_class: None,
        }
    }
}

/// One file of the manifests: `common.yaml` (the namespace and the ConfigMap), one per cluster
/// (`CLUSTER.yaml`) and `proxies.yaml`. Two Kubernetes clusters, one per datacenter, each get
/// `common.yaml` and their own cluster's file.
#[derive(Clone, Debug)]
pub struct ManifestFile {
    pub name: String,
    /// Multi-document YAML.
    pub text: String,
}

/// All the manifests as one multi-document YAML text, for `kubectl apply -f -`.
pub fn k8s(t: &Topology, opts: &K8sOptions) -> Result<String> {
    Ok(k8s_files(t, opts)?.into_iter().map(|f| f.text).collect::<Vec<_>>().join("---\n"))
}

/// The manifests, one file per cluster (see [`ManifestFile`]).
pub fn k8s_files(t: &Topology, opts: &K8sOptions) -> Result<Vec<ManifestFile>> {
    check_options(opts)?;
    let names = Names::new(t)?;
    let ns = &opts.namespace;
    let domain = &opts.cluster_domain;
    let host = |kind: &str, base: &str, i: usize| match kind {
        "proxy" => format!("{base}.{ns}.svc.{domain}"),
        _ => format!("{base}-{kind}-{i}.{base}-{kind}.{ns}.svc.{domain}"),
    };
    let place = Placement::new(t, &names, &host)?;
    let voters = place.voters(t);
    let deployed = to_yaml(&place.deployed(t), "topology")?;

    let mut common = Docs::default();
    common.push(&Namespace { metadata: meta_of(ns, None, labels("tern", None)), ..Default::default() })?;
    common.push(&ConfigMap {
        metadata: meta_of(CONFIG_MAP, Some(ns), labels("tern", None)),
        data: Some(BTreeMap::from([(TOPOLOGY_KEY.to_string(), deployed)])),
        ..Default::default()
    })?;
    let mut files = vec![common.file("common.yaml")];

    for ((c, cp), base) in t.clusters.iter().zip(&place.clusters).zip(&names.clusters) {
        let mut docs = Docs::default();
        let meta_name = format!("{base}-meta");
        let mut meta = container("meta", opts, args::meta(c, cp, None, voters.as_deref()), cp.meta_port);
        meta.env = Some(vec![env_from("TERN_META_ID", "metadata.labels['apps.kubernetes.io/pod-index']")]);
        meta.readiness_probe = Some(tcp_probe(cp.meta_port, 5));
        meta.liveness_probe = Some(tcp_probe(cp.meta_port, 30));
        meta.resources = Some(requests("250m", "256Mi"));
        meta.volume_mounts.get_or_insert_default().push(VolumeMount {
            name: "topology".into(),
            mount_path: TOPOLOGY_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
        let topology = Volume {
            name: "topology".into(),
            config_map: Some(ConfigMapVolumeSource { name: CONFIG_MAP.into(), ..Default::default() }),
            ..Default::default()
        };
        docs.push(&headless(&meta_name, ns, base, "meta", cp.meta_port, false))?;
        docs.push(&stateful_set(
            &meta_name,
            ns,
            base,
            "meta",
            c.meta_servers.len(),
            meta,
            vec![topology],
            opts,
            &opts.meta_storage,
        ))?;

        let rep_name = format!("{base}-replica");
        let advertise = format!("$(POD_NAME).{rep_name}.{ns}.svc.{domain}:{}", cp.replica_port);
        let mut rep = container("replica", opts, args::replica(c, cp, &advertise), cp.replica_port);
        rep.env = Some(vec![env_from("POD_NAME", "metadata.name")]);
        rep.readiness_probe = Some(tcp_probe(cp.replica_port, 5));
        rep.liveness_probe = Some(metrics_probe());
        rep.resources = Some(requests("1", "2Gi"));
        docs.push(&headless(&rep_name, ns, base, "replica", cp.replica_port, true))?;
        docs.push(&stateful_set(
            &rep_name,
            ns,
            base,
            "replica",
            c.replica_servers.len(),
            rep,
            vec![],
            opts,
            &opts.replica_storage,
        ))?;
        files.push(docs.file(&format!("{base}.yaml")));
    }

    if !t.proxies.is_empty() {
        let mut docs = Docs::default();
        for ((p, pp), name) in t.proxies.iter().zip(&place.proxies).zip(&names.proxies) {
            let mut c =
                container("proxy", opts, args::proxy(p, pp, &t.clusters, &place, voters.as_deref()), pp.port);
            if let Some(r) = pp.redis_port {
                c.ports.get_or_insert_default().push(port("redis", r));
            }
            c.readiness_probe = Some(tcp_probe(pp.port, 5));
            c.liveness_probe = Some(metrics_probe());
            c.resources = Some(requests("250m", "128Mi"));
            let mut ports = vec![service_port("grpc", pp.port), service_port("metrics", METRICS_PORT)];
            ports.extend(pp.redis_port.map(|r| service_port("redis", r)));
            let sel = labels(name, Some("proxy"));
            docs.push(&Service {
                metadata: meta_of(name, Some(ns), sel.clone()),
                spec: Some(ServiceSpec {
                    selector: Some(sel.clone()),
                    ports: Some(ports),
                    ..Default::default()
                }),
                ..Default::default()
            })?;
            docs.push(&Deployment {
                metadata: meta_of(name, Some(ns), sel.clone()),
                spec: Some(DeploymentSpec {
                    // One pod: a DR voter's promises are its own, so two pods of one voter
                    // must never run at once (hence also Recreate, not a rolling update).
                    replicas: Some(1),
                    strategy: Some(DeploymentStrategy {
                        type_: Some("Recreate".into()),
                        ..Default::default()
                    }),
                    selector: LabelSelector { match_labels: Some(sel.clone()), ..Default::default() },
                    template: pod_template(sel, c, vec![]),
                    ..Default::default()
                }),
                ..Default::default()
            })?;
        }
        files.push(docs.file("proxies.yaml"));
    }
    Ok(files)
}

fn check_options(opts: &K8sOptions) -> Result<()> {
    let label = super::names::label(&opts.namespace);
    if opts.namespace.is_empty() || label != opts.namespace || opts.namespace.len() > 63 {
        return Err(ExportError::Option(format!(
            "namespace `{}`: lowercase letters, digits and '-', at most 63",
            opts.namespace
        )));
    }
    if opts.image.trim().is_empty() {
        return Err(ExportError::Option("the image is empty".into()));
    }
    Ok(())
}

/// Multi-document YAML, one object at a time.
#[derive(Default)]
struct Docs(Vec<String>);

impl Docs {
    fn push<T: serde::Serialize + k8s_openapi::Resource>(&mut self, object: &T) -> Result<()> {
        self.0.push(to_yaml(object, T::KIND)?);
        Ok(())
    }

    fn file(self, name: &str) -> ManifestFile {
        ManifestFile { name: name.to_string(), text: self.0.join("---\n") }
    }
}

fn labels(instance: &str, component: Option<&str>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "tern".to_string()),
        ("app.kubernetes.io/instance".to_string(), instance.to_string()),
    ]);
    if let Some(c) = component {
        l.insert("app.kubernetes.io/component".into(), c.into());
    }
    l
}

fn meta_of(name: &str, ns: Option<&str>, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: ns.map(Into::into),
        labels: Some(labels),
        ..Default::default()
    }
}

fn port(name: &str, p: u16) -> ContainerPort {
    ContainerPort { name: Some(name.into()), container_port: i32::from(p), ..Default::default() }
}

fn service_port(name: &str, p: u16) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: i32::from(p),
        target_port: Some(IntOrString::String(name.into())),
        ..Default::default()
    }
}

fn container(name: &str, opts: &K8sOptions, args: Vec<String>, grpc: u16) -> Container {
    let mut ports = vec![port("grpc", grpc)];
    if name != "meta" {
        ports.push(port("metrics", METRICS_PORT));
    }
    Container {
        name: name.into(),
        image: Some(opts.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["tern".into()]),
        args: Some(args),
        ports: Some(ports),
        volume_mounts: (name != "proxy").then(|| {
            vec![VolumeMount { name: "data".into(), mount_path: DATA_DIR.into(), ..Default::default() }]
        }),
        ..Default::default()
    }
}

fn env_from(name: &str, field: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: field.into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The servers expose no HTTP or gRPC health service: a TCP connect to the gRPC port says the
/// server listens (it binds once its state is open).
fn tcp_probe(p: u16, period: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(i32::from(p)), ..Default::default() }),
        period_seconds: Some(period),
        failure_threshold: Some(if period >= 30 { 4 } else { 3 }),
        ..Default::default()
    }
}

/// `GET /metrics` on the Prometheus endpoint of a replica server or proxy: the process answers.
fn metrics_probe() -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/metrics".into()),
            port: IntOrString::String("metrics".into()),
            ..Default::default()
        }),
        period_seconds: Some(30),
        failure_threshold: Some(4),
        timeout_seconds: Some(5),
        ..Default::default()
    }
}

fn requests(cpu: &str, memory: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory.into())),
        ])),
        ..Default::default()
    }
}

/// The headless Service that gives each pod of a StatefulSet its DNS name. Meta servers are
/// published before they are ready: they find each other through it to elect a leader.
fn headless(name: &str, ns: &str, base: &str, component: &str, p: u16, metrics: bool) -> Service {
    let sel = labels(base, Some(component));
    let mut ports = vec![service_port("grpc", p)];
    if metrics {
        ports.push(service_port("metrics", METRICS_PORT));
    }
    Service {
        metadata: meta_of(name, Some(ns), sel.clone()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(sel),
            ports: Some(ports),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod_template(labels: BTreeMap<String, String>, c: Container, volumes: Vec<Volume>) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
        spec: Some(PodSpec {
            containers: vec![c],
            volumes: (!volumes.is_empty()).then_some(volumes),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(TERN_UID),
                run_as_group: Some(TERN_UID),
                fs_group: Some(TERN_UID),
                ..Default::default()
            }),
            termination_grace_period_seconds: Some(30),
            ..Default::default()
        }),
    }
}

/// A StatefulSet of `replicas` pods named NAME-1 … NAME-N (ordinals start at 1, so a meta
/// server's pod index is its `--id`), each with a volume `data` of `storage`.
#[allow(clippy::too_many_arguments)]
fn stateful_set(
    name: &str,
    ns: &str,
    base: &str,
    component: &str,
    replicas: usize,
    c: Container,
    volumes: Vec<Volume>,
    opts: &K8sOptions,
    storage: &str,
) -> StatefulSet {
    let sel = labels(base, Some(component));
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta { name: Some("data".into()), labels: Some(sel.clone()), ..Default::default() },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: opts.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(storage.into()))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    StatefulSet {
        metadata: meta_of(name, Some(ns), sel.clone()),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas as i32),
            service_name: Some(name.into()),
            ordinals: Some(StatefulSetOrdinals { start: Some(1) }),
            // Every server starts at once: meta servers need each other to elect a leader.
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector { match_labels: Some(sel.clone()), ..Default::default() },
            template: pod_template(sel, c, volumes),
            volume_claim_templates: Some(vec![claim]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
