//! The rule language: a `[[rule]]` list in `sited.toml`, read with serde and checked before
//! the engine starts.
//!
//! Every rule is one flat table with a `kind`, so that each key keeps its own position in the
//! file: a wrong type or an out-of-range duration is reported at the value, and the checks that
//! need several values ([`compile`]) name the key (`rule[3].clear_at`), which the config loader
//! turns into `FILE:LINE:COLUMN`. A checked list becomes a [`RuleSet`] of typed [`Rule`]s.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use appliance::config::{ConfigError, DurationSecs, Invalid};

pub use super::compile::compile;
use serde::{Deserialize, Serialize};

use crate::sensor::SensorId;

/// How bad an alarm is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a line in the console; no site state.
    Info,
    /// Needs attention; the site is in `warning`.
    #[default]
    Warning,
    /// The site is at risk; the site is in `critical`.
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The site state a rule forces while its alarm is active (at least this state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteEffect {
    Warning,
    Critical,
    Lockdown,
}

/// The kinds of rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// A measured value above or below a limit, with hysteresis and hold times.
    Threshold,
    /// A measured value changing faster than a limit per minute.
    Rate,
    /// A binary input in its active state (door, intrusion, arrester): raised on the event.
    Contact,
    /// A sensor lost, or silent for longer than `stale_after`.
    Lost,
    /// All or any of other rules active.
    Composite,
}

/// The longest hold, window or staleness limit a rule may set: one day.
pub const MAX_RULE_SECS: u64 = 86_400;
/// The longest escalation delay: one week.
pub const MAX_ESCALATION_SECS: u64 = 604_800;

/// One escalation step as written: after `after` seconds unacknowledged, raise the severity
/// and/or notify these targets.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationSpec {
    pub after: DurationSecs<1, MAX_ESCALATION_SECS>,
    #[serde(default)]
    pub severity: Option<Severity>,
    #[serde(default)]
    pub notify: Vec<String>,
}

/// One `[[rule]]` table as written; [`compile`] checks it and makes it a [`Rule`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// The rule's (and its alarm's) name: 1 to 64 of `a-z 0-9 . _ -`, unique.
    pub name: String,
    pub kind: RuleKind,
    /// `info`, `warning` or `critical`.
    pub severity: Severity,
    /// A sentence for the operator; a generated one when absent.
    #[serde(default)]
    pub summary: Option<String>,
    /// At least this site state while the alarm is active: `warning`, `critical`, `lockdown`.
    #[serde(default)]
    pub site_state: Option<SiteEffect>,
    /// Rules whose alarms are muted (no notification, no site state) while this one holds.
    #[serde(default)]
    pub inhibits: Vec<String>,
    /// `[[rule.escalation]]` steps, in order of `after`.
    #[serde(default)]
    pub escalation: Vec<EscalationSpec>,
    /// The sensor read (threshold, rate, contact, lost); must exist in the site model.
    #[serde(default)]
    pub sensor: Option<SensorId>,
    /// Threshold: raise when the value is above this (exclusive).
    #[serde(default)]
    pub above: Option<f64>,
    /// Threshold: raise when the value is below this (exclusive).
    #[serde(default)]
    pub below: Option<f64>,
    /// Threshold: clear once the value is back at or past this (hysteresis); the limit when
    /// absent. At or below `above`, at or above `below`.
    #[serde(default)]
    pub clear_at: Option<f64>,
    /// Threshold, rate: seconds the condition must hold before the alarm is raised.
    #[serde(default)]
    pub hold: Option<DurationSecs<0, MAX_RULE_SECS>>,
    /// Threshold, rate: seconds the condition must stay over before the alarm clears.
    #[serde(default)]
    pub clear_hold: Option<DurationSecs<0, MAX_RULE_SECS>>,
    /// Rate: seconds of samples the change is measured over (needs at least half of it).
    #[serde(default)]
    pub window: Option<DurationSecs<1, MAX_RULE_SECS>>,
    /// Rate: raise when the value rises by at least this much a minute.
    #[serde(default)]
    pub rise_per_minute: Option<f64>,
    /// Rate: raise when the value falls by at least this much a minute.
    #[serde(default)]
    pub fall_per_minute: Option<f64>,
    /// Contact: the contact value that means alarm (default `true`).
    #[serde(default)]
    pub active: Option<bool>,
    /// Lost: seconds without a sample before the sensor counts as lost.
    #[serde(default)]
    pub stale_after: Option<DurationSecs<1, MAX_RULE_SECS>>,
    /// Composite: active while all of these rules are. An entry `external:SOURCE/KEY` stands
    /// for an active external alarm (`*` matches any run of characters).
    #[serde(default)]
    pub all: Option<Vec<String>>,
    /// Composite: active while any of these rules is.
    #[serde(default)]
    pub any: Option<Vec<String>>,
}

/// A document holding only rules (`[[rule]]` tables), e.g. a `sited.toml` layer for rules.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    pub rule: Vec<RuleSpec>,
}

impl RulesConfig {
    /// The checks of [`compile`], for an `appliance::config::load_file` validator.
    pub fn validate(&self, known_sensor: &dyn Fn(&SensorId) -> bool) -> Result<(), Vec<Invalid>> {
        compile(&self.rule, known_sensor).map(|_| ())
    }
}

/// Reads a rules document (`[[rule]]` tables only) from `file` and checks it against the
/// site's sensors, through appliance's loader: problems come back as
/// `FILE:LINE:COLUMN: sentence` lines and the service exits with status 78.
///
/// When the rules sit in `sited.toml` beside other settings, the daemon's config struct holds
/// `rule: Vec<RuleSpec>` and its validator calls [`compile`] instead; the key paths are the
/// same (`rule[N].key`).
pub fn load_rules(
    file: &Path,
    known_sensor: &dyn Fn(&SensorId) -> bool,
) -> Result<RuleSet, ConfigError> {
    let mut compiled = None;
    appliance::config::load_file(file, |doc: &RulesConfig| {
        compiled = Some(compile(&doc.rule, known_sensor)?);
        Ok(())
    })?;
    Ok(compiled.unwrap_or_default())
}

/// Which side of the limit raises a threshold rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    Above(f64),
    Below(f64),
}

/// A threshold rule's condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub sensor: SensorId,
    pub limit: Limit,
    /// Where the alarm clears (hysteresis); equal to the limit when not set.
    pub clear_at: f64,
    pub hold: Duration,
    pub clear_hold: Duration,
}

/// A rate-of-change rule's condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    pub sensor: SensorId,
    pub window: Duration,
    pub rise_per_minute: Option<f64>,
    pub fall_per_minute: Option<f64>,
    pub hold: Duration,
    pub clear_hold: Duration,
}

/// How a composite names external alarms: `external:SOURCE/KEY`, e.g.
/// `external:civil-defence/hemp-alert` or `external:minerd/*`.
pub const EXTERNAL_PREFIX: &str = "external:";

/// Whether a composite needs all or any of its rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    All,
    Any,
}

/// What a rule watches.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Threshold(Threshold),
    Rate(Rate),
    Contact {
        sensor: SensorId,
        active: bool,
    },
    Lost {
        sensor: SensorId,
        stale_after: Duration,
    },
    Composite {
        combine: Combine,
        rules: Vec<String>,
    },
}

impl Condition {
    /// The sensor a non-composite rule reads.
    pub fn sensor(&self) -> Option<&SensorId> {
        match self {
            Condition::Threshold(t) => Some(&t.sensor),
            Condition::Rate(r) => Some(&r.sensor),
            Condition::Contact { sensor, .. } | Condition::Lost { sensor, .. } => Some(sensor),
            Condition::Composite { .. } => None,
        }
    }
}

/// One escalation step, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationStep {
    pub after: Duration,
    pub severity: Option<Severity>,
    pub notify: Vec<String>,
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub summary: Option<String>,
    pub severity: Severity,
    pub site_state: Option<SiteEffect>,
    pub inhibits: Vec<String>,
    pub escalation: Vec<EscalationStep>,
    pub condition: Condition,
}

/// The checked rules, composites after every rule they read (so one pass evaluates them).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Rule positions by name, and the rules each sensor feeds: an event touches only its
    /// own rules, whatever the size of the site.
    by_name: HashMap<String, usize>,
    by_sensor: HashMap<SensorId, Vec<usize>>,
}

impl RuleSet {
    /// Rules in evaluation order (every composite after the rules it reads).
    pub(super) fn new(rules: Vec<Rule>) -> RuleSet {
        let by_name = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), i))
            .collect();
        let mut by_sensor: HashMap<SensorId, Vec<usize>> = HashMap::new();
        for (i, rule) in rules.iter().enumerate() {
            if let Some(sensor) = rule.condition.sensor() {
                by_sensor.entry(sensor.clone()).or_default().push(i);
            }
        }
        RuleSet {
            rules,
            by_name,
            by_sensor,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.position(name).map(|i| &self.rules[i])
    }

    /// The rule's index in [`RuleSet::rules`].
    pub fn position(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The indices of the rules that read `sensor`.
    pub fn reading(&self, sensor: &SensorId) -> &[usize] {
        self.by_sensor.get(sensor).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
