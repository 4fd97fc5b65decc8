//! Two clusters with a duplication link between them: the setup of the DR role, proxy and
//! automatic failover scenarios.

use tern_core::DrRole;
use tern_proto::convert::PbEnum;

use crate::cluster::{Cluster, ClusterOptions, SETTLE};
use crate::proxy::{proxy_status, table_of};

/// Two clusters ([`ClusterOptions::named`] `a` and `b`) started side by side, each with table
/// `t` (4 partitions of 3 replicas), and a link from `a`'s `t` to `b`'s made by `tern dup add`
/// with `link_args`. Returns once every partition of every link ships: writes made before a
/// partition's primary sees its link are not shipped (no full sync is asked for).
pub async fn linked_pair(a: (&str, u8), b: (&str, u8), link_args: &[&str]) -> (Cluster, Cluster) {
    linked_pair_with(a, b, link_args, &[]).await
}

/// [`linked_pair`] with `meta_args` for the meta servers of both clusters.
pub async fn linked_pair_with(
    a: (&str, u8),
    b: (&str, u8),
    link_args: &[&str],
    meta_args: &[&str],
) -> (Cluster, Cluster) {
    let meta_args: Vec<String> = meta_args.iter().map(|s| s.to_string()).collect();
    let a = ClusterOptions { meta_args: meta_args.clone(), ..ClusterOptions::named(a.0, a.1) };
    let b = ClusterOptions { meta_args, ..ClusterOptions::named(b.0, b.1) };
    linked(a, b, link_args).await
}

/// [`linked_pair`] of clusters started with `a` and `b`.
pub async fn linked(a: ClusterOptions, b: ClusterOptions, link_args: &[&str]) -> (Cluster, Cluster) {
    let (a, b) = tokio::join!(Cluster::start(a), Cluster::start(b));
    a.create_table("t", 4, 3).await;
    b.create_table("t", 4, 3).await;
    a.dup_add("t", &b, link_args).await.ok();
    a.wait_links_ship().await;
    // A two-way link added its reverse in `b` before `dup add` returned.
    if !b.dup_links().await.is_empty() {
        b.wait_links_ship().await;
    }
    (a, b)
}

/// The DR setup: a [`linked_pair`] with a two-way link, `t` active in `active` and standby at
/// epoch 1 in `standby`.
pub async fn dr_pair(active: (&str, u8), standby: (&str, u8)) -> (Cluster, Cluster) {
    dr_pair_with(active, standby, &[]).await
}

/// [`dr_pair`] with `meta_args` for the meta servers of both clusters (DR voters, say).
pub async fn dr_pair_with(active: (&str, u8), standby: (&str, u8), meta_args: &[&str]) -> (Cluster, Cluster) {
    let meta_args: Vec<String> = meta_args.iter().map(|s| s.to_string()).collect();
    let a = ClusterOptions { meta_args: meta_args.clone(), ..ClusterOptions::named(active.0, active.1) };
    let b = ClusterOptions { meta_args, ..ClusterOptions::named(standby.0, standby.1) };
    dr_linked(a, b).await
}

/// The DR setup of clusters started with `active` and `standby` (see [`dr_pair`]).
pub async fn dr_linked(active: ClusterOptions, standby: ClusterOptions) -> (Cluster, Cluster) {
    let (a, b) = linked(active, standby, &["--mode", "two-way"]).await;
    let mb = b.meta_arg();
    b.cli(&["table", "role", "t", "--set", "standby", "--epoch", "1", "--if-epoch", "0", "--meta", &mb])
        .await
        .ok();
    (a, b)
}

impl Cluster {
    /// Waits until this cluster has a link and every partition of each of its links ships.
    pub async fn wait_links_ship(&self) {
        self.wait_for("the link to ship from every partition", SETTLE, || async {
            let links = self.dup_links().await;
            match links.iter().all(|l| l.link.as_ref().is_some_and(|d| d.started.iter().all(|s| *s))) {
                true if !links.is_empty() => Ok(()),
                _ => Err(format!("{links:?}")),
            }
        })
        .await
    }
}

impl Cluster {
    /// (role, epoch) of `table` as this cluster's meta servers say.
    pub async fn dr_role(&self, table: &str) -> Result<(DrRole, u64), String> {
        let r = self.route(table).await.map_err(|e| e.to_string())?;
        let t = r.table.ok_or("route without table")?;
        Ok((DrRole::from_pb(t.role, "table.role").map_err(|e| e.to_string())?, t.epoch))
    }

    /// Waits until `table` is a standby here (fenced on return); returns its epoch.
    pub async fn wait_fenced(&self, table: &str) -> u64 {
        self.wait_for("the returning cluster to be fenced", SETTLE, || async {
            match self.dr_role(table).await? {
                (DrRole::Standby, e) => Ok(e),
                other => Err(format!("{table} is {other:?}")),
            }
        })
        .await
    }

    /// Waits until `table` is active here (promoted by the proxy at `proxy`, whose view of the
    /// table the error shows); returns its epoch.
    pub async fn wait_promoted(&self, table: &str, proxy: &str) -> u64 {
        crate::wait_until("the standby to be promoted", SETTLE, || async {
            match self.dr_role(table).await? {
                (DrRole::Active, e) => Ok(e),
                other => {
                    let s = proxy_status(proxy).await?;
                    let view = table_of(&s, table).cloned().unwrap_or_default();
                    Err(format!("{table} is {other:?}; the proxy says {view}"))
                }
            }
        })
        .await
    }
}

/// Two DR-linked clusters, `main` (active) and `spare` (standby), whose meta servers take their
/// DR leases from one proxy `proxy1` (lease 2 s, renewed every 300 ms), which is also the
/// clients' entry point: the setup of the failover, reconcile and drill tests. Bind every field
/// when destructuring (`proxy: _proxy`, `dir`): a field left to `..` is dropped at once, and
/// dropping `proxy` stops the proxy.
pub struct VotedPair {
    pub a: Cluster,
    pub b: Cluster,
    pub proxy: crate::process::Process,
    pub proxy_addr: String,
    /// `main=METAS` and `spare=METAS`, for `--cluster`.
    pub ca: String,
    pub cb: String,
    /// The proxy's directory, also room for a test's files (removed after the proxy stops).
    pub dir: tempfile::TempDir,
}

impl std::fmt::Debug for VotedPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VotedPair")
            .field("ca", &self.ca)
            .field("cb", &self.cb)
            .field("proxy", &self.proxy_addr)
            .finish()
    }
}

/// Starts a [`VotedPair`]; `ids`: the clusters' ids (distinct per test file).
pub async fn voted_pair(ids: (u8, u8)) -> VotedPair {
    let proxy_addr = crate::ports::free_addr();
    let voters = format!("proxy1={proxy_addr}");
    let (a, b) = dr_pair_with(
        ("main", ids.0),
        ("spare", ids.1),
        &["--dr-voters", &voters, "--dr-renew-interval", "300ms"],
    )
    .await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
    let clusters = [("main", a.meta_arg()), ("spare", b.meta_arg())];
    let proxy = crate::proxy::start_at(
        dir.path(),
        "proxy1",
        "proxy",
        &proxy_addr,
        &clusters,
        &["--dr-voters", &voters, "--dr-name", "proxy1", "--dr-lease", "2s"],
    );
    let (ca, cb) = (format!("main={}", a.meta_arg()), format!("spare={}", b.meta_arg()));
    VotedPair { a, b, proxy, proxy_addr, ca, cb, dir }
}

/// A client of the proxy at `proxy_addr`, returned once a write of table `t` through it is
/// acknowledged (the proxy routes to `a`'s active copy).
pub async fn routed_client(a: &Cluster, proxy_addr: &str) -> std::sync::Arc<tern_client::TernClient> {
    let options = tern_client::ClientOptions::new(vec![proxy_addr.to_string()]);
    let client = std::sync::Arc::new(
        tern_client::TernClient::new(options).unwrap_or_else(|e| panic!("a client of {proxy_addr}: {e}")),
    );
    a.wait_for("the proxy to route writes", SETTLE, || async {
        client
            .write("t", crate::workload::set_op("warm", "v", "v", 0))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    client
}
