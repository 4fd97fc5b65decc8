//! The steps for tables (create, drop, alter, roles) and for their links.

use tern_core::{DrRole, LinkStatus};

use super::{Action, Change, Step};
use crate::observed::{Observed, ObservedCluster, ObservedTable, role_of};
use crate::schema::{Role, Table, Topology};
use crate::units::{Bytes, HumanDuration};

fn observed_table<'a>(o: &'a Observed, cluster: &str, table: &str) -> Option<&'a ObservedTable> {
    o.cluster(cluster).and_then(|c| c.tables.get(table))
}

pub(super) fn tables(desired: &Topology, observed: &Observed, steps: &mut Vec<Step>) {
    for table in &desired.tables {
        let name = table.name.as_str();
        for copy in &table.copies {
            let cluster = copy.cluster.value.clone();
            match observed_table(observed, &cluster, name) {
                None => steps.push(Step::new(Action::CreateTable {
                    cluster,
                    table: name.to_string(),
                    partitions: *table.partitions,
                    replicas: *table.replicas,
                })),
                Some(o) => alter(table, &cluster, o, steps),
            }
        }
        roles(table, observed, steps);
    }
    // Copies the file does not list, in the clusters it does.
    for c in &desired.clusters {
        let Some(oc) = observed.cluster(&c.name) else { continue };
        for name in oc.tables.keys() {
            if !desired.table(name).is_some_and(|t| t.holds_copy(&c.name)) {
                steps.push(
                    Step::new(Action::DropTable { cluster: c.name.value.clone(), table: name.clone() })
                        .destructive(format!("drops the data of table {name} in {} (recallable only within the meta servers' recall window)", *c.name)),
                );
            }
        }
    }
}

/// Differences of an existing copy's shape.
fn alter(table: &Table, cluster: &str, o: &ObservedTable, steps: &mut Vec<Step>) {
    let name = table.name.as_str();
    let action = |field: &str, from: String, to: String| Action::AlterTable {
        cluster: cluster.to_string(),
        table: name.to_string(),
        changes: vec![Change { field: field.into(), from, to }],
    };
    if o.partitions != *table.partitions {
        steps.push(
            Step::new(action("partitions", o.partitions.to_string(), table.partitions.to_string()))
                .destructive(
                    "a table's partition count is fixed at creation: changing it means recreating the table",
                )
                .blocked("the meta servers cannot change a table's partition count"),
        );
    }
    if o.replicas != *table.replicas {
        let mut s = Step::new(action("replicas", o.replicas.to_string(), table.replicas.to_string()))
            .blocked("the admin API cannot change a table's replica count yet");
        if *table.replicas < o.replicas {
            s = s.destructive("fewer replicas of every partition: less redundancy");
        }
        steps.push(s);
    }
    let want = table.default_ttl.as_ref().map(|d| d.0);
    if o.default_ttl != want {
        let show =
            |d: Option<std::time::Duration>| d.map_or("none".to_string(), |d| HumanDuration(d).to_string());
        steps.push(
            Step::new(action("default-ttl", show(o.default_ttl), show(want)))
                .blocked("the meta servers do not keep a default TTL per table yet"),
        );
    }
}

/// The roles of a table's copies. New copies get their role directly; an existing active copy
/// is never moved by a plain role change but by [`Action::MoveActive`].
fn roles(table: &Table, observed: &Observed, steps: &mut Vec<Step>) {
    let name = table.name.as_str();
    let Some(want_active) = table.active() else { return };
    // The copy the proxies route to: active at the highest epoch.
    let routed = table
        .copies
        .iter()
        .filter_map(|c| observed_table(observed, &c.cluster, name).map(|o| (c.cluster.as_str(), o)))
        .filter(|(_, o)| o.role == DrRole::Active)
        .max_by_key(|(_, o)| o.epoch)
        .map(|(c, _)| c);
    if let Some(from) = routed
        && from != want_active
    {
        steps.push(
            Step::new(Action::MoveActive { table: name.to_string(), from: from.to_string(), to: want_active.to_string() })
                .destructive(format!("clients of {name} switch from {from} to {want_active}; their writes are refused from the stop until {want_active} is promoted (apply runs the DR switchover: stop writes, drain the link, promote)")),
        );
        return;
    }
    for copy in &table.copies {
        let want = *copy.role;
        // A new copy is created active at epoch 0.
        let have = observed_table(observed, &copy.cluster, name).map_or(Role::Active, |o| role_of(o.role));
        if have != want {
            steps.push(Step::new(Action::SetRole {
                cluster: copy.cluster.value.clone(),
                table: name.to_string(),
                role: want,
            }));
        }
    }
}

pub(super) fn links(desired: &Topology, observed: &Observed, steps: &mut Vec<Step>) {
    let empty = ObservedCluster::default();
    for table in &desired.tables {
        let name = table.name.as_str();
        for link in &table.links {
            let (from, to) = (link.from.as_str(), link.to.as_str());
            let oc = observed.cluster(from).unwrap_or(&empty);
            let want_rate = link.max_bytes_per_sec.as_ref().map_or(0, |b| b.0);
            let found = oc.links.iter().find(|l| l.table == name && l.to == to && l.remote_table == name);
            let Some(o) = found else {
                steps.push(Step::new(Action::AddLink {
                    cluster: from.to_string(),
                    table: name.to_string(),
                    to: to.to_string(),
                    two_way: table.has_link(to, from),
                    max_bytes_per_sec: want_rate,
                    paused: link.paused,
                }));
                continue;
            };
            let ids = || (from.to_string(), name.to_string(), to.to_string(), o.id);
            if o.max_bytes_per_sec != want_rate {
                let (cluster, table, to, id) = ids();
                steps.push(Step::new(Action::SetThrottle {
                    cluster,
                    table,
                    to,
                    id,
                    from_bytes_per_sec: o.max_bytes_per_sec,
                    to_bytes_per_sec: want_rate,
                }));
            }
            let (cluster, table, to, id) = ids();
            if link.paused && o.status != LinkStatus::Paused {
                steps.push(Step::new(Action::PauseLink { cluster, table, to, id }));
            } else if !link.paused && o.status == LinkStatus::Paused {
                steps.push(Step::new(Action::ResumeLink { cluster, table, to, id }));
            }
        }
    }
    // Links the file does not list, from the clusters it does.
    for c in &desired.clusters {
        let Some(oc) = observed.cluster(&c.name) else { continue };
        for l in &oc.links {
            let wanted = desired.table(&l.table).is_some_and(|t| t.has_link(&c.name, &l.to))
                && l.remote_table == l.table;
            if !wanted {
                steps.push(
                    Step::new(Action::RemoveLink { cluster: c.name.value.clone(), table: l.table.clone(), to: l.to.clone(), id: l.id })
                        .destructive(format!("writes to {} in {} stop reaching {}; re-adding the link later copies the whole table again", l.table, *c.name, l.to)),
                );
            }
        }
    }
}

/// `10MiB/s`, or `unlimited` for 0.
pub fn rate(bytes_per_sec: u64) -> String {
    if bytes_per_sec == 0 { "unlimited".to_string() } else { format!("{}/s", Bytes(bytes_per_sec)) }
}
