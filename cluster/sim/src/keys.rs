//! The keys clients use, and who writes each.
//!
//! One cluster: registers `k0..` then counters, all checked for linearizability. Two clusters:
//! keys private to each cluster (written and read only by its clients, so their history in that
//! cluster is a single-copy history the linearizability checker can judge; the other cluster's
//! copies are judged by the cross-cluster checks), then keys both clusters write and read
//! (collisions resolve by last-writer-wins, which is not linearizable across clusters: only the
//! cross-cluster checks judge them).

use crate::config::SimConfig;

#[derive(Clone, Debug)]
pub struct KeyInfo {
    pub name: Vec<u8>,
    /// Incremented (and read) rather than set.
    pub counter: bool,
    /// The only cluster whose clients use it; `None`: every cluster's clients use it.
    pub owner: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct KeySpace {
    pub keys: Vec<KeyInfo>,
}

impl KeySpace {
    pub fn new(cfg: &SimConfig) -> KeySpace {
        let mut keys = Vec::new();
        let mut add = |name: String, counter: bool, owner: Option<usize>| {
            keys.push(KeyInfo { name: name.into_bytes(), counter, owner })
        };
        match &cfg.dup {
            None => {
                for k in 0..cfg.registers + cfg.counters {
                    add(format!("k{k}"), k >= cfg.registers, Some(0));
                }
            }
            Some(d) => {
                for c in 0..cfg.clusters() {
                    let prefix = ["a", "b"][c];
                    for k in 0..cfg.registers + cfg.counters {
                        add(format!("{prefix}{k}"), k >= cfg.registers, Some(c));
                    }
                }
                for k in 0..d.shared_registers + d.shared_counters {
                    add(format!("s{k}"), k >= d.shared_registers, None);
                }
            }
        }
        KeySpace { keys }
    }

    pub fn name(&self, key: usize) -> &[u8] {
        &self.keys[key].name
    }

    /// The keys cluster `c`'s clients use, ascending.
    pub fn used_by(&self, c: usize) -> Vec<usize> {
        (0..self.keys.len()).filter(|k| self.keys[*k].owner.is_none_or(|o| o == c)).collect()
    }

    /// Whether the linearizability checker judges this key (one cluster writes and reads it).
    pub fn checked(&self, key: usize) -> bool {
        self.keys[key].owner.is_some()
    }
}
