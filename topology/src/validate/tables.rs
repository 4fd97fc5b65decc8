//! The rules of tables: shape (the meta servers' own rules), copies in known clusters with
//! exactly one active, and links between two different copies.

use std::time::Duration;

use super::{Check, Seen};
use crate::schema::{Role, Table, Topology};

impl Check<'_> {
    pub(super) fn tables(&mut self, t: &Topology) {
        let clusters: Vec<&str> = t.clusters.iter().map(|c| c.name.as_str()).collect();
        let mut names = Seen::default();
        for (i, table) in t.tables.iter().enumerate() {
            let at = format!("tables[{i}]");
            let name = &table.name;
            if let Err(e) = tern_core::table::check_table_name(name) {
                self.err(name.pos, format!("{at}.name"), plain(e));
            }
            if let Some(first) = names.first(name.value.clone(), &format!("{at}.name"), name.pos) {
                self.err(
                    name.pos,
                    format!("{at}.name"),
                    format!("duplicate table name `{}`: also {first}", name.value),
                );
            }
            if let Err(e) = tern_core::table::check_partitions(*table.partitions) {
                self.err(table.partitions.pos, format!("{at}.partitions"), plain(e));
            }
            if let Err(e) = tern_core::table::check_replicas(*table.replicas) {
                self.err(table.replicas.pos, format!("{at}.replicas"), plain(e));
            }
            if let Some(ttl) = &table.default_ttl {
                let d = ttl.0;
                if d < Duration::from_secs(1) || d.subsec_nanos() != 0 || d.as_secs() > u64::from(u32::MAX) {
                    self.err(
                        ttl.pos,
                        format!("{at}.default-ttl"),
                        format!("default TTL {} must be whole seconds, from 1s to {}s", **ttl, u32::MAX),
                    );
                }
            }
            self.copies(t, table, &at, &clusters);
            self.links(table, &at, &clusters);
        }
    }

    fn copies(&mut self, t: &Topology, table: &Table, at: &str, clusters: &[&str]) {
        if table.copies.is_empty() {
            self.err(
                table.name.pos,
                format!("{at}.copies"),
                format!("table `{}` has no copies: list the clusters that hold it", *table.name),
            );
            return;
        }
        let mut seen = Seen::default();
        let mut active: Option<&str> = None;
        for (j, copy) in table.copies.iter().enumerate() {
            let path = format!("{at}.copies[{j}].cluster");
            if !self.reference("cluster", &copy.cluster, &path, clusters) {
                continue;
            }
            if let Some(first) = seen.first(copy.cluster.value.clone(), &path, copy.cluster.pos) {
                self.err(
                    copy.cluster.pos,
                    path,
                    format!("cluster `{}` holds a copy already: {first}", *copy.cluster),
                );
                continue;
            }
            if let Some(c) = t.cluster(&copy.cluster)
                && !c.replica_servers.is_empty()
                && (c.replica_servers.len() as u64) < u64::from(*table.replicas)
            {
                self.err(
                    table.replicas.pos,
                    format!("{at}.replicas"),
                    format!(
                        "{} replicas of table `{}` do not fit in cluster `{}`, which has {} replica server(s)",
                        *table.replicas,
                        *table.name,
                        *c.name,
                        c.replica_servers.len()
                    ),
                );
            }
            if *copy.role == Role::Active {
                match active {
                    None => active = Some(copy.cluster.as_str()),
                    Some(first) => self.err(
                        copy.role.pos.or(copy.cluster.pos),
                        format!("{at}.copies[{j}].role"),
                        format!(
                            "table `{}` is active in both `{first}` and `{}`: exactly one copy is active, the others are standbys",
                            *table.name, *copy.cluster
                        ),
                    ),
                }
            }
        }
        if active.is_none() {
            self.err(
                table.name.pos,
                format!("{at}.copies"),
                format!("table `{}` has no active copy: give exactly one copy `role: active`", *table.name),
            );
        }
    }

    fn links(&mut self, table: &Table, at: &str, clusters: &[&str]) {
        let mut seen = Seen::default();
        for (j, link) in table.links.iter().enumerate() {
            let lp = format!("{at}.links[{j}]");
            let mut ends_ok = true;
            for (end, name) in [("from", &link.from), ("to", &link.to)] {
                let path = format!("{lp}.{end}");
                if !self.reference("cluster", name, &path, clusters) {
                    ends_ok = false;
                } else if !table.holds_copy(name) {
                    ends_ok = false;
                    let copies: Vec<&str> = table.copies.iter().map(|c| c.cluster.as_str()).collect();
                    self.err(
                        name.pos,
                        path,
                        format!(
                            "cluster `{}` holds no copy of table `{}` (copies: {})",
                            name.value,
                            *table.name,
                            crate::suggest::quoted(&copies)
                        ),
                    );
                }
            }
            if ends_ok && link.from.value == link.to.value {
                self.err(
                    link.to.pos,
                    format!("{lp}.to"),
                    format!("a link from `{}` to itself: `from` and `to` must differ", *link.from),
                );
            } else if ends_ok
                && let Some(first) =
                    seen.first((link.from.value.clone(), link.to.value.clone()), &lp, link.from.pos)
            {
                self.err(
                    link.from.pos,
                    lp.clone(),
                    format!("duplicate link `{}` → `{}`: also {first}", *link.from, *link.to),
                );
            }
            if let Some(rate) = &link.max_bytes_per_sec
                && rate.0 == 0
            {
                self.err(rate.pos, format!("{lp}.max-bytes-per-sec"), "0 bytes per second would ship nothing: leave the field out for no limit, or pause the link");
            }
        }
    }
}

/// A `tern_core` error's message without its kind's prefix.
pub(super) fn plain(e: tern_core::Error) -> String {
    match e {
        tern_core::Error::InvalidArgument(m) => m,
        e => e.to_string(),
    }
}
