//! Role changes of a table's copy in one cluster, and a cluster fencing its own copies. Pure.
//!
//! A copy's epoch only grows, and a change with an expected epoch is compare-and-set, so of two
//! deciders racing at one epoch exactly one wins (docs/meta-proxy.md, invariant 2). A copy still
//! active here while a DR voter reports the table active (or promised) elsewhere at a higher
//! epoch was replaced while this cluster could not hear of it: it is made standby at that epoch
//! (invariant 7).

use std::collections::BTreeMap;

/// Why a role change is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleChangeRefused {
    /// Compare-and-set: the copy is at another epoch than the one expected.
    EpochConflict { expected: u64, actual: u64 },
    /// The new epoch is below the copy's.
    Older { current: u64 },
}

/// Whether a copy at `current_epoch` may change its role at `epoch`, expecting `expect_epoch`.
pub fn check_role_change(
    current_epoch: u64,
    epoch: u64,
    expect_epoch: Option<u64>,
) -> Result<(), RoleChangeRefused> {
    if let Some(expected) = expect_epoch
        && expected != current_epoch
    {
        return Err(RoleChangeRefused::EpochConflict { expected, actual: current_epoch });
    }
    if epoch < current_epoch {
        return Err(RoleChangeRefused::Older { current: current_epoch });
    }
    Ok(())
}

/// The copies active here (`active`: table → epoch) that `superseded` (table → the highest epoch
/// a voter reports elsewhere, [`crate::Holder::superseded`]) says were replaced: each as (table,
/// the epoch to be standby at, its current epoch to compare-and-set on).
pub fn to_fence_superseded<'a>(
    superseded: &BTreeMap<String, u64>,
    active: impl IntoIterator<Item = (&'a str, u64)>,
) -> Vec<(String, u64, u64)> {
    active
        .into_iter()
        .filter_map(|(t, e)| superseded.get(t).filter(|f| **f > e).map(|f| (t.to_string(), *f, e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_only_grow_and_compare_and_set_needs_the_expected_one() {
        assert_eq!(check_role_change(1, 2, Some(1)), Ok(()));
        assert_eq!(check_role_change(1, 1, None), Ok(()), "the same epoch: a switchover");
        assert_eq!(check_role_change(3, 2, None), Err(RoleChangeRefused::Older { current: 3 }));
        assert_eq!(
            check_role_change(3, 4, Some(2)),
            Err(RoleChangeRefused::EpochConflict { expected: 2, actual: 3 })
        );
    }

    #[test]
    fn only_copies_below_a_reported_epoch_are_fenced() {
        let superseded = BTreeMap::from([("t".to_string(), 3), ("u".to_string(), 1)]);
        let fence = to_fence_superseded(&superseded, [("t", 2), ("u", 1), ("v", 0)]);
        assert_eq!(fence, vec![("t".to_string(), 3, 2)]);
    }
}
