//! One step of a plan through the admin client. Each step reads the state it changes first and
//! does nothing when it is already as wanted, so that re-running an interrupted apply finishes
//! it without doing anything twice.

use std::collections::BTreeMap;

use tern_client::AdminClient;
use tern_client::admin::{Link, NewLink};
use tern_core::{Error, LinkMode, LinkStatus, Result, TableStatus};
use tern_runbook::ClusterAddr;

use super::observe::metas_of;
use super::{ApplyError, ApplyOptions, Progress};
use crate::observed::Observed;
use crate::plan::{Action, Plan, Step, describe};
use crate::schema::{Role, Topology};

/// What the steps share: an admin client and the meta servers of every cluster of the file,
/// the plan (a two-way link looks for its reverse in it) and the state it was planned against.
pub(super) struct Ctx<'a> {
    admins: BTreeMap<String, AdminClient>,
    metas: BTreeMap<String, Vec<String>>,
    plan: &'a Plan,
    before: &'a Observed,
    opts: &'a ApplyOptions,
    /// The file's backup policies as each cluster should hold them.
    policies: BTreeMap<String, super::policies::DesiredPolicy>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(
        t: &Topology,
        plan: &'a Plan,
        before: &'a Observed,
        opts: &'a ApplyOptions,
    ) -> std::result::Result<Ctx<'a>, ApplyError> {
        let mut admins = BTreeMap::new();
        let mut metas = BTreeMap::new();
        for c in &t.clusters {
            let m = metas_of(c)?;
            let admin = AdminClient::connect(m.clone())
                .map_err(|cause| ApplyError::Unreachable {
                    cluster: c.name.value.clone(),
                    addrs: m.join(","),
                    cause,
                })?
                .with_deadline(opts.deadline);
            admins.insert(c.name.value.clone(), admin);
            metas.insert(c.name.value.clone(), m);
        }
        Ok(Ctx { admins, metas, plan, before, opts, policies: super::policies::desired(t) })
    }

    /// The meta servers of `cluster`, comma-separated (for errors).
    pub(super) fn addrs(&self, cluster: &str) -> String {
        self.metas.get(cluster).map(|m| m.join(",")).unwrap_or_default()
    }

    pub(super) fn admin(&self, cluster: &str) -> Result<&AdminClient> {
        self.admins.get(cluster).ok_or_else(|| {
            Error::invariant(format!("the plan names cluster {cluster}, which the file does not"))
        })
    }

    fn metas(&self, cluster: &str) -> Result<Vec<String>> {
        self.metas.get(cluster).cloned().ok_or_else(|| {
            Error::invariant(format!("the plan names cluster {cluster}, which the file does not"))
        })
    }

    /// Runs one step; answers what it did.
    pub(super) async fn run(&self, step: &Step, say: &mut impl FnMut(Progress<'_>)) -> Result<String> {
        match &step.action {
            Action::CreateTable { cluster, table, partitions, replicas } => {
                let admin = self.admin(cluster)?;
                let existing = admin.list_tables().await?;
                if let Some(t) =
                    existing.iter().find(|t| t.name == *table && t.status == TableStatus::Serving)
                {
                    return Ok(format!("already there (table id {})", t.id.0));
                }
                let t = admin.create_table(table, *partitions, *replicas).await?;
                Ok(format!("created (table id {})", t.id.0))
            }
            Action::SetRole { cluster, table, role } => self.set_role(cluster, table, *role).await,
            Action::AddLink { cluster, table, to, two_way, max_bytes_per_sec, paused } => {
                self.add_link(cluster, table, to, *two_way, *max_bytes_per_sec, *paused).await
            }
            Action::PauseLink { cluster, id, .. } => {
                let admin = self.admin(cluster)?;
                match link_by_id(admin, *id).await?.status {
                    LinkStatus::Paused => Ok("already paused".into()),
                    _ => admin.pause_link(*id).await.map(|_| "paused".into()),
                }
            }
            Action::ResumeLink { cluster, id, .. } => {
                let admin = self.admin(cluster)?;
                match link_by_id(admin, *id).await?.status {
                    LinkStatus::Paused => admin.resume_link(*id).await.map(|_| "resumed".into()),
                    _ => Ok("already not paused".into()),
                }
            }
            Action::SetThrottle { cluster, id, to_bytes_per_sec, .. } => {
                let admin = self.admin(cluster)?;
                let r = admin.set_link_throttle(*id, *to_bytes_per_sec).await?;
                Ok(format!("limit now {}", crate::plan::rate(r.link.max_bytes_per_sec)))
            }
            Action::RemoveLink { cluster, id, .. } => {
                let admin = self.admin(cluster)?;
                match admin.links(None).await?.into_iter().find(|r| r.link.id == *id) {
                    None => Ok("already gone".into()),
                    Some(r) if r.link.status == LinkStatus::Removed => Ok("already removed".into()),
                    Some(_) => admin.remove_link(*id).await.map(|_| "removed".into()),
                }
            }
            Action::DropTable { cluster, table } => {
                let admin = self.admin(cluster)?;
                let existing = admin.list_tables().await?;
                if !existing.iter().any(|t| t.name == *table && t.status == TableStatus::Serving) {
                    return Ok("already dropped".into());
                }
                admin.drop_table(table).await.map(|_| "dropped (recallable within the recall window)".into())
            }
            Action::MoveActive { table, to, .. } => self.move_active(table, to, say).await,
            Action::AddPolicy { policy, .. } | Action::AlterPolicy { policy, .. } => {
                super::policies::put(policy, self.policies.get(policy), &self.admins).await
            }
            Action::RemovePolicy { policy } => super::policies::remove(policy, &self.admins).await,
            Action::AlterTable { .. } | Action::ChangeProxy { .. } => Err(Error::invariant(format!(
                "apply was asked to run a step it cannot do ({}); check() refuses those",
                describe(&step.action)
            ))),
        }
    }

    /// The copy's role, changed with a compare-and-set on the epoch it has now (to the next
    /// one): a concurrent role change makes it fail with `EPOCH_CONFLICT` instead of being
    /// overwritten. A new copy (epoch 0) becomes a standby at epoch 1, as `tern up` leaves it.
    async fn set_role(&self, cluster: &str, table: &str, role: Role) -> Result<String> {
        let admin = self.admin(cluster)?;
        // From the table list, not the route: a table created a moment ago may not route yet.
        let tables = admin.list_tables().await?;
        let now = tables
            .into_iter()
            .find(|t| t.name == table && t.status == TableStatus::Serving)
            .ok_or_else(|| Error::TableNotFound(format!("table {table} in cluster {cluster}")))?;
        let want = role.dr_role();
        if now.role == want {
            return Ok(format!("already {want} at epoch {}", now.epoch));
        }
        let t = admin.set_table_role(table, want, now.epoch + 1, Some(now.epoch)).await?;
        Ok(format!("{want} at epoch {} (was {} at epoch {})", t.epoch, now.role, now.epoch))
    }

    async fn add_link(
        &self,
        cluster: &str,
        table: &str,
        to: &str,
        two_way: bool,
        max_bytes_per_sec: u64,
        paused: bool,
    ) -> Result<String> {
        let admin = self.admin(cluster)?;
        if let Some(l) = live_link(admin, table, to).await? {
            // Added by this run as the reverse of a two-way pair, or by an interrupted run:
            // settle its throttle and pause as the file wants.
            let what = format!("already there (link {})", l.id);
            return self.settle(admin, &l, max_bytes_per_sec, paused, &what).await;
        }
        // A table that held records before this plan gets them copied (full sync); a new one
        // is empty, so shipping from now on is enough.
        let existed = self.before.cluster(cluster).is_some_and(|c| c.tables.contains_key(table));
        let link = NewLink {
            table: table.to_string(),
            remote_cluster: to.to_string(),
            remote_metas: self.metas(to)?,
            remote_table: None,
            full_sync: existed,
            max_bytes_per_sec,
            mode: if two_way { LinkMode::TwoWay } else { LinkMode::OneWay },
        };
        let reverse_planned = self.plan.steps.iter().any(|s| {
            matches!(&s.action, Action::AddLink { cluster: c, table: t, to: r, .. } if c == to && t == table && r == cluster)
        });
        let reverse_live = match self.admins.get(to) {
            Some(other) => live_link(other, table, cluster).await?.is_some(),
            None => true,
        };
        let added = if two_way && reverse_planned && !reverse_live {
            // Both directions at once, with rollback; the reverse's own step settles its
            // throttle and pause.
            let pair = admin.add_two_way(&link).await?;
            let l = pair.first.link;
            let what =
                format!("added with its reverse (link {} here, link {} in {to})", l.id, pair.second.link.id);
            return self.settle(admin, &l, max_bytes_per_sec, paused, &what).await;
        } else {
            admin.add_link(&link).await?.link
        };
        let what = format!("added (link {}{})", added.id, if existed { ", full sync" } else { "" });
        self.settle(admin, &added, max_bytes_per_sec, paused, &what).await
    }

    /// Sets `l`'s throttle and pause to the file's.
    async fn settle(
        &self,
        admin: &AdminClient,
        l: &Link,
        max_bytes_per_sec: u64,
        paused: bool,
        what: &str,
    ) -> Result<String> {
        let mut out = what.to_string();
        if l.max_bytes_per_sec != max_bytes_per_sec {
            admin.set_link_throttle(l.id, max_bytes_per_sec).await?;
            out.push_str(&format!(", limit set to {}", crate::plan::rate(max_bytes_per_sec)));
        }
        if paused && l.status != LinkStatus::Paused {
            admin.pause_link(l.id).await?;
            out.push_str(", paused");
        }
        Ok(out)
    }

    /// Through the DR switchover (stop writes, drain, promote), which finds its own next step
    /// from what the clusters say, so an interrupted one is finished by the next apply.
    async fn move_active(&self, table: &str, to: &str, say: &mut impl FnMut(Progress<'_>)) -> Result<String> {
        let clusters: Vec<ClusterAddr> = self
            .metas
            .iter()
            .map(|(name, metas)| ClusterAddr { name: name.clone(), metas: metas.clone() })
            .collect();
        let report = tern_runbook::run_switchover(&clusters, table, to, self.opts.switchover, |line| {
            say(Progress::Note(line))
        })
        .await?;
        if report.rolled_back {
            return Err(Error::Unavailable(format!(
                "the switchover of {table} to {to} was rolled back: {}",
                report.summary
            )));
        }
        Ok(match report.write_unavailable_ms {
            Some(ms) => format!("{} (client writes refused for {ms} ms)", report.summary),
            None => report.summary,
        })
    }
}

/// The live (not removed) link of `table` to cluster `to`, if any.
async fn live_link(admin: &AdminClient, table: &str, to: &str) -> Result<Option<Link>> {
    Ok(admin.links(Some(table)).await?.into_iter().map(|r| r.link).find(|l| {
        l.table_name == table
            && l.remote_cluster == to
            && l.remote_table == table
            && l.status != LinkStatus::Removed
    }))
}

async fn link_by_id(admin: &AdminClient, id: u64) -> Result<Link> {
    admin
        .links(None)
        .await?
        .into_iter()
        .map(|r| r.link)
        .find(|l| l.id == id)
        .ok_or_else(|| Error::InvalidArgument(format!("link {id} is gone")))
}
