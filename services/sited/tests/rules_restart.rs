//! The alarm book survives a restart: alarms, acknowledgements, escalation steps and silences
//! saved with appliance's atomic state write, read back, and the engine continues with the
//! same transitions as one that never stopped.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use appliance::state::StateDir;
use sited::rules::book::BOOK_FILE;
use sited::rules::{
    AlarmBook, AlarmKey, BookError, ExternalAlarm, RuleEngine, RuleSet, RulesConfig, Severity,
    SilenceMatch, Transition, compile,
};
use sited::sensor::{SensorEvent, SensorId, Value};

const RULES: &str = r#"
[[rule]]
name = "hall-a-hot"
kind = "threshold"
severity = "warning"
sensor = "hall-a.temp"
above = 35.0
clear_at = 32.0

[[rule]]
name = "shield-door-open"
kind = "contact"
severity = "critical"
sensor = "hall-a.shield-door.open"

[[rule]]
name = "intrusion"
kind = "contact"
severity = "critical"
site_state = "lockdown"
sensor = "hall-a.intrusion"
[[rule.escalation]]
after = 60
notify = ["duty-officer"]
[[rule.escalation]]
after = 300
notify = ["site-manager"]
"#;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn rules(text: &str) -> RuleSet {
    let doc: RulesConfig = toml::from_str(text).unwrap();
    compile(&doc.rule, &|_| true).unwrap()
}

/// One thing that happens to the engine.
#[derive(Clone)]
enum Step {
    Number(&'static str, f64),
    Contact(&'static str, bool),
    Tick,
    Ack(&'static str, &'static str),
    SilenceSensors(&'static str, u64),
    RaiseExternal,
    ClearExternal,
}

fn run(engine: &mut RuleEngine, secs: u64, step: &Step) -> Vec<Transition> {
    let now = t(secs);
    let sample = |sensor: &str, value| SensorEvent::Sample {
        sensor: SensorId::new(sensor).unwrap(),
        value,
        at: now,
    };
    match step.clone() {
        Step::Number(sensor, v) => engine.on_event(&sample(sensor, Value::Number(v)), now),
        Step::Contact(sensor, on) => engine.on_event(&sample(sensor, Value::Contact(on)), now),
        Step::Tick => engine.on_tick(now),
        Step::Ack(alarm, by) => engine
            .acknowledge(&AlarmKey::rule(alarm), by, "seen", now)
            .unwrap(),
        Step::SilenceSensors(pattern, until) => {
            let matcher = SilenceMatch::Sensor(pattern.into());
            engine
                .silence(matcher, "alice", "cooling work", t(until), now)
                .unwrap()
                .1
        }
        Step::RaiseExternal => engine
            .raise_external(
                ExternalAlarm {
                    source: "minerd".into(),
                    key: "hijack-127.1.0.9".into(),
                    severity: Severity::Warning,
                    summary: "miner 127.1.0.9 mines for an unknown pool".into(),
                    detail: "{}".into(),
                },
                now,
            )
            .unwrap(),
        Step::ClearExternal => engine
            .clear_external("minerd", "hijack-127.1.0.9", now)
            .unwrap(),
    }
}

fn before_restart() -> Vec<(u64, Step)> {
    vec![
        (1, Step::Number("hall-a.temp", 36.0)),
        (2, Step::Contact("hall-a.shield-door.open", true)),
        (3, Step::RaiseExternal),
        (4, Step::SilenceSensors("hall-a.temp", 500)),
        (5, Step::Ack("hall-a-hot", "bob")),
        (6, Step::Contact("hall-a.intrusion", true)),
        (10, Step::Contact("hall-a.shield-door.open", false)),
        (66, Step::Tick),
    ]
}

fn after_restart() -> Vec<(u64, Step)> {
    vec![
        (200, Step::Number("hall-a.temp", 33.0)),
        (210, Step::Number("hall-a.temp", 31.0)),
        (306, Step::Tick),
        (400, Step::Ack("shield-door-open", "carol")),
        (500, Step::Tick),
        (510, Step::ClearExternal),
        (520, Step::Number("hall-a.temp", 36.0)),
        (530, Step::Contact("hall-a.intrusion", false)),
    ]
}

#[test]
fn a_restart_keeps_alarms_acknowledgements_escalation_and_silences() {
    // The engine that never stops.
    let mut steady = RuleEngine::new(rules(RULES), t(0));
    for (secs, step) in before_restart() {
        run(&mut steady, secs, &step);
    }
    let expected: Vec<Vec<Transition>> = after_restart()
        .iter()
        .map(|(secs, step)| run(&mut steady, *secs, step))
        .collect();

    // The engine that is killed after every step before the restart point: only what it saved
    // survives (the book is saved after each call, as the daemon does).
    let dir = tempfile::TempDir::new().unwrap();
    let state = StateDir::new(dir.path()).unwrap();
    let mut engine = RuleEngine::new(rules(RULES), t(0));
    for (secs, step) in before_restart() {
        run(&mut engine, secs, &step);
        engine.book().save(&state).unwrap();
    }
    let saved = engine.book().clone();
    let site = engine.site_status().clone();
    drop(engine);

    let book = AlarmBook::load(&state)
        .unwrap()
        .expect("the book was saved");
    assert_eq!(book, saved);
    let (mut engine, on_restore) = RuleEngine::restore(rules(RULES), book, t(100));
    assert!(on_restore.is_empty(), "{on_restore:?}");
    assert_eq!(engine.site_status(), &site);
    assert_eq!(engine.alarms().len(), 4, "{:?}", engine.alarms());

    let continued: Vec<Vec<Transition>> = after_restart()
        .iter()
        .map(|(secs, step)| run(&mut engine, *secs, step))
        .collect();
    assert_eq!(continued, expected);

    // What the continued run shows, so the comparison is not between two empty lists: the
    // silence kept holding back the hot alarm's clearing, escalation went on at step 2 (not
    // step 1 again), and the acknowledgement of the cleared door removed it.
    let actions: Vec<Vec<String>> = continued
        .iter()
        .map(|ts| {
            ts.iter()
                .map(|t| format!("{} {}", t.action(), t.target()))
                .collect()
        })
        .collect();
    assert_eq!(actions[1], ["alarm.cleared hall-a-hot"]);
    assert_eq!(
        continued[1][0].delivery(),
        Some(&sited::rules::Delivery::Silenced { silence: 1 })
    );
    assert_eq!(actions[2], ["alarm.escalated intrusion"]);
    assert!(matches!(
        &continued[2][0].change,
        sited::rules::Change::AlarmEscalated { step: 2, notify, .. } if notify == &["site-manager"]
    ));
    assert_eq!(actions[3], ["alarm.acknowledged shield-door-open"]);
    assert_eq!(actions[4], ["silence.expired silence:1"]);
}

#[test]
fn a_rule_removed_while_stopped_clears_its_alarm_on_restore() {
    let mut engine = RuleEngine::new(rules(RULES), t(0));
    run(&mut engine, 1, &Step::Number("hall-a.temp", 40.0));
    let book = engine.book().clone();
    let without_hot = RULES.replacen(
        "[[rule]]\nname = \"hall-a-hot\"\nkind = \"threshold\"\nseverity = \"warning\"\n\
         sensor = \"hall-a.temp\"\nabove = 35.0\nclear_at = 32.0\n",
        "",
        1,
    );
    assert_ne!(without_hot, RULES);
    let (engine, on_restore) = RuleEngine::restore(rules(&without_hot), book, t(10));
    assert_eq!(on_restore.len(), 1);
    assert_eq!(on_restore[0].action(), "alarm.cleared");
    assert_eq!(on_restore[0].why, "its rule is no longer configured");
    assert!(engine.alarms().is_empty());
}

#[test]
fn a_book_of_another_version_is_refused() {
    let dir = tempfile::TempDir::new().unwrap();
    let state = StateDir::new(dir.path()).unwrap();
    assert!(AlarmBook::load(&state).unwrap().is_none());
    state
        .write_atomic(BOOK_FILE, br#"{"version": 2, "alarms": [], "newer": true}"#)
        .unwrap();
    let err = AlarmBook::load(&state).unwrap_err();
    assert!(
        matches!(err, BookError::Version { found: Some(2) }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "alarms.json has version 2; this sited reads version 1"
    );
    state.write_atomic(BOOK_FILE, b"{\"version\": 1}").unwrap();
    assert!(matches!(
        AlarmBook::load(&state),
        Err(BookError::Decode { .. })
    ));
}
