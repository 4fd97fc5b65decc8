//! The simulator's tests: a batch of seeds, replay of one seed, the determinism self-check, and
//! proof that the checkers find planted bugs. See docs/simulation.md.
#![allow(clippy::unwrap_used)]

use tern_sim::{RunResult, SimConfig, run};

/// Prints a failed run readably: the seed (to replay), the violations, the trace tail.
fn report(r: &RunResult) -> String {
    let mut s = format!(
        "seed {} failed (replay: TERN_SIM_SEED={} cargo test -p tern-sim --test it seeds -- --nocapture)\n",
        r.seed, r.seed
    );
    for v in r.violations.iter().take(10) {
        s.push_str(&format!("  violation: {v}\n"));
    }
    s.push_str(&format!("  stats: {:?}\n  last trace lines:\n", r.stats));
    for l in r.trace_tail.iter().rev().take(60).collect::<Vec<_>>().into_iter().rev() {
        s.push_str(&format!("    {l}\n"));
    }
    s
}

fn seed_list() -> Vec<u64> {
    if let Ok(s) = std::env::var("TERN_SIM_SEED") {
        return vec![s.parse().expect("TERN_SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("TERN_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let first: u64 = std::env::var("TERN_SIM_FIRST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    (first..first + n).collect()
}

#[test]
fn seeds() {
    let full = std::env::var("TERN_SIM_SEED").is_ok();
    let mut failed = Vec::new();
    for seed in seed_list() {
        let r = run(&SimConfig::standard(seed), full);
        if let Some(trace) = &r.trace
            && let Ok(path) = std::env::var("TERN_SIM_TRACE")
        {
            std::fs::write(&path, trace.join("\n")).unwrap();
            eprintln!("full trace of seed {seed} written to {path}");
        }
        eprintln!(
            "seed {seed}: {} events, {} ops ({} completed), {} acked writes, {} crashes, converged at {:?} ms, {} violations",
            r.stats.events,
            r.stats.ops,
            r.stats.completed_ops,
            r.stats.acked_writes,
            r.stats.crashes,
            r.stats.converged_at_ms,
            r.violations.len()
        );
        if !r.violations.is_empty() {
            eprintln!("{}", report(&r));
            failed.push(seed);
        }
    }
    assert!(failed.is_empty(), "failing seeds: {failed:?} (each is replayable, see above)");
}
