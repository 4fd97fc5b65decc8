//! `Kv.Pipeline`: a client's calls over one long-lived stream (the server side).
//!
//! A frame of calls is taken apart at once: the writes of one partition go to its replica as one
//! `Input::Writes` (logged as one entry when nothing orders them apart), reads one by one. Every
//! call's answer goes into one queue as soon as its replica has it; whatever the queue holds when
//! the stream asks for more leaves as one frame. No call waits for another.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tern_core::mutation::WriteOutcome;
use tern_core::{Error, Gpid, WriteOp};
use tern_proto::convert::{read_from_pb, write_from_pb};
use tern_proto::pb;
use tern_proto::prost::Message;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use crate::host::reply::{ReplyTo, StreamAnswer, answer_of};
use crate::host::task::Input;
use crate::node::Node;

pub type AnswerStream = Pin<Box<dyn Stream<Item = Result<pb::KvAnswers, Status>> + Send>>;

/// At most this many answers, or about this many bytes (at least one answer), leave in one frame.
const ANSWERS_PER_FRAME: usize = 1024;
const FRAME_BYTES: usize = 1 << 20;

/// Why a client's write is refused before it reaches the replica, if it is.
pub fn refuse_write(node: &Node, gpid: Gpid, op: &WriteOp) -> Option<Error> {
    // A table being restored serves nobody until the restore is complete.
    if let Some(e) = node.roles.refuse_restoring(gpid.table.0) {
        return Some(e);
    }
    // A standby, or an active table without the DR lease. Duplicated writes come through
    // `duplicate`, not here.
    if let Some(e) = node.roles.refuse_client_write(gpid.table.0, node.clock.now().mono_ms) {
        return Some(e);
    }
    if matches!(op, WriteOp::Put { .. }) {
        // Timetagged puts carry another cluster's clock: only duplication may write them.
        return Some(Error::InvalidArgument(
            "put is written by duplication between clusters, not by clients; use set or del".into(),
        ));
    }
    None
}

/// Serves one pipeline stream: reads frames of calls until the client ends it (or this server
/// stops), and returns the stream of answers.
pub fn serve(node: Arc<Node>, mut calls: Streaming<pb::KvCalls>) -> AnswerStream {
    let (tx, rx) = mpsc::unbounded_channel::<pb::KvAnswer>();
    tokio::spawn(async move {
        let mut stopping = node.stopping();
        loop {
            let frame = tokio::select! {
                m = calls.message() => match m {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!("a client's pipeline ended: {status}");
                        break;
                    }
                },
                _ = stopping.wait_for(|s| *s) => break,
            };
            dispatch(&node, frame, &tx);
        }
        // The answer stream ends once every call still in a replica's hands is answered.
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        let first = rx.recv().await?;
        // Replicas that committed in the same moment answer first and share this frame.
        tokio::task::yield_now().await;
        let mut bytes = first.encoded_len();
        let mut answers = vec![first];
        while answers.len() < ANSWERS_PER_FRAME && bytes < FRAME_BYTES {
            match rx.try_recv() {
                Ok(a) => {
                    bytes += a.encoded_len();
                    answers.push(a);
                }
                Err(_) => break,
            }
        }
        Some((Ok(pb::KvAnswers { answers }), rx))
    }))
}

fn dispatch(node: &Node, frame: pb::KvCalls, tx: &mpsc::UnboundedSender<pb::KvAnswer>) {
    let mut writes: HashMap<Gpid, Vec<(WriteOp, ReplyTo<WriteOutcome>)>> = HashMap::new();
    for call in frame.calls {
        let id = call.id;
        let refuse = |e: Error| {
            let _ = tx.send(answer_of(id, None, Some(&e)));
        };
        match call.call {
            Some(pb::kv_call::Call::Write(req)) => match write_from_pb(req) {
                Err(e) => refuse(e),
                Ok((gpid, op)) => match refuse_write(node, gpid, &op) {
                    Some(e) => refuse(e),
                    None => {
                        let reply = ReplyTo::Stream(StreamAnswer::write(id, tx.clone()));
                        writes.entry(gpid).or_default().push((op, reply));
                    }
                },
            },
            Some(pb::kv_call::Call::Read(req)) => match read_from_pb(req) {
                Err(e) => refuse(e),
                Ok((gpid, op)) => {
                    if let Some(e) = node.roles.refuse_restoring(gpid.table.0) {
                        refuse(e);
                        continue;
                    }
                    let stale = node.roles.standby(gpid.table.0).is_some();
                    let reply = ReplyTo::Stream(StreamAnswer::read(id, stale, tx.clone()));
                    send(node, gpid, Input::Read { op, reply });
                }
            },
            None => refuse(Error::InvalidArgument("a pipeline call without a write or a read".into())),
        }
    }
    for (gpid, mut batch) in writes {
        let input = if batch.len() == 1 {
            let (op, reply) = batch.pop().expect("one write");
            Input::Write { op, reply }
        } else {
            Input::Writes(batch)
        };
        send(node, gpid, input);
    }
}

/// Hands `input` to the replica of `gpid`; if there is none (or it is closing), the answers are
/// the errors a unary call would get, sent as the replies are dropped.
fn send(node: &Node, gpid: Gpid, input: Input) {
    let Some(h) = node.registry.get(gpid) else {
        return input.refuse(Error::NotPrimary { gpid });
    };
    // Refused (queue full, replica closing): its requests are answered with the error.
    let _ = h.submit(input);
}
