//! Scenarios over time from a rules file: a cooling failure seen by its rate of rise before
//! the limit, and an unacknowledged alarm escalating to critical (and the site with it).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use appliance::dbus::contracts::SiteState;
use sited::rules::{AlarmKey, Change, RuleEngine, RulesConfig, Severity, Transition, compile};
use sited::sensor::{SensorEvent, SensorId, Value};

const RULES: &str = r#"
[[rule]]
name = "hall-a-heating-fast"
kind = "rate"
severity = "warning"
sensor = "hall-a.temp"
window = 300
rise_per_minute = 0.5
summary = "Hall A warms faster than 0.5 °C a minute: is the cooling running?"

[[rule]]
name = "hall-a-hot"
kind = "threshold"
severity = "critical"
sensor = "hall-a.temp"
above = 35.0
clear_at = 32.0
inhibits = ["hall-a-heating-fast"]

[[rule]]
name = "shield-door-open"
kind = "contact"
severity = "warning"
sensor = "hall-a.shield-door.open"
[[rule.escalation]]
after = 120
notify = ["duty-officer"]
[[rule.escalation]]
after = 600
severity = "critical"
notify = ["site-manager"]
"#;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn engine() -> RuleEngine {
    let doc: RulesConfig = toml::from_str(RULES).unwrap();
    let rules = compile(&doc.rule, &|_| true).unwrap();
    RuleEngine::new(rules, t(0))
}

fn sample(sensor: &str, value: Value, secs: u64) -> SensorEvent {
    SensorEvent::Sample {
        sensor: SensorId::new(sensor).unwrap(),
        value,
        at: t(secs),
    }
}

fn actions(transitions: &[Transition]) -> Vec<String> {
    transitions
        .iter()
        .map(|t| format!("{} {}", t.action(), t.target()))
        .collect()
}

/// Runs the engine like the daemon: ticks at the deadlines up to each event, then the event.
fn drive(site: &mut RuleEngine, events: &[(u64, SensorEvent)], until: u64) -> Vec<Transition> {
    let mut log = Vec::new();
    let tick_until = |site: &mut RuleEngine, log: &mut Vec<Transition>, secs: u64| {
        while let Some(due) = site.next_deadline().filter(|d| *d <= t(secs)) {
            log.extend(site.on_tick(due));
        }
    };
    for (secs, event) in events {
        tick_until(site, &mut log, *secs);
        log.extend(site.on_event(event, t(*secs)));
    }
    tick_until(site, &mut log, until);
    log
}

#[test]
fn a_cooling_failure_is_seen_by_its_rate_before_the_limit() {
    let mut site = engine();
    // Steady at 24 °C for ten minutes, then +1 °C a minute (cooling lost), sampled every 30 s.
    let events: Vec<(u64, SensorEvent)> = (0..60u64)
        .map(|i| {
            let secs = i * 30;
            let minutes_warming = secs.saturating_sub(600) as f64 / 60.0;
            let temp = Value::Number(24.0 + minutes_warming);
            (secs, sample("hall-a.temp", temp, secs))
        })
        .collect();
    let log = drive(&mut site, &events, 1800);
    let seen: Vec<(String, u64)> = log
        .iter()
        .map(|t| {
            let secs = t.at.duration_since(UNIX_EPOCH).unwrap().as_secs() - 1_800_000_000;
            (format!("{} {}", t.action(), t.target()), secs)
        })
        .collect();
    let raised_rate = seen
        .iter()
        .find(|(a, _)| a == "alarm.raised hall-a-heating-fast")
        .map(|(_, s)| *s)
        .expect("the rate rule fired");
    let raised_hot = seen
        .iter()
        .find(|(a, _)| a == "alarm.raised hall-a-hot")
        .map(|(_, s)| *s)
        .expect("the limit was crossed");
    // 0.5 °C/min over a window half filled with the rise: a few minutes after it starts,
    // well before the 11 °C climb to the limit.
    assert!(raised_rate > 600 && raised_rate <= 900, "{seen:?}");
    assert!(raised_hot > 1200, "{seen:?}");
    // Once the hall is over the limit, the rate alarm is muted by the threshold's.
    let rate_after_hot: Vec<_> = log
        .iter()
        .filter(|t| t.target() == "hall-a-heating-fast" && t.at > self::t(raised_hot))
        .collect();
    assert!(
        rate_after_hot
            .iter()
            .all(|t| matches!(t.delivery(), Some(sited::rules::Delivery::Inhibited { .. })))
    );
    assert_eq!(site.site_status().state, SiteState::Critical);
}

#[test]
fn an_unacknowledged_warning_escalates_to_critical_and_the_site_follows() {
    let mut site = engine();
    let open = sample("hall-a.shield-door.open", Value::Contact(true), 0);
    let log = drive(&mut site, &[(0, open)], 700);
    assert_eq!(
        actions(&log),
        [
            "alarm.raised shield-door-open",
            "site.state site",
            "alarm.escalated shield-door-open",
            "alarm.escalated shield-door-open",
            "site.state site",
        ]
    );
    assert_eq!(log[2].at, t(120));
    assert_eq!(log[3].at, t(600));
    let Change::AlarmEscalated {
        severity, notify, ..
    } = &log[3].change
    else {
        panic!("{log:?}")
    };
    assert_eq!(*severity, Severity::Critical);
    assert_eq!(notify, &["site-manager"]);
    assert_eq!(site.site_status().state, SiteState::Critical);
    // Critical now: closing the door leaves it listed until someone acknowledges it.
    let closed = sample("hall-a.shield-door.open", Value::Contact(false), 710);
    site.on_event(&closed, t(710));
    assert_eq!(site.alarms().len(), 1);
    assert_eq!(site.site_status().state, SiteState::Normal);
}

#[test]
fn an_acknowledged_alarm_does_not_escalate() {
    let mut site = engine();
    let open = sample("hall-a.shield-door.open", Value::Contact(true), 0);
    let mut log = drive(&mut site, &[(0, open)], 60);
    log.extend(
        site.acknowledge(
            &AlarmKey::rule("shield-door-open"),
            "alice",
            "I am at the door",
            t(60),
        )
        .unwrap(),
    );
    log.extend(drive(&mut site, &[], 3600));
    assert_eq!(
        actions(&log),
        [
            "alarm.raised shield-door-open",
            "site.state site",
            "alarm.acknowledged shield-door-open",
        ]
    );
    assert_eq!(site.site_status().state, SiteState::Warning);
}
