//! The wire encoding of [`PeerMessage`], version 1, used between replica servers. Hand-written
//! (like the log format) so that this crate stays free of code generation; pinned by a
//! golden-bytes test. Decoding never panics: malformed input is `CORRUPTION`.
//!
//! ```text
//! message = version:u8(=1) tag:u8 fields...
//! config  = table partition ballot has_primary:u8 [primary] n secondary*
//! reign   = ballot base
//! entry   = ballot decree timetag:u64 BE mutation:bytes
//! ```
//! Integers are varints unless noted; `bytes` are length-prefixed.

use tern_core::codec::{Reader, Writer};
use tern_core::{Ballot, Decree, Error, Gpid, Mutation, NodeId, PartitionConfig, Result, Timetag};
use tern_storage::LogEntry;

use crate::message::{CheckpointRef, PeerMessage, Refusal, Reign};

pub const PEER_V1: u8 = 1;

const PREPARE: u8 = 1;
const PREPARE_ACK: u8 = 2;
const GROUP_CHECK: u8 = 3;
const LEARN_INVITE: u8 = 4;
const LEARN_REQUEST: u8 = 5;
const LEARN_RESPONSE: u8 = 6;
const LEARN_ACK: u8 = 7;

fn put_config(w: &mut Writer, c: &PartitionConfig) {
    w.varint(c.gpid.table.0.into()).varint(c.gpid.partition.0.into()).varint(c.ballot.0);
    match c.primary {
        Some(p) => w.u8(1).varint(p.0),
        None => w.u8(0),
    };
    w.varint(c.secondaries.len() as u64);
    for s in &c.secondaries {
        w.varint(s.0);
    }
}

fn put_reign(w: &mut Writer, r: &Reign) {
    w.varint(r.ballot.0).varint(r.base.0);
}

fn put_entry(w: &mut Writer, e: &LogEntry) {
    w.varint(e.ballot.0).varint(e.decree.0).u64_be(e.timetag.as_u64()).bytes(&e.mutation.encode());
}

/// Encodes a peer message.
pub fn encode(msg: &PeerMessage) -> Vec<u8> {
    let mut w = Writer::with_capacity(64);
    w.u8(PEER_V1);
    match msg {
        PeerMessage::Prepare { config, reign, committed, entry } => {
            w.u8(PREPARE);
            put_config(&mut w, config);
            put_reign(&mut w, reign);
            w.varint(committed.0);
            put_entry(&mut w, entry);
        }
        PeerMessage::PrepareAck { ballot, entry_ballot, decree, durable_through, refusal } => {
            w.u8(PREPARE_ACK)
                .varint(ballot.0)
                .varint(entry_ballot.0)
                .varint(decree.0)
                .varint(durable_through.0);
            w.u8(match refusal {
                None => 0,
                Some(Refusal::StaleBallot) => 1,
                Some(Refusal::NotMember) => 2,
                Some(Refusal::Inactive) => 3,
            });
        }
        PeerMessage::GroupCheck { config, reign, committed } => {
            w.u8(GROUP_CHECK);
            put_config(&mut w, config);
            put_reign(&mut w, reign);
            w.varint(committed.0);
        }
        PeerMessage::LearnInvite { config, reign } => {
            w.u8(LEARN_INVITE);
            put_config(&mut w, config);
            put_reign(&mut w, reign);
        }
        PeerMessage::LearnRequest { ballot, applied } => {
            w.u8(LEARN_REQUEST).varint(ballot.0).varint(applied.0);
        }
        PeerMessage::LearnResponse { config, reign, committed, through, checkpoint, entries } => {
            w.u8(LEARN_RESPONSE);
            put_config(&mut w, config);
            put_reign(&mut w, reign);
            w.varint(committed.0).varint(through.0);
            match checkpoint {
                Some(cp) => w.u8(1).varint(cp.id).varint(cp.decree.0).u64_be(cp.timetag.as_u64()),
                None => w.u8(0),
            };
            w.varint(entries.len() as u64);
            for e in entries {
                put_entry(&mut w, e);
            }
        }
        PeerMessage::LearnAck { ballot, through } => {
            w.u8(LEARN_ACK).varint(ballot.0).varint(through.0);
        }
    }
    w.finish()
}

fn u32_field(r: &mut Reader<'_>, field: &str) -> Result<u32> {
    let v = r.varint(field)?;
    u32::try_from(v).map_err(|_| Error::corruption(format!("peer message: {field} {v} exceeds u32")))
}

fn get_config(r: &mut Reader<'_>) -> Result<PartitionConfig> {
    let gpid = Gpid::new(u32_field(r, "table")?, u32_field(r, "partition")?);
    let ballot = Ballot(r.varint("ballot")?);
    let primary = match r.u8("has primary")? {
        0 => None,
        1 => Some(NodeId(r.varint("primary")?)),
        b => return Err(Error::corruption(format!("peer message: has-primary flag {b}"))),
    };
    let n = r.len("secondary count")?;
    let mut secondaries = Vec::with_capacity(n.min(16));
    for _ in 0..n {
        secondaries.push(NodeId(r.varint("secondary")?));
    }
    Ok(PartitionConfig { gpid, ballot, primary, secondaries })
}

fn get_reign(r: &mut Reader<'_>) -> Result<Reign> {
    Ok(Reign { ballot: Ballot(r.varint("reign ballot")?), base: Decree(r.varint("reign base")?) })
}

fn get_entry(r: &mut Reader<'_>) -> Result<LogEntry> {
    let ballot = Ballot(r.varint("entry ballot")?);
    let decree = Decree(r.varint("entry decree")?);
    let timetag = Timetag::from_u64(r.u64_be("entry timetag")?);
    let mutation = Mutation::decode(r.bytes("entry mutation")?)?;
    Ok(LogEntry { ballot, decree, timetag, mutation })
}

/// Decodes a peer message.
pub fn decode(data: &[u8]) -> Result<PeerMessage> {
    let mut r = Reader::new(data, "peer message");
    r.version("version", PEER_V1)?;
    let msg = match r.u8("tag")? {
        PREPARE => PeerMessage::Prepare {
            config: get_config(&mut r)?,
            reign: get_reign(&mut r)?,
            committed: Decree(r.varint("committed")?),
            entry: get_entry(&mut r)?,
        },
        PREPARE_ACK => PeerMessage::PrepareAck {
            ballot: Ballot(r.varint("ballot")?),
            entry_ballot: Ballot(r.varint("entry ballot")?),
            decree: Decree(r.varint("decree")?),
            durable_through: Decree(r.varint("durable through")?),
            refusal: match r.u8("refusal")? {
                0 => None,
                1 => Some(Refusal::StaleBallot),
                2 => Some(Refusal::NotMember),
                3 => Some(Refusal::Inactive),
                b => return Err(Error::corruption(format!("peer message: unknown refusal {b}"))),
            },
        },
        GROUP_CHECK => PeerMessage::GroupCheck {
            config: get_config(&mut r)?,
            reign: get_reign(&mut r)?,
            committed: Decree(r.varint("committed")?),
        },
        LEARN_INVITE => PeerMessage::LearnInvite { config: get_config(&mut r)?, reign: get_reign(&mut r)? },
        LEARN_REQUEST => PeerMessage::LearnRequest {
            ballot: Ballot(r.varint("ballot")?),
            applied: Decree(r.varint("applied")?),
        },
        LEARN_RESPONSE => {
            let config = get_config(&mut r)?;
            let reign = get_reign(&mut r)?;
            let committed = Decree(r.varint("committed")?);
            let through = Decree(r.varint("through")?);
            let checkpoint = match r.u8("has checkpoint")? {
                0 => None,
                1 => Some(CheckpointRef {
                    id: r.varint("checkpoint id")?,
                    decree: Decree(r.varint("checkpoint decree")?),
                    timetag: Timetag::from_u64(r.u64_be("checkpoint timetag")?),
                }),
                b => return Err(Error::corruption(format!("peer message: has-checkpoint flag {b}"))),
            };
            let n = r.len("entry count")?;
            let mut entries = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                entries.push(get_entry(&mut r)?);
            }
            PeerMessage::LearnResponse { config, reign, committed, through, checkpoint, entries }
        }
        LEARN_ACK => PeerMessage::LearnAck {
            ballot: Ballot(r.varint("ballot")?),
            through: Decree(r.varint("through")?),
        },
        t => return Err(Error::corruption(format!("peer message: unknown tag {t}"))),
    };
    r.finish()?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tern_core::WriteOp;

    fn cfg() -> PartitionConfig {
        PartitionConfig {
            gpid: Gpid::new(1, 2),
            ballot: Ballot(3),
            primary: Some(NodeId(4)),
            secondaries: vec![NodeId(5)],
        }
    }

    /// Pins version 1 of the peer protocol.
    #[test]
    fn golden_bytes_v1() {
        let msg = PeerMessage::PrepareAck {
            ballot: Ballot(3),
            entry_ballot: Ballot(2),
            decree: Decree(300),
            durable_through: Decree(299),
            refusal: Some(Refusal::Inactive),
        };
        let bytes = encode(&msg);
        assert_eq!(bytes, vec![1, 2, 3, 2, 0xac, 0x02, 0xab, 0x02, 3]);
        assert_eq!(decode(&bytes).unwrap(), msg);
        let g = encode(&PeerMessage::GroupCheck {
            config: cfg(),
            reign: Reign { ballot: Ballot(2), base: Decree(7) },
            committed: Decree(9),
        });
        assert_eq!(g, vec![1, 3, 1, 2, 3, 1, 4, 1, 5, 2, 7, 9]);
    }

    #[test]
    fn malformed_input_is_corruption() {
        assert!(decode(&[]).unwrap_err().is_fatal());
        assert!(decode(&[2, 1]).unwrap_err().to_string().contains("version 2"));
        assert!(decode(&[1, 99]).unwrap_err().to_string().contains("tag 99"));
        let mut ok = encode(&PeerMessage::LearnAck { ballot: Ballot(1), through: Decree(2) });
        ok.push(0);
        assert!(decode(&ok).is_err(), "trailing bytes");
    }

    fn entry() -> impl Strategy<Value = LogEntry> {
        (1u64..10, 1u64..1000, any::<u64>(), proptest::collection::vec(any::<u8>(), 0..8)).prop_map(
            |(b, d, t, v)| LogEntry {
                ballot: Ballot(b),
                decree: Decree(d),
                timetag: Timetag::from_u64(t),
                mutation: Mutation::new(vec![WriteOp::Set {
                    hash_key: v.clone(),
                    sort_key: vec![],
                    value: v,
                    ttl_secs: 0,
                }]),
            },
        )
    }

    fn config() -> impl Strategy<Value = PartitionConfig> {
        (
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            proptest::option::of(any::<u64>()),
            proptest::collection::vec(any::<u64>(), 0..4),
        )
            .prop_map(|(t, p, b, pr, s)| PartitionConfig {
                gpid: Gpid::new(t, p),
                ballot: Ballot(b),
                primary: pr.map(NodeId),
                secondaries: s.into_iter().map(NodeId).collect(),
            })
    }

    fn message() -> impl Strategy<Value = PeerMessage> {
        let reign =
            (any::<u64>(), any::<u64>()).prop_map(|(b, d)| Reign { ballot: Ballot(b), base: Decree(d) });
        prop_oneof![
            (config(), reign.clone(), any::<u64>(), entry()).prop_map(|(config, reign, c, entry)| {
                PeerMessage::Prepare { config, reign, committed: Decree(c), entry }
            }),
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), 0u8..4).prop_map(|(b, eb, d, t, r)| {
                PeerMessage::PrepareAck {
                    ballot: Ballot(b),
                    entry_ballot: Ballot(eb),
                    decree: Decree(d),
                    durable_through: Decree(t),
                    refusal: [
                        None,
                        Some(Refusal::StaleBallot),
                        Some(Refusal::NotMember),
                        Some(Refusal::Inactive),
                    ][r as usize],
                }
            }),
            (config(), reign.clone(), any::<u64>()).prop_map(|(config, reign, c)| PeerMessage::GroupCheck {
                config,
                reign,
                committed: Decree(c)
            }),
            (config(), reign.clone()).prop_map(|(config, reign)| PeerMessage::LearnInvite { config, reign }),
            (any::<u64>(), any::<u64>())
                .prop_map(|(b, a)| PeerMessage::LearnRequest { ballot: Ballot(b), applied: Decree(a) }),
            (
                config(),
                reign,
                any::<u64>(),
                any::<u64>(),
                proptest::option::of((any::<u64>(), any::<u64>(), any::<u64>())),
                proptest::collection::vec(entry(), 0..3)
            )
                .prop_map(|(config, reign, c, t, cp, entries)| PeerMessage::LearnResponse {
                    config,
                    reign,
                    committed: Decree(c),
                    through: Decree(t),
                    checkpoint: cp.map(|(id, d, tt)| CheckpointRef {
                        id,
                        decree: Decree(d),
                        timetag: Timetag::from_u64(tt)
                    }),
                    entries,
                }),
            (any::<u64>(), any::<u64>())
                .prop_map(|(b, t)| PeerMessage::LearnAck { ballot: Ballot(b), through: Decree(t) }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(m in message()) {
            prop_assert_eq!(decode(&encode(&m)).unwrap(), m);
        }

        #[test]
        fn truncation_is_detected(m in message(), cut in 0usize..10_000) {
            let b = encode(&m);
            let cut = cut % b.len();
            prop_assert!(decode(&b[..cut]).is_err());
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&data);
        }
    }
}
