//! The promoter's side of the DR lease (`--auto-failover`): whether it can know when the old
//! active copy's lease ends ([`lease_check`]) and, from the voters' promises, when it has
//! certainly ended ([`DrRules::lease_expiry`]). Pure: the runtime (the proxy's watcher, a
//! simulated proxy) collects the promises, with the time each arrived, and passes them in.
//!
//! Before making a standby active at epoch E, a promoter asks every voter to promise floor E
//! and learns, from each, how long ago it last granted the old active copy. With promises from
//! enough voters that no majority can grant the old copy any more, the old copy's lease has
//! certainly expired once the right one of their last grants is a lease (stretched by clock rate
//! errors) plus a margin old.

use std::time::Duration;

use crate::{DrRules, Moment};

/// Clock rate error allowed between any two processes (fast or slow by up to 1 %), as for the
/// node lease (`docs/replication.md`, "The lease rule").
pub const CLOCK_RATE_ERROR: f64 = 0.01;

/// Added to the computed end of the old lease before a promotion: a client write admitted just
/// before the old copy's lease ran out is stamped and committed within it, and timetags of the
/// two clusters may differ by up to the maximum clock offset (500 ms by default), so every write
/// the new active copy takes is stamped after every write the old one took.
pub const PROMOTION_MARGIN: Duration = Duration::from_secs(1);

/// A voter's promise as the promoter received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promise<M> {
    pub voter: String,
    /// When the answer arrived (promoter's clock).
    pub received_at: M,
    pub since_grant: Duration,
    pub lease: Duration,
}

impl<M: Moment> Promise<M> {
    /// After this (promoter's clock), no lease this voter granted the old copy still runs
    /// anywhere: its last grant was at least `since_grant` (its clock) before the answer, and
    /// the holder counted it from before then, for `lease` on clocks that may run slow while
    /// this one runs fast.
    pub fn grants_end_by(&self) -> M {
        let stretched = self.lease.mul_f64((1.0 + CLOCK_RATE_ERROR) / (1.0 - CLOCK_RATE_ERROR));
        self.received_at.after(stretched.saturating_sub(self.since_grant))
    }
}

/// A voter's answer to a promise request (`DrVoter.Promise`), as a promoter received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromiseAnswer {
    /// The name the voter answered with.
    pub voter: String,
    /// `Err`: why it refused.
    pub promised: Result<(), String>,
    pub since_grant: Duration,
    pub lease: Duration,
    /// The epoch of the old copy it last granted a lease to, if it knows.
    pub granted_epoch: Option<u64>,
}

/// The highest epoch of the old copy any voter that answered last granted a lease at: a
/// promotion must be above it, or the promises do not stop that copy's lease (its floor would
/// stay at or below the copy's epoch). `None`: no voter knows one.
pub fn granted_epoch<'a>(answers: impl IntoIterator<Item = &'a PromiseAnswer>) -> Option<u64> {
    answers.into_iter().filter_map(|a| a.granted_epoch).max()
}

/// Sorts the answers of a promise round into the promises that count and, for every other
/// voter asked, why not. Each answer: the name the voter was asked under, when its answer
/// arrived (promoter's clock), and the answer or why none came. A voter answering under another
/// name than it was asked under does not count (the voter lists differ). Shared by every
/// promoter: the proxy's automatic failover and `tern dr failover`.
pub fn tally_promises<M: Moment>(
    answers: impl IntoIterator<Item = (String, M, Result<PromiseAnswer, String>)>,
) -> (Vec<Promise<M>>, Vec<String>) {
    let mut promises = Vec::new();
    let mut not = Vec::new();
    for (name, at, answer) in answers {
        match answer {
            Ok(r) if r.voter != name => {
                not.push(format!("{name}: calls itself {:?} (check --dr-voters and --dr-name)", r.voter))
            }
            Ok(PromiseAnswer { promised: Ok(()), since_grant, lease, .. }) => {
                promises.push(Promise { voter: name, received_at: at, since_grant, lease })
            }
            Ok(PromiseAnswer { promised: Err(why), .. }) => not.push(format!("{name}: refused ({why})")),
            Err(e) => not.push(format!("{name}: {e}")),
        }
    }
    (promises, not)
}

impl DrRules {
    /// When the old copy's lease has certainly expired, given `promises` from distinct voters
    /// out of `voters`, margin included; `Err` if too few promised for that to be known.
    ///
    /// The holder needs a majority `k` of the `n` voters. Voters that did not promise may still
    /// grant, so it can hold a lease at time `t` only if `n - |S|` plus the promised voters
    /// whose grants may still run after `t` reach `k`. That stops once at most `k - (n - |S|) - 1`
    /// of the promised voters' grants run: at the `m`-th latest of their ends, `m = |S| - (n - k)`.
    pub fn lease_expiry<M: Moment>(&self, promises: &[Promise<M>], voters: usize) -> Result<M, String> {
        let k = voters / 2 + 1;
        let needed = voters - k + 1;
        if voters == 0 || promises.len() < needed {
            return Err(format!(
                "{} of {voters} DR voters promised; {needed} must, so that no majority can renew the old copy's lease",
                promises.len()
            ));
        }
        if self.bugs().promote_without_waiting {
            return promises.iter().map(|p| p.received_at).max().ok_or_else(|| "no promise".to_string());
        }
        let mut ends: Vec<M> = promises.iter().map(Promise::grants_end_by).collect();
        ends.sort_unstable_by(|a, b| b.cmp(a));
        let m = promises.len() - (voters - k);
        Ok(ends[m - 1].after(PROMOTION_MARGIN))
    }
}

/// A copy's DR lease as its cluster last reported it to the promoter (from its route while it
/// served).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseSeen {
    /// The cluster runs a DR lease (it has voters).
    pub used: bool,
    /// The voters it renews through, sorted.
    pub voters: Vec<String>,
    /// An operator waived it.
    pub waived: bool,
}

/// What a promoter does about the old active copy's lease before promoting another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseCheck {
    /// Ask the voters for promises, then wait for [`DrRules::lease_expiry`].
    AskPromises,
    /// Promote without waiting; the note says why that is allowed (an operator's override).
    Go(String),
    Refuse(String),
}

/// Whether and how a promoter can know that `old`'s copy stopped taking writes: from the DR
/// lease it last reported (`lease`; `None`: never seen), this promoter's voters, and the
/// operator's override.
pub fn lease_check(
    old: &str,
    lease: Option<&LeaseSeen>,
    voters: &[String],
    unsafe_override: bool,
) -> LeaseCheck {
    let problem = match lease {
        None => format!("this proxy never saw {old}'s DR lease (it has not seen {old} serve)"),
        Some(l) if !l.used => format!(
            "{old} runs without a DR lease (its meta servers have no --dr-voters): it may still be taking client writes"
        ),
        Some(l) if l.waived => format!(
            "{old}'s DR lease is waived by an operator (tern cluster dr-lease --waive): it may still be taking client writes"
        ),
        Some(_) if voters.is_empty() => {
            format!("this proxy has no --dr-voters, so it cannot learn when {old}'s DR lease ends")
        }
        Some(l) => {
            let mut ours = voters.to_vec();
            ours.sort();
            if l.voters == ours {
                return LeaseCheck::AskPromises;
            }
            format!(
                "{old} renews its DR lease through [{}] but this proxy counts [{}] (--dr-voters must be the same everywhere)",
                l.voters.join(", "),
                ours.join(", ")
            )
        }
    };
    if unsafe_override {
        LeaseCheck::Go(format!(
            "promoted WITHOUT waiting for {old}'s DR lease (--unsafe-failover-without-lease): {problem}"
        ))
    } else {
        LeaseCheck::Refuse(format!(
            "{problem}; refusing to promote (a split brain otherwise); --unsafe-failover-without-lease overrides"
        ))
    }
}

#[cfg(test)]
#[path = "promote_tests.rs"]
mod tests;
