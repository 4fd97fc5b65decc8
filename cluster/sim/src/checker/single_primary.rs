//! Never two primaries serving one partition at once (PacificA §2.4, leases): reads
//! served under an older ballot must all happen before any read served under a newer one.

use std::collections::BTreeMap;

use tern_core::{Ballot, Gpid, NodeId};

pub fn check(served: &[(Gpid, u64, NodeId, Ballot)]) -> Vec<String> {
    let mut by_partition: BTreeMap<Gpid, Vec<(u64, NodeId, Ballot)>> = BTreeMap::new();
    for (g, t, n, b) in served {
        by_partition.entry(*g).or_default().push((*t, *n, *b));
    }
    let mut out = Vec::new();
    for (g, mut events) in by_partition {
        events.sort();
        let mut newest: Option<(u64, NodeId, Ballot)> = None;
        let mut owner: BTreeMap<Ballot, NodeId> = BTreeMap::new();
        for (t, n, b) in events {
            if let Some(&other) = owner.get(&b)
                && other != n
            {
                out.push(format!("partition {g}: {n} and {other} both served as primary at ballot {b}"));
            }
            owner.insert(b, n);
            if let Some((nt, nn, nb)) = newest
                && b < nb
            {
                out.push(format!(
                    "partition {g}: {n} served a read at ballot {b} at {:.3} s, after {nn} served at ballot {nb} at {:.3} s (two primaries in overlapping lease windows)",
                    t as f64 / 1e6,
                    nt as f64 / 1e6
                ));
                break;
            }
            if newest.is_none_or(|(_, _, nb)| b >= nb) {
                newest = Some((t, n, b));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_ballot_serving_after_a_newer_one_is_a_violation() {
        let g = Gpid::new(1, 0);
        let ok =
            [(g, 10, NodeId(1), Ballot(1)), (g, 20, NodeId(2), Ballot(2)), (g, 30, NodeId(2), Ballot(2))];
        assert!(check(&ok).is_empty());
        let bad =
            [(g, 10, NodeId(1), Ballot(1)), (g, 20, NodeId(2), Ballot(2)), (g, 30, NodeId(1), Ballot(1))];
        assert_eq!(check(&bad).len(), 1);
        let twins = [(g, 10, NodeId(1), Ballot(3)), (g, 20, NodeId(2), Ballot(3))];
        assert!(check(&twins)[0].contains("both served"));
    }
}
