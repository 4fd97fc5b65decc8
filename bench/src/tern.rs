//! The Tern target: one [`TernClient`] shared by every worker (it pools one gRPC channel per
//! server and caches routes), a set of `(user…, field0)` per write, a get per read.

use tern_client::{ClientOptions, TernClient};
use tern_core::read::{ReadOp, ReadResult};
use tern_core::{ErrorCode, WriteOp};

use crate::error::{BenchError, OpError};
use crate::runner::{ReadOutcome, Target};
use crate::workload::SORT_KEY;

#[derive(Debug)]
pub struct TernTarget {
    client: TernClient,
    table: String,
}

impl TernTarget {
    /// `meta`: the meta servers' `host:port`s.
    pub fn new(meta: Vec<String>, table: String) -> Result<TernTarget, BenchError> {
        let client = TernClient::new(ClientOptions::new(meta))
            .map_err(|e| BenchError::Config(format!("meta server addresses: {e}")))?;
        Ok(TernTarget { client, table })
    }
}

fn op_error(e: &tern_core::Error) -> OpError {
    OpError::new(e.code().as_str())
}

impl Target for TernTarget {
    fn name(&self) -> &'static str {
        "tern"
    }

    async fn check(&self) -> Result<(), BenchError> {
        match self.client.route(&self.table, true).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == ErrorCode::TableNotFound => {
                Err(BenchError::TableNotFound { table: self.table.clone() })
            }
            Err(e) => Err(BenchError::Unreachable { target: "the meta server", detail: e.to_string() }),
        }
    }

    async fn write(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), OpError> {
        let op = WriteOp::Set { hash_key: key, sort_key: SORT_KEY.to_vec(), value, ttl_secs: 0 };
        self.client.write(&self.table, op).await.map(|_| ()).map_err(|e| op_error(&e))
    }

    async fn read(&self, key: Vec<u8>) -> Result<ReadOutcome, OpError> {
        let op = ReadOp::Get { hash_key: key, sort_key: SORT_KEY.to_vec() };
        match self.client.read(&self.table, op).await {
            Ok(ReadResult::Get(Some(_))) => Ok(ReadOutcome::Found),
            Ok(ReadResult::Get(None)) => Ok(ReadOutcome::Missing),
            Ok(_) => Err(OpError::new("UNEXPECTED_REPLY")),
            Err(e) => Err(op_error(&e)),
        }
    }
}
