//! Reads that arrive together leave together: every GET (and TTL lookup) of the gateway goes
//! through one [`Coalescer`], which sends what queued up meanwhile — a pipeline's reads, and
//! other connections' — as one `BatchRead` per replica server (`TernClient::read_batch`)
//! instead of one RPC per read. Order between requests of a connection is kept by the gateway
//! (a read starts only after the earlier writes of its keys finished), so batching reads that
//! are already in flight changes no result.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tern_client::TernClient;
use tern_core::read::{ReadOp, ReadResult};
use tern_core::{Error, Result};
use tokio::sync::oneshot;

type Answer = oneshot::Sender<Result<ReadResult>>;
/// One table's reads of a batch, in arrival order, and where their answers go.
type TableReads = (String, Vec<ReadOp>, Vec<Answer>);

#[derive(Debug)]
pub struct Coalescer {
    client: Arc<TernClient>,
    /// The next batch, per table (a gateway serves a few tables at most: a list is enough, and
    /// a read names its table without allocating).
    queue: Mutex<Vec<TableReads>>,
}

impl Coalescer {
    pub fn new(client: Arc<TernClient>) -> Arc<Coalescer> {
        Arc::new(Coalescer { client, queue: Mutex::new(Vec::new()) })
    }

    pub fn client(&self) -> &TernClient {
        &self.client
    }

    /// Reads `op` of `table` in the next batch.
    pub async fn read(self: &Arc<Self>, table: &str, op: ReadOp) -> Result<ReadResult> {
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            let first = q.is_empty();
            match q.iter_mut().find(|(t, _, _)| t == table) {
                Some((_, ops, txs)) => {
                    ops.push(op);
                    txs.push(tx);
                }
                None => q.push((table.to_string(), vec![op], vec![tx])),
            }
            first
        };
        if first {
            // A task of its own, so that a dropped caller cannot strand the others. It lets the
            // reads being queued right now (the rest of a pipeline) join before it takes them.
            let this = self.clone();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                let batch = std::mem::take(&mut *this.queue.lock().unwrap_or_else(|e| e.into_inner()));
                this.send(batch).await;
            });
        }
        rx.await.unwrap_or_else(|_| Err(Error::Unavailable("the read was dropped by the gateway".into())))
    }

    async fn send(&self, tables: Vec<TableReads>) {
        let reads = tables.into_iter().map(|(table, ops, txs)| async move {
            // The same read asked several times in one batch (a hot key) is sent once: they are
            // all in flight together, so one answer is a correct answer for each of them.
            // Each op's slot among the unique ones, and whether it is the first of its slot.
            let mut index: HashMap<(bool, &[u8], &[u8]), usize> = HashMap::new();
            let mut slots = Vec::with_capacity(ops.len());
            let mut first = Vec::with_capacity(ops.len());
            let mut unique_count = 0;
            for op in &ops {
                let key = match op {
                    ReadOp::Get { hash_key, sort_key } => Some((true, &hash_key[..], &sort_key[..])),
                    ReadOp::Ttl { hash_key, sort_key } => Some((false, &hash_key[..], &sort_key[..])),
                    _ => None,
                };
                let known = key.and_then(|k| index.get(&k)).copied();
                let slot = known.unwrap_or_else(|| {
                    if let Some(k) = key {
                        index.insert(k, unique_count);
                    }
                    unique_count += 1;
                    unique_count - 1
                });
                slots.push(slot);
                first.push(known.is_none());
            }
            drop(index);
            let unique: Vec<ReadOp> =
                ops.into_iter().zip(&first).filter_map(|(op, &f)| f.then_some(op)).collect();
            let results = self.client.read_batch(&table, unique).await;
            for (tx, slot) in txs.into_iter().zip(slots) {
                // The caller may be gone (its connection closed): nothing to tell then.
                let _ = tx.send(results[slot].clone());
            }
        });
        futures::future::join_all(reads).await;
    }
}
