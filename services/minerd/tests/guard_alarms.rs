//! Site alarms: delivered to sited with minerd as the source and the detail as JSON; with
//! sited absent, or no bus at all, a raise says so and returns within its bound.

use std::time::{Duration, Instant};

use appliance::dbus::Bus;
use appliance::dbus::contracts::SiteState;
use appliance::dbus::testbus::TestBus;
use appliance::dbus::testsite::StandInSite;
use minerd::site_alarms::{AlarmSeverity, CALL_TIMEOUT, SiteAlarms};
use serde_json::json;

/// Far above a delivered call, far below a hang.
const BOUND: Duration = Duration::from_secs(15);

#[tokio::test]
async fn alarms_reach_sited_and_clear() {
    let bus = TestBus::start().unwrap();
    let site = StandInSite::start(&bus.bus(), SiteState::Normal, "all well")
        .await
        .unwrap();
    let alarms = SiteAlarms::new(bus.bus());
    let detail = json!({"miner": "127.62.9.1", "kind": "foreign_pool"});
    assert!(
        alarms
            .raise(
                "hijack/127.62.9.1",
                AlarmSeverity::Critical,
                "stolen",
                &detail
            )
            .await
    );
    assert!(alarms.clear("hijack/127.62.9.1").await);
    let seen = site.alarms().await.unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].source, "minerd");
    assert_eq!(seen[0].key, "hijack/127.62.9.1");
    assert_eq!(seen[0].severity.as_deref(), Some("critical"));
    assert_eq!(seen[0].summary, "stolen");
    let sent: serde_json::Value = serde_json::from_str(&seen[0].detail).unwrap();
    assert_eq!(sent, detail);
    assert_eq!(seen[1].severity, None);
}

#[tokio::test]
async fn without_sited_or_without_a_bus_nothing_fails_and_nothing_hangs() {
    let bus = TestBus::start().unwrap();
    let no_sited = SiteAlarms::new(bus.bus());
    let started = Instant::now();
    assert!(
        !no_sited
            .raise("hijack/x", AlarmSeverity::Warning, "s", &json!({}))
            .await
    );
    assert!(!no_sited.clear("hijack/x").await);
    assert!(started.elapsed() < BOUND);

    let dir = tempfile::tempdir().unwrap();
    let nowhere = Bus::Address(format!(
        "unix:path={}",
        dir.path().join("none.sock").display()
    ));
    let no_bus = SiteAlarms::new(nowhere);
    let started = Instant::now();
    assert!(
        !no_bus
            .raise("hijack/x", AlarmSeverity::Critical, "s", &json!({}))
            .await
    );
    assert!(started.elapsed() < CALL_TIMEOUT + BOUND);

    // sited arrives later: the next alarm is delivered (the failed connection was not kept).
    let site = StandInSite::start(&bus.bus(), SiteState::Normal, "all well")
        .await
        .unwrap();
    assert!(
        no_sited
            .raise("hijack/y", AlarmSeverity::Critical, "s", &json!({}))
            .await
    );
    assert_eq!(site.alarms().await.unwrap().len(), 1);
}
