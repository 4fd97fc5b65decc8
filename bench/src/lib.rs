//! Criterion benchmarks for Tern's hot paths live in `benches/`; this crate exists so that test
//! builds of the other crates do not compile criterion. See `docs/benchmarks.md`.
