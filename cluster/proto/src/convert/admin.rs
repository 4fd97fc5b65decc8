//! The administration states of `tern_core::admin` ⇄ their protobuf enums. The only place they
//! convert: a value from the wire that is UNSPECIFIED or unknown (a newer peer, a bug) is an
//! `INVALID_ARGUMENT` naming the field, never a silent default.

use tern_core::{
    ConflictKind, CopyState, DrRole, Error, FailoverOutcome, LinkAction, LinkChange, LinkMode, LinkStatus,
    Result, TableStatus,
};

use crate::pb;

/// A `tern_core::admin` state with a protobuf enum of the same name and variants.
pub trait PbEnum: Sized + Copy {
    /// The wire value.
    fn to_pb(self) -> i32;
    /// The state a wire value stands for; `field` names it in the error.
    fn from_pb(value: i32, field: &str) -> Result<Self>;
}

fn unspecified(field: &str) -> Error {
    Error::InvalidArgument(format!("{field} is not specified"))
}

fn unknown(field: &str, value: i32) -> Error {
    Error::InvalidArgument(format!("{field} has the unknown value {value}"))
}

macro_rules! pb_enum {
    ($core:ident { $($variant:ident),+ $(,)? }) => {
        impl PbEnum for $core {
            fn to_pb(self) -> i32 {
                match self {
                    $($core::$variant => pb::$core::$variant as i32,)+
                }
            }

            fn from_pb(value: i32, field: &str) -> Result<$core> {
                match pb::$core::try_from(value) {
                    $(Ok(pb::$core::$variant) => Ok($core::$variant),)+
                    Ok(pb::$core::Unspecified) => Err(unspecified(field)),
                    Err(_) => Err(unknown(field, value)),
                }
            }
        }
    };
}

pb_enum!(DrRole { Active, Standby });
pb_enum!(LinkStatus { Init, SyncingCheckpoint, Shipping, Paused, Removed });
pb_enum!(LinkMode { OneWay, TwoWay });
pb_enum!(LinkAction { Pause, Resume, Remove, SetThrottle });
pb_enum!(CopyState { Active, Standby, Unreachable, NoTable });
pb_enum!(FailoverOutcome { Promoted, Refused, Fenced, LostRace, Failed, WaitingForLease });
pb_enum!(ConflictKind { ShippedLost, RemoteOverwritten });

/// A table status as `TableInfo` carries it: the enum and `dropped_at_ms` (0 while serving).
pub fn table_status_to_pb(s: TableStatus) -> (i32, u64) {
    match s {
        TableStatus::Serving => (pb::TableStatus::Serving as i32, 0),
        TableStatus::Dropped { at_ms } => (pb::TableStatus::Dropped as i32, at_ms),
    }
}

pub fn table_status_from_pb(status: i32, dropped_at_ms: u64, field: &str) -> Result<TableStatus> {
    match pb::TableStatus::try_from(status) {
        Ok(pb::TableStatus::Serving) => Ok(TableStatus::Serving),
        Ok(pb::TableStatus::Dropped) => Ok(TableStatus::Dropped { at_ms: dropped_at_ms }),
        Ok(pb::TableStatus::Unspecified) => Err(unspecified(field)),
        Err(_) => Err(unknown(field, status)),
    }
}

pub fn link_change_to_pb(id: u64, change: LinkChange) -> pb::DupChangeRequest {
    pb::DupChangeRequest {
        id,
        action: change.action().to_pb(),
        max_bytes_per_sec: change.max_bytes_per_sec(),
    }
}

pub fn link_change_from_pb(r: &pb::DupChangeRequest) -> Result<LinkChange> {
    Ok(LinkChange::new(LinkAction::from_pb(r.action, "action")?, r.max_bytes_per_sec))
}

// ---- unplanned failover records ----

pub fn failover_to_pb(r: &tern_core::FailoverRecord) -> pb::DrFailoverRecord {
    let part = |p: &tern_core::PartitionLoss| {
        let mut out = pb::DrPartitionLoss { partition: p.partition, ..Default::default() };
        match &p.decrees {
            Ok(None) => (out.decrees_known, out.decrees_none) = (true, true),
            Ok(Some((a, b))) => (out.decrees_known, out.first_decree, out.last_decree) = (true, *a, *b),
            Err(why) => out.decrees_unknown = why.clone(),
        }
        match &p.applied_through_timetag {
            Ok(t) => (out.timetag_known, out.applied_through_timetag) = (true, *t),
            Err(why) => out.timetag_unknown = why.clone(),
        }
        out
    };
    pb::DrFailoverRecord {
        table: r.table.clone(),
        from_cluster: r.from.clone(),
        to_cluster: r.to.clone(),
        epoch: r.epoch,
        at_ms: r.at_ms,
        exact: r.exact,
        writes_end_known: r.writes_end_before_ms.is_some(),
        writes_end_before_ms: r.writes_end_before_ms.unwrap_or_default(),
        partitions: r.partitions.iter().map(part).collect(),
        took_ms: r.took_ms,
        unknown: r.unknown.clone().unwrap_or_default(),
    }
}

pub fn failover_from_pb(r: pb::DrFailoverRecord) -> tern_core::FailoverRecord {
    let unknown = |why: String| if why.is_empty() { "not reported".to_string() } else { why };
    let part = |p: pb::DrPartitionLoss| tern_core::PartitionLoss {
        partition: p.partition,
        decrees: match (p.decrees_known, p.decrees_none) {
            (true, true) => Ok(None),
            (true, false) => Ok(Some((p.first_decree, p.last_decree))),
            (false, _) => Err(unknown(p.decrees_unknown)),
        },
        applied_through_timetag: if p.timetag_known {
            Ok(p.applied_through_timetag)
        } else {
            Err(unknown(p.timetag_unknown))
        },
    };
    tern_core::FailoverRecord {
        table: r.table,
        from: r.from_cluster,
        to: r.to_cluster,
        epoch: r.epoch,
        at_ms: r.at_ms,
        exact: r.exact,
        writes_end_before_ms: r.writes_end_known.then_some(r.writes_end_before_ms),
        partitions: r.partitions.into_iter().map(part).collect(),
        took_ms: r.took_ms,
        unknown: (!r.unknown.is_empty()).then_some(r.unknown),
    }
}

#[cfg(test)]
mod tests {
    use tern_core::ErrorCode;

    use super::*;

    fn round_trips<T: PbEnum + PartialEq + std::fmt::Debug>(all: &[T]) {
        for &v in all {
            assert_ne!(v.to_pb(), 0, "{v:?} must not travel as UNSPECIFIED");
            assert_eq!(T::from_pb(v.to_pb(), "f").unwrap(), v);
        }
    }

    #[test]
    fn every_state_round_trips() {
        round_trips(DrRole::ALL);
        round_trips(LinkStatus::ALL);
        round_trips(LinkMode::ALL);
        round_trips(LinkAction::ALL);
        round_trips(CopyState::ALL);
        round_trips(FailoverOutcome::ALL);
        round_trips(ConflictKind::ALL);
        for s in [TableStatus::Serving, TableStatus::Dropped { at_ms: 5 }] {
            let (status, at) = table_status_to_pb(s);
            assert_eq!(table_status_from_pb(status, at, "f").unwrap(), s);
        }
        for c in [LinkChange::Pause, LinkChange::Remove, LinkChange::SetThrottle { max_bytes_per_sec: 9 }] {
            assert_eq!(link_change_from_pb(&link_change_to_pb(3, c)).unwrap(), c);
        }
    }

    #[test]
    fn unspecified_or_unknown_values_are_invalid_and_name_the_field() {
        let e = DrRole::from_pb(0, "table.role").unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        assert!(e.to_string().contains("table.role is not specified"), "{e}");
        let e = LinkStatus::from_pb(99, "link.status").unwrap_err();
        assert!(e.to_string().contains("link.status has the unknown value 99"), "{e}");
        assert!(table_status_from_pb(0, 0, "table.status").is_err());
        let e = link_change_from_pb(&pb::DupChangeRequest { id: 1, ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("action"), "{e}");
    }

    #[test]
    fn a_failover_record_round_trips_with_its_unknowns() {
        let r = tern_core::FailoverRecord {
            table: "t".into(),
            from: "a".into(),
            to: "b".into(),
            epoch: 3,
            at_ms: 9,
            exact: false,
            writes_end_before_ms: Some(12),
            partitions: vec![
                tern_core::PartitionLoss { partition: 0, decrees: Ok(None), applied_through_timetag: Ok(5) },
                tern_core::PartitionLoss {
                    partition: 1,
                    decrees: Ok(Some((4, 9))),
                    applied_through_timetag: Err("not heard".into()),
                },
                tern_core::PartitionLoss {
                    partition: 2,
                    decrees: Err("old side unreachable".into()),
                    applied_through_timetag: Ok(0),
                },
            ],
            took_ms: 7,
            unknown: None,
        };
        assert_eq!(super::failover_from_pb(super::failover_to_pb(&r)), r);
        let none =
            tern_core::FailoverRecord { writes_end_before_ms: None, unknown: Some("no link".into()), ..r };
        assert_eq!(super::failover_from_pb(super::failover_to_pb(&none)), none);
    }
}
