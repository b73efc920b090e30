use std::time::SystemTime;

use super::*;
use crate::rules::{Acknowledgement, AlarmKey, Severity};

fn alarm(name: &str, active: bool, acknowledged: bool) -> Alarm {
    Alarm {
        key: AlarmKey::rule(name),
        summary: String::new(),
        detail: String::new(),
        base_severity: Severity::Critical,
        severity: Severity::Critical,
        site_state: None,
        sensors: Vec::new(),
        raised_at: SystemTime::UNIX_EPOCH,
        active,
        cleared_at: None,
        acknowledged: acknowledged.then(|| Acknowledgement {
            by: "operator:alice".into(),
            at: SystemTime::UNIX_EPOCH,
            note: String::new(),
        }),
        escalation_step: 0,
    }
}

fn outputs() -> Vec<OutputSpec> {
    toml::from_str::<BTreeMap<String, Vec<OutputSpec>>>(
        r#"
        [[output]]
        relay = "siren"
        alarms = ["door-*-forced", "intrusion-*"]
        on_while = "unacknowledged"

        [[output]]
        relay = "beacon"
        alarms = ["door-*-forced", "minerd/*"]

        [[output]]
        relay = "door-1.interlock"
        site_states = ["lockdown"]
        "#,
    )
    .unwrap()
    .remove("output")
    .unwrap()
}

fn not_muted(_: &Alarm) -> bool {
    false
}

#[test]
fn a_matching_active_alarm_switches_its_relays_on_and_an_acknowledgement_quiets_the_siren() {
    let outputs = outputs();
    let raised = [alarm("door-2-forced", true, false)];
    let on = wanted(&outputs, &raised, &not_muted, SiteState::Critical);
    assert!(on["siren"]);
    assert!(on["beacon"]);
    assert!(!on["door-1.interlock"]);

    let acknowledged = [alarm("door-2-forced", true, true)];
    let on = wanted(&outputs, &acknowledged, &not_muted, SiteState::Critical);
    assert!(!on["siren"], "acknowledged: the siren stops");
    assert!(on["beacon"], "the beacon stays while the alarm is active");

    let cleared = [alarm("door-2-forced", false, false)];
    let on = wanted(&outputs, &cleared, &not_muted, SiteState::Normal);
    assert!(on.values().all(|on| !on), "{on:?}");
}

#[test]
fn the_site_state_switches_interlocks_and_external_alarms_match_by_source() {
    let outputs = outputs();
    let on = wanted(&outputs, &[], &not_muted, SiteState::Lockdown);
    assert!(on["door-1.interlock"]);
    assert!(!on["siren"]);

    let mut hijack = alarm("x", true, false);
    hijack.key = AlarmKey::external("minerd", "hijack-127.1.0.9");
    let on = wanted(&outputs, &[hijack], &not_muted, SiteState::Warning);
    assert!(on["beacon"]);
    assert!(!on["siren"]);
}

#[test]
fn muted_alarms_drive_nothing() {
    let outputs = outputs();
    let raised = [alarm("intrusion-1", true, false)];
    let on = wanted(&outputs, &raised, &|_| true, SiteState::Normal);
    assert!(!on["siren"]);
}

#[test]
fn outputs_name_existing_relays_once_and_switch_on_for_something() {
    let mut outputs = outputs();
    outputs.push(OutputSpec {
        relay: "siren".into(),
        alarms: vec!["a b".into()],
        on_while: OnWhile::Active,
        site_states: Vec::new(),
    });
    outputs.push(OutputSpec {
        relay: "horn".into(),
        alarms: Vec::new(),
        on_while: OnWhile::Active,
        site_states: Vec::new(),
    });
    let relays = ["siren", "beacon", "door-1.interlock"];
    let problems = validate(&outputs, &|name| relays.contains(&name));
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "output[3].relay",
            "output[3].alarms[0]",
            "output[4].relay",
            "output[4]"
        ]
    );
    assert!(validate(&outputs[..3], &|name| relays.contains(&name)).is_empty());
}
