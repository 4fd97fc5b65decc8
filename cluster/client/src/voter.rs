//! Talking to DR voters (`tern proxy --dr-name`, `tern witness`) as a promoter: the promise
//! that a table's old active copy gets no DR lease below an epoch any more. What the answers
//! mean is decided in `tern_drlease` ([`tern_drlease::tally_promises`],
//! `DrRules::lease_expiry`); this only carries the question and converts the answer.

use std::time::Duration;

use tern_drlease::PromiseAnswer;
use tern_proto::pb;

use crate::Pool;

/// A promise round's question, the same for every voter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromiseAsk {
    pub table: String,
    /// The cluster whose active copy is replaced.
    pub cluster: String,
    /// From now on no lease for a copy of `table` below this epoch.
    pub epoch: u64,
    /// The promoter's voter names, sorted (a voter refuses another set).
    pub voters: Vec<String>,
    /// Who asks (for the voters' logs).
    pub promoter: String,
}

/// A voter's answer as the promoter reads it.
pub fn promise_answer_from_pb(r: pb::DrPromiseResponse) -> PromiseAnswer {
    PromiseAnswer {
        voter: r.voter,
        promised: if r.promised { Ok(()) } else { Err(r.refused) },
        since_grant: Duration::from_millis(r.since_grant_ms),
        lease: Duration::from_millis(r.lease_ms),
        granted_epoch: r.granted_epoch_known.then_some(r.granted_epoch),
    }
}

/// Asks the voter at `addr` for the promise, within `deadline`; `Err`: why no answer came.
pub async fn ask_promise(
    pool: &Pool,
    addr: &str,
    ask: &PromiseAsk,
    deadline: Duration,
) -> Result<PromiseAnswer, String> {
    let ch = pool.channel(addr).map_err(|e| e.to_string())?;
    let mut c = pb::dr_voter_client::DrVoterClient::new(ch);
    let req = pb::DrPromiseRequest {
        table: ask.table.clone(),
        cluster: ask.cluster.clone(),
        epoch: ask.epoch,
        voters: ask.voters.clone(),
        promoter: ask.promoter.clone(),
    };
    match tokio::time::timeout(deadline, c.promise(req)).await {
        Err(_) => Err(format!("no answer from {addr} within {deadline:?}")),
        Ok(Err(s)) => Err(s.message().to_string()),
        Ok(Ok(r)) => Ok(promise_answer_from_pb(r.into_inner())),
    }
}
