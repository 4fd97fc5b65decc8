//! Group commit: when the log writer should fsync. Pure decision logic, so runtimes and the
//! simulator share it and tests need no clock.

/// Syncs once a batch has `max_batch_bytes`, or once its oldest append has waited
/// `max_delay_ms`, whichever comes first. `max_delay_ms == 0` syncs after every append.
#[derive(Clone, Debug)]
pub struct GroupCommit {
    pub max_batch_bytes: u64,
    pub max_delay_ms: u64,
    pending_bytes: u64,
    pending_since_ms: Option<u64>,
}

impl GroupCommit {
    pub fn new(max_batch_bytes: u64, max_delay_ms: u64) -> GroupCommit {
        GroupCommit { max_batch_bytes, max_delay_ms, pending_bytes: 0, pending_since_ms: None }
    }

    /// Records an append of `bytes` at `now_ms`.
    pub fn appended(&mut self, bytes: u64, now_ms: u64) {
        self.pending_bytes += bytes;
        self.pending_since_ms.get_or_insert(now_ms);
    }

    /// Whether to sync now.
    pub fn should_sync(&self, now_ms: u64) -> bool {
        match self.pending_since_ms {
            None => false,
            Some(since) => {
                self.pending_bytes >= self.max_batch_bytes
                    || now_ms.saturating_sub(since) >= self.max_delay_ms
            }
        }
    }

    /// When the pending batch must be synced at the latest, if there is one.
    pub fn deadline_ms(&self) -> Option<u64> {
        self.pending_since_ms.map(|s| s + self.max_delay_ms)
    }

    /// Records that everything pending was synced.
    pub fn synced(&mut self) {
        self.pending_bytes = 0;
        self.pending_since_ms = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_on_size_or_age() {
        let mut g = GroupCommit::new(1000, 5);
        assert!(!g.should_sync(0));
        g.appended(400, 10);
        g.appended(400, 12);
        assert!(!g.should_sync(14));
        assert_eq!(g.deadline_ms(), Some(15));
        assert!(g.should_sync(15), "oldest append waited 5 ms");
        g.synced();
        g.appended(1200, 20);
        assert!(g.should_sync(20), "a full batch syncs at once");
        let mut every = GroupCommit::new(u64::MAX, 0);
        every.appended(1, 7);
        assert!(every.should_sync(7));
    }
}
