//! The alarms the site model implies: a zone over its `limit_c`, a shield below its
//! `required_db`, a door at its `cycle_limit`, a maintenance task within `warn_days` of its due
//! date or past it. They are ordinary `[[rule]]` specs on the derived sensors, so the daemon
//! compiles them with the operator's own rules and the engine treats them alike; the operator
//! does not have to write each limit twice.
//!
//! Their names start with the table's kind and name (`zone.hall-a.over-limit`,
//! `maintenance.se-survey.overdue`); an operator's rule of the same name is refused by
//! [`compile`](crate::rules::compile) as a duplicate.

use super::config::{
    SiteModelConfig, door_cycles_left, maintenance_days_left, zone_hottest_c,
    zone_shielding_margin_db,
};
use crate::rules::{RuleSpec, Severity, config::RuleKind};
use crate::sensor::SensorId;

/// How far below its limit a hot zone must cool before its alarm clears (probe noise must not
/// make it flap), in °C.
pub const ZONE_CLEAR_BELOW_C: f64 = 1.0;
/// How far above the requirement the shielding must come back before its alarm clears, in dB.
pub const SHIELDING_CLEAR_ABOVE_DB: f64 = 1.0;

impl SiteModelConfig {
    /// The `[[rule]]` specs the model implies, in the order of the config (see the module
    /// docs); compile them together with the operator's rules.
    pub fn implied_rules(&self) -> Vec<RuleSpec> {
        let mut rules = Vec::new();
        for zone in &self.zone {
            if let (Some(limit), false) = (zone.limit_c, zone.temperature.is_empty()) {
                rules.push(threshold(
                    format!("zone.{}.over-limit", zone.name),
                    Severity::Warning,
                    format!(
                        "zone `{}` is hotter than its limit of {limit} °C",
                        zone.name
                    ),
                    zone_hottest_c(&zone.name),
                    Side::Above(limit, limit - ZONE_CLEAR_BELOW_C),
                ));
            }
            if let Some(shielding) = &zone.shielding {
                rules.push(threshold(
                    format!("zone.{}.shielding-low", zone.name),
                    Severity::Critical,
                    format!(
                        "zone `{}` is shielded less than the required {} dB",
                        zone.name, shielding.required_db
                    ),
                    zone_shielding_margin_db(&zone.name),
                    Side::Below(0.0, SHIELDING_CLEAR_ABOVE_DB),
                ));
            }
        }
        for door in &self.door {
            if let (Some(limit), Some(_)) = (door.cycle_limit, &door.cycles) {
                // Counters are whole numbers: fewer than one cycle left is at the limit.
                rules.push(threshold(
                    format!("door.{}.cycle-limit", door.name),
                    Severity::Warning,
                    format!(
                        "door `{}` has reached its limit of {limit} cycles: maintenance is due",
                        door.name
                    ),
                    door_cycles_left(&door.name),
                    Side::Below(1.0, 1.0),
                ));
            }
        }
        for task in &self.maintenance {
            let overdue = format!("maintenance.{}.overdue", task.name);
            let due_soon = threshold(
                format!("maintenance.{}.due-soon", task.name),
                Severity::Info,
                format!("{} is due on {}", task.what, task.due),
                maintenance_days_left(&task.name),
                // Whole days: at most `warn_days` left.
                Side::Below(
                    f64::from(task.warn_days) + 1.0,
                    f64::from(task.warn_days) + 1.0,
                ),
            );
            let mut past = threshold(
                overdue.clone(),
                Severity::Warning,
                format!("{} was due on {} and is overdue", task.what, task.due),
                maintenance_days_left(&task.name),
                Side::Below(0.0, 0.0),
            );
            // Overdue says it all; "due soon" beside it would be noise.
            past.inhibits = vec![due_soon.name.clone()];
            rules.push(due_soon);
            rules.push(past);
        }
        rules
    }
}

/// Which side of the limit raises, and where the alarm clears.
enum Side {
    Above(f64, f64),
    Below(f64, f64),
}

fn threshold(
    name: String,
    severity: Severity,
    summary: String,
    sensor: String,
    side: Side,
) -> RuleSpec {
    let (above, below, clear_at) = match side {
        Side::Above(limit, clear) => (Some(limit), None, clear),
        Side::Below(limit, clear) => (None, Some(limit), clear),
    };
    RuleSpec {
        name,
        kind: RuleKind::Threshold,
        severity,
        summary: Some(summary),
        site_state: None,
        inhibits: Vec::new(),
        escalation: Vec::new(),
        sensor: SensorId::new(sensor).ok(),
        above,
        below,
        clear_at: Some(clear_at),
        hold: None,
        clear_hold: None,
        window: None,
        rise_per_minute: None,
        fall_per_minute: None,
        active: None,
        stale_after: None,
        all: None,
        any: None,
    }
}

#[cfg(test)]
#[path = "implied_tests.rs"]
mod tests;
