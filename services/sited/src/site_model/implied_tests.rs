use std::time::{Duration, SystemTime, UNIX_EPOCH};

use appliance::dbus::contracts::SiteState;

use super::*;
use crate::rules::{RuleEngine, Transition, compile};
use crate::sensor::{SensorEvent, Value};
use crate::site_model::SiteModel;

const SITE: &str = r#"
[[zone]]
name = "hall-a"
temperature = ["a.t1"]
limit_c = 35.0
shielding = { outside = "field.out", inside = "field.in", required_db = 80.0 }

[[zone]]
name = "corridor"
temperature = ["c.t1"]

[[door]]
name = "main"
open = "main.open"
cycles = "main.cycles"
cycle_limit = 100

[[maintenance]]
name = "se-survey"
what = "HEMP shielding effectiveness survey (MIL-STD-188-125-1)"
due = "2026-12-01"
warn_days = 2
"#;

/// 2026-11-28 12:00:00 UTC.
const NOV_28_NOON: u64 = 1_795_867_200;

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOV_28_NOON + secs)
}

fn sample(sensor: &str, value: f64, at: SystemTime) -> SensorEvent {
    SensorEvent::Sample {
        sensor: SensorId::new(sensor).unwrap(),
        value: Value::Number(value),
        at,
    }
}

/// The site model and a rule engine running only the implied rules.
struct Site {
    model: SiteModel,
    engine: RuleEngine,
}

impl Site {
    fn new() -> Site {
        let config: SiteModelConfig = toml::from_str(SITE).unwrap();
        let derived: Vec<SensorId> = config.derived_sensors().into_iter().map(|d| d.0).collect();
        let rules = compile(&config.implied_rules(), &|s| derived.contains(s)).unwrap();
        Site {
            model: SiteModel::new(&config),
            engine: RuleEngine::new(rules, t(0)),
        }
    }

    /// Feeds one input event through the model into the engine: the alarms' changes.
    fn input(&mut self, event: SensorEvent, at: SystemTime) -> Vec<String> {
        let derived = self.model.on_event(&event);
        self.derive(derived, at)
    }

    fn tick(&mut self, at: SystemTime) -> Vec<String> {
        let derived = self.model.on_tick(at);
        self.derive(derived, at)
    }

    fn derive(&mut self, derived: Vec<SensorEvent>, at: SystemTime) -> Vec<String> {
        let transitions: Vec<Transition> = derived
            .iter()
            .flat_map(|e| self.engine.on_event(e, at))
            .collect();
        transitions
            .iter()
            .filter(|t| t.action() != "site.state")
            .map(|t| format!("{} {}", t.action(), t.target()))
            .collect()
    }
}

#[test]
fn the_implied_rules_compile_against_the_derived_sensors() {
    let config: SiteModelConfig = toml::from_str(SITE).unwrap();
    let names: Vec<String> = config.implied_rules().into_iter().map(|r| r.name).collect();
    assert_eq!(
        names,
        [
            "zone.hall-a.over-limit",
            "zone.hall-a.shielding-low",
            "door.main.cycle-limit",
            "maintenance.se-survey.due-soon",
            "maintenance.se-survey.overdue",
        ],
        "the corridor has no limit: no rule"
    );
    assert!(SiteModelConfig::default().implied_rules().is_empty());
}

#[test]
fn a_zone_over_its_limit_alarms_and_clears_one_degree_below() {
    let mut site = Site::new();
    assert_eq!(
        site.input(sample("a.t1", 34.0, t(1)), t(1)),
        Vec::<String>::new()
    );
    assert_eq!(
        site.input(sample("a.t1", 35.5, t(2)), t(2)),
        ["alarm.raised zone.hall-a.over-limit"]
    );
    assert_eq!(site.engine.site_status().state, SiteState::Warning);
    assert_eq!(
        site.input(sample("a.t1", 34.5, t(3)), t(3)),
        Vec::<String>::new(),
        "within the hysteresis"
    );
    assert_eq!(
        site.input(sample("a.t1", 33.9, t(4)), t(4)),
        ["alarm.cleared zone.hall-a.over-limit"]
    );
}

#[test]
fn a_shielding_drop_below_the_requirement_is_critical() {
    let mut site = Site::new();
    site.input(sample("field.out", 130.0, t(1)), t(1));
    assert_eq!(
        site.input(sample("field.in", 40.0, t(2)), t(2)),
        Vec::<String>::new()
    );
    assert_eq!(
        site.input(sample("field.in", 52.0, t(3)), t(3)),
        ["alarm.raised zone.hall-a.shielding-low"],
        "78 dB of 80 required"
    );
    assert_eq!(site.engine.site_status().state, SiteState::Critical);
}

#[test]
fn a_door_at_its_cycle_limit_is_due_for_maintenance() {
    let mut site = Site::new();
    assert_eq!(
        site.input(sample("main.cycles", 99.0, t(1)), t(1)),
        Vec::<String>::new()
    );
    assert_eq!(
        site.input(sample("main.cycles", 100.0, t(2)), t(2)),
        ["alarm.raised door.main.cycle-limit"]
    );
}

#[test]
fn maintenance_is_due_soon_within_warn_days_then_overdue() {
    let mut site = Site::new();
    assert_eq!(site.tick(t(0)), Vec::<String>::new(), "3 days left");
    let nov_29 = t(12 * 3600);
    assert_eq!(
        site.tick(nov_29),
        ["alarm.raised maintenance.se-survey.due-soon"],
        "2 days left: within warn_days"
    );
    let alarm = site
        .engine
        .alarm(&crate::rules::alarm::AlarmKey::rule(
            "maintenance.se-survey.due-soon",
        ))
        .unwrap();
    assert_eq!(
        alarm.summary,
        "HEMP shielding effectiveness survey (MIL-STD-188-125-1) is due on 2026-12-01"
    );
    let dec_1 = nov_29 + Duration::from_secs(2 * 86_400);
    assert_eq!(
        site.tick(dec_1),
        Vec::<String>::new(),
        "the due day is not overdue"
    );
    let dec_2 = dec_1 + Duration::from_secs(86_400);
    assert_eq!(
        site.tick(dec_2),
        ["alarm.raised maintenance.se-survey.overdue"]
    );
}

#[test]
fn an_overdue_task_mutes_its_due_soon_alarm() {
    let mut site = Site::new();
    let dec_5 = t(7 * 86_400);
    let derived = site.model.on_tick(dec_5);
    let transitions: Vec<Transition> = derived
        .iter()
        .flat_map(|e| site.engine.on_event(e, dec_5))
        .collect();
    let due_soon = transitions
        .iter()
        .find_map(|t| match &t.change {
            crate::rules::Change::AlarmRaised {
                alarm, delivery, ..
            } if alarm.to_string() == "maintenance.se-survey.due-soon" => Some(delivery.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        due_soon,
        crate::rules::Delivery::Inhibited {
            by: "maintenance.se-survey.overdue".into()
        }
    );
}
