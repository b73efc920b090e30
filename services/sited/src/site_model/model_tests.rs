use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

fn id(name: &str) -> SensorId {
    SensorId::new(name).unwrap()
}

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn sample(sensor: &str, value: f64, at: u64) -> SensorEvent {
    SensorEvent::Sample {
        sensor: id(sensor),
        value: Value::Number(value),
        at: t(at),
    }
}

fn lost(sensor: &str, reason: LostReason, at: u64) -> SensorEvent {
    SensorEvent::Lost {
        sensor: id(sensor),
        reason,
        at: t(at),
    }
}

fn model(text: &str) -> SiteModel {
    SiteModel::new(&toml::from_str(text).unwrap())
}

const SHIELDED: &str = r#"
[[zone]]
name = "hall-a"
shielding = { outside = "field.out", inside = "field.in", required_db = 80.0 }
"#;

#[test]
fn shielding_is_outside_less_inside_with_its_margin() {
    let mut site = model(SHIELDED);
    assert_eq!(
        site.on_event(&sample("field.out", 130.0, 1)),
        [],
        "waits for the inside probe"
    );
    assert_eq!(
        site.on_event(&sample("field.in", 45.0, 2)),
        [
            sample("zone.hall-a.shielding_db", 85.0, 2),
            sample("zone.hall-a.shielding_margin_db", 5.0, 2),
        ]
    );
    // A leak: more field gets in, the margin goes negative.
    assert_eq!(
        site.on_event(&sample("field.in", 62.5, 3)),
        [
            sample("zone.hall-a.shielding_db", 67.5, 3),
            sample("zone.hall-a.shielding_margin_db", -12.5, 3),
        ]
    );
}

#[test]
fn a_lost_probe_makes_the_shielding_lost_with_its_reason_once() {
    let mut site = model(SHIELDED);
    site.on_event(&sample("field.out", 130.0, 1));
    site.on_event(&sample("field.in", 45.0, 2));
    assert_eq!(
        site.on_event(&lost("field.in", LostReason::Timeout, 3)),
        [
            lost("zone.hall-a.shielding_db", LostReason::Timeout, 3),
            lost("zone.hall-a.shielding_margin_db", LostReason::Timeout, 3),
        ]
    );
    assert_eq!(
        site.on_event(&sample("field.out", 131.0, 4)),
        [],
        "still lost: said once, never a value computed from the stale inside reading"
    );
    assert_eq!(
        site.on_event(&sample("field.in", 46.0, 5)),
        [
            sample("zone.hall-a.shielding_db", 85.0, 5),
            sample("zone.hall-a.shielding_margin_db", 5.0, 5),
        ],
        "back when the probe is"
    );
}

#[test]
fn a_lost_input_before_any_value_is_said_at_once() {
    let mut site = model(SHIELDED);
    let refused = LostReason::Refused {
        detail: "exception 2".into(),
    };
    assert_eq!(
        site.on_event(&lost("field.out", refused.clone(), 1)),
        [
            lost("zone.hall-a.shielding_db", refused.clone(), 1),
            lost("zone.hall-a.shielding_margin_db", refused, 1),
        ]
    );
}

#[test]
fn a_contact_or_non_finite_number_is_a_malformed_input() {
    let mut site = model(SHIELDED);
    site.on_event(&sample("field.out", 130.0, 1));
    let contact = SensorEvent::Sample {
        sensor: id("field.in"),
        value: Value::Contact(true),
        at: t(2),
    };
    let malformed = LostReason::Malformed {
        detail: "a contact where a number was expected".into(),
    };
    assert_eq!(
        site.on_event(&contact),
        [
            lost("zone.hall-a.shielding_db", malformed.clone(), 2),
            lost("zone.hall-a.shielding_margin_db", malformed, 2),
        ]
    );
    let infinite = LostReason::Malformed {
        detail: "inf is not a finite number".into(),
    };
    assert_eq!(
        site.on_event(&sample("field.out", f64::INFINITY, 3))[0],
        lost("zone.hall-a.shielding_db", infinite, 3),
        "the first lost input in config order (outside) gives the reason"
    );
}

const HALLS: &str = r#"
[[zone]]
name = "hall-a"
temperature = ["a.t1", "a.t2", "shared.t"]
limit_c = 35.0
[[zone]]
name = "hall-b"
temperature = ["shared.t"]
"#;

#[test]
fn the_hottest_probe_of_a_zone_counts_once_all_have_reported() {
    let mut site = model(HALLS);
    assert_eq!(site.on_event(&sample("a.t1", 24.0, 1)), []);
    assert_eq!(site.on_event(&sample("a.t2", 29.5, 2)), []);
    assert_eq!(
        site.on_event(&sample("shared.t", 22.0, 3)),
        [
            sample("zone.hall-a.hottest_c", 29.5, 3),
            sample("zone.hall-b.hottest_c", 22.0, 3),
        ],
        "a probe shared by two zones feeds both"
    );
    assert_eq!(
        site.on_event(&sample("a.t1", 31.0, 4)),
        [sample("zone.hall-a.hottest_c", 31.0, 4)]
    );
    assert_eq!(
        site.on_event(&lost("a.t2", LostReason::Stale, 5)),
        [lost("zone.hall-a.hottest_c", LostReason::Stale, 5)],
        "the lost probe might be the hot one"
    );
    assert_eq!(site.on_event(&sample("other.t", 80.0, 6)), []);
}

#[test]
fn door_cycles_count_down_to_the_limit_and_past_it() {
    let mut site = model(
        r#"
[[door]]
name = "main"
open = "main.open"
cycles = "main.cycles"
cycle_limit = 10000
"#,
    );
    assert_eq!(
        site.on_event(&sample("main.cycles", 9_990.0, 1)),
        [sample("door.main.cycles_left", 10.0, 1)]
    );
    assert_eq!(
        site.on_event(&sample("main.cycles", 10_004.0, 2)),
        [sample("door.main.cycles_left", -4.0, 2)]
    );
    let open = SensorEvent::Sample {
        sensor: id("main.open"),
        value: Value::Contact(true),
        at: t(3),
    };
    assert_eq!(site.on_event(&open), [], "the door contact derives nothing");
    assert_eq!(
        site.on_event(&lost("main.cycles", LostReason::Timeout, 4)),
        [lost("door.main.cycles_left", LostReason::Timeout, 4)]
    );
}

const SURVEY: &str = r#"
[[maintenance]]
name = "se-survey"
what = "HEMP shielding effectiveness survey (MIL-STD-188-125-1)"
due = "2026-12-01"
"#;

/// 2026-11-29 23:59:59 UTC.
const NOV_29_LATE: u64 = 1_795_996_799;

#[test]
fn maintenance_days_left_change_at_utc_midnight() {
    let mut site = model(SURVEY);
    let now = t(NOV_29_LATE);
    assert_eq!(
        site.on_tick(now),
        [SensorEvent::Sample {
            sensor: id("maintenance.se-survey.days_left"),
            value: Value::Number(2.0),
            at: now,
        }]
    );
    let midnight = site.next_deadline(now).unwrap();
    assert_eq!(midnight, t(NOV_29_LATE + 1), "2026-11-30 00:00:00 UTC");
    assert_eq!(
        site.on_tick(midnight)[0],
        SensorEvent::Sample {
            sensor: id("maintenance.se-survey.days_left"),
            value: Value::Number(1.0),
            at: midnight,
        }
    );
    assert_eq!(
        site.next_deadline(midnight),
        Some(t(NOV_29_LATE + 1 + 86_400)),
        "at midnight itself, the next one"
    );
}

#[test]
fn maintenance_is_zero_on_the_day_and_negative_when_overdue() {
    let mut site = model(SURVEY);
    let days_left = |site: &mut SiteModel, at: u64| match &site.on_tick(t(at))[0] {
        SensorEvent::Sample {
            value: Value::Number(n),
            ..
        } => *n,
        other => panic!("{other:?}"),
    };
    let dec_1_noon = NOV_29_LATE + 1 + 86_400 + 12 * 3600;
    assert_eq!(days_left(&mut site, dec_1_noon), 0.0);
    assert_eq!(days_left(&mut site, dec_1_noon + 12 * 3600), -1.0);
    assert_eq!(days_left(&mut site, dec_1_noon + 365 * 86_400), -365.0);
}

#[test]
fn without_maintenance_there_is_no_deadline() {
    let mut site = model(HALLS);
    assert_eq!(site.next_deadline(t(NOV_29_LATE)), None);
    assert_eq!(site.on_tick(t(NOV_29_LATE)), []);
}
