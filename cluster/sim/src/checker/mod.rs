//! Checkers of simulated runs. Each invariant lives in its own module and cites the PacificA
//! paper section it comes from.

pub mod linearizability;
