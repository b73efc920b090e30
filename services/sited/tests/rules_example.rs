//! The rules example given to the integrator for the README: it must load as written.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use appliance::dbus::contracts::SiteState;
use sited::rules::{RuleEngine, load_rules};
use sited::sensor::{SensorEvent, SensorId, Value};

const EXAMPLE: &str = r#"# Hall A is too hot: raised after 30 s above 35 °C, cleared after 60 s at or below 32 °C.
[[rule]]
name = "hall-a-hot"
kind = "threshold"
severity = "warning"
sensor = "hall-a.temp"
above = 35.0
clear_at = 32.0
hold = 30
clear_hold = 60
inhibits = ["hall-a-heating-fast"]

# The cooling has stopped: the hall warms faster than 0.5 °C a minute (over 5 minutes).
[[rule]]
name = "hall-a-heating-fast"
kind = "rate"
severity = "warning"
sensor = "hall-a.temp"
window = 300
rise_per_minute = 0.5
summary = "Hall A warms faster than 0.5 °C a minute: is the cooling running?"

# Doors, intrusion, arresters: contacts, raised on the event itself.
[[rule]]
name = "shield-door-open"
kind = "contact"
severity = "warning"
sensor = "hall-a.shield-door.open"
[[rule.escalation]]
after = 300
notify = ["duty-officer"]
[[rule.escalation]]
after = 900
severity = "critical"
notify = ["site-manager"]

[[rule]]
name = "arrester-tripped"
kind = "contact"
severity = "critical"
sensor = "feed-1.arrester.ok"
active = false          # the status contact opens when the arrester trips

# A shielded door open while the HEMP alert is on (a contact input here; an external
# alarm would be written "external:civil-defence/hemp-alert").
[[rule]]
name = "hemp-alert"
kind = "contact"
severity = "info"
sensor = "site.hemp-alert"

[[rule]]
name = "door-open-during-alert"
kind = "composite"
severity = "critical"
site_state = "lockdown"
all = ["shield-door-open", "hemp-alert"]
inhibits = ["shield-door-open"]
summary = "A shielded door is open during a HEMP alert."

# The UPS stopped answering for 20 s (or its driver said it is lost).
[[rule]]
name = "ups-lost"
kind = "lost"
severity = "warning"
sensor = "ups.charge"
stale_after = 20

[[rule]]
name = "ups-on-battery"
kind = "contact"
severity = "warning"
sensor = "ups.on-battery"

[[rule]]
name = "mains-failure"
kind = "contact"
severity = "critical"
sensor = "power.mains-failed"
inhibits = ["ups-on-battery"]
"#;

const SENSORS: [&str; 7] = [
    "hall-a.temp",
    "hall-a.shield-door.open",
    "feed-1.arrester.ok",
    "site.hemp-alert",
    "ups.charge",
    "ups.on-battery",
    "power.mains-failed",
];

#[test]
fn the_readme_example_loads_and_an_arrester_trip_makes_the_site_critical() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("sited.toml");
    std::fs::write(&path, EXAMPLE).unwrap();
    let known = |s: &SensorId| SENSORS.contains(&s.as_str());
    let rules = load_rules(&path, &known).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rules.rules().len(), 9);

    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut site = RuleEngine::new(rules, now);
    let trip = SensorEvent::Sample {
        sensor: SensorId::new("feed-1.arrester.ok").unwrap(),
        value: Value::Contact(false),
        at: now,
    };
    let out = site.on_event(&trip, now + Duration::from_millis(5));
    assert_eq!(out[0].action(), "alarm.raised");
    assert_eq!(out[0].target(), "arrester-tripped");
    assert_eq!(site.site_status().state, SiteState::Critical);
    let _: SystemTime = site.next_deadline().expect("ups-lost watches the UPS");
}
