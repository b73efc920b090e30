//! The NUT driver against Debian's real upsd and dummy-ups driver on loopback: status changes
//! seen as samples, upsd vanishing and the UPS driver stopping seen as every sensor lost (within
//! two poll periods of the last good sample), and recovery when upsd comes back.

mod nut_support;

use std::time::{Duration, SystemTime};

use nut_support::{NutServer, PASSWORD, UPS, USER, is_lost, is_sample, wait_for};
use sited::nut::{NutDriver, NutSettings};
use sited::sensor::{LostReason, SensorEvent, Value};
use tokio::sync::mpsc;

/// The driver's poll period in these tests: dummy-ups itself refreshes every second.
const POLL: Duration = Duration::from_secs(1);

fn settings(server: &NutServer) -> NutSettings {
    NutSettings {
        bus: "power".into(),
        address: server.address(),
        ups: UPS.into(),
        poll_ms: POLL.as_millis() as u64,
        deadline_ms: POLL.as_millis() as u64,
        username: None,
        password: None,
    }
}

fn spawn_driver(settings: NutSettings) -> mpsc::Receiver<SensorEvent> {
    let (tx, rx) = mpsc::channel(256);
    let driver = NutDriver::new(settings).expect("valid settings");
    tokio::spawn(driver.run(tx));
    rx
}

const ONLINE: &str = "power.fakeups.online";
const ON_BATTERY: &str = "power.fakeups.on_battery";
const LOW_BATTERY: &str = "power.fakeups.low_battery";
const CHARGE: &str = "power.fakeups.charge_pct";

/// Every sensor the test UPS has: the status contacts and what its .dev file reports.
const ALL_SENSORS: [&str; 11] = [
    "power.fakeups.online",
    "power.fakeups.on_battery",
    "power.fakeups.low_battery",
    "power.fakeups.replace_battery",
    "power.fakeups.overload",
    "power.fakeups.charge_pct",
    "power.fakeups.runtime_s",
    "power.fakeups.load_pct",
    "power.fakeups.input_voltage",
    "power.fakeups.output_voltage",
    "power.fakeups.realpower_w",
];

fn at(event: &SensorEvent) -> SystemTime {
    match event {
        SensorEvent::Sample { at, .. } | SensorEvent::Lost { at, .. } => *at,
    }
}

/// Reads on until every sensor of the UPS has been reported lost; returns every event read,
/// in order.
async fn until_all_lost(events: &mut mpsc::Receiver<SensorEvent>) -> Vec<SensorEvent> {
    let mut read = Vec::new();
    for sensor in ALL_SENSORS {
        if !read.iter().any(|e| is_lost(e, sensor)) {
            let (event, before) =
                wait_for(events, "every sensor lost", |e| is_lost(e, sensor)).await;
            read.extend(before);
            read.push(event);
        }
    }
    read
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn going_on_battery_and_the_charge_falling_are_samples() {
    let mut server = NutServer::start("OL", 100);
    let mut events = spawn_driver(settings(&server));
    wait_for(&mut events, "online", |e| {
        is_sample(e, ONLINE, Value::Contact(true))
    })
    .await;
    wait_for(&mut events, "charge 100", |e| {
        is_sample(e, CHARGE, Value::Number(100.0))
    })
    .await;

    server.set("OB DISCHRG", 80);
    wait_for(&mut events, "on battery", |e| {
        is_sample(e, ON_BATTERY, Value::Contact(true))
    })
    .await;
    wait_for(&mut events, "charge 80", |e| {
        is_sample(e, CHARGE, Value::Number(80.0))
    })
    .await;
    let (_, before) = wait_for(&mut events, "offline", |e| {
        is_sample(e, ONLINE, Value::Contact(false))
    })
    .await;
    assert!(
        before
            .iter()
            .all(|e| matches!(e, SensorEvent::Sample { .. })),
        "a status change is no loss: {before:#?}"
    );

    server.set("OB DISCHRG LB", 10);
    wait_for(&mut events, "low battery", |e| {
        is_sample(e, LOW_BATTERY, Value::Contact(true))
    })
    .await;
    wait_for(&mut events, "charge 10", |e| {
        is_sample(e, CHARGE, Value::Number(10.0))
    })
    .await;
    wait_for(&mut events, "runtime", |e| {
        is_sample(e, "power.fakeups.runtime_s", Value::Number(360.0))
    })
    .await;
    wait_for(&mut events, "still on battery", |e| {
        is_sample(e, ON_BATTERY, Value::Contact(true))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsd_vanishing_loses_every_sensor_within_two_polls_and_its_return_recovers() {
    let mut server = NutServer::start("OL", 100);
    let mut events = spawn_driver(settings(&server));
    // Wait for a poll that read every sensor, so all of them are known to the driver.
    let (sampled, _) = wait_for(&mut events, "realpower", |e| {
        is_sample(e, "power.fakeups.realpower_w", Value::Number(207.0))
    })
    .await;

    server.kill_upsd();
    let read = until_all_lost(&mut events).await;
    let first_lost = read
        .iter()
        .position(|e| matches!(e, SensorEvent::Lost { .. }))
        .expect("a loss");
    let last_sample = read[..first_lost]
        .iter()
        .map(at)
        .chain([at(&sampled)])
        .max()
        .unwrap();
    let gap = at(&read[first_lost]).duration_since(last_sample).unwrap();
    assert!(
        gap <= 2 * POLL,
        "lost {gap:?} after the last good sample, more than two poll periods ({:?})",
        2 * POLL
    );
    for event in &read[first_lost..] {
        let SensorEvent::Lost { reason, .. } = event else {
            panic!("a sample after the loss: {read:#?}");
        };
        assert!(
            matches!(reason, LostReason::Unreachable { .. } | LostReason::Timeout),
            "{reason:?}"
        );
    }

    server.start_upsd();
    wait_for(&mut events, "online again", |e| {
        is_sample(e, ONLINE, Value::Contact(true))
    })
    .await;
    wait_for(&mut events, "charge again", |e| {
        is_sample(e, CHARGE, Value::Number(100.0))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_ups_driver_is_stale() {
    let mut server = NutServer::start("OL", 100);
    let mut events = spawn_driver(settings(&server));
    wait_for(&mut events, "realpower", |e| {
        is_sample(e, "power.fakeups.realpower_w", Value::Number(207.0))
    })
    .await;

    server.kill_driver();
    let read = until_all_lost(&mut events).await;
    for event in read
        .iter()
        .filter(|e| matches!(e, SensorEvent::Lost { .. }))
    {
        let SensorEvent::Lost { reason, .. } = event else {
            unreachable!()
        };
        assert_eq!(reason, &LostReason::Stale, "{}", server.logs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_work_with_a_login_too() {
    let server = NutServer::start("OB DISCHRG", 55);
    let mut events = spawn_driver(NutSettings {
        username: Some(USER.into()),
        password: Some(PASSWORD.into()),
        ..settings(&server)
    });
    wait_for(&mut events, "on battery", |e| {
        is_sample(e, ON_BATTERY, Value::Contact(true))
    })
    .await;
    wait_for(&mut events, "charge 55", |e| {
        is_sample(e, CHARGE, Value::Number(55.0))
    })
    .await;
}
