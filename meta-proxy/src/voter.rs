//! The DR voter's gRPC face (`DrVoter`: `Renew`, `Promise`), served by `tern proxy --dr-name`
//! and `tern witness`, and a promoter's side of promises. The decisions are in
//! [`crate::lease`]; this module only carries them out.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tern_core::{Error, Result};
use tern_proto::pb;
use tonic::{Request, Response, Status};

use crate::lease::{Promise, Voter, VoterConfig};
use crate::watch::Watcher;

/// The DR lease settings of a proxy or witness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrOptions {
    /// Every DR voter: name and address (`--dr-voters NAME=ADDR,...`), the same list every
    /// cluster's meta servers are given. Empty: this process neither grants a lease nor can
    /// learn when one ends.
    pub voters: Vec<(String, String)>,
    /// This process's name among them, if it is a voter (`--dr-name`).
    pub name: Option<String>,
    /// The lease this voter grants (`--dr-lease`).
    pub lease: Duration,
    /// Promote without waiting for the old active copy's lease (`--unsafe-failover-without-lease`).
    pub unsafe_failover_without_lease: bool,
}

impl Default for DrOptions {
    fn default() -> DrOptions {
        DrOptions {
            voters: Vec::new(),
            name: None,
            lease: Duration::from_secs(5),
            unsafe_failover_without_lease: false,
        }
    }
}

impl DrOptions {
    /// The voters' names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.voters.iter().map(|(n, _)| n.clone()).collect();
        n.sort();
        n
    }

    pub fn validate(&self) -> Result<()> {
        let names = self.names();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::InvalidArgument(format!(
                "--dr-voters names a voter twice: {}",
                names.join(", ")
            )));
        }
        if let Some(me) = &self.name
            && !names.contains(me)
        {
            return Err(Error::InvalidArgument(format!(
                "--dr-name {me} is not among --dr-voters ({}): a voter must be in the set it votes in",
                names.join(", ")
            )));
        }
        if self.lease.is_zero() {
            return Err(Error::InvalidArgument("--dr-lease must be above 0".into()));
        }
        Ok(())
    }
}

/// This process's voter, if it is one.
#[derive(Debug)]
pub struct VoterState {
    voter: Mutex<Voter>,
}

impl VoterState {
    pub fn new(name: &str, opts: &DrOptions) -> VoterState {
        let cfg = VoterConfig { name: name.to_string(), voters: opts.names(), lease: opts.lease };
        VoterState { voter: Mutex::new(Voter::new(cfg, Instant::now())) }
    }

    pub fn lock(&self) -> MutexGuard<'_, Voter> {
        self.voter.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `DrVoter` gRPC service.
#[derive(Debug)]
pub struct VoterService {
    pub(crate) watcher: Arc<Watcher>,
}

fn voter_of(w: &Watcher) -> std::result::Result<&VoterState, Status> {
    w.voter.as_ref().ok_or_else(|| {
        tern_proto::status::to_status(&Error::InvalidArgument(
            "this process is not a DR voter (start it with --dr-name)".into(),
        ))
    })
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

#[tonic::async_trait]
impl pb::dr_voter_server::DrVoter for VoterService {
    async fn renew(
        &self,
        req: Request<pb::DrRenewRequest>,
    ) -> std::result::Result<Response<pb::DrRenewResponse>, Status> {
        let r = req.into_inner();
        let v = voter_of(&self.watcher)?;
        let active: BTreeMap<String, u64> = r.active.iter().map(|t| (t.table.clone(), t.epoch)).collect();
        // Watch what clusters hold active, so that a copy active elsewhere at a higher epoch is
        // seen (and the old one withheld and fenced) whoever asks about the table.
        self.watcher.note_lease_tables(active.keys());
        let mut voter = v.lock();
        let renewal = voter.renew(Instant::now(), &r.cluster, &r.voters, &active);
        let name = voter.name().to_string();
        drop(voter);
        if !renewal.superseded.is_empty() {
            tracing::warn!(
                cluster = r.cluster,
                "DR lease withheld for copies active elsewhere at a higher epoch: {:?}",
                renewal.superseded
            );
        }
        let (granted, lease_ms, refused) = match renewal.granted {
            Ok(l) => (true, ms(l), String::new()),
            Err(why) => {
                tracing::warn!(cluster = r.cluster, "DR lease refused: {why}");
                (false, 0, why)
            }
        };
        Ok(Response::new(pb::DrRenewResponse {
            voter: name,
            granted,
            lease_ms,
            refused,
            superseded: renewal
                .superseded
                .into_iter()
                .map(|(table, epoch)| pb::DrTableEpoch { table, epoch })
                .collect(),
        }))
    }

    async fn promise(
        &self,
        req: Request<pb::DrPromiseRequest>,
    ) -> std::result::Result<Response<pb::DrPromiseResponse>, Status> {
        let r = req.into_inner();
        let v = voter_of(&self.watcher)?;
        let mut voter = v.lock();
        let pledge = voter.promise(Instant::now(), &r.table, &r.cluster, r.epoch, &r.voters);
        let name = voter.name().to_string();
        drop(voter);
        match &pledge.promised {
            Ok(()) => tracing::warn!(
                table = r.table,
                "DR promise to {}: no lease for a copy of {} below epoch {} (replacing {}; last granted it {:.1}s ago)",
                r.promoter,
                r.table,
                r.epoch,
                r.cluster,
                pledge.since_grant.as_secs_f64()
            ),
            Err(why) => tracing::warn!(table = r.table, "DR promise refused to {}: {why}", r.promoter),
        }
        Ok(Response::new(pb::DrPromiseResponse {
            voter: name,
            promised: pledge.promised.is_ok(),
            refused: pledge.promised.err().unwrap_or_default(),
            since_grant_ms: ms(pledge.since_grant),
            lease_ms: ms(pledge.lease),
            granted_epoch_known: pledge.granted_epoch.is_some(),
            granted_epoch: pledge.granted_epoch.unwrap_or_default(),
        }))
    }
}

/// Asks every voter to promise that no copy of `table` below `epoch` gets the lease any more
/// (replacing `old`'s), each within a second. Returns the promises and, for the others, why not.
pub async fn collect_promises(
    watcher: &Watcher,
    table: &str,
    old: &str,
    epoch: u64,
) -> (Vec<Promise>, Vec<String>) {
    let dr = &watcher.dr;
    let promoter = dr.name.clone().unwrap_or_else(|| "a proxy".into());
    let req = pb::DrPromiseRequest {
        table: table.to_string(),
        cluster: old.to_string(),
        epoch,
        voters: dr.names(),
        promoter,
    };
    let asks = dr.voters.iter().map(|(name, addr)| {
        let req = req.clone();
        async move {
            let answer: std::result::Result<pb::DrPromiseResponse, String> =
                match (&watcher.voter, dr.name.as_deref() == Some(name.as_str())) {
                    // This process's own voter: no network in between.
                    (Some(v), true) => {
                        let pledge = v.lock().promise(Instant::now(), table, old, epoch, &req.voters);
                        Ok(pb::DrPromiseResponse {
                            voter: name.clone(),
                            promised: pledge.promised.is_ok(),
                            refused: pledge.promised.err().unwrap_or_default(),
                            since_grant_ms: ms(pledge.since_grant),
                            lease_ms: ms(pledge.lease),
                            granted_epoch_known: pledge.granted_epoch.is_some(),
                            granted_epoch: pledge.granted_epoch.unwrap_or_default(),
                        })
                    }
                    _ => match watcher.pool.channel(addr) {
                        Err(e) => Err(e.to_string()),
                        Ok(ch) => {
                            let mut c = pb::dr_voter_client::DrVoterClient::new(ch);
                            match tokio::time::timeout(Duration::from_secs(1), c.promise(req)).await {
                                Err(_) => Err(format!("no answer from {addr} within 1s")),
                                Ok(Err(s)) => Err(s.message().to_string()),
                                Ok(Ok(r)) => Ok(r.into_inner()),
                            }
                        }
                    },
                };
            (name.clone(), Instant::now(), answer)
        }
    });
    let answers = futures::future::join_all(asks)
        .await
        .into_iter()
        .map(|(name, at, answer)| (name, at, answer.map(tern_client::voter::promise_answer_from_pb)));
    tern_drlease::tally_promises(answers)
}
