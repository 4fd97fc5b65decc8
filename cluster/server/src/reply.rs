//! Where the answer to a client request goes: a oneshot a unary gRPC handler awaits, or the answer
//! queue of a client's `Kv.Pipeline` stream (see `pipeline`).

use tern_core::mutation::WriteOutcome;
use tern_core::read::ReadResult;
use tern_core::{Error, Result};
use tern_proto::convert::{outcome_to_pb, read_result_to_pb};
use tern_proto::pb;
use tokio::sync::{mpsc, oneshot};

/// The answer of a request, once the replica has one.
pub enum ReplyTo<T> {
    Once(oneshot::Sender<Result<T>>),
    Stream(StreamAnswer),
}

/// A call of a pipeline stream: its answer goes to the stream's queue under the call's id. If it
/// is dropped unanswered (its replica closed), the client is told so, as a unary caller is by
/// its dropped oneshot.
pub struct StreamAnswer {
    id: u64,
    /// The table is a DR standby here: a read's answer is marked possibly stale.
    stale: bool,
    tx: Option<mpsc::UnboundedSender<pb::KvAnswer>>,
}

impl StreamAnswer {
    pub fn new(id: u64, stale: bool, tx: mpsc::UnboundedSender<pb::KvAnswer>) -> StreamAnswer {
        StreamAnswer { id, stale, tx: Some(tx) }
    }

    fn send(mut self, answer: Option<pb::kv_answer::Answer>, error: Option<&Error>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(answer_of(self.id, answer, error));
        }
    }
}

impl Drop for StreamAnswer {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let e = Error::Unavailable("the replica dropped the request".into());
            let _ = tx.send(answer_of(self.id, None, Some(&e)));
        }
    }
}

/// The answer to call `id`: a result, or an error.
pub fn answer_of(id: u64, answer: Option<pb::kv_answer::Answer>, error: Option<&Error>) -> pb::KvAnswer {
    match error {
        Some(e) => pb::KvAnswer {
            id,
            answer: None,
            error_code: u32::from(e.code() as u16),
            error_message: e.to_string(),
        },
        None => pb::KvAnswer { id, answer, error_code: 0, error_message: String::new() },
    }
}

impl ReplyTo<WriteOutcome> {
    pub fn send(self, r: Result<WriteOutcome>) {
        match self {
            ReplyTo::Once(tx) => {
                let _ = tx.send(r);
            }
            ReplyTo::Stream(s) => match r {
                Ok(WriteOutcome::Failed(e)) | Err(e) => s.send(None, Some(&e)),
                Ok(o) => s.send(Some(pb::kv_answer::Answer::Write(outcome_to_pb(&o))), None),
            },
        }
    }
}

impl ReplyTo<ReadResult> {
    pub fn send(self, r: Result<ReadResult>) {
        match self {
            ReplyTo::Once(tx) => {
                let _ = tx.send(r);
            }
            ReplyTo::Stream(s) => match r {
                Err(e) => s.send(None, Some(&e)),
                Ok(result) => {
                    let mut resp = read_result_to_pb(&result);
                    resp.possibly_stale = s.stale;
                    s.send(Some(pb::kv_answer::Answer::Read(resp)), None)
                }
            },
        }
    }
}
