//! How a link's throttle is split among its source partitions. The limit is the link's, in
//! wire bytes per second summed over every partition's primary; each primary throttles at its
//! partition's share (`throttle.rs`). The meta leader decides the shares from what each primary
//! last reported and sends them in beacon answers.
//!
//! The rule is max-min fairness (water-filling): a partition that was not held back by its
//! throttle gets what it used plus a quarter of headroom (at least a floor, a sixteenth of an
//! equal share, so that one that becomes busy is noticed); partitions that want more (held back
//! lately) or that have not reported share what is left equally. What nobody wants is spread
//! over all. So an idle partition's share goes to the busy ones, and the shares always add up to
//! the limit (when the limit is at least one byte per partition).

/// What the split knows of one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareDemand {
    /// No fresh report: it may want anything (an equal share until it reports).
    Unknown,
    /// Its throttle held a request back lately: it wants more than it has.
    Saturated,
    /// It sent this many bytes per second without being held back.
    Using(u64),
}

/// The floor is this fraction of an equal share.
const FLOOR_DIVISOR: u64 = 16;

/// The share of each partition (indexed like `demands`) of a link limited to `limit` bytes per
/// second; `limit` 0 (unlimited) gives every partition 0 (unlimited). A share is never 0 under a
/// limit: with fewer bytes than partitions each gets 1.
pub fn split_link_limit(limit: u64, demands: &[ShareDemand]) -> Vec<u64> {
    let n = demands.len() as u64;
    if limit == 0 || n == 0 {
        return vec![0; demands.len()];
    }
    let floor = (limit / n / FLOOR_DIVISOR).max(1);
    let want = |d: &ShareDemand| match *d {
        ShareDemand::Unknown | ShareDemand::Saturated => u64::MAX,
        ShareDemand::Using(rate) => rate.saturating_add(rate / 4).max(floor),
    };
    // The smallest wants first; ties in partition order (deterministic).
    let mut order: Vec<usize> = (0..demands.len()).collect();
    order.sort_by_key(|&i| (want(&demands[i]), i));
    let mut shares = vec![0u64; demands.len()];
    let mut remaining = limit;
    for (k, &i) in order.iter().enumerate() {
        let fair = remaining / (n - k as u64);
        shares[i] = want(&demands[i]).min(fair);
        remaining -= shares[i];
    }
    // Everyone wanted less than an equal share of what was left: spread the rest over all.
    let (each, extra) = (remaining / n, remaining % n);
    for (i, s) in shares.iter_mut().enumerate() {
        *s += each + u64::from((i as u64) < extra);
        *s = (*s).max(1);
    }
    shares
}

/// The share partition `partition` of `partitions` throttles at, given the link's `limit` and
/// the split the meta server sent (`shares`; empty or of another length before it has one: an
/// equal split).
pub fn partition_share(limit: u64, shares: &[u64], partition: usize, partitions: usize) -> u64 {
    if limit == 0 {
        return 0;
    }
    match shares.get(partition) {
        Some(&s) if shares.len() == partitions && s > 0 => s,
        _ => (limit / partitions.max(1) as u64).max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::ShareDemand::*;
    use super::*;

    #[test]
    fn unlimited_stays_unlimited() {
        assert_eq!(split_link_limit(0, &[Saturated, Using(5)]), vec![0, 0]);
        assert_eq!(split_link_limit(100, &[]), Vec::<u64>::new());
        assert_eq!(partition_share(0, &[], 3, 8), 0);
    }

    #[test]
    fn partitions_that_all_want_more_or_have_not_reported_split_equally() {
        assert_eq!(split_link_limit(800, &[Saturated; 8]), vec![100; 8]);
        assert_eq!(split_link_limit(800, &[Unknown; 8]), vec![100; 8]);
        let shares = split_link_limit(1_000, &[Saturated, Unknown, Saturated]);
        assert_eq!(shares.iter().sum::<u64>(), 1_000);
        assert!(shares.iter().all(|s| (333..=334).contains(s)), "{shares:?}");
    }

    #[test]
    fn an_idle_partitions_share_goes_to_the_busy_ones() {
        // 8 partitions, 8000 B/s: an equal share is 1000, the floor 62.
        let mut d = [Using(0); 8];
        d[3] = Saturated;
        d[6] = Saturated;
        let shares = split_link_limit(8_000, &d);
        assert_eq!(shares.iter().sum::<u64>(), 8_000);
        let idle = shares[0];
        assert!((62..100).contains(&idle), "an idle partition keeps about the floor: {shares:?}");
        assert_eq!(shares[3], shares[6], "busy ones share equally");
        assert!(shares[3] > 3_500, "{shares:?}");
    }

    #[test]
    fn a_partition_under_its_share_gets_what_it_uses_with_headroom_and_the_rest_goes_to_others() {
        let shares = split_link_limit(10_000, &[Using(1_000), Saturated, Saturated]);
        assert_eq!(shares, vec![1_250, 4_375, 4_375]);
        // Wanting more than an equal share without being held back caps at an equal share of
        // what is left, like everyone.
        let shares = split_link_limit(9_000, &[Using(8_000), Using(8_000), Using(8_000)]);
        assert_eq!(shares, vec![3_000, 3_000, 3_000]);
    }

    #[test]
    fn what_nobody_wants_is_spread_over_all() {
        let shares = split_link_limit(1_000, &[Using(100), Using(0)]);
        // Wants 125 and the floor 31; the 844 nobody wanted is spread: 422 each.
        assert_eq!(shares, vec![125 + 422, 31 + 422]);
    }

    #[test]
    fn shares_add_up_to_the_limit_and_none_is_zero() {
        let demands = [Using(7), Saturated, Unknown, Using(123_456), Using(0), Saturated, Using(40)];
        for limit in [1u64, 6, 7, 8, 100, 999, 1 << 20, 10 << 30] {
            let shares = split_link_limit(limit, &demands);
            assert!(shares.iter().all(|s| *s >= 1), "{limit}: {shares:?}");
            let sum: u64 = shares.iter().sum();
            if limit >= demands.len() as u64 {
                assert_eq!(sum, limit, "{shares:?}");
            } else {
                assert_eq!(sum, demands.len() as u64, "a byte each below one byte per partition");
            }
        }
    }

    #[test]
    fn a_partition_without_a_decided_share_takes_an_equal_one() {
        assert_eq!(partition_share(800, &[], 3, 8), 100);
        assert_eq!(partition_share(800, &[10, 20], 1, 8), 100, "a split of another partition count");
        assert_eq!(partition_share(800, &[100, 700], 1, 2), 700);
        assert_eq!(partition_share(5, &[], 0, 8), 1);
    }
}
