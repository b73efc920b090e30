//! The `sited` daemon over a simulated site (sitesim's Modbus devices), on a private bus:
//! events reach the relays, acknowledgement, the site state and budget on Site1, lockdown
//! reaching the services that follow it, sensor loss, and a kill -9 keeping everything.

mod daemon_support;

use std::time::Duration;

use appliance::audit_log::{VerifyOptions, verify_file};
use appliance::site_watch::SiteWatch;
use daemon_support::{CONVERGE, SETTLE, SiteUnderTest, eventually, live_site, next_signal};
use sim::site::{Fault, FaultTarget};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_site_is_normal_with_its_grid_budget_sensors_and_relays() {
    let site = SiteUnderTest::start("127.71.1.1:0", live_site(), "").await;
    let site1 = site.site1().await;
    // Served only once the first readings are in: never a budget of 0 W for want of a poll.
    assert_eq!(
        site1.power_budget_watts().await.unwrap(),
        550_000.0,
        "the grid budget, two feeds less the reserve, from READY on"
    );
    site.wait_state("normal").await;
    let headroom = site1.thermal_headroom_celsius().await.unwrap();
    assert!(
        (5.0..20.0).contains(&headroom),
        "hall temperatures near 24 °C under a 35 °C limit: {headroom}"
    );
    eventually("every sensor read", || {
        let site1 = site1.clone();
        async move {
            let status: serde_json::Value =
                serde_json::from_str(&site1.status().await.unwrap()).unwrap();
            status["sensors"]["lost"] == 0 && status["sensors"]["ok"] == status["sensors"]["total"]
        }
    })
    .await;
    let status: serde_json::Value = serde_json::from_str(&site1.status().await.unwrap()).unwrap();
    assert_eq!(status["power"]["source"], "grid", "{status}");
    assert_eq!(status["relays"].as_array().unwrap().len(), 6, "{status}");
    let sensors: serde_json::Value = serde_json::from_str(&site1.sensors().await.unwrap()).unwrap();
    let shielding = sensors
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sensor"] == "zone.core.shielding_db")
        .expect("the derived shielding sensor is listed");
    let db = shielding["value"].as_f64().unwrap();
    assert!(
        (78.0..82.0).contains(&db),
        "outside − inside ≈ 80 dB: {shielding}"
    );
    assert_eq!(
        site.sited.metric("sited_site_state{state=\"normal\"}"),
        Some(1.0)
    );
    assert_eq!(
        site.sited.metric("sited_power_budget_watts"),
        Some(550_000.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intrusion_sounds_the_siren_locks_the_doors_and_an_acknowledgement_quiets_the_siren() {
    let site = SiteUnderTest::start("127.71.2.1:0", live_site(), "").await;
    let site1 = site.site1().await;
    let mut changes = Box::pin(site1.receive_alarm_changed().await.unwrap());
    site.wait_state("normal").await;
    let handle = site.site.handle();

    handle.set_intrusion(1, true).unwrap();
    site.wait_relay("siren", true).await;
    site.wait_relay("beacon", true).await;
    site.wait_relay("door-1.interlock", true).await;
    site.wait_relay("door-2.interlock", true).await;
    site.wait_state("lockdown").await;
    let signal = next_signal(&mut changes).await;
    let args = signal.args().unwrap();
    assert_eq!(
        (args.alarm(), args.change(), args.severity()),
        (&"intrusion-1", &"raised", &"critical")
    );

    site1
        .acknowledge("intrusion-1", "guard on the way")
        .await
        .unwrap();
    site.wait_relay("siren", false).await;
    assert!(
        handle.relay("beacon").unwrap().on,
        "the beacon stays while the alarm lasts"
    );
    let alarm = site.wait_alarm("intrusion-1", true).await;
    assert_eq!(alarm["acknowledged"]["note"], "guard on the way");
    assert!(
        alarm["acknowledged"]["by"]
            .as_str()
            .unwrap()
            .starts_with("operator:"),
        "{alarm}"
    );

    handle.set_intrusion(1, false).unwrap();
    site.wait_state("normal").await;
    site.wait_relay("door-1.interlock", false).await;
    site.wait_relay("beacon", false).await;

    // An arrester trip: the siren again, without lockdown.
    handle.set_arrester(2, true).unwrap();
    site.wait_relay("siren", true).await;
    site.wait_state("critical").await;
    assert!(!handle.relay("door-1.interlock").unwrap().on);
    // Acknowledging twice is refused with a sentence; an unknown alarm is not found.
    site1.acknowledge("arrester-2-tripped", "").await.unwrap();
    let again = site1
        .acknowledge("arrester-2-tripped", "")
        .await
        .unwrap_err();
    assert!(
        again.to_string().contains("already acknowledged"),
        "{again}"
    );
    let unknown = site1.acknowledge("no-such-alarm", "").await.unwrap_err();
    assert!(unknown.to_string().contains("NotFound"), "{unknown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockdown_reaches_hubd_and_trustd_following_site1() {
    let site = SiteUnderTest::start("127.71.3.1:0", live_site(), "").await;
    site.wait_state("normal").await;
    let hub_state = tempfile::tempdir().unwrap();
    let transit = hubd::site_transit::SiteTransit::follow(
        site.bus.bus(),
        appliance::state::StateDir::open(hub_state.path()).unwrap(),
    )
    .await
    .unwrap();
    let mut decisions = transit.decisions();
    let watch = SiteWatch::start(site.bus.bus()).await.unwrap();
    let mut reports = watch.reports();
    eventually("hubd offers transit at a normal site", || {
        let transit_now = decisions.borrow_and_update().transit();
        async move { transit_now }
    })
    .await;

    site.site.handle().set_intrusion(2, true).unwrap();
    tokio::time::timeout(CONVERGE, decisions.wait_for(|d| !d.transit()))
        .await
        .expect("hubd withdraws from transit in lockdown")
        .unwrap();
    let report = tokio::time::timeout(
        CONVERGE,
        reports.wait_for(|r| trustd::site_lockdown::lockdown_for(r.as_ref()) == Some(true)),
    )
    .await
    .expect("trustd's rule reads lockdown")
    .unwrap()
    .clone();
    assert!(report.unwrap().reason.contains("intrusion-2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grid_loss_drops_the_budget_to_battery_then_to_the_generator() {
    let site = SiteUnderTest::start("127.71.4.1:0", live_site(), "").await;
    let site1 = site.site1().await;
    let mut budgets = Box::pin(site1.receive_budget_changed().await.unwrap());
    eventually("the grid budget", || {
        let site1 = site1.clone();
        async move {
            site1
                .power_budget_watts()
                .await
                .is_ok_and(|w| w == 550_000.0)
        }
    })
    .await;

    site.site.handle().set_grid(None, false).unwrap();
    let mut seen = Vec::new();
    while !seen.contains(&350_000.0) {
        let signal = next_signal(&mut budgets).await;
        seen.push(signal.args().unwrap().power_budget_watts);
    }
    assert!(
        seen.contains(&0.0),
        "on battery before the generator runs: {seen:?}"
    );
    site.wait_alarm("grid-lost", true).await;
    let status: serde_json::Value = serde_json::from_str(&site1.status().await.unwrap()).unwrap();
    assert_eq!(status["power"]["source"], "generator", "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_door_controller_and_a_degraded_shield_are_alarms() {
    let site = SiteUnderTest::start("127.71.5.1:0", live_site(), "").await;
    site.wait_state("normal").await;
    let handle = site.site.handle();

    handle
        .inject(FaultTarget::Device("site-doors".into()), Fault::Lost)
        .unwrap();
    let lost = site.wait_alarm("door-1-sensors-lost", true).await;
    assert_eq!(lost["severity"], "critical");
    let sensors: serde_json::Value =
        serde_json::from_str(&site.site1().await.sensors().await.unwrap()).unwrap();
    let door = sensors
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sensor"] == "door-1.open")
        .unwrap();
    assert_eq!(door["state"], "lost", "{door}");
    assert!(
        door["value"].is_null(),
        "a lost sensor shows no stale value: {door}"
    );
    handle.clear(None).unwrap();
    site.wait_alarm("door-1-sensors-lost", false).await;

    handle.degrade_shielding(None, 15.0).unwrap();
    site.wait_alarm("zone.core.shielding-low", true).await;
    site.wait_relay("beacon", true).await;
    site.wait_state("critical").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_services_alert_with_a_door_open_is_lockdown_and_clears_with_it() {
    let site = SiteUnderTest::start("127.71.6.1:0", live_site(), "").await;
    let site1 = site.site1().await;
    site.wait_state("normal").await;
    site1
        .raise_alarm(
            "hubd",
            "emp-alert",
            "warning",
            "HEMP alert from the control centre",
            "{\"level\":2}",
        )
        .await
        .unwrap();
    site.wait_state("warning").await;
    site.site.handle().set_door(1, true).unwrap();
    site.wait_alarm("door-1-open-during-alert", true).await;
    site.wait_state("lockdown").await;
    site.wait_relay("siren", true).await;
    site1.clear_alarm("hubd", "emp-alert").await.unwrap();
    site.wait_alarm("door-1-open-during-alert", false).await;
    // Bad calls are refused and change nothing.
    for (severity, detail) in [("dire", "{}"), ("warning", "not json"), ("warning", "[1]")] {
        let refused = site1
            .raise_alarm("hubd", "x", severity, "s", detail)
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("InvalidArgument"), "{refused}");
    }
    let unknown = site1.clear_alarm("hubd", "never-raised").await.unwrap_err();
    assert!(unknown.to_string().contains("NotFound"), "{unknown}");
    assert!(site1.silence("everything", "*", 60, "").await.is_err());
    assert!(site1.silence("alarm", "*", 0, "").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_alarms_acknowledgements_silences_and_the_event_log() {
    let mut site = SiteUnderTest::start("127.71.7.1:0", live_site(), "").await;
    let site1 = site.site1().await;
    site.wait_state("normal").await;
    site.site.handle().set_arrester(1, true).unwrap();
    site.wait_alarm("arrester-1-tripped", true).await;
    site1
        .acknowledge("arrester-1-tripped", "replacement ordered")
        .await
        .unwrap();
    let id = site1
        .silence("sensor", "hall-2.*", 3600, "probe swap")
        .await
        .unwrap();

    site.sited.kill();
    site.sited.start();
    site.sited.wait_notify("READY=1");
    let site1 = site.site1().await;
    let alarm = site.wait_alarm("arrester-1-tripped", true).await;
    assert_eq!(alarm["acknowledged"]["note"], "replacement ordered");
    let silences: serde_json::Value =
        serde_json::from_str(&site1.silences().await.unwrap()).unwrap();
    assert_eq!(silences[0]["id"], id);
    assert_eq!(site1.site_state().await.unwrap(), "critical");
    tokio::time::sleep(SETTLE).await;
    assert!(
        !site.site.handle().relay("siren").unwrap().on,
        "acknowledged before the crash: quiet after it"
    );

    site.sited.stop();
    let log = site.sited.state().join("audit.log");
    let verified = verify_file(&log, &VerifyOptions::default()).await.unwrap();
    assert!(
        verified.records >= 6,
        "start, raise, state, ack, silence, restart: {verified:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(
        &log,
        text.replacen("replacement ordered", "nothing to see", 1),
    )
    .unwrap();
    assert!(
        verify_file(&log, &VerifyOptions::default()).await.is_err(),
        "an edited record is detected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_alarm_escalates_on_its_timer_and_an_acknowledgement_stops_it() {
    let escalating = "[[rule]]\nname = \"filter-1-fault\"\nkind = \"contact\"\nseverity = \"warning\"\n\
                      sensor = \"filter-1.tripped\"\n\
                      [[rule.escalation]]\nafter = 1\nseverity = \"critical\"\nnotify = [\"site-engineer\"]\n\
                      [[rule.escalation]]\nafter = 3\nnotify = [\"duty-officer\"]\n";
    let site = SiteUnderTest::start("127.71.8.1:0", live_site(), escalating).await;
    let site1 = site.site1().await;
    let mut changes = Box::pin(site1.receive_alarm_changed().await.unwrap());
    site.wait_state("normal").await;

    site.site.handle().set_filter(1, true).unwrap();
    let mut escalated = None;
    while escalated.is_none() {
        let signal = next_signal(&mut changes).await;
        let args = signal.args().unwrap();
        if *args.alarm() == "filter-1-fault" && *args.change() == "escalated" {
            escalated = Some(args.severity().to_string());
        }
    }
    assert_eq!(escalated.as_deref(), Some("critical"));
    let alarm = site.wait_alarm("filter-1-fault", true).await;
    assert_eq!(alarm["severity"], "critical", "{alarm}");
    assert!(alarm["escalation_step"].as_u64() >= Some(1), "{alarm}");

    site1
        .acknowledge("filter-1-fault", "filter swap booked")
        .await
        .unwrap();
    let step_at_ack = site.wait_alarm("filter-1-fault", true).await["escalation_step"].clone();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = site.wait_alarm("filter-1-fault", true).await;
    assert_eq!(
        after["escalation_step"], step_at_ack,
        "an acknowledged alarm escalates no further: {after}"
    );
}
