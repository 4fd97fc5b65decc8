//! The DR lease as a cluster's meta leader holds it. Pure: answers of the DR voters and the time
//! (this process's monotonic milliseconds) are passed in.
//!
//! Each voter's latest grant counts from when the request that earned it was **sent** (never
//! from when the answer arrived), for as long as the voter granted it, and covers exactly the
//! active copies (table, epoch) that request named, less those the voter said are active at a
//! higher epoch elsewhere. A copy holds the lease until the moment at which fewer than a
//! majority of the voters' grants covering it still run (the majority-th latest end). Counting
//! from the send time is what makes the lease end here no later than a promoter assumes
//! (docs/meta-proxy.md, "The DR lease"); covering only what was named means a copy made active
//! after a request was sent waits for the next renewal.

use std::collections::BTreeMap;

use tern_core::DrRole;

/// What a voter answered to one renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Granted {
        lease_ms: u64,
        /// Tables the voter knows active (or promised) elsewhere at a higher epoch: table →
        /// that epoch. No lease for them from this grant.
        superseded: BTreeMap<String, u64>,
    },
    /// The voter refused (its set of voters differs), or could not be reached.
    Failed(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Grant {
    sent_at_ms: u64,
    lease_ms: u64,
    /// The copies the grant covers: table → the epoch it was active at when asked.
    covered: BTreeMap<String, u64>,
    superseded: BTreeMap<String, u64>,
}

impl Grant {
    fn end_ms(&self) -> u64 {
        self.sent_at_ms.saturating_add(self.lease_ms)
    }
}

#[derive(Clone, Debug, Default)]
struct VoterState {
    /// The grant of the latest request that was granted.
    grant: Option<Grant>,
    /// When the latest answer arrived and what it said (for status).
    last: Option<(u64, Result<(), String>)>,
}

/// One voter's standing, for `tern cluster dr-lease`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoterStanding {
    pub voter: String,
    /// Its latest answer granted the lease.
    pub granted: bool,
    /// What is left of its latest grant.
    pub lease_left_ms: u64,
    /// How long ago it answered last (None: never).
    pub answered_ms_ago: Option<u64>,
    /// Its refusal, or the error reaching it.
    pub detail: String,
}

/// The voters' grants to this cluster.
#[derive(Clone, Debug)]
pub struct Holder {
    voters: BTreeMap<String, VoterState>,
}

impl Holder {
    /// `voters`: the configured voters' names (the lease needs a majority of exactly these).
    pub fn new(voters: impl IntoIterator<Item = String>) -> Holder {
        Holder { voters: voters.into_iter().map(|v| (v, VoterState::default())).collect() }
    }

    /// Whether any voter is configured (no voters: no DR lease at all).
    pub fn used(&self) -> bool {
        !self.voters.is_empty()
    }

    pub fn voters(&self) -> Vec<String> {
        self.voters.keys().cloned().collect()
    }

    /// How many voters must have granted: a majority.
    pub fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// `voter` answered, at `now_ms`, the renewal sent at `sent_at_ms` that named the active
    /// copies `asked` (table → epoch). Answers from voters not configured here are ignored (a
    /// set that could grow by itself would prove nothing).
    pub fn on_answer(
        &mut self,
        voter: &str,
        sent_at_ms: u64,
        now_ms: u64,
        asked: &BTreeMap<String, u64>,
        answer: Answer,
    ) {
        let Some(v) = self.voters.get_mut(voter) else { return };
        match answer {
            Answer::Granted { lease_ms, superseded } => {
                // A late answer to an older request never replaces a newer grant.
                if v.grant.as_ref().is_none_or(|g| g.sent_at_ms <= sent_at_ms) {
                    let covered = asked
                        .iter()
                        .filter(|(t, e)| superseded.get(*t).is_none_or(|floor| floor <= *e))
                        .map(|(t, e)| (t.clone(), *e))
                        .collect();
                    v.grant = Some(Grant { sent_at_ms, lease_ms, covered, superseded });
                }
                v.last = Some((now_ms, Ok(())));
            }
            Answer::Failed(why) => v.last = Some((now_ms, Err(why))),
        }
    }

    /// Until when (monotonic ms, exclusive) the copy of `table`, active here at `epoch`, holds
    /// the lease; `None` if a majority never granted it.
    pub fn lease_end_ms(&self, table: &str, epoch: u64) -> Option<u64> {
        let mut ends: Vec<u64> = self
            .voters
            .values()
            .filter_map(|v| v.grant.as_ref())
            .filter(|g| g.covered.get(table).is_some_and(|e| *e <= epoch))
            .map(Grant::end_ms)
            .collect();
        ends.sort_unstable_by(|a, b| b.cmp(a));
        ends.get(self.majority() - 1).copied()
    }

    /// How much of the lease of `table` at `epoch` is left at `now_ms` (0: none).
    pub fn lease_left_ms(&self, table: &str, epoch: u64, now_ms: u64) -> u64 {
        self.lease_end_ms(table, epoch).map_or(0, |end| end.saturating_sub(now_ms))
    }

    /// What a beacon answer tells replica servers is left of the lease of `table` (its role
    /// and epoch here) at `now_ms`: nothing unless the lease is `enforced` (voters configured, no
    /// waiver) and the copy is active. Servers count it from when they sent the beacon.
    pub fn beacon_lease_ms(&self, enforced: bool, role: DrRole, table: &str, epoch: u64, now_ms: u64) -> u64 {
        if enforced && role == DrRole::Active { self.lease_left_ms(table, epoch, now_ms) } else { 0 }
    }

    /// Why `table` at `epoch` holds no lease at `now_ms` (empty if it does). `None` for the
    /// table: why the cluster as a whole holds none.
    pub fn why_not(&self, table: &str, epoch: u64, now_ms: u64) -> String {
        if self.lease_left_ms(table, epoch, now_ms) > 0 {
            return String::new();
        }
        self.explain(Some((table, epoch)), now_ms)
    }

    /// Why a majority of the voters does not grant the lease at all at `now_ms`.
    pub fn why_not_at_all(&self, now_ms: u64) -> String {
        self.explain(None, now_ms)
    }

    fn explain(&self, copy: Option<(&str, u64)>, now_ms: u64) -> String {
        let mut running = Vec::new();
        let mut notes = Vec::new();
        for (name, v) in &self.voters {
            let superseded =
                |g: &Grant| copy.and_then(|(t, e)| g.superseded.get(t).filter(|f| **f > e).copied());
            match &v.grant {
                Some(g) if superseded(g).is_some() => notes.push(format!(
                    "{name} says it is active elsewhere at epoch {}",
                    superseded(g).unwrap_or_default()
                )),
                Some(g) if g.end_ms() > now_ms && copy.is_some_and(|(t, _)| !g.covered.contains_key(t)) => {
                    notes.push(format!("{name}: not asked for it yet (made active since?)"))
                }
                Some(g) if g.end_ms() > now_ms => running.push(name.as_str()),
                _ => match &v.last {
                    Some((_, Err(e))) => notes.push(format!("{name}: {e}")),
                    Some((at, Ok(()))) => notes.push(format!(
                        "{name}: last grant ran out ({:.1}s since its answer)",
                        now_ms.saturating_sub(*at) as f64 / 1000.0
                    )),
                    None => notes.push(format!("{name}: no answer yet")),
                },
            }
        }
        let mut why = format!(
            "{} of {} DR voters grant it, {} needed",
            running.len(),
            self.voters.len(),
            self.majority()
        );
        if !notes.is_empty() {
            why.push_str(&format!(" ({})", notes.join("; ")));
        }
        why
    }

    /// What is left at `now_ms` of the lease for a table no voter says anything about (the
    /// cluster's lease as a whole; 0: a majority does not grant it).
    pub fn cluster_lease_left_ms(&self, now_ms: u64) -> u64 {
        let mut ends: Vec<u64> =
            self.voters.values().filter_map(|v| v.grant.as_ref()).map(Grant::end_ms).collect();
        ends.sort_unstable_by(|a, b| b.cmp(a));
        ends.get(self.majority() - 1).map_or(0, |end| end.saturating_sub(now_ms))
    }

    /// Every table some voter says is active (or promised) elsewhere at a higher epoch than
    /// the one this cluster renewed it at, with the highest such epoch.
    pub fn superseded(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for g in self.voters.values().filter_map(|v| v.grant.as_ref()) {
            for (t, e) in &g.superseded {
                let slot = out.entry(t.clone()).or_default();
                *slot = (*slot).max(*e);
            }
        }
        out
    }

    /// Each voter's standing at `now_ms`.
    pub fn standings(&self, now_ms: u64) -> Vec<VoterStanding> {
        self.voters
            .iter()
            .map(|(name, v)| VoterStanding {
                voter: name.clone(),
                granted: matches!(v.last, Some((_, Ok(())))),
                lease_left_ms: v.grant.as_ref().map_or(0, |g| g.end_ms().saturating_sub(now_ms)),
                answered_ms_ago: v.last.as_ref().map(|(at, _)| now_ms.saturating_sub(*at)),
                detail: match &v.last {
                    Some((_, Err(e))) => e.clone(),
                    _ => String::new(),
                },
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "holder_tests.rs"]
mod tests;
