use super::*;

fn driver() -> NutDriver {
    NutDriver::new(NutSettings {
        bus: "power".into(),
        // Never connected to in these tests: they feed `read` and `lose` directly.
        address: "127.0.0.1:9".into(),
        ups: "Rack".into(),
        poll_ms: 2000,
        deadline_ms: 1000,
        username: None,
        password: None,
    })
    .unwrap()
}

fn vars(pairs: &[(&str, &str)]) -> VarList {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// sensor name → value, or the lost reason.
fn by_name(events: &[SensorEvent]) -> Vec<(String, Result<Value, LostReason>)> {
    events
        .iter()
        .map(|event| match event {
            SensorEvent::Sample { sensor, value, .. } => (sensor.to_string(), Ok(*value)),
            SensorEvent::Lost { sensor, reason, .. } => (sensor.to_string(), Err(reason.clone())),
        })
        .collect()
}

fn value(events: &[SensorEvent], name: &str) -> Option<Result<Value, LostReason>> {
    by_name(events)
        .into_iter()
        .find(|(sensor, _)| sensor == name)
        .map(|(_, v)| v)
}

#[test]
fn on_battery_with_low_charge() {
    let mut d = driver();
    let events = d.read(
        &vars(&[
            ("ups.status", "OB DISCHRG LB"),
            ("battery.charge", "10"),
            ("battery.runtime", "120"),
            ("ups.load", "23"),
            ("input.voltage", "0.0"),
            ("device.mfr", "Fake"),
        ]),
        SystemTime::now(),
    );
    assert_eq!(
        value(&events, "power.rack.on_battery"),
        Some(Ok(Value::Contact(true)))
    );
    assert_eq!(
        value(&events, "power.rack.low_battery"),
        Some(Ok(Value::Contact(true)))
    );
    assert_eq!(
        value(&events, "power.rack.online"),
        Some(Ok(Value::Contact(false)))
    );
    assert_eq!(
        value(&events, "power.rack.overload"),
        Some(Ok(Value::Contact(false)))
    );
    assert_eq!(
        value(&events, "power.rack.charge_pct"),
        Some(Ok(Value::Number(10.0)))
    );
    assert_eq!(
        value(&events, "power.rack.runtime_s"),
        Some(Ok(Value::Number(120.0)))
    );
    assert_eq!(
        value(&events, "power.rack.load_pct"),
        Some(Ok(Value::Number(23.0)))
    );
    assert_eq!(
        value(&events, "power.rack.input_voltage"),
        Some(Ok(Value::Number(0.0)))
    );
    // Not reported by this UPS: no sensor at all.
    assert_eq!(value(&events, "power.rack.realpower_w"), None);
    assert_eq!(events.len(), 9);
}

#[test]
fn broken_numbers_lose_only_their_sensor() {
    let mut d = driver();
    let events = d.read(
        &vars(&[
            ("ups.status", "OL"),
            ("battery.charge", "abc"),
            ("ups.load", "900"),
            ("battery.runtime", "NaN"),
        ]),
        SystemTime::now(),
    );
    assert!(matches!(
        value(&events, "power.rack.charge_pct"),
        Some(Err(LostReason::Malformed { .. }))
    ));
    assert!(matches!(
        value(&events, "power.rack.runtime_s"),
        Some(Err(LostReason::Malformed { .. }))
    ));
    assert_eq!(
        value(&events, "power.rack.load_pct"),
        Some(Err(LostReason::OutOfRange {
            value: 900.0,
            min: 0.0,
            max: 250.0
        }))
    );
    assert_eq!(
        value(&events, "power.rack.online"),
        Some(Ok(Value::Contact(true)))
    );
}

#[test]
fn a_failure_loses_every_sensor_once_and_a_good_poll_recovers() {
    let mut d = driver();
    let good = vars(&[("ups.status", "OL"), ("battery.charge", "100")]);
    d.read(&good, SystemTime::now());
    let lost = d.lose(LostReason::Stale, SystemTime::now());
    let names: Vec<_> = by_name(&lost).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "power.rack.charge_pct",
            "power.rack.low_battery",
            "power.rack.on_battery",
            "power.rack.online",
            "power.rack.overload",
            "power.rack.replace_battery",
        ]
    );
    assert!(lost.iter().all(|e| matches!(
        e,
        SensorEvent::Lost {
            reason: LostReason::Stale,
            ..
        }
    )));
    // The same outage is not said again; another kind of outage is.
    assert!(d.lose(LostReason::Stale, SystemTime::now()).is_empty());
    assert_eq!(d.lose(LostReason::Timeout, SystemTime::now()).len(), 6);
    let back = d.read(&good, SystemTime::now());
    assert_eq!(
        value(&back, "power.rack.online"),
        Some(Ok(Value::Contact(true)))
    );
    assert_eq!(d.lose(LostReason::Timeout, SystemTime::now()).len(), 6);
}

#[test]
fn wait_is_no_sample_until_it_lasts() {
    let mut d = driver();
    let waiting = vars(&[("ups.status", "WAIT")]);
    assert!(d.read(&waiting, SystemTime::now()).is_empty());
    let lost = d.read(&waiting, SystemTime::now());
    assert_eq!(lost.len(), 5);
    assert!(lost.iter().all(|e| matches!(
        e,
        SensorEvent::Lost {
            reason: LostReason::Stale,
            ..
        }
    )));
    let back = d.read(&vars(&[("ups.status", "OL")]), SystemTime::now());
    assert_eq!(
        value(&back, "power.rack.online"),
        Some(Ok(Value::Contact(true)))
    );
}

#[test]
fn a_variable_that_disappears_is_lost_not_left_standing() {
    let mut d = driver();
    d.read(
        &vars(&[("ups.status", "OL"), ("ups.realpower", "450")]),
        SystemTime::now(),
    );
    let events = d.read(&vars(&[("ups.status", "OL")]), SystemTime::now());
    assert!(matches!(
        value(&events, "power.rack.realpower_w"),
        Some(Err(LostReason::Malformed { .. }))
    ));
}

#[test]
fn no_status_loses_the_contacts() {
    let mut d = driver();
    let events = d.read(&vars(&[("battery.charge", "50")]), SystemTime::now());
    assert!(matches!(
        value(&events, "power.rack.online"),
        Some(Err(LostReason::Malformed { .. }))
    ));
    assert_eq!(
        value(&events, "power.rack.charge_pct"),
        Some(Ok(Value::Number(50.0)))
    );
}
