//! Whole scenarios of the rules engine from a `sited.toml` rules section: the fast path for
//! contacts, composites, inhibition, hysteresis with holds, lost sensors, and the site state.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use appliance::dbus::contracts::SiteState;
use sited::rules::{AlarmKey, Change, Delivery, RuleEngine, RuleSet, Transition, load_rules};
use sited::sensor::{LostReason, SensorEvent, SensorId, Value};

/// The rules section of a site's `sited.toml`.
const SITE_RULES: &str = r#"
[[rule]]
name = "shield-door-open"
kind = "contact"
severity = "warning"
sensor = "hall-a.shield-door.open"
summary = "The shielded door of hall A is open."

[[rule]]
name = "external-alert"
kind = "contact"
severity = "info"
sensor = "site.external-alert"
summary = "The national HEMP alert is active."

[[rule]]
name = "door-open-during-alert"
kind = "composite"
severity = "critical"
site_state = "lockdown"
all = ["shield-door-open", "external-alert"]
inhibits = ["shield-door-open"]
summary = "The shielded door of hall A is open during an external alert."

[[rule]]
name = "hall-a-hot"
kind = "threshold"
severity = "warning"
sensor = "hall-a.temp"
above = 35.0
clear_at = 32.0
hold = 30
clear_hold = 60

[[rule]]
name = "mains-failure"
kind = "contact"
severity = "critical"
sensor = "power.mains-failed"
inhibits = ["ups-on-battery"]

[[rule]]
name = "ups-on-battery"
kind = "contact"
severity = "warning"
sensor = "ups.on-battery"

[[rule]]
name = "ups-lost"
kind = "lost"
severity = "warning"
sensor = "ups.charge"
stale_after = 20
"#;

const SENSORS: [&str; 6] = [
    "hall-a.shield-door.open",
    "site.external-alert",
    "hall-a.temp",
    "power.mains-failed",
    "ups.on-battery",
    "ups.charge",
];

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

/// Loads `text` as the rules file; errors show the file as `/etc/sited.toml`.
fn load(text: &str) -> Result<RuleSet, String> {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("sited.toml");
    std::fs::write(&path, text).unwrap();
    let known = |s: &SensorId| SENSORS.contains(&s.as_str());
    load_rules(&path, &known).map_err(|e| {
        e.to_string()
            .replace(&path.display().to_string(), "/etc/sited.toml")
    })
}

fn site_engine() -> RuleEngine {
    RuleEngine::new(load(SITE_RULES).unwrap_or_else(|e| panic!("{e}")), t(0))
}

fn contact(sensor: &str, on: bool, secs: u64) -> SensorEvent {
    SensorEvent::Sample {
        sensor: SensorId::new(sensor).unwrap(),
        value: Value::Contact(on),
        at: t(secs),
    }
}

fn number(sensor: &str, value: f64, secs: u64) -> SensorEvent {
    SensorEvent::Sample {
        sensor: SensorId::new(sensor).unwrap(),
        value: Value::Number(value),
        at: t(secs),
    }
}

fn summary(transitions: &[Transition]) -> Vec<String> {
    transitions
        .iter()
        .map(|t| match &t.change {
            Change::SiteStateChanged { to, .. } => format!("site {to}"),
            _ => format!("{} {}", t.action(), t.target()),
        })
        .collect()
}

fn delivery_of<'a>(transitions: &'a [Transition], alarm: &str) -> &'a Delivery {
    transitions
        .iter()
        .find(|t| t.target() == alarm && t.delivery().is_some())
        .and_then(Transition::delivery)
        .unwrap_or_else(|| panic!("no notification for {alarm} in {transitions:?}"))
}

#[test]
fn a_shielded_door_opened_during_an_external_alert_locks_the_site_down() {
    let mut site = site_engine();
    let out = site.on_event(&contact("site.external-alert", true, 1), t(1));
    assert_eq!(summary(&out), ["alarm.raised external-alert"]);
    assert_eq!(site.site_status().state, SiteState::Normal, "an info alarm");

    // The door's alarm and the composite come from the same call as the contact event.
    let out = site.on_event(&contact("hall-a.shield-door.open", true, 2), t(2));
    assert_eq!(
        summary(&out),
        [
            "alarm.raised shield-door-open",
            "alarm.raised door-open-during-alert",
            "site lockdown"
        ]
    );
    assert_eq!(
        delivery_of(&out, "shield-door-open"),
        &Delivery::Inhibited {
            by: "door-open-during-alert".into()
        }
    );
    assert_eq!(
        delivery_of(&out, "door-open-during-alert"),
        &Delivery::Notify
    );
    assert_eq!(
        site.site_status().reason,
        "The site is in lockdown because of alarm door-open-during-alert (The shielded door of \
         hall A is open during an external alert.)."
    );

    // The door closes: both clear; the critical composite stays listed for acknowledgement.
    let out = site.on_event(&contact("hall-a.shield-door.open", false, 40), t(40));
    assert_eq!(
        summary(&out),
        [
            "alarm.cleared shield-door-open",
            "alarm.cleared door-open-during-alert",
            "site normal"
        ]
    );
    let listed: Vec<String> = site.alarms().iter().map(|a| a.key.to_string()).collect();
    assert_eq!(listed, ["external-alert", "door-open-during-alert"]);
    site.acknowledge(
        &AlarmKey::rule("door-open-during-alert"),
        "alice",
        "technician left through the wrong door",
        t(60),
    )
    .unwrap();
    assert_eq!(site.alarms().len(), 1);

    // Without the alert, an open door is only a warning.
    site.on_event(&contact("site.external-alert", false, 70), t(70));
    let out = site.on_event(&contact("hall-a.shield-door.open", true, 80), t(80));
    assert_eq!(
        summary(&out),
        ["alarm.raised shield-door-open", "site warning"]
    );
    assert_eq!(delivery_of(&out, "shield-door-open"), &Delivery::Notify);
}

#[test]
fn an_inhibited_alarm_neither_notifies_nor_sets_the_site_state() {
    let mut site = site_engine();
    let out = site.on_event(&contact("ups.on-battery", true, 1), t(1));
    assert_eq!(delivery_of(&out, "ups-on-battery"), &Delivery::Notify);
    assert_eq!(site.site_status().state, SiteState::Warning);

    let out = site.on_event(&contact("power.mains-failed", true, 2), t(2));
    assert_eq!(
        summary(&out),
        ["alarm.raised mains-failure", "site critical"]
    );
    assert!(
        !site.site_status().reason.contains("ups-on-battery"),
        "{}",
        site.site_status().reason
    );
    // Changes of the inhibited alarm are recorded but not notified.
    let out = site.on_event(&contact("ups.on-battery", false, 3), t(3));
    assert_eq!(
        delivery_of(&out, "ups-on-battery"),
        &Delivery::Inhibited {
            by: "mains-failure".into()
        }
    );
    let out = site.on_event(&contact("ups.on-battery", true, 4), t(4));
    assert_eq!(
        delivery_of(&out, "ups-on-battery"),
        &Delivery::Inhibited {
            by: "mains-failure".into()
        }
    );
    // The inhibitor clears (a critical, listed until acknowledged, but no longer active):
    // the UPS alarm is notified now and counts again.
    let out = site.on_event(&contact("power.mains-failed", false, 5), t(5));
    assert_eq!(
        summary(&out),
        [
            "alarm.cleared mains-failure",
            "alarm.released ups-on-battery",
            "site warning"
        ]
    );
    assert_eq!(
        out[1].why,
        "no longer inhibited: mains-failure is not active"
    );
    assert_eq!(delivery_of(&out[1..], "ups-on-battery"), &Delivery::Notify);
    assert!(site.site_status().reason.contains("ups-on-battery"));
}

#[test]
fn temperature_noise_around_the_limit_raises_once_and_clears_once() {
    let mut site = site_engine();
    let mut log = Vec::new();
    // Ten minutes hot, ten minutes of noise across the limit (35), ten minutes cool; one
    // sample every 5 s, ticks when the engine asks.
    let hot = [35.6, 36.2, 35.9, 36.5, 35.7, 36.1];
    let around_limit = [34.6, 35.4, 35.1, 34.8, 35.5, 34.9];
    let cool = [31.0, 31.9, 31.5, 30.8, 31.7, 31.2];
    for i in 0..360u64 {
        let secs = i * 5;
        let phase = match i / 120 {
            0 => &hot,
            1 => &around_limit,
            _ => &cool,
        };
        let value = phase[(i % 6) as usize];
        if site.next_deadline().is_some_and(|d| d <= t(secs)) {
            log.extend(site.on_tick(t(secs)));
        }
        log.extend(site.on_event(&number("hall-a.temp", value, secs), t(secs)));
    }
    let temp: Vec<String> = summary(&log)
        .into_iter()
        .filter(|s| s.contains("hall-a-hot"))
        .collect();
    assert_eq!(
        temp,
        ["alarm.raised hall-a-hot", "alarm.cleared hall-a-hot"]
    );
}

#[test]
fn hold_times_need_the_value_to_stay_out_for_the_whole_hold() {
    let mut site = site_engine();
    assert!(
        site.on_event(&number("hall-a.temp", 36.0, 0), t(0))
            .is_empty()
    );
    assert_eq!(site.next_deadline(), Some(t(20)), "ups-lost is due first");
    site.on_event(&number("ups.charge", 100.0, 0), t(0));
    assert_eq!(site.next_deadline(), Some(t(20)));
    site.on_event(&number("ups.charge", 100.0, 10), t(10));
    assert_eq!(site.next_deadline(), Some(t(30)), "the hot rule's hold");
    // Back under the limit before the hold ran out: nothing.
    site.on_event(&number("hall-a.temp", 34.0, 25), t(25));
    site.on_event(&number("ups.charge", 100.0, 25), t(25));
    assert!(site.on_tick(t(30)).is_empty());
    site.on_event(&number("hall-a.temp", 36.0, 31), t(31));
    site.on_event(&number("ups.charge", 100.0, 45), t(45));
    let out = site.on_tick(t(61));
    assert_eq!(summary(&out), ["alarm.raised hall-a-hot", "site warning"]);
    assert_eq!(out[0].why, "hall-a.temp is 36, above 35");
}

#[test]
fn a_silent_or_lost_sensor_raises_and_a_sample_clears() {
    let mut site = site_engine();
    site.on_event(&number("ups.charge", 97.0, 5), t(5));
    assert_eq!(site.next_deadline(), Some(t(25)));
    assert!(site.on_tick(t(24)).is_empty());
    let out = site.on_tick(t(25));
    assert_eq!(summary(&out), ["alarm.raised ups-lost", "site warning"]);
    assert_eq!(out[0].why, "ups.charge sent no sample for 20 s");
    let out = site.on_event(&number("ups.charge", 97.0, 26), t(26));
    assert_eq!(summary(&out), ["alarm.cleared ups-lost", "site normal"]);
    let lost = SensorEvent::Lost {
        sensor: SensorId::new("ups.charge").unwrap(),
        reason: LostReason::Refused {
            detail: "ERR DATA-STALE".into(),
        },
        at: t(27),
    };
    let out = site.on_event(&lost, t(27));
    assert_eq!(summary(&out), ["alarm.raised ups-lost", "site warning"]);
    assert_eq!(
        out[0].why,
        "ups.charge is lost: the device refused: ERR DATA-STALE"
    );
}

#[test]
fn a_bad_rules_file_is_refused_with_every_problem_at_its_line() {
    let text = SITE_RULES.replace("sensor = \"ups.on-battery\"", "sensor = \"ups.onbattery\"")
        + "\n[[rule]]\nname = \"loop\"\nkind = \"composite\"\nseverity = \"info\"\nany = [\"loop\"]\n";
    let err = load(&text).unwrap_err();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "/etc/sited.toml:46:1: `rule[5].sensor`: there is no sensor `ups.onbattery` in the site model",
            "/etc/sited.toml:59:8: `rule[7].any[0]`: a rule cannot depend on itself",
        ]
    );
}
