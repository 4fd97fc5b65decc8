//! The node side of the lease rule.
//!
//! A replica server sends a beacon stamped with its local send time `t`; the manager's
//! acknowledgement echoes `t`, and the node may then serve until `t + lease_ms` on its own
//! clock. Counting from the *send* time (not from when the acknowledgement arrives) is what
//! makes a late acknowledgement harmless: it can only extend the lease to a point the manager
//! already accounts for, since the manager received that beacon after `t`.

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeLease {
    expires_at_ms: u64,
}

impl NodeLease {
    /// Records an acknowledgement of the beacon sent at local time `sent_at_ms`.
    pub fn on_ack(&mut self, sent_at_ms: u64, lease_ms: u64) {
        self.expires_at_ms = self.expires_at_ms.max(sent_at_ms + lease_ms);
    }

    pub fn valid(&self, now_ms: u64) -> bool {
        now_ms < self.expires_at_ms
    }

    pub fn expires_at_ms(&self) -> u64 {
        self.expires_at_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_the_send_time_and_never_shrinks() {
        let mut l = NodeLease::default();
        assert!(!l.valid(0));
        l.on_ack(1_000, 5_000);
        assert!(l.valid(5_999) && !l.valid(6_000));
        l.on_ack(500, 5_000); // a late acknowledgement of an older beacon
        assert_eq!(l.expires_at_ms(), 6_000);
    }
}
