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
    /// A write: if dropped unanswered, it may have been logged (its outcome is unknown).
    write: bool,
    tx: Option<mpsc::UnboundedSender<pb::KvAnswer>>,
}

impl StreamAnswer {
    pub fn read(id: u64, stale: bool, tx: mpsc::UnboundedSender<pb::KvAnswer>) -> StreamAnswer {
        StreamAnswer { id, stale, write: false, tx: Some(tx) }
    }

    pub fn write(id: u64, tx: mpsc::UnboundedSender<pb::KvAnswer>) -> StreamAnswer {
        StreamAnswer { id, stale: false, write: true, tx: Some(tx) }
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
            let _ = tx.send(answer_of(self.id, None, Some(&dropped(self.write))));
        }
    }
}

/// The error for a request its replica dropped unanswered (it stopped): a write may have been
/// logged and may still be applied by a later primary, so its outcome is unknown (a client
/// must not retry a non-idempotent write on it); a read certainly did nothing.
pub fn dropped(write: bool) -> Error {
    if write {
        Error::OutcomeUnknown("the replica stopped before answering; the write may have been logged".into())
    } else {
        Error::Unavailable("the replica stopped before answering".into())
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

impl<T: IntoAnswer> ReplyTo<T> {
    pub fn send(self, r: Result<T>) {
        match self {
            ReplyTo::Once(tx) => {
                let _ = tx.send(r);
            }
            ReplyTo::Stream(s) => match T::answer(r, s.stale) {
                Ok(answer) => s.send(Some(answer), None),
                Err(e) => s.send(None, Some(&e)),
            },
        }
    }
}

/// A result that can answer a pipeline call.
pub trait IntoAnswer: Sized {
    /// The answer for `r`, or the error to send instead; `stale`: the table is a DR standby here.
    fn answer(r: Result<Self>, stale: bool) -> Result<pb::kv_answer::Answer>;
}

impl IntoAnswer for WriteOutcome {
    fn answer(r: Result<WriteOutcome>, _stale: bool) -> Result<pb::kv_answer::Answer> {
        match r? {
            WriteOutcome::Failed(e) => Err(e),
            o => Ok(pb::kv_answer::Answer::Write(outcome_to_pb(&o))),
        }
    }
}

impl IntoAnswer for ReadResult {
    fn answer(r: Result<ReadResult>, stale: bool) -> Result<pb::kv_answer::Answer> {
        let mut resp = read_result_to_pb(&r?);
        resp.possibly_stale = stale;
        Ok(pb::kv_answer::Answer::Read(resp))
    }
}
