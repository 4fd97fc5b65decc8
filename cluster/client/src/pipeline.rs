//! The client side of `Kv.Pipeline`: one long-lived stream per replica server carries every
//! write and read this client sends there.
//!
//! A driver task per server owns the stream: it puts every call waiting at one moment into one
//! frame, and hands each answer to its caller by id as it arrives. At low load a frame carries one
//! call and leaves at once; under load calls gather while the previous frame is on its way, so
//! many concurrent callers share one HTTP/2 message and one server wake-up, and the writes of one
//! partition in a frame become one log entry there. (TiKV's clients batch commands to a store
//! the same way.) If the stream breaks, every call in flight on it fails as a transport error
//! (retryable; a write's outcome is unknown); the next call opens a new stream.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tern_core::{Error, ErrorCode, Result};
use tern_proto::pb;
use tern_proto::pb::kv_client::KvClient;
use tern_proto::prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::transport::error_of;

/// At most this many calls, or about this many bytes (at least one call), go in one frame.
const CALLS_PER_FRAME: usize = 1024;
const FRAME_BYTES: usize = 1 << 20;
/// The largest frame of answers accepted (one answer may be as large as a unary reply).
const MAX_ANSWER_FRAME: usize = 64 << 20;
/// How long opening the stream may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

type Answer = Result<pb::kv_answer::Answer>;

struct Pending {
    call: pb::kv_call::Call,
    reply: oneshot::Sender<Answer>,
}

/// The pipelines of one client, one per server address, started on first use.
#[derive(Debug, Default)]
pub(crate) struct Pipelines {
    drivers: Mutex<HashMap<String, mpsc::UnboundedSender<Pending>>>,
}

impl Pipelines {
    /// Sends `call` to the server at `addr` (over `channel`, if the pipeline is new) and waits
    /// for its answer. The caller bounds the wait.
    pub(crate) async fn call(
        &self,
        addr: &str,
        channel: impl FnOnce() -> Result<Channel>,
        call: pb::kv_call::Call,
    ) -> Answer {
        let (reply, answer) = oneshot::channel();
        let tx = {
            let mut drivers = self.drivers.lock().unwrap_or_else(|e| e.into_inner());
            match drivers.get(addr) {
                Some(tx) if !tx.is_closed() => tx.clone(),
                _ => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(drive(addr.to_string(), channel()?, rx));
                    drivers.insert(addr.to_string(), tx.clone());
                    tx
                }
            }
        };
        if tx.send(Pending { call, reply }).is_err() {
            return Err(broken(addr, "its pipeline stopped"));
        }
        answer.await.map_err(|_| broken(addr, "its pipeline stopped"))?
    }
}

fn broken(addr: &str, why: &str) -> Error {
    Error::Remote {
        code: ErrorCode::Transport,
        message: format!("the connection to {addr} failed during the call: {why}"),
    }
}

/// Owns the stream to `addr`: opens it when a call comes, sends frames, dispatches answers,
/// and ends when the client is dropped.
async fn drive(addr: String, channel: Channel, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut next_id = 0u64;
    // Waits for a call before (re)opening, so an idle client holds no stream.
    while let Some(first) = rx.recv().await {
        let mut pending: HashMap<u64, oneshot::Sender<Answer>> = HashMap::new();
        let (out, out_rx) = mpsc::channel::<pb::KvCalls>(32);
        let frame = gather(first, &mut rx, &mut next_id, &mut pending);
        let _ = out.try_send(frame); // the channel is empty: it fits
        let mut client = KvClient::new(channel.clone()).max_decoding_message_size(MAX_ANSWER_FRAME);
        let mut answers =
            match tokio::time::timeout(OPEN_TIMEOUT, client.pipeline(ReceiverStream::new(out_rx))).await {
                Ok(Ok(resp)) => resp.into_inner(),
                Ok(Err(status)) => {
                    fail_all(pending, &stream_error(&addr, &status));
                    continue;
                }
                Err(_) => {
                    fail_all(pending, &broken(&addr, "opening the pipeline timed out"));
                    continue;
                }
            };
        let mut prune = tokio::time::interval(Duration::from_secs(10));
        let why = loop {
            tokio::select! {
                p = rx.recv() => {
                    let Some(p) = p else { return }; // the client is gone
                    // Callers woken by the same answers send their next calls first and share
                    // this frame (one HTTP/2 write instead of one each).
                    tokio::task::yield_now().await;
                    let frame = gather(p, &mut rx, &mut next_id, &mut pending);
                    if out.send(frame).await.is_err() {
                        break broken(&addr, "the pipeline ended");
                    }
                }
                a = answers.message() => match a {
                    Ok(Some(frame)) => {
                        for a in frame.answers {
                            if let Some(reply) = pending.remove(&a.id) {
                                let _ = reply.send(answer_from_pb(a));
                            }
                        }
                    }
                    Ok(None) => break broken(&addr, "the server ended the pipeline"),
                    Err(status) => break stream_error(&addr, &status),
                },
                // Callers that gave up (timed out) no longer wait for their answers.
                _ = prune.tick() => pending.retain(|_, reply| !reply.is_closed()),
            }
        };
        tracing::debug!("pipeline to {addr} broke: {why}");
        fail_all(pending, &why);
    }
}

/// `first` and every call already waiting behind it (within the frame limits), numbered.
fn gather(
    first: Pending,
    rx: &mut mpsc::UnboundedReceiver<Pending>,
    next_id: &mut u64,
    pending: &mut HashMap<u64, oneshot::Sender<Answer>>,
) -> pb::KvCalls {
    let mut calls = Vec::new();
    let mut bytes = 0;
    let mut next = Some(first);
    while let Some(p) = next {
        *next_id += 1;
        let call = pb::KvCall { id: *next_id, call: Some(p.call) };
        bytes += call.encoded_len();
        calls.push(call);
        pending.insert(*next_id, p.reply);
        next = if calls.len() < CALLS_PER_FRAME && bytes < FRAME_BYTES { rx.try_recv().ok() } else { None };
    }
    pb::KvCalls { calls }
}

/// A failure of the stream itself (not of one call): the connection broke, the server went
/// away, or it could not take the stream. Every call on it may or may not have happened; tonic
/// reports a broken body as `UNKNOWN` ("h2 protocol error"), which is no broken invariant here.
fn stream_error(addr: &str, status: &tonic::Status) -> Error {
    match error_of(status) {
        Error::Remote { code, message } if code != ErrorCode::InvariantViolated => {
            Error::Remote { code, message }
        }
        _ => broken(addr, &format!("{}: {}", status.code(), status.message())),
    }
}

fn fail_all(pending: HashMap<u64, oneshot::Sender<Answer>>, e: &Error) {
    for (_, reply) in pending {
        let _ = reply.send(Err(e.clone()));
    }
}

fn answer_from_pb(a: pb::KvAnswer) -> Answer {
    if a.error_code != 0 {
        let code = u16::try_from(a.error_code)
            .ok()
            .and_then(ErrorCode::from_u16)
            .unwrap_or(ErrorCode::InvariantViolated);
        return Err(Error::Remote { code, message: a.error_message });
    }
    a.answer.ok_or_else(|| Error::invariant(format!("the server answered call {} with nothing", a.id)))
}
