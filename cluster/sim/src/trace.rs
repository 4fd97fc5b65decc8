//! The run's trace: every event as a readable line, hashed as it goes (so two runs of one seed
//! can be compared) and kept in a ring for printing when a run fails.

use std::collections::VecDeque;
use std::hash::Hasher;

pub struct Trace {
    hasher: std::collections::hash_map::DefaultHasher,
    tail: VecDeque<String>,
    keep: usize,
    lines: u64,
    /// Every line, when the caller asked for the full trace (`TERN_SIM_TRACE`).
    all: Option<Vec<String>>,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace").field("lines", &self.lines).finish_non_exhaustive()
    }
}

impl Trace {
    pub fn new(keep: usize, full: bool) -> Trace {
        // DefaultHasher::new() has fixed keys: the same lines give the same hash in every run.
        Trace { hasher: Default::default(), tail: VecDeque::new(), keep, lines: 0, all: full.then(Vec::new) }
    }

    pub fn line(&mut self, now_us: u64, text: String) {
        let line = format!("{:>6}.{:03} {text}", now_us / 1_000, now_us % 1_000);
        self.hasher.write(line.as_bytes());
        self.lines += 1;
        if let Some(all) = &mut self.all {
            all.push(line.clone());
        }
        if self.tail.len() == self.keep {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    pub fn hash(&self) -> u64 {
        self.hasher.finish()
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }

    pub fn tail(&self) -> impl Iterator<Item = &String> {
        self.tail.iter()
    }

    pub fn all(&self) -> Option<&[String]> {
        self.all.as_deref()
    }
}
