use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::sensor::{LostReason, SensorId};

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn temp() -> SensorId {
    SensorId::new("hall-a.temp").unwrap()
}

fn sample(value: f64, at: SystemTime) -> SensorEvent {
    SensorEvent::Sample {
        sensor: temp(),
        value: Value::Number(value),
        at,
    }
}

fn above(limit: f64, clear_at: f64, hold: u64, clear_hold: u64) -> Condition {
    Condition::Threshold(Threshold {
        sensor: temp(),
        limit: Limit::Above(limit),
        clear_at,
        hold: Duration::from_secs(hold),
        clear_hold: Duration::from_secs(clear_hold),
    })
}

/// Feeds `values`, one per second from t(0), and returns the state after each.
fn states(condition: &Condition, values: &[f64]) -> Vec<bool> {
    let mut tracker = Tracker::new(t(0), false);
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let now = t(i as u64);
            tracker.on_event(condition, &sample(*v, now), now);
            tracker.on_tick(condition, now);
            tracker.active
        })
        .collect()
}

#[test]
fn hysteresis_keeps_the_state_inside_the_band() {
    let rule = above(40.0, 37.0, 0, 0);
    let values = [39.0, 40.5, 39.9, 40.1, 39.5, 38.0, 40.2, 36.9, 39.0, 40.0];
    let expected = [
        false, true, true, true, true, true, true, false, false, false,
    ];
    assert_eq!(states(&rule, &values), expected);
}

#[test]
fn without_hysteresis_noise_around_the_limit_flaps() {
    // The contrast that shows why `clear_at` exists.
    let rule = above(40.0, 40.0, 0, 0);
    let values = [40.1, 39.9, 40.1, 39.9];
    assert_eq!(states(&rule, &values), [true, false, true, false]);
}

#[test]
fn hold_times_delay_raising_and_clearing() {
    let rule = above(40.0, 37.0, 3, 2);
    // Above from t0; a dip into the band at t2 resets the raise hold; raised at t3+3 = t6.
    // Then at or below clear_at from t7: cleared at t7+2 = t9.
    let values = [41.0, 41.0, 39.0, 41.0, 41.0, 41.0, 41.0, 30.0, 30.0, 30.0];
    let expected = [
        false, false, false, false, false, false, true, true, true, false,
    ];
    assert_eq!(states(&rule, &values), expected);
    let mut tracker = Tracker::new(t(0), false);
    tracker.on_event(&rule, &sample(41.0, t(0)), t(0));
    assert_eq!(tracker.deadline(&rule), Some(t(3)));
    assert_eq!(tracker.on_tick(&rule, t(2)), None);
    let flip = tracker.on_tick(&rule, t(3)).unwrap();
    assert!(flip.active);
    assert_eq!(flip.why, "hall-a.temp is 41, above 40");
    // Clearing waits for clear_hold from the first sample at or below clear_at.
    tracker.on_event(&rule, &sample(36.0, t(10)), t(10));
    assert!(tracker.active);
    assert_eq!(tracker.deadline(&rule), Some(t(12)));
    assert!(!tracker.on_tick(&rule, t(12)).unwrap().active);
}

#[test]
fn rate_measures_change_per_minute_over_the_window() {
    let rule = Condition::Rate(Rate {
        sensor: temp(),
        window: Duration::from_secs(120),
        rise_per_minute: Some(1.0),
        fall_per_minute: Some(2.0),
        hold: Duration::ZERO,
        clear_hold: Duration::ZERO,
    });
    let mut tracker = Tracker::new(t(0), false);
    let mut feed = |secs: u64, v: f64| {
        tracker.on_event(&rule, &sample(v, t(secs)), t(secs));
        tracker.active
    };
    assert!(!feed(0, 20.0));
    assert!(!feed(30, 21.0), "a span under half the window says nothing");
    assert!(feed(60, 21.5), "+1.5 per minute over 60 s");
    assert!(!feed(120, 21.8), "+0.9 per minute over 120 s");
    assert!(!feed(180, 21.8), "flat");
    assert!(!feed(240, 19.0), "-1.4 per minute over 120 s (t120..t240)");
    assert!(feed(300, 17.0), "-2.4 per minute over 120 s (t180..t300)");
}

#[test]
fn a_lost_rule_follows_lost_events_and_silence() {
    let rule = Condition::Lost {
        sensor: temp(),
        stale_after: Duration::from_secs(20),
    };
    let mut tracker = Tracker::new(t(0), false);
    assert_eq!(tracker.deadline(&rule), Some(t(20)));
    tracker.on_event(&rule, &sample(20.0, t(10)), t(10));
    assert_eq!(tracker.deadline(&rule), Some(t(30)));
    assert_eq!(tracker.on_tick(&rule, t(29)), None);
    let flip = tracker.on_tick(&rule, t(30)).unwrap();
    assert_eq!(flip.why, "hall-a.temp sent no sample for 20 s");
    assert_eq!(tracker.deadline(&rule), None);
    assert!(
        !tracker
            .on_event(&rule, &sample(20.0, t(31)), t(31))
            .unwrap()
            .active
    );
    let lost = SensorEvent::Lost {
        sensor: temp(),
        reason: LostReason::Timeout,
        at: t(32),
    };
    let flip = tracker.on_event(&rule, &lost, t(32)).unwrap();
    assert_eq!(
        flip.why,
        "hall-a.temp is lost: no answer within the deadline"
    );
}

#[test]
fn a_contact_flips_on_the_event() {
    let rule = Condition::Contact {
        sensor: temp(),
        active: false,
    };
    let mut tracker = Tracker::new(t(0), false);
    let contact = |on: bool| SensorEvent::Sample {
        sensor: temp(),
        value: Value::Contact(on),
        at: t(1),
    };
    assert!(
        tracker
            .on_event(&rule, &contact(false), t(1))
            .unwrap()
            .active
    );
    assert_eq!(tracker.deadline(&rule), None);
    assert!(
        !tracker
            .on_event(&rule, &contact(true), t(1))
            .unwrap()
            .active
    );
    assert_eq!(tracker.on_event(&rule, &sample(1.0, t(1)), t(1)), None);
}

#[test]
fn a_lost_sensor_cancels_a_waiting_hold() {
    let rule = above(40.0, 37.0, 10, 0);
    let mut tracker = Tracker::new(t(0), false);
    tracker.on_event(&rule, &sample(41.0, t(0)), t(0));
    assert_eq!(tracker.deadline(&rule), Some(t(10)));
    let lost = SensorEvent::Lost {
        sensor: temp(),
        reason: LostReason::Timeout,
        at: t(5),
    };
    assert_eq!(tracker.on_event(&rule, &lost, t(5)), None);
    assert_eq!(tracker.deadline(&rule), None);
    assert_eq!(tracker.on_tick(&rule, t(10)), None);
    assert!(!tracker.active);
    // Back with a value above the limit: the hold starts again from there.
    tracker.on_event(&rule, &sample(41.0, t(20)), t(20));
    assert_eq!(tracker.deadline(&rule), Some(t(30)));
}
