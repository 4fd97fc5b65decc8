//! Timing of failure detection. All durations are milliseconds.

use tern_core::{Error, Result};

#[derive(Clone, Debug)]
pub struct CmOptions {
    /// How long a beacon acknowledgement lets a node serve, counted on the node's clock from
    /// when it *sent* the beacon.
    pub lease_ms: u64,
    /// How long after the last beacon the manager declares a node dead (on its own clock).
    pub grace_ms: u64,
    /// The largest clock rate error any clock may have, in parts per million.
    pub max_clock_drift_ppm: u64,
    /// A learner that has not become a secondary after this long is replaced.
    pub learner_timeout_ms: u64,
    /// When every replica was lost: after the first member of the last configuration comes
    /// back, wait this long for the others before picking the longest log.
    pub recovery_wait_ms: u64,
    /// How often the balancer plans a round; 0 turns it off.
    pub balance_interval_ms: u64,
    /// How many replica copies (balancing or draining) may be in flight at once.
    pub max_moves: usize,
}

impl Default for CmOptions {
    fn default() -> CmOptions {
        CmOptions {
            lease_ms: 5_000,
            grace_ms: 10_000,
            max_clock_drift_ppm: 10_000,
            learner_timeout_ms: 30_000,
            recovery_wait_ms: 5_000,
            balance_interval_ms: 10_000,
            max_moves: 2,
        }
    }
}

impl CmOptions {
    /// The lease rule: a node must stop serving before the manager's grace period ends, whatever
    /// the two clocks' rates. With rates in `[1-ρ, 1+ρ]`, the node's lease lasts at most
    /// `lease / (1-ρ)` of real time from the beacon's send, and the manager waits at least
    /// `grace / (1+ρ)` from the beacon's receipt (which is later); so it is enough that
    /// `grace / (1+ρ) > lease / (1-ρ)`. See `docs/replication.md`.
    pub fn validate(&self) -> Result<()> {
        let rho = self.max_clock_drift_ppm as f64 / 1e6;
        if rho >= 1.0 {
            return Err(Error::InvalidArgument("max clock drift must be below 100%".into()));
        }
        let lease_real = self.lease_ms as f64 / (1.0 - rho);
        let grace_real = self.grace_ms as f64 / (1.0 + rho);
        if grace_real <= lease_real {
            return Err(Error::InvalidArgument(format!(
                "grace period {} ms is too short for lease {} ms at {} ppm clock drift: it must exceed {:.0} ms",
                self.grace_ms,
                self.lease_ms,
                self.max_clock_drift_ppm,
                self.lease_ms as f64 * (1.0 + rho) / (1.0 - rho)
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_rule() {
        CmOptions::default().validate().unwrap();
        let tight = CmOptions {
            lease_ms: 5_000,
            grace_ms: 5_050,
            max_clock_drift_ppm: 10_000,
            ..CmOptions::default()
        };
        let e = tight.validate().unwrap_err().to_string();
        assert!(e.contains("must exceed 5101 ms"), "{e}");
        let ok = CmOptions { grace_ms: 5_102, ..tight };
        ok.validate().unwrap();
    }
}
