//! `tern export k8s` and `tern export compose`: a topology file as Kubernetes manifests or a
//! Docker Compose file. The work is in `tern_topology::export`; this module parses the flags,
//! calls it and prints.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use tern_topology::export::{self, K8sOptions};

use super::topology::load;

/// Write a topology for other deployment tools: Kubernetes manifests or a Docker Compose file.
///
/// The processes and their flags are those `tern up` runs; the file's hosts become the names
/// the processes get there (its ports are kept; port 0 becomes the default port). See
/// docs/topology.md, "Beyond one machine".
#[derive(Debug, Subcommand)]
pub enum ExportCmd {
    K8s(K8sCmd),
    Compose(ComposeCmd),
}

impl ExportCmd {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            ExportCmd::K8s(k) => k.run(),
            ExportCmd::Compose(c) => c.run(),
        }
    }
}

/// Kubernetes manifests: per cluster a StatefulSet and a headless Service for its meta servers
/// and the same for its replica servers (persistent volumes, probes, resource requests), per
/// proxy a Deployment and a Service, and the topology as deployed in a ConfigMap.
///
/// Without -o, every object on stdout, for `kubectl apply -f -`. With -o DIR: common.yaml (the
/// namespace and the ConfigMap), CLUSTER.yaml per cluster and proxies.yaml, so that each
/// datacenter's Kubernetes cluster gets its own.
///
/// $ tern export k8s -f deploy.yaml | kubectl apply -f -
///
/// $ tern export k8s -f deploy.yaml -o k8s/ --namespace tern-prod --image myorg/tern:0.1.0
#[derive(Debug, Args)]
pub struct K8sCmd {
    /// The topology file (YAML; see docs/topology.md).
    #[arg(short = 'f', long = "file", env = "TERN_TOPOLOGY", value_name = "FILE")]
    file: PathBuf,
    /// A directory to write one file per cluster into (created if missing); `-` or absent:
    /// everything on stdout.
    #[arg(short = 'o', long = "out", env = "TERN_EXPORT_DIR", value_name = "DIR")]
    out: Option<PathBuf>,
    /// The namespace of every object (created by the manifests).
    #[arg(long, env = "TERN_K8S_NAMESPACE", default_value = "tern")]
    namespace: String,
    /// The image to run (built by the repository's Dockerfile); default tern:VERSION.
    #[arg(long, env = "TERN_IMAGE")]
    image: Option<String>,
    /// The Kubernetes cluster's DNS domain, in the pods' names.
    #[arg(long, env = "TERN_K8S_CLUSTER_DOMAIN", default_value = "cluster.local")]
    cluster_domain: String,
    /// Volume size of each meta server (a Kubernetes quantity).
    #[arg(long, env = "TERN_K8S_META_STORAGE", default_value = "1Gi")]
    meta_storage: String,
    /// Volume size of each replica server (a Kubernetes quantity).
    #[arg(long, env = "TERN_K8S_REPLICA_STORAGE", default_value = "20Gi")]
    replica_storage: String,
    /// The volumes' storage class (default: the Kubernetes cluster's default class).
    #[arg(long, env = "TERN_K8S_STORAGE_CLASS")]
    storage_class: Option<String>,
}

impl K8sCmd {
    fn run(self) -> anyhow::Result<()> {
        let t = load(&self.file)?;
        let defaults = K8sOptions::default();
        let opts = K8sOptions {
            namespace: self.namespace,
            image: self.image.unwrap_or(defaults.image),
            cluster_domain: self.cluster_domain,
            meta_storage: self.meta_storage,
            replica_storage: self.replica_storage,
            storage_class: self.storage_class,
        };
        let what = || format!("export {} for Kubernetes", self.file.display());
        match self.out.filter(|o| o.as_os_str() != "-") {
            None => print!("{}", export::k8s(&t, &opts).with_context(what)?),
            Some(dir) => {
                let files = export::k8s_files(&t, &opts).with_context(what)?;
                std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
                for f in files {
                    let path = dir.join(&f.name);
                    std::fs::write(&path, f.text).with_context(|| format!("write {}", path.display()))?;
                    println!("wrote {}", path.display());
                }
            }
        }
        Ok(())
    }
}

/// A Docker Compose file on stdout: one service per meta server, replica server and proxy,
/// each with a named volume; the proxies publish their ports on the host.
///
/// $ tern export compose -f deploy.yaml > compose.yaml && docker compose up -d
#[derive(Debug, Args)]
pub struct ComposeCmd {
    /// The topology file (YAML; see docs/topology.md).
    #[arg(short = 'f', long = "file", env = "TERN_TOPOLOGY", value_name = "FILE")]
    file: PathBuf,
    /// The image to run (built by the repository's Dockerfile); default tern:VERSION.
    #[arg(long, env = "TERN_IMAGE")]
    image: Option<String>,
}

impl ComposeCmd {
    fn run(self) -> anyhow::Result<()> {
        let t = load(&self.file)?;
        let image = self.image.unwrap_or(K8sOptions::default().image);
        let text = export::compose(&t, &image)
            .with_context(|| format!("export {} for Compose", self.file.display()))?;
        print!("{text}");
        Ok(())
    }
}
