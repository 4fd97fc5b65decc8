//! The rules of proxies (their addresses, Redis table mapping and automatic failover) and of
//! backup targets and policies.

use std::time::Duration;

use super::formats::{check_endpoint, check_s3_url, check_time_of_day};
use super::{Check, Seen};
use crate::schema::Topology;

impl Check<'_> {
    pub(super) fn proxies(&mut self, t: &Topology) {
        let tables: Vec<&str> = t.tables.iter().map(|t| t.name.as_str()).collect();
        let mut names = Seen::default();
        for (i, p) in t.proxies.iter().enumerate() {
            let at = format!("proxies[{i}]");
            self.unique_name("proxy", &p.name, &format!("{at}.name"), &mut names);
            self.address(&p.listen, &format!("{at}.listen"));
            if let Some(r) = &p.redis {
                self.address(&r.listen, &format!("{at}.redis.listen"));
                self.reference("table", &r.table, &format!("{at}.redis.table"), &tables);
                for (db, table) in &r.databases {
                    let path = format!("{at}.redis.databases.{db}");
                    if *db == 0 {
                        self.err(
                            table.pos,
                            path,
                            "database 0 is `redis.table`: number the other databases from 1",
                        );
                    } else {
                        self.reference("table", table, &path, &tables);
                    }
                }
            }
            let mut failover = Seen::default();
            for (j, f) in p.auto_failover.iter().enumerate() {
                let path = format!("{at}.auto-failover[{j}].table");
                if !self.reference("table", &f.table, &path, &tables) {
                    continue;
                }
                if let Some(first) = failover.first(f.table.value.clone(), &path, f.table.pos) {
                    self.err(
                        f.table.pos,
                        path,
                        format!("automatic failover of `{}` is set twice: also {first}", *f.table),
                    );
                } else if t.table(&f.table).is_some_and(|t| t.copies.len() < 2) {
                    self.err(
                        f.table.pos,
                        path,
                        format!("table `{}` has one copy: there is no standby to fail over to", *f.table),
                    );
                }
                if f.after.0.is_zero() {
                    self.err(
                        f.after.pos,
                        format!("{at}.auto-failover[{j}].after"),
                        "`after` must be more than 0s",
                    );
                }
            }
        }
    }

    pub(super) fn backup(&mut self, t: &Topology) {
        let Some(b) = &t.backup else { return };
        let tables: Vec<&str> = t.tables.iter().map(|t| t.name.as_str()).collect();
        let targets: Vec<&str> = b.targets.iter().map(|t| t.name.as_str()).collect();
        let mut names = Seen::default();
        for (i, target) in b.targets.iter().enumerate() {
            let at = format!("backup.targets[{i}]");
            self.unique_name("backup target", &target.name, &format!("{at}.name"), &mut names);
            if let Err(m) = check_s3_url(&target.url) {
                self.err(target.url.pos, format!("{at}.url"), m);
            }
            if let Some(e) = &target.endpoint
                && let Err(m) = check_endpoint(e)
            {
                self.err(e.pos, format!("{at}.endpoint"), m);
            }
        }
        let mut names = Seen::default();
        for (i, p) in b.policies.iter().enumerate() {
            let at = format!("backup.policies[{i}]");
            self.unique_name("backup policy", &p.name, &format!("{at}.name"), &mut names);
            if p.tables.is_empty() {
                self.err(
                    p.name.pos,
                    format!("{at}.tables"),
                    format!("backup policy `{}` names no table", *p.name),
                );
            }
            let mut listed = Seen::default();
            for (j, table) in p.tables.iter().enumerate() {
                let path = format!("{at}.tables[{j}]");
                if self.reference("table", table, &path, &tables)
                    && let Some(first) = listed.first(table.value.clone(), &path, table.pos)
                {
                    self.err(
                        table.pos,
                        path,
                        format!("table `{}` is listed twice: also {first}", table.value),
                    );
                }
            }
            self.reference("backup target", &p.target, &format!("{at}.target"), &targets);
            if p.interval.0 < Duration::from_secs(60) {
                self.err(
                    p.interval.pos,
                    format!("{at}.interval"),
                    format!("interval {} is too short: at least 1m", *p.interval),
                );
            }
            if let Some(s) = &p.start_time
                && let Err(m) = check_time_of_day(s)
            {
                self.err(s.pos, format!("{at}.start-time"), m);
            }
            let r = &p.retention;
            if r.keep.is_none() && r.max_age.is_none() {
                self.err(
                    r.pos,
                    format!("{at}.retention"),
                    "a retention needs `keep` (the newest N backups), `max-age`, or both",
                );
            }
            if let Some(k) = &r.keep
                && **k == 0
            {
                self.err(
                    k.pos,
                    format!("{at}.retention.keep"),
                    "`keep: 0` would delete every backup: keep at least 1",
                );
            }
            if let Some(rate) = &p.max_bytes_per_sec
                && rate.0 == 0
            {
                self.err(
                    rate.pos,
                    format!("{at}.max-bytes-per-sec"),
                    "0 bytes per second would upload nothing: leave the field out for no limit",
                );
            }
        }
    }
}
