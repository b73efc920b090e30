use std::time::{Duration, SystemTime};

use super::*;
use crate::rules::{Actor, AlarmKey, Change, Delivery, Severity, Transition};

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn transition(secs: u64, change: Change) -> Transition {
    Transition {
        at: at(secs),
        by: Actor::Rules,
        change,
        why: "because".into(),
    }
}

fn raised(alarm: &str, severity: Severity, delivery: Delivery) -> Change {
    Change::AlarmRaised {
        alarm: AlarmKey::rule(alarm),
        severity,
        summary: format!("{alarm} is up"),
        delivery,
    }
}

fn cleared(alarm: &str) -> Change {
    Change::AlarmCleared {
        alarm: AlarmKey::rule(alarm),
        listed_until_acknowledged: false,
        delivery: Delivery::Notify,
    }
}

fn notification(secs: u64, change: Change) -> Notification {
    Notification::from_transition(&transition(secs, change), "bunker-7").unwrap()
}

/// Settings whose files exist (a throwaway CA and client identity), for opening an outbox
/// that never connects.
fn settings(dir: &Path) -> UplinkSettings {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["sited.example".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("client.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("client.key"), key.serialize_pem()).unwrap();
    UplinkSettings {
        alertmanager: "https://127.72.0.1:9".into(),
        server_ca: dir.join("ca.pem"),
        client: ClientIdentitySource::Pem {
            chain: dir.join("client.pem"),
            key: dir.join("client.key"),
        },
        retry_first: appliance::config::DurationSecs::from_const(1),
        retry_max: appliance::config::DurationSecs::from_const(300),
        resend_every: appliance::config::DurationSecs::from_const(60),
        queue_limit: appliance::config::Bounded::from_const(10_000),
        batch: appliance::config::Bounded::from_const(100),
        timeout: appliance::config::DurationSecs::from_const(10),
    }
}

fn queued_alerts(outbox: &Outbox) -> Vec<Alert> {
    outbox
        .state()
        .journal
        .front(usize::MAX)
        .into_iter()
        .flat_map(|q| q.alerts)
        .collect()
}

#[test]
fn only_delivered_alarm_transitions_become_notifications() {
    let n = notification(0, raised("door-open", Severity::Critical, Delivery::Notify));
    assert_eq!(n.alarm, "door-open");
    assert_eq!(n.change, "raised");
    assert_eq!(n.severity, "critical");
    assert_eq!(n.summary, "door-open is up");
    assert_eq!(n.site, "bunker-7");
    assert!(n.active);
    let silenced = transition(
        0,
        raised(
            "door-open",
            Severity::Critical,
            Delivery::Silenced { silence: 1 },
        ),
    );
    assert_eq!(Notification::from_transition(&silenced, "bunker-7"), None);
    let inhibited = transition(
        0,
        raised(
            "door-open",
            Severity::Critical,
            Delivery::Inhibited { by: "x".into() },
        ),
    );
    assert_eq!(Notification::from_transition(&inhibited, "bunker-7"), None);
    let ack = transition(
        0,
        Change::AlarmAcknowledged {
            alarm: AlarmKey::rule("door-open"),
            note: String::new(),
        },
    );
    assert_eq!(Notification::from_transition(&ack, "bunker-7"), None);
    let clear = notification(5, cleared("door-open"));
    assert_eq!(clear.change, "cleared");
    assert!(!clear.active);
}

#[test]
fn a_clear_resolves_the_alert_it_was_raised_as() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path(), settings(dir.path())).unwrap();
    outbox
        .enqueue(notification(
            0,
            raised("ups-on-battery", Severity::Warning, Delivery::Notify),
        ))
        .unwrap();
    outbox
        .enqueue(notification(30, cleared("ups-on-battery")))
        .unwrap();
    let alerts = queued_alerts(&outbox);
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0].labels, alerts[1].labels, "same alert identity");
    assert_eq!(alerts[0].labels["severity"], "warning");
    assert_eq!(alerts[0].ends_at, None);
    assert_eq!(alerts[1].starts_at, alerts[0].starts_at);
    assert_eq!(
        alerts[1].ends_at.as_deref(),
        Some(&*notification::rfc3339(at(30)))
    );
    assert_eq!(alerts[1].annotations["summary"], "ups-on-battery is up");
    assert_eq!(outbox.status().firing, 0);
    assert_eq!(outbox.status().queued, 2);
}

#[test]
fn an_escalation_ends_the_old_alert_and_starts_one_with_the_targets() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path(), settings(dir.path())).unwrap();
    outbox
        .enqueue(notification(
            0,
            raised("hall-a-hot", Severity::Warning, Delivery::Notify),
        ))
        .unwrap();
    outbox
        .enqueue(notification(
            600,
            Change::AlarmEscalated {
                alarm: AlarmKey::rule("hall-a-hot"),
                step: 1,
                severity: Severity::Critical,
                notify: vec!["shift-lead".into(), "site-manager".into()],
                delivery: Delivery::Notify,
            },
        ))
        .unwrap();
    let alerts = queued_alerts(&outbox);
    assert_eq!(alerts.len(), 3);
    let (old_end, new) = (&alerts[1], &alerts[2]);
    assert_eq!(old_end.labels, alerts[0].labels);
    assert_eq!(
        old_end.ends_at.as_deref(),
        Some(&*notification::rfc3339(at(600)))
    );
    assert_eq!(new.labels["severity"], "critical");
    assert_eq!(new.labels["notify"], "shift-lead,site-manager");
    assert_eq!(
        new.annotations["summary"], "hall-a-hot is up",
        "kept from the raise"
    );
    assert_eq!(new.annotations["change"], "escalated");
    assert_eq!(new.ends_at, None);
    // The clear resolves the escalated alert.
    outbox
        .enqueue(notification(900, cleared("hall-a-hot")))
        .unwrap();
    let alerts = queued_alerts(&outbox);
    assert_eq!(alerts[3].labels, alerts[2].labels);
    assert!(alerts[3].ends_at.is_some());
}

#[test]
fn the_queue_and_its_order_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path(), settings(dir.path())).unwrap();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        outbox
            .enqueue(notification(
                i as u64,
                raised(name, Severity::Info, Delivery::Notify),
            ))
            .unwrap();
    }
    let before = queued_alerts(&outbox);
    // No flush, no shutdown: what enqueue acknowledged is on disk.
    drop(outbox);
    let reopened = Outbox::open(dir.path(), settings(dir.path())).unwrap();
    assert_eq!(reopened.status().queued, 3);
    assert_eq!(queued_alerts(&reopened), before);
}

#[test]
fn the_active_set_adds_unknown_alarms_keeps_known_ones_and_forgets_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path(), settings(dir.path())).unwrap();
    outbox
        .enqueue(notification(
            0,
            raised("a", Severity::Info, Delivery::Notify),
        ))
        .unwrap();
    outbox
        .enqueue(notification(
            1,
            raised("c", Severity::Warning, Delivery::Notify),
        ))
        .unwrap();
    outbox
        .enqueue(notification(
            9,
            Change::AlarmEscalated {
                alarm: AlarmKey::rule("c"),
                step: 1,
                severity: Severity::Critical,
                notify: vec!["shift-lead".into()],
                delivery: Delivery::Notify,
            },
        ))
        .unwrap();
    let mut b = notification(5, raised("b", Severity::Critical, Delivery::Notify));
    b.notify = vec!["oncall".into()];
    // The book's view of `c` does not know its targets; the outbox's does.
    let c = notification(1, raised("c", Severity::Critical, Delivery::Notify));
    outbox.set_active(vec![b, c]);
    let firing = firing_alerts(&outbox.state().firing);
    let names: Vec<&str> = firing
        .iter()
        .map(|a| a.labels["alertname"].as_str())
        .collect();
    assert_eq!(names, ["b", "c"], "a is left out");
    assert_eq!(firing[0].labels["notify"], "oncall");
    assert_eq!(firing[0].starts_at, notification::rfc3339(at(5)));
    assert_eq!(firing[1].labels["notify"], "shift-lead");
    assert_eq!(firing[1].starts_at, notification::rfc3339(at(9)));
    assert_eq!(outbox.status().firing, 2);
}

#[test]
fn times_are_written_as_alertmanager_writes_them() {
    let t = SystemTime::UNIX_EPOCH
        + Duration::from_millis(1_763_760_000_123)
        + Duration::from_micros(456);
    assert_eq!(notification::rfc3339(t), "2025-11-21T21:20:00.123Z");
}
