use std::time::{Duration, SystemTime, UNIX_EPOCH};

use appliance::dbus::contracts::SiteState;

use super::*;
use crate::rules::alarm::{ExternalAlarm, SilenceMatch};
use crate::rules::config::{RulesConfig, Severity, compile};
use crate::sensor::{SensorId, Value};

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn engine(text: &str) -> RuleEngine {
    let doc: RulesConfig = toml::from_str(text).unwrap();
    let rules = compile(&doc.rule, &|_| true).unwrap();
    RuleEngine::new(rules, t(0))
}

fn contact(sensor: &str, on: bool, at: SystemTime) -> SensorEvent {
    SensorEvent::Sample {
        sensor: SensorId::new(sensor).unwrap(),
        value: Value::Contact(on),
        at,
    }
}

fn changes(transitions: &[Transition]) -> Vec<String> {
    transitions
        .iter()
        .map(|t| format!("{} {}", t.action(), t.target()))
        .collect()
}

const DOOR: &str = r#"
[[rule]]
name = "door"
kind = "contact"
severity = "critical"
sensor = "hall-a.door"
[[rule.escalation]]
after = 60
notify = ["duty"]
[[rule.escalation]]
after = 300
notify = ["manager"]
"#;

#[test]
fn a_contact_raises_in_the_same_call() {
    let mut e = engine(DOOR);
    let out = e.on_event(&contact("hall-a.door", true, t(1)), t(1));
    assert_eq!(changes(&out), ["alarm.raised door", "site.state site"]);
    assert_eq!(out[0].by, Actor::Rules);
    assert_eq!(out[0].why, "hall-a.door is in its active state");
    assert_eq!(e.site_status().state, SiteState::Critical);
    assert_eq!(
        e.site_status().reason,
        "The site is in critical because of alarm door (hall-a.door is in its active state)."
    );
}

#[test]
fn escalation_follows_the_timer_and_stops_at_acknowledgement() {
    let mut e = engine(DOOR);
    e.on_event(&contact("hall-a.door", true, t(0)), t(0));
    assert_eq!(e.next_deadline(), Some(t(60)));
    assert!(e.on_tick(t(59)).is_empty());
    let out = e.on_tick(t(60));
    assert_eq!(changes(&out), ["alarm.escalated door"]);
    let Change::AlarmEscalated { step, notify, .. } = &out[0].change else {
        panic!("{out:?}")
    };
    assert_eq!((*step, notify.as_slice()), (1, &["duty".to_string()][..]));
    assert_eq!(e.next_deadline(), Some(t(300)));
    e.acknowledge(&AlarmKey::rule("door"), "alice", "on my way", t(100))
        .unwrap();
    assert_eq!(e.next_deadline(), None);
    assert!(
        e.on_tick(t(400)).is_empty(),
        "no escalation after acknowledgement"
    );
}

#[test]
fn steps_that_came_due_while_asleep_are_all_taken() {
    let mut e = engine(DOOR);
    e.on_event(&contact("hall-a.door", true, t(0)), t(0));
    let out = e.on_tick(t(1000));
    assert_eq!(
        changes(&out),
        ["alarm.escalated door", "alarm.escalated door"]
    );
}

#[test]
fn a_cleared_critical_alarm_stays_listed_until_acknowledged() {
    let mut e = engine(DOOR);
    e.on_event(&contact("hall-a.door", true, t(0)), t(0));
    let out = e.on_event(&contact("hall-a.door", false, t(5)), t(5));
    let Change::AlarmCleared {
        listed_until_acknowledged,
        ..
    } = &out[0].change
    else {
        panic!("{out:?}")
    };
    assert!(listed_until_acknowledged);
    assert_eq!(e.alarms().len(), 1);
    assert_eq!(
        e.site_status().state,
        SiteState::Normal,
        "cleared alarms have no effect"
    );
    assert!(
        e.on_tick(t(600)).is_empty(),
        "cleared alarms do not escalate"
    );
    e.acknowledge(&AlarmKey::rule("door"), "bob", "seen", t(700))
        .unwrap();
    assert!(e.alarms().is_empty());
    assert_eq!(
        e.acknowledge(&AlarmKey::rule("door"), "bob", "", t(701)),
        Err(ActionError::NoSuchAlarm("door".into()))
    );
}

#[test]
fn an_acknowledged_or_lesser_alarm_leaves_the_list_when_cleared() {
    let mut e = engine(&DOOR.replace("critical", "warning"));
    e.on_event(&contact("hall-a.door", true, t(0)), t(0));
    e.on_event(&contact("hall-a.door", false, t(1)), t(1));
    assert!(e.alarms().is_empty());

    let mut e = engine(DOOR);
    e.on_event(&contact("hall-a.door", true, t(0)), t(0));
    e.acknowledge(&AlarmKey::rule("door"), "carol", "", t(1))
        .unwrap();
    assert!(matches!(
        e.acknowledge(&AlarmKey::rule("door"), "dave", "", t(2)),
        Err(ActionError::AlreadyAcknowledged { .. })
    ));
    e.on_event(&contact("hall-a.door", false, t(3)), t(3));
    assert!(e.alarms().is_empty());
}

#[test]
fn silences_hold_notifications_back_until_they_expire() {
    let mut e = engine(DOOR);
    let (id, out) = e
        .silence(
            SilenceMatch::Sensor("hall-a.*".into()),
            "alice",
            "door maintenance",
            t(100),
            t(0),
        )
        .unwrap();
    assert_eq!(changes(&out), ["silence.added silence:1"]);
    let out = e.on_event(&contact("hall-a.door", true, t(10)), t(10));
    assert_eq!(out[0].delivery(), Some(&Delivery::Silenced { silence: id }));
    assert_eq!(
        e.site_status().state,
        SiteState::Critical,
        "state is unchanged"
    );
    e.on_event(&contact("hall-a.door", false, t(20)), t(20));
    assert_eq!(e.next_deadline(), Some(t(100)));
    let out = e.on_tick(t(100));
    assert_eq!(changes(&out), ["silence.expired silence:1"]);
    let out = e.on_event(&contact("hall-a.door", true, t(110)), t(110));
    assert_eq!(out[0].delivery(), Some(&Delivery::Notify));
    assert_eq!(
        e.silence(SilenceMatch::Alarm("door".into()), "a", "", t(5), t(110)),
        Err(ActionError::SilenceInThePast)
    );
    let (id, _) = e
        .silence(SilenceMatch::Alarm("door".into()), "a", "", t(500), t(110))
        .unwrap();
    assert_eq!(id, 2);
    assert_eq!(
        changes(&e.remove_silence(id, "a", t(120)).unwrap()),
        ["silence.removed silence:2"]
    );
    assert_eq!(
        e.remove_silence(id, "a", t(121)),
        Err(ActionError::NoSuchSilence(2))
    );
}

#[test]
fn external_alarms_are_raised_updated_and_cleared() {
    let mut e = engine(DOOR);
    let hijack = |severity| ExternalAlarm {
        source: "minerd".into(),
        key: "hijack-127.1.0.2".into(),
        severity,
        summary: "miner 127.1.0.2 mines for an unknown pool".into(),
        detail: "{\"ip\":\"127.1.0.2\"}".into(),
    };
    let out = e.raise_external(hijack(Severity::Warning), t(1)).unwrap();
    assert_eq!(
        changes(&out),
        ["alarm.raised minerd/hijack-127.1.0.2", "site.state site"]
    );
    assert_eq!(out[0].by, Actor::Service("minerd".into()));
    assert!(
        e.raise_external(hijack(Severity::Warning), t(2))
            .unwrap()
            .is_empty()
    );
    let out = e.raise_external(hijack(Severity::Critical), t(3)).unwrap();
    assert_eq!(
        changes(&out),
        ["alarm.updated minerd/hijack-127.1.0.2", "site.state site"]
    );
    let out = e
        .clear_external("minerd", "hijack-127.1.0.2", t(4))
        .unwrap();
    assert_eq!(
        changes(&out),
        ["alarm.cleared minerd/hijack-127.1.0.2", "site.state site"]
    );
    assert_eq!(
        e.clear_external("minerd", "hijack-127.1.0.2", t(5)),
        Err(ActionError::NotRaised("minerd/hijack-127.1.0.2".into()))
    );
    let mut bad = hijack(Severity::Info);
    bad.source = "mi/nerd".into();
    assert!(matches!(
        e.raise_external(bad, t(6)),
        Err(ActionError::BadExternal {
            field: "source",
            ..
        })
    ));
}

#[test]
fn transitions_become_audit_entries() {
    let mut e = engine(DOOR);
    let out = e.on_event(&contact("hall-a.door", true, t(1)), t(1));
    let entry = out[0].audit_entry();
    assert_eq!(
        (
            entry.actor.as_str(),
            entry.action.as_str(),
            entry.target.as_str()
        ),
        ("sited", "alarm.raised", "door")
    );
    assert_eq!(entry.detail["change"]["change"], "alarm_raised");
    assert_eq!(entry.detail["change"]["delivery"]["delivery"], "notify");
    let site = out[1].audit_entry();
    assert_eq!(site.detail["change"]["to"], "critical");
}
