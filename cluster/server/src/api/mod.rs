//! What clients, peers and the meta server call: the gRPC services (`services.rs`) and the
//! client pipeline streams (`pipeline.rs`). They check a request at the edge (a DR standby
//! refuses client writes, malformed requests are refused) and hand it to its replica's queue;
//! nothing here decides anything about replication.

pub mod pipeline;
pub mod services;
