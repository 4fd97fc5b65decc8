//! The plan as operators read it, Terraform-like: one line per step marked `+` (create), `~`
//! (change) or `-` (destroy), what makes it destructive and what apply cannot do yet under
//! it, and a closing summary line.

use std::fmt::Write;

use super::tables::rate;
use super::{Action, Change, Effect, Plan, Step};

impl Plan {
    /// The readable diff; ends with `Plan: N to add, N to change, N to destroy.` (or says that
    /// nothing differs).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        if self.steps.is_empty() {
            out.push_str("No changes: the deployment matches the file.\n");
            return out;
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "Steps, in the order apply runs them (state version {}):\n", self.version);
        for s in &self.steps {
            render_step(&mut out, s);
        }
        let m = &self.summary;
        let _ = write!(out, "\nPlan: {} to add, {} to change, {} to destroy.", m.add, m.change, m.destroy);
        if m.destructive > 0 {
            let _ = write!(out, " {} destructive (apply needs --allow-destructive).", m.destructive);
        }
        if m.blocked > 0 {
            let _ = write!(out, " {} that apply cannot do yet.", m.blocked);
        }
        out.push('\n');
        out
    }
}

fn render_step(out: &mut String, s: &Step) {
    let mark = match s.action.effect() {
        Effect::Add => '+',
        Effect::Change => '~',
        Effect::Destroy => '-',
    };
    let _ = write!(out, "  {mark} {}", describe(&s.action));
    if s.destructive.is_some() {
        out.push_str(" (destructive)");
    }
    out.push('\n');
    if let Action::AlterTable { changes, .. }
    | Action::AlterPolicy { changes, .. }
    | Action::ChangeProxy { changes, .. } = &s.action
    {
        for Change { field, from, to } in changes {
            let _ = writeln!(out, "      {field}: {from} → {to}");
        }
    }
    if let Some(why) = &s.destructive {
        let _ = writeln!(out, "      destructive: {why}");
    }
    if let Some(why) = &s.blocked {
        let _ = writeln!(out, "      apply cannot do this yet: {why}");
    }
}

/// One line of what the step does.
pub fn describe(a: &Action) -> String {
    match a {
        Action::CreateTable { cluster, table, partitions, replicas } => {
            format!("create table {table} in {cluster} ({partitions} partitions, {replicas} replicas)")
        }
        Action::DropTable { cluster, table } => format!("drop table {table} in {cluster}"),
        Action::AlterTable { cluster, table, .. } => format!("alter table {table} in {cluster}"),
        Action::SetRole { cluster, table, role } => {
            let role = role.dr_role();
            format!("make table {table} {role} in {cluster}")
        }
        Action::MoveActive { table, from, to } => {
            format!("move the active copy of table {table} from {from} to {to}")
        }
        Action::AddLink { cluster, table, to, two_way, max_bytes_per_sec, paused } => {
            let mode = if *two_way { "two-way" } else { "one-way" };
            let paused = if *paused { ", paused" } else { "" };
            format!("add link {table}: {cluster} → {to} ({mode}, {}{paused})", rate(*max_bytes_per_sec))
        }
        Action::RemoveLink { cluster, table, to, id } => {
            format!("remove link {id} {table}: {cluster} → {to}")
        }
        Action::PauseLink { cluster, table, to, id } => format!("pause link {id} {table}: {cluster} → {to}"),
        Action::ResumeLink { cluster, table, to, id } => {
            format!("resume link {id} {table}: {cluster} → {to}")
        }
        Action::SetThrottle { cluster, table, to, id, from_bytes_per_sec, to_bytes_per_sec } => format!(
            "throttle link {id} {table}: {cluster} → {to}: {} → {}",
            rate(*from_bytes_per_sec),
            rate(*to_bytes_per_sec)
        ),
        Action::AddPolicy { policy, tables, url } => {
            format!("add backup policy {policy} ({} → {url})", tables.join(", "))
        }
        Action::AlterPolicy { policy, .. } => format!("alter backup policy {policy}"),
        Action::RemovePolicy { policy } => format!("remove backup policy {policy}"),
        Action::ChangeProxy { proxy, .. } => format!("change proxy {proxy}"),
    }
}
