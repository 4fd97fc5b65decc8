use std::collections::BTreeMap;

use tern_core::{FailoverRecord, PartitionLoss, Timetag};

use super::*;

fn ack(key: &str, seq: u64, sent_ms: u64, acked_ms: u64) -> Ack {
    Ack { hash_key: key.to_string(), seq, sent_ms, acked_ms, acked_wall_ms: 1_000_000 + acked_ms, target: 0 }
}

#[test]
fn a_scratch_table_must_be_a_drill_table_that_does_not_exist() {
    let none: Vec<(&str, &[String])> = Vec::new();
    assert!(check_scratch("_drill_1", none.clone()).is_ok());
    assert!(check_scratch("orders", none.clone()).unwrap_err().contains("never a table with client data"));
    assert!(check_scratch("_drill_", none).is_err());
    let dc2 = vec!["_drill_1".to_string()];
    let existing = vec![("dc1", &[][..]), ("dc2", dc2.as_slice())];
    assert!(check_scratch("_drill_1", existing).unwrap_err().contains("exists in dc2 already"));
    assert_eq!(scratch_name(42), "_drill_42");
}

#[test]
fn unavailability_is_the_longest_gap_without_an_ack_until_writes_come_back() {
    // Acks every 10 ms, then nothing from 100 to 400, then back.
    let mut acks: Vec<Ack> = (0..10).map(|i| ack("k", i, i * 10, i * 10 + 1)).collect();
    acks.push(ack("k", 20, 390, 400));
    acks.push(ack("k", 21, 400, 410));
    // The operation ran 95..=380: the last ack before it was at 91.
    assert_eq!(unavailability_ms(&acks, 95, 380), Some(400 - 91));
    // Writes never came back after the operation.
    assert_eq!(unavailability_ms(&acks, 95, 500), None);
    // No gap: the first ack after the end is right at the start.
    assert_eq!(unavailability_ms(&[ack("k", 1, 5, 6)], 5, 5), Some(1));
}

#[test]
fn rto_runs_from_the_loss_to_the_first_ack_of_the_new_side_sent_after_it() {
    let mut acks =
        vec![ack("a", 1, 90, 120), ack("b", 2, 110, 130), ack("c", 3, 150, 300), ack("d", 4, 310, 320)];
    acks[2].target = 1;
    acks[3].target = 1;
    assert_eq!(rto_ms(&acks, 100, |a| a.target == 1), Some(200));
    assert_eq!(rto_ms(&acks, 400, |a| a.target == 1), None);
}

#[test]
fn zero_loss_passes_when_each_key_holds_its_newest_ack_or_newer() {
    let acks = vec![ack("k1", 1, 0, 1), ack("k1", 5, 2, 3), ack("k2", 2, 0, 1)];
    let want = latest(&acks);
    assert_eq!(want, BTreeMap::from([("k1".into(), 5), ("k2".into(), 2)]));
    let found = BTreeMap::from([("k1".to_string(), Some(6)), ("k2".to_string(), Some(2))]);
    assert!(zero_loss("dc1", &want, &found).passed);
    let found = BTreeMap::from([("k1".to_string(), Some(4)), ("k2".to_string(), None)]);
    let z = zero_loss("dc1", &want, &found);
    assert!(!z.passed);
    assert_eq!(z.keys_lost, 2);
    // Nothing checked is not a pass.
    assert!(!zero_loss("dc1", &BTreeMap::new(), &BTreeMap::new()).passed);
}

fn record(parts: Vec<PartitionLoss>) -> FailoverRecord {
    FailoverRecord {
        table: "_drill_1".into(),
        from: "dc1".into(),
        to: "dc2".into(),
        epoch: 4,
        at_ms: 0,
        exact: true,
        writes_end_before_ms: None,
        partitions: parts,
        took_ms: 0,
        unknown: None,
    }
}

fn tt(ms: u64) -> u64 {
    Timetag::new(ms, 0, tern_core::ClusterId::new(1).unwrap(), false).as_u64()
}

#[test]
fn lost_writes_must_fall_in_partitions_the_loss_report_says_lost_something() {
    let acks = [ack("p0-a", 1, 10, 20), ack("p0-b", 2, 30, 40), ack("p1-a", 3, 50, 60), ack("p1-b", 4, 5, 6)];
    let refs: Vec<&Ack> = acks.iter().collect();
    let part = |k: &str| if k.starts_with("p0") { 0 } else { 1 };
    let found = BTreeMap::from([("p1-b".to_string(), true)]);
    let good = record(vec![
        PartitionLoss {
            partition: 0,
            decrees: Ok(Some((10, 11))),
            applied_through_timetag: Ok(tt(1_000_000)),
        },
        PartitionLoss { partition: 1, decrees: Ok(Some((7, 7))), applied_through_timetag: Ok(tt(1_000_000)) },
    ]);
    let c = check_loss(&refs, &found, Some(&good), part);
    assert!(c.passed, "{c:?}");
    assert_eq!((c.writes_checked, c.writes_lost, c.outside_report), (4, 3, 0));
    assert_eq!(c.lost_span_ms, 60 - 10);
    assert_eq!(c.reported_decrees, Some(3));
    assert_eq!(c.lost_by_partition, BTreeMap::from([(0, 2), (1, 1)]));

    // The report says partition 1 lost nothing: the lost write there is outside it.
    let bad = record(vec![
        PartitionLoss {
            partition: 0,
            decrees: Ok(Some((10, 11))),
            applied_through_timetag: Ok(tt(1_000_000)),
        },
        PartitionLoss { partition: 1, decrees: Ok(None), applied_through_timetag: Ok(tt(1_000_000)) },
    ]);
    let c = check_loss(&refs, &found, Some(&bad), part);
    assert!(!c.passed);
    assert_eq!(c.outside_report, 1);
    // A lost write acknowledged well before the applied-through bound is outside it too.
    let late = record(vec![
        PartitionLoss {
            partition: 0,
            decrees: Ok(Some((10, 11))),
            applied_through_timetag: Ok(tt(1_000_000)),
        },
        PartitionLoss { partition: 1, decrees: Ok(Some((7, 7))), applied_through_timetag: Ok(tt(1_010_000)) },
    ]);
    assert_eq!(check_loss(&refs, &found, Some(&late), part).outside_report, 1);
    // No report, or nothing checked: not a pass.
    assert!(!check_loss(&refs, &found, None, part).passed);
    assert!(!check_loss(&[], &found, Some(&good), part).passed);
}

#[test]
fn a_drill_passes_only_when_every_check_passed_and_it_cleaned_up() {
    let sw = SwitchoverFigures { write_unavailable_ms: Some(5), ..Default::default() };
    let mut r = DrillReport {
        switchovers: vec![sw.clone(), sw],
        zero_loss: Some(ZeroLossCheck { passed: true, ..Default::default() }),
        failover_rto_ms: Some(10),
        loss: Some(LossCheck { passed: true, ..Default::default() }),
        cleaned_up: Some(true),
        ..Default::default()
    };
    r.judge();
    assert!(r.passed, "{}", r.summary);
    r.cleaned_up = Some(false);
    r.judge();
    assert!(!r.passed);
    assert!(r.summary.contains("cleanup did not finish"), "{}", r.summary);
    r.cleaned_up = Some(true);
    r.error = Some("interrupted".into());
    r.judge();
    assert_eq!(r.summary, "drill FAILED: interrupted");
}

#[test]
fn a_lost_write_where_the_report_only_bounds_decrees_is_checked_by_its_timetag_bound() {
    let acks = [ack("p0-a", 1, 10, 20)];
    let refs: Vec<&Ack> = acks.iter().collect();
    let found = BTreeMap::new();
    let bounded = |t: Result<u64, String>| {
        record(vec![PartitionLoss {
            partition: 0,
            decrees: Err("at least decrees 3..=4: its last report predates the end of dc1's writes".into()),
            applied_through_timetag: t,
        }])
    };
    let c = check_loss(&refs, &found, Some(&bounded(Ok(tt(1_000_000)))), |_| 0);
    assert!(c.passed, "{c:?}");
    assert_eq!((c.writes_lost, c.timetag_bound_only, c.outside_report), (1, 1, 0));
    // Neither decrees nor timetags known: nothing bounds the loss.
    let c = check_loss(&refs, &found, Some(&bounded(Err("not heard".into()))), |_| 0);
    assert!(!c.passed);
    assert_eq!(c.outside_report, 1);
}
