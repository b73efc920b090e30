//! External alarms (another service's `RaiseAlarm`) inside composite rules: a shielded door
//! open while the civil-defence HEMP alert, relayed by another service, is active.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use appliance::config::Invalid;
use appliance::dbus::contracts::SiteState;
use sited::rules::{
    AlarmKey, ExternalAlarm, RuleEngine, RulesConfig, Severity, Transition, compile,
};
use sited::sensor::{SensorEvent, SensorId, Value};

const RULES: &str = r#"
[[rule]]
name = "shield-door-open"
kind = "contact"
severity = "warning"
sensor = "hall-a.shield-door.open"

[[rule]]
name = "door-open-during-hemp-alert"
kind = "composite"
severity = "critical"
site_state = "lockdown"
all = ["shield-door-open", "external:civil-defence/hemp-*"]
summary = "A shielded door is open during a HEMP alert."
"#;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn compiled(text: &str) -> Result<sited::rules::RuleSet, Vec<Invalid>> {
    let doc: RulesConfig = toml::from_str(text).unwrap();
    compile(&doc.rule, &|_| true)
}

fn actions(transitions: &[Transition]) -> Vec<String> {
    transitions
        .iter()
        .map(|t| format!("{} {}", t.action(), t.target()))
        .collect()
}

fn hemp_alert() -> ExternalAlarm {
    ExternalAlarm {
        source: "civil-defence".into(),
        key: "hemp-alert".into(),
        severity: Severity::Critical,
        summary: "National HEMP alert level 2".into(),
        detail: "{\"level\":2}".into(),
    }
}

#[test]
fn a_door_open_when_the_external_alert_arrives_locks_the_site_down() {
    let mut site = RuleEngine::new(compiled(RULES).unwrap(), t(0));
    let door = SensorEvent::Sample {
        sensor: SensorId::new("hall-a.shield-door.open").unwrap(),
        value: Value::Contact(true),
        at: t(1),
    };
    assert_eq!(
        actions(&site.on_event(&door, t(1))),
        ["alarm.raised shield-door-open", "site.state site"]
    );
    assert_eq!(site.site_status().state, SiteState::Warning);

    let out = site.raise_external(hemp_alert(), t(2)).unwrap();
    assert_eq!(
        actions(&out),
        [
            "alarm.raised civil-defence/hemp-alert",
            "alarm.raised door-open-during-hemp-alert",
            "site.state site"
        ]
    );
    assert_eq!(
        out[1].why,
        "shield-door-open and external:civil-defence/hemp-* active"
    );
    assert_eq!(site.site_status().state, SiteState::Lockdown);

    let out = site
        .clear_external("civil-defence", "hemp-alert", t(3))
        .unwrap();
    assert_eq!(
        actions(&out),
        [
            "alarm.cleared civil-defence/hemp-alert",
            "alarm.cleared door-open-during-hemp-alert",
            "site.state site"
        ]
    );
    assert_eq!(site.site_status().state, SiteState::Warning);
    // Both critical alarms stay listed for acknowledgement.
    assert!(
        site.alarm(&AlarmKey::external("civil-defence", "hemp-alert"))
            .is_some()
    );
    assert!(
        site.alarm(&AlarmKey::rule("door-open-during-hemp-alert"))
            .is_some()
    );
}

#[test]
fn an_external_reference_without_source_and_key_is_refused() {
    let text = RULES.replace("external:civil-defence/hemp-*", "external:hemp");
    assert_eq!(
        compiled(&text).unwrap_err(),
        vec![Invalid::new(
            "rule[1].all[1]",
            "`external:hemp` names no external alarm: write `external:SOURCE/KEY` (`*` matches \
             any run of characters)"
        )]
    );
}
