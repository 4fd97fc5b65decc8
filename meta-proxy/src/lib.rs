//! The meta-proxy (`tern proxy`).
//!
//! Filled by the meta-proxy issue (#6). Owns: answering routing queries with the cluster whose
//! copy of a table is `active` at the highest DR epoch, watching clusters, optional automatic
//! failover under an RPO budget, and the RESP (Redis protocol) gateway. Stateless.
//!
//! Must not depend on: rocksdb.
