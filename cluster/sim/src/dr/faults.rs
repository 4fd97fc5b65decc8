//! The faults of runs with the DR lease, drawn from the world's generator every ~`step_ms`
//! (besides the run's other faults): the world carries them out, since it owns the network.
//!
//! * half the steps cut the cluster whose copy is active off from every DR voter, both ways,
//!   for 3 to 20 s, while its clients and the other cluster still reach it: its lease must run
//!   out before a proxy promotes the standby;
//! * some cut a cluster off from the voters one way only (renewals or their answers lost);
//! * some isolate one voter from everyone.

use std::collections::BTreeSet;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tern_core::DrRole;

use super::DrWorld;
use crate::meta::SimMeta;
use crate::net::Addr;
use crate::node::SimNode;
use crate::observe::Observations;

/// Links to cut, for how long, and how the trace says it.
#[derive(Debug)]
pub struct DrCut {
    pub links: BTreeSet<(Addr, Addr)>,
    pub lasts_us: u64,
    pub what: String,
}

/// One DR fault step: maybe a cut, and when the next step comes.
#[derive(Debug)]
pub struct DrFaultStep {
    pub cut: Option<DrCut>,
    pub next_us: u64,
}

impl DrWorld {
    pub fn fault_step(
        &mut self,
        rng: &mut ChaCha8Rng,
        nodes: &[SimNode],
        metas: &[SimMeta],
        obs: &mut Observations,
        now_us: u64,
    ) -> DrFaultStep {
        let voters: Vec<Addr> = (0..self.procs.len()).map(|i| Addr::Dr(i as u8)).collect();
        let side = |c: usize| -> Vec<Addr> {
            let servers = nodes.iter().filter(|n| n.cluster == c).map(|n| Addr::Node(n.id));
            servers.chain([Addr::Meta(c as u8)]).collect()
        };
        // The cluster whose copy is active at the highest epoch (the one clients write to).
        let active = metas
            .iter()
            .filter_map(|m| {
                m.dr.as_ref().filter(|d| d.role == DrRole::Active).map(|d| (d.epoch, usize::from(m.idx)))
            })
            .max()
            .map(|(_, c)| c);
        let choice = rng.random_range(0..100);
        let cut = match choice {
            0..50 => {
                let c = active.unwrap_or_else(|| rng.random_range(0..metas.len()));
                let mut links = BTreeSet::new();
                for x in side(c) {
                    for v in &voters {
                        links.insert((x, *v));
                        links.insert((*v, x));
                    }
                }
                let lasts_us = rng.random_range(3_000_000..20_000_000);
                let to = (now_us + lasts_us).min(self.fault_phase_end_us);
                obs.dr.cuts.push((c, now_us, to));
                Some(DrCut {
                    links,
                    lasts_us,
                    what: format!("cluster {} cut off from every DR voter", c + 1),
                })
            }
            50..65 => {
                let c = rng.random_range(0..metas.len());
                let inbound = rng.random_bool(0.5);
                let mut links = BTreeSet::new();
                for x in side(c) {
                    for v in &voters {
                        links.insert(if inbound { (*v, x) } else { (x, *v) });
                    }
                }
                let how = if inbound { "from" } else { "to" };
                let lasts_us = rng.random_range(1_000_000..15_000_000);
                Some(DrCut {
                    links,
                    lasts_us,
                    what: format!("nothing {how} the DR voters reaches cluster {}", c + 1),
                })
            }
            65..85 => {
                let v = voters[rng.random_range(0..voters.len())];
                let others =
                    (0..metas.len()).flat_map(side).chain(voters.iter().copied()).filter(|a| *a != v);
                let mut links = BTreeSet::new();
                for o in others {
                    links.insert((v, o));
                    links.insert((o, v));
                }
                let lasts_us = rng.random_range(1_000_000..15_000_000);
                Some(DrCut { links, lasts_us, what: format!("DR voter {v:?} cut off") })
            }
            _ => None,
        };
        let step = self.cfg.step_ms * 1_000;
        DrFaultStep { cut, next_us: rng.random_range(step / 2..=step * 3 / 2) }
    }
}
