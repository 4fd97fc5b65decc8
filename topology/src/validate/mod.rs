//! Semantic validation of a parsed topology: every rule that needs more than one value, or a
//! range the types cannot express. All problems are collected (not just the first), each with
//! the path of the offending value and, where the value was read from the file, its line and
//! column. Rules are listed in docs/topology.md, "Validation rules".

mod formats;
mod others;
mod tables;

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use crate::diag::{Diagnostic, Diagnostics};
use crate::located::{Located, Pos};
use crate::schema::{Topology, VERSION};
use crate::suggest;

pub use self::formats::{Addr, parse_addr};

/// Every problem of `t` (read from `file`), sorted by position.
pub fn validate(t: &Topology, file: &str) -> Diagnostics {
    let mut c = Check { file, out: Vec::new(), addrs: Seen::default() };
    if *t.version != VERSION {
        c.err(
            t.version.pos,
            "version",
            format!("unsupported version {}: this tern reads version {VERSION}", *t.version),
        );
    }
    c.clusters(t);
    c.tables(t);
    c.proxies(t);
    c.backup(t);
    Diagnostics(c.out).sorted()
}

/// The validator's state: the file's name, what it found, and the addresses seen so far.
struct Check<'a> {
    file: &'a str,
    out: Vec<Diagnostic>,
    /// Listening addresses by (machine, port), port 0 excluded.
    addrs: Seen<(String, u16)>,
}

/// Where a value was first seen, to name it when it is seen again.
struct Seen<K>(BTreeMap<K, (String, Option<Pos>)>);

impl<K> Default for Seen<K> {
    fn default() -> Self {
        Seen(BTreeMap::new())
    }
}

impl<K: Ord> Seen<K> {
    /// Records `key` at `path`; if it was seen before, returns where (`clusters[0].id (line 4)`).
    fn first(&mut self, key: K, path: &str, pos: Option<Pos>) -> Option<String> {
        match self.0.entry(key) {
            Entry::Vacant(e) => {
                e.insert((path.to_string(), pos));
                None
            }
            Entry::Occupied(e) => {
                let (p, pos) = e.get();
                Some(match pos {
                    Some(pos) => format!("{p} (line {})", pos.line),
                    None => p.clone(),
                })
            }
        }
    }
}

impl Check<'_> {
    fn err(&mut self, pos: Option<Pos>, path: impl Into<String>, message: impl Into<String>) {
        self.out.push(Diagnostic {
            file: self.file.to_string(),
            pos,
            path: path.into(),
            message: message.into(),
        });
    }

    /// A name of `kind` that must be valid and unique among `seen`.
    fn unique_name(&mut self, kind: &str, name: &Located<String>, path: &str, seen: &mut Seen<String>) {
        if let Err(m) = formats::check_name(kind, name) {
            self.err(name.pos, path, m);
        }
        if let Some(first) = seen.first(name.value.clone(), path, name.pos) {
            self.err(name.pos, path, format!("duplicate {kind} name `{}`: also {first}", name.value));
        }
    }

    /// A reference to one of `known` (`kind`: "cluster", "table", …).
    fn reference(&mut self, kind: &str, name: &Located<String>, path: &str, known: &[&str]) -> bool {
        if known.contains(&name.as_str()) {
            return true;
        }
        let hint = match suggest::closest(name, known.iter().copied()) {
            Some(c) => format!(", did you mean `{c}`?"),
            None if known.is_empty() => format!(" (the file has no {kind}s)"),
            None => format!(" ({kind}s: {})", suggest::quoted(known)),
        };
        self.err(name.pos, path, format!("unknown {kind} `{}`{hint}", name.value));
        false
    }

    /// A listening address: well formed, and not the same port on the same machine as another.
    fn address(&mut self, addr: &Located<String>, path: &str) -> Option<Addr> {
        let a = match parse_addr(addr) {
            Ok(a) => a,
            Err(m) => {
                self.err(addr.pos, path, m);
                return None;
            }
        };
        if a.port != 0
            && let Some(first) = self.addrs.first((a.machine(), a.port), path, addr.pos)
        {
            self.err(addr.pos, path, format!("port {} on {} is already used by {first}", a.port, a.host));
        }
        Some(a)
    }

    fn clusters(&mut self, t: &Topology) {
        if t.clusters.is_empty() {
            self.err(None, "clusters", "a topology needs at least one cluster");
        }
        let (mut names, mut ids, mut dirs) = (Seen::default(), Seen::default(), Seen::default());
        let mut explicit_dirs: Vec<String> = Vec::new();
        for (i, c) in t.clusters.iter().enumerate() {
            let at = format!("clusters[{i}]");
            self.unique_name("cluster", &c.name, &format!("{at}.name"), &mut names);
            let id = &c.id;
            if u8::try_from(**id).map_or(true, |v| tern_core::ClusterId::new(v).is_err()) {
                self.err(
                    id.pos,
                    format!("{at}.id"),
                    format!("cluster id {} is out of range: it must be 1..=127", **id),
                );
            } else if let Some(first) = ids.first(**id, &format!("{at}.id"), id.pos) {
                self.err(id.pos, format!("{at}.id"), format!("duplicate cluster id {}: also {first}", **id));
            }
            for (field, list) in [("meta-servers", &c.meta_servers), ("replica-servers", &c.replica_servers)]
            {
                if list.is_empty() {
                    self.err(
                        c.name.pos,
                        format!("{at}.{field}"),
                        format!("cluster `{}` needs at least one in {field}", *c.name),
                    );
                }
                for (j, a) in list.iter().enumerate() {
                    self.address(a, &format!("{at}.{field}[{j}]"));
                }
            }
            let explicit = c.data_dir.is_some();
            let dir = c.data_dir.clone().unwrap_or_else(|| c.name.clone());
            let path = format!("{at}.data-dir");
            // A default one (the cluster's name) clashes only with an explicit one: duplicate
            // names are reported as such.
            if let Some(first) = dirs.first(dir.value.clone(), &path, dir.pos)
                && (explicit || explicit_dirs.contains(&dir.value))
            {
                self.err(
                    dir.pos.or(c.name.pos),
                    path,
                    format!("data directory `{}` is already used by {first}", dir.value),
                );
            }
            if explicit {
                explicit_dirs.push(dir.value.clone());
            }
        }
    }
}
