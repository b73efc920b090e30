//! Checking `[[rule]]` specs and making them typed [`Rule`]s: every problem is said with the
//! key to fix (`rule[3].clear_at`), which the config loader turns into `FILE:LINE:COLUMN`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use appliance::config::Invalid;

use super::config::{
    Combine, Condition, EXTERNAL_PREFIX, EscalationStep, Limit, Rate, Rule, RuleKind, RuleSet,
    RuleSpec, Threshold,
};
use crate::sensor::SensorId;

/// Checks the rules and makes them typed, or says every problem with the key to fix.
pub fn compile(
    specs: &[RuleSpec],
    known_sensor: &dyn Fn(&SensorId) -> bool,
) -> Result<RuleSet, Vec<Invalid>> {
    let mut problems = Vec::new();
    let names = check_names(specs, &mut problems);
    let mut rules = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let mut check = Checker {
            key: format!("rule[{i}]"),
            spec,
            problems: &mut problems,
        };
        if let Some(rule) = check.rule(&names, known_sensor) {
            rules.push(rule);
        }
    }
    if problems.is_empty() {
        match order_composites(rules) {
            Ok(rules) => return Ok(RuleSet::new(rules)),
            Err((name, cycle)) => {
                let i = specs.iter().position(|s| s.name == name).unwrap_or(0);
                let field = if specs[i].all.is_some() { "all" } else { "any" };
                problems.push(Invalid::new(
                    format!("rule[{i}].{field}"),
                    format!("composite rules refer to each other in a cycle: {cycle}"),
                ));
            }
        }
    }
    Err(problems)
}

/// Rule names: the same characters as sensor names, each used once. Returns the names.
fn check_names(specs: &[RuleSpec], problems: &mut Vec<Invalid>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, spec) in specs.iter().enumerate() {
        if SensorId::new(spec.name.clone()).is_err() {
            problems.push(Invalid::new(
                format!("rule[{i}].name"),
                format!(
                    "`{}` is not a rule name: use 1 to 64 of a-z 0-9 . _ -, starting with a \
                     letter or digit",
                    spec.name
                ),
            ));
        } else if !names.insert(spec.name.clone()) {
            problems.push(Invalid::new(
                format!("rule[{i}].name"),
                format!("a rule named `{}` is already defined above", spec.name),
            ));
        }
    }
    names
}

/// Checks one rule spec, collecting problems.
struct Checker<'a> {
    key: String,
    spec: &'a RuleSpec,
    problems: &'a mut Vec<Invalid>,
}

impl Checker<'_> {
    fn complain(&mut self, field: &str, reason: impl Into<String>) {
        self.problems
            .push(Invalid::new(format!("{}.{field}", self.key), reason));
    }

    fn rule(
        &mut self,
        names: &BTreeSet<String>,
        known_sensor: &dyn Fn(&SensorId) -> bool,
    ) -> Option<Rule> {
        let before = self.problems.len();
        self.refuse_foreign_fields();
        self.check_inhibits(names);
        let escalation = self.escalation();
        let condition = match self.spec.kind {
            RuleKind::Threshold => self.threshold(known_sensor),
            RuleKind::Rate => self.rate(known_sensor),
            RuleKind::Contact => self.sensor(known_sensor).map(|sensor| Condition::Contact {
                sensor,
                active: self.spec.active.unwrap_or(true),
            }),
            RuleKind::Lost => self.lost(known_sensor),
            RuleKind::Composite => self.composite(names),
        };
        if self.problems.len() > before {
            return None;
        }
        Some(Rule {
            name: self.spec.name.clone(),
            summary: self.spec.summary.clone(),
            severity: self.spec.severity,
            site_state: self.spec.site_state,
            inhibits: self.spec.inhibits.clone(),
            escalation,
            condition: condition?,
        })
    }

    /// Keys that belong to another kind of rule are refused rather than ignored: a `hold` on
    /// a contact rule would otherwise look like it works.
    fn refuse_foreign_fields(&mut self) {
        use RuleKind::*;
        let s = self.spec;
        let fields: [(&str, bool, &[RuleKind]); 13] = [
            (
                "sensor",
                s.sensor.is_some(),
                &[Threshold, Rate, Contact, Lost],
            ),
            ("above", s.above.is_some(), &[Threshold]),
            ("below", s.below.is_some(), &[Threshold]),
            ("clear_at", s.clear_at.is_some(), &[Threshold]),
            ("hold", s.hold.is_some(), &[Threshold, Rate]),
            ("clear_hold", s.clear_hold.is_some(), &[Threshold, Rate]),
            ("window", s.window.is_some(), &[Rate]),
            ("rise_per_minute", s.rise_per_minute.is_some(), &[Rate]),
            ("fall_per_minute", s.fall_per_minute.is_some(), &[Rate]),
            ("active", s.active.is_some(), &[Contact]),
            ("stale_after", s.stale_after.is_some(), &[Lost]),
            ("all", s.all.is_some(), &[Composite]),
            ("any", s.any.is_some(), &[Composite]),
        ];
        for (field, present, kinds) in fields {
            if present && !kinds.contains(&s.kind) {
                let kinds: Vec<String> = kinds.iter().map(|k| kind_word(*k).to_string()).collect();
                self.complain(
                    field,
                    format!(
                        "applies only to {} rules, not to a {} rule",
                        kinds.join(", "),
                        kind_word(s.kind)
                    ),
                );
            }
        }
    }

    fn check_inhibits(&mut self, names: &BTreeSet<String>) {
        for (j, target) in self.spec.inhibits.iter().enumerate() {
            if *target == self.spec.name {
                self.complain(&format!("inhibits[{j}]"), "a rule cannot inhibit itself");
            } else if !names.contains(target) {
                self.complain(
                    &format!("inhibits[{j}]"),
                    format!("there is no rule named `{target}` to inhibit"),
                );
            }
        }
    }

    fn escalation(&mut self) -> Vec<EscalationStep> {
        let mut steps = Vec::new();
        let mut previous: Option<u64> = None;
        for (j, step) in self.spec.escalation.iter().enumerate() {
            if previous.is_some_and(|p| step.after.secs() <= p) {
                self.complain(
                    &format!("escalation[{j}].after"),
                    "escalation steps must come in order of `after`, each later than the one before",
                );
            }
            if step.severity.is_none() && step.notify.is_empty() {
                self.complain(
                    &format!("escalation[{j}]"),
                    "an escalation step must raise the `severity` or `notify` someone",
                );
            }
            if let Some(k) = step.notify.iter().position(|t| t.trim().is_empty()) {
                self.complain(
                    &format!("escalation[{j}].notify[{k}]"),
                    "a notification target needs a name",
                );
            }
            previous = Some(step.after.secs());
            steps.push(EscalationStep {
                after: step.after.as_duration(),
                severity: step.severity,
                notify: step.notify.clone(),
            });
        }
        steps
    }

    fn sensor(&mut self, known_sensor: &dyn Fn(&SensorId) -> bool) -> Option<SensorId> {
        match &self.spec.sensor {
            None => {
                let kind = kind_word(self.spec.kind);
                self.complain("sensor", format!("a {kind} rule needs a `sensor`"));
                None
            }
            Some(sensor) if !known_sensor(sensor) => {
                self.complain(
                    "sensor",
                    format!("there is no sensor `{sensor}` in the site model"),
                );
                None
            }
            Some(sensor) => Some(sensor.clone()),
        }
    }

    fn finite(&mut self, field: &str, value: Option<f64>) -> Option<f64> {
        match value {
            Some(v) if !v.is_finite() => {
                self.complain(field, "must be a finite number");
                None
            }
            other => other,
        }
    }

    fn threshold(&mut self, known_sensor: &dyn Fn(&SensorId) -> bool) -> Option<Condition> {
        let sensor = self.sensor(known_sensor);
        let above = self.finite("above", self.spec.above);
        let below = self.finite("below", self.spec.below);
        let clear_at = self.finite("clear_at", self.spec.clear_at);
        let limit = match (above, below) {
            (Some(a), None) => Limit::Above(a),
            (None, Some(b)) => Limit::Below(b),
            (Some(_), Some(_)) => {
                self.complain(
                    "below",
                    "a threshold rule takes `above` or `below`, not both (write two rules)",
                );
                return None;
            }
            (None, None) => {
                self.complain("kind", "a threshold rule needs `above` or `below`");
                return None;
            }
        };
        let clear_at = match (limit, clear_at) {
            (Limit::Above(a), Some(c)) if c > a => {
                self.complain(
                    "clear_at",
                    format!(
                        "{c} is above the limit {a}: an `above` alarm must clear at or below it"
                    ),
                );
                return None;
            }
            (Limit::Below(b), Some(c)) if c < b => {
                self.complain(
                    "clear_at",
                    format!(
                        "{c} is below the limit {b}: a `below` alarm must clear at or above it"
                    ),
                );
                return None;
            }
            (_, Some(c)) => c,
            (Limit::Above(v) | Limit::Below(v), None) => v,
        };
        Some(Condition::Threshold(Threshold {
            sensor: sensor?,
            limit,
            clear_at,
            hold: self.spec.hold.map_or(Duration::ZERO, |h| h.as_duration()),
            clear_hold: self
                .spec
                .clear_hold
                .map_or(Duration::ZERO, |h| h.as_duration()),
        }))
    }

    fn rate(&mut self, known_sensor: &dyn Fn(&SensorId) -> bool) -> Option<Condition> {
        let sensor = self.sensor(known_sensor);
        let per_minute = |checker: &mut Self, field: &str, value: Option<f64>| match value {
            Some(v) if !v.is_finite() || v <= 0.0 => {
                checker.complain(field, "must be a positive number (a change per minute)");
                None
            }
            other => other,
        };
        let rise = per_minute(self, "rise_per_minute", self.spec.rise_per_minute);
        let fall = per_minute(self, "fall_per_minute", self.spec.fall_per_minute);
        if self.spec.rise_per_minute.is_none() && self.spec.fall_per_minute.is_none() {
            self.complain(
                "kind",
                "a rate rule needs `rise_per_minute`, `fall_per_minute` or both",
            );
        }
        let Some(window) = self.spec.window else {
            self.complain(
                "kind",
                "a rate rule needs a `window` (seconds to measure over)",
            );
            return None;
        };
        Some(Condition::Rate(Rate {
            sensor: sensor?,
            window: window.as_duration(),
            rise_per_minute: rise,
            fall_per_minute: fall,
            hold: self.spec.hold.map_or(Duration::ZERO, |h| h.as_duration()),
            clear_hold: self
                .spec
                .clear_hold
                .map_or(Duration::ZERO, |h| h.as_duration()),
        }))
    }

    fn lost(&mut self, known_sensor: &dyn Fn(&SensorId) -> bool) -> Option<Condition> {
        let sensor = self.sensor(known_sensor);
        let Some(stale_after) = self.spec.stale_after else {
            self.complain(
                "kind",
                "a lost rule needs `stale_after` (seconds without a sample)",
            );
            return None;
        };
        Some(Condition::Lost {
            sensor: sensor?,
            stale_after: stale_after.as_duration(),
        })
    }

    fn composite(&mut self, names: &BTreeSet<String>) -> Option<Condition> {
        let (combine, field, rules) = match (&self.spec.all, &self.spec.any) {
            (Some(all), None) => (Combine::All, "all", all),
            (None, Some(any)) => (Combine::Any, "any", any),
            (Some(_), Some(_)) => {
                self.complain(
                    "any",
                    "a composite rule takes `all` or `any`, not both (write two rules)",
                );
                return None;
            }
            (None, None) => {
                self.complain("kind", "a composite rule needs `all` or `any`");
                return None;
            }
        };
        if rules.is_empty() {
            self.complain(field, "names no rule");
        }
        for (j, name) in rules.iter().enumerate() {
            if let Some(pattern) = name.strip_prefix(EXTERNAL_PREFIX) {
                let usable = pattern
                    .split_once('/')
                    .is_some_and(|(source, key)| !source.is_empty() && !key.is_empty());
                if !usable {
                    self.complain(
                        &format!("{field}[{j}]"),
                        format!(
                            "`{name}` names no external alarm: write `external:SOURCE/KEY` \
                             (`*` matches any run of characters)"
                        ),
                    );
                }
            } else if *name == self.spec.name {
                self.complain(&format!("{field}[{j}]"), "a rule cannot depend on itself");
            } else if !names.contains(name) {
                self.complain(
                    &format!("{field}[{j}]"),
                    format!("there is no rule named `{name}`"),
                );
            }
        }
        Some(Condition::Composite {
            combine,
            rules: rules.clone(),
        })
    }
}

fn kind_word(kind: RuleKind) -> &'static str {
    match kind {
        RuleKind::Threshold => "threshold",
        RuleKind::Rate => "rate",
        RuleKind::Contact => "contact",
        RuleKind::Lost => "lost",
        RuleKind::Composite => "composite",
    }
}

/// Orders the rules so every composite follows the rules it reads (sensor rules keep their
/// order first), or returns a rule on a cycle and the cycle as `a → b → a`.
fn order_composites(rules: Vec<Rule>) -> Result<Vec<Rule>, (String, String)> {
    let deps: BTreeMap<&str, &[String]> = rules
        .iter()
        .filter_map(|r| match &r.condition {
            Condition::Composite { rules: deps, .. } => Some((r.name.as_str(), deps.as_slice())),
            _ => None,
        })
        .collect();
    let mut placed: Vec<String> = Vec::new();
    let mut visiting: Vec<String> = Vec::new();
    for rule in &rules {
        visit(&rule.name, &deps, &mut placed, &mut visiting)?;
    }
    let mut by_name: BTreeMap<String, Rule> =
        rules.into_iter().map(|r| (r.name.clone(), r)).collect();
    Ok(placed
        .into_iter()
        .filter_map(|name| by_name.remove(&name))
        .collect())
}

fn visit(
    name: &str,
    deps: &BTreeMap<&str, &[String]>,
    placed: &mut Vec<String>,
    visiting: &mut Vec<String>,
) -> Result<(), (String, String)> {
    if placed.iter().any(|p| p == name) {
        return Ok(());
    }
    if let Some(start) = visiting.iter().position(|v| v == name) {
        let mut cycle: Vec<&str> = visiting[start..].iter().map(String::as_str).collect();
        cycle.push(name);
        return Err((name.to_string(), cycle.join(" → ")));
    }
    visiting.push(name.to_string());
    for dep in deps.get(name).copied().unwrap_or_default() {
        visit(dep, deps, placed, visiting)?;
    }
    visiting.pop();
    placed.push(name.to_string());
    Ok(())
}
