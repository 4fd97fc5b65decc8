//! Log holds: a running operation that needs a partition's private log from some decree on keeps
//! log garbage collection below it (`ServerHost::dup_log_floor` takes the lowest of the links'
//! floor and these). A backup holds its partition's log from the checkpoint's decree + 1 until
//! its upload is done, so that the log after the backup is still there to seed a duplication
//! peer from it (docs/backup.md, "Seeding a duplication peer").
//!
//! A hold is a guard: it is released when dropped, so every way an operation ends (success, an
//! error, a caller that went away and dropped the future) releases it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tern_core::{Decree, Gpid};

#[derive(Debug, Default)]
pub struct LogHolds {
    /// By partition: each hold's id and the lowest decree it needs.
    held: Mutex<BTreeMap<Gpid, BTreeMap<u64, Decree>>>,
    next: Mutex<u64>,
}

/// One hold; released when dropped.
#[derive(Debug)]
pub struct LogHold {
    holds: Arc<LogHolds>,
    gpid: Gpid,
    id: u64,
}

impl LogHolds {
    /// Holds `gpid`'s log from `from` on (`Decree::ZERO`: all of it).
    pub fn hold(self: &Arc<Self>, gpid: Gpid, from: Decree) -> LogHold {
        let id = {
            let mut n = self.next.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            *n
        };
        self.lock().entry(gpid).or_default().insert(id, from);
        LogHold { holds: self.clone(), gpid, id }
    }

    /// The lowest decree any hold needs of `gpid`'s log, if any holds some.
    pub fn floor(&self, gpid: Gpid) -> Option<Decree> {
        self.lock().get(&gpid).and_then(|h| h.values().min().copied())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Gpid, BTreeMap<u64, Decree>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl LogHold {
    /// Moves the hold to `from` (e.g. from all of the log to what follows a checkpoint).
    pub fn move_to(&self, from: Decree) {
        if let Some(h) = self.holds.lock().get_mut(&self.gpid) {
            h.insert(self.id, from);
        }
    }
}

impl Drop for LogHold {
    fn drop(&mut self) {
        let mut held = self.holds.lock();
        if let Some(h) = held.get_mut(&self.gpid) {
            h.remove(&self.id);
            if h.is_empty() {
                held.remove(&self.gpid);
            }
        }
    }
}

/// The lowest of two floors (`None`: that side holds nothing).
pub fn lowest(a: Option<Decree>, b: Option<Decree>) -> Option<Decree> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_hold_wins_and_each_is_released_when_dropped() {
        let holds = Arc::new(LogHolds::default());
        let (p0, p1) = (Gpid::new(1, 0), Gpid::new(1, 1));
        assert_eq!(holds.floor(p0), None);
        let a = holds.hold(p0, Decree::ZERO);
        assert_eq!(holds.floor(p0), Some(Decree::ZERO), "a new hold keeps the whole log");
        a.move_to(Decree(41));
        let b = holds.hold(p0, Decree(30));
        assert_eq!(holds.floor(p0), Some(Decree(30)));
        assert_eq!(holds.floor(p1), None, "a hold is per partition");
        drop(b);
        assert_eq!(holds.floor(p0), Some(Decree(41)));
        drop(a);
        assert_eq!(holds.floor(p0), None);
    }

    #[tokio::test]
    async fn a_hold_is_released_when_its_operation_fails_or_is_dropped() {
        let holds = Arc::new(LogHolds::default());
        let g = Gpid::new(2, 3);
        let failing = {
            let holds = holds.clone();
            async move {
                let h = holds.hold(g, Decree::ZERO);
                h.move_to(Decree(8));
                Err::<(), _>("upload failed")
            }
        };
        assert!(failing.await.is_err());
        assert_eq!(holds.floor(g), None, "an error released the hold");

        let (started_tx, started) = tokio::sync::oneshot::channel();
        let never = {
            let holds = holds.clone();
            async move {
                let _h = holds.hold(g, Decree(5));
                let _ = started_tx.send(());
                std::future::pending::<()>().await
            }
        };
        let task = tokio::spawn(never);
        started.await.unwrap();
        assert_eq!(holds.floor(g), Some(Decree(5)));
        task.abort();
        let _ = task.await;
        assert_eq!(holds.floor(g), None, "cancelling released the hold");
    }

    #[test]
    fn the_floor_is_the_lowest_of_links_and_holds() {
        assert_eq!(lowest(None, None), None);
        assert_eq!(lowest(Some(Decree(3)), None), Some(Decree(3)));
        assert_eq!(lowest(None, Some(Decree(4))), Some(Decree(4)));
        assert_eq!(lowest(Some(Decree(9)), Some(Decree(4))), Some(Decree(4)));
    }
}
