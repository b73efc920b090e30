//! The rule engine: sensor events and time in, alarm and site-state transitions out.
//!
//! Nothing here reads a clock or sleeps. The daemon calls [`RuleEngine::on_event`] for every
//! sensor event (a contact's alarm is raised in that same call), [`RuleEngine::on_tick`] at
//! [`RuleEngine::next_deadline`] (holds, silent sensors, escalation, silence expiry), and the
//! operator and service actions as they come; each call returns the [`Transition`]s to log,
//! in order, and leaves [`RuleEngine::book`] ready to save.
//!
//! Inhibition: while a rule's condition holds, the alarms of the rules it `inhibits` are kept
//! (they are still listed and cleared as usual) but their notifications say
//! [`Delivery::Inhibited`] and they do not count for the site state; when the inhibitor
//! clears, each still-active muted alarm gets a `Change::AlarmReleased` notification. Silences
//! only hold notifications back ([`Delivery::Silenced`]).

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::alarm::{Actor, Alarm, AlarmKey, Change, Delivery, Silence, Transition, glob_match};
use super::book::AlarmBook;
use super::condition::{Flip, Tracker};
use super::config::{Combine, Condition, EXTERNAL_PREFIX, Rule, RuleSet};
use super::site_state::{self, SiteStatus};
use crate::sensor::SensorEvent;

/// The rules, their conditions, and the alarm book.
#[derive(Debug, Clone)]
pub struct RuleEngine {
    rules: RuleSet,
    /// One per rule, in the same order.
    trackers: Vec<Tracker>,
    book: AlarmBook,
    site: SiteStatus,
    /// Active alarms muted by inhibition, and the rule muting each (to say when it ends).
    inhibited: BTreeMap<AlarmKey, String>,
}

/// An alarm change before its delivery is decided (after every change of the same call).
struct Pending {
    alarm: Alarm,
    change: PendingChange,
    why: String,
}

enum PendingChange {
    Raised,
    Updated,
    Cleared { listed: bool },
}

impl RuleEngine {
    /// An engine with no alarms; lost-sensor rules count silence from `now`.
    pub fn new(rules: RuleSet, now: SystemTime) -> RuleEngine {
        Self::restore(rules, AlarmBook::default(), now).0
    }

    /// An engine continuing from a saved book. Alarms of rules no longer configured are
    /// cleared (the returned transitions); the site state is derived without a transition.
    pub fn restore(
        rules: RuleSet,
        book: AlarmBook,
        now: SystemTime,
    ) -> (RuleEngine, Vec<Transition>) {
        let trackers = rules
            .rules()
            .iter()
            .map(|rule| {
                let key = AlarmKey::rule(&rule.name);
                let active = book.alarms.iter().any(|a| a.key == key && a.active);
                Tracker::new(now, active)
            })
            .collect();
        let mut engine = RuleEngine {
            rules,
            trackers,
            book,
            site: SiteStatus::normal(),
            inhibited: BTreeMap::new(),
        };
        let orphans: Vec<AlarmKey> = engine
            .book
            .alarms
            .iter()
            .filter(|a| a.active)
            .filter(|a| {
                a.key
                    .rule_name()
                    .is_some_and(|n| engine.rules.get(n).is_none())
            })
            .map(|a| a.key.clone())
            .collect();
        let pending = orphans
            .into_iter()
            .filter_map(|key| engine.clear(&key, "its rule is no longer configured".into(), now))
            .collect();
        let transitions = engine.deliver(pending, &Actor::Rules, now);
        engine.site = engine.derive_site();
        engine.inhibited = engine.inhibited_now();
        (engine, transitions)
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// What to save (see [`AlarmBook::save`]).
    pub fn book(&self) -> &AlarmBook {
        &self.book
    }

    /// Active alarms and cleared ones waiting for acknowledgement, in raise order.
    pub fn alarms(&self) -> &[Alarm] {
        &self.book.alarms
    }

    pub fn alarm(&self, key: &AlarmKey) -> Option<&Alarm> {
        self.book.alarms.iter().find(|a| a.key == *key)
    }

    pub fn silences(&self) -> &[Silence] {
        &self.book.silences
    }

    pub fn site_status(&self) -> &SiteStatus {
        &self.site
    }

    /// The rule whose active alarm mutes this alarm now, if any.
    pub fn inhibited_by(&self, key: &AlarmKey) -> Option<&str> {
        self.inhibited.get(key).map(String::as_str)
    }

    /// One sensor event. A contact rule's alarm is raised or cleared in this call.
    pub fn on_event(&mut self, event: &SensorEvent, now: SystemTime) -> Vec<Transition> {
        let mut flips = Vec::new();
        for &i in self.rules.reading(event.sensor()) {
            let condition = &self.rules.rules()[i].condition;
            if let Some(flip) = self.trackers[i].on_event(condition, event, now) {
                flips.push((i, flip));
            }
        }
        let mut out = self.settle(flips, now);
        out.extend(self.release_uninhibited(now));
        out.extend(self.update_site(&Actor::Rules, now));
        out
    }

    /// Lets time pass to `now`: silences expire, holds run out, sensors go stale, alarms
    /// escalate.
    pub fn on_tick(&mut self, now: SystemTime) -> Vec<Transition> {
        let mut out = self.expire_silences(now);
        let mut flips = Vec::new();
        for (i, rule) in self.rules.rules().iter().enumerate() {
            if let Some(flip) = self.trackers[i].on_tick(&rule.condition, now) {
                flips.push((i, flip));
            }
        }
        out.extend(self.settle(flips, now));
        out.extend(self.escalate(now));
        out.extend(self.release_uninhibited(now));
        out.extend(self.update_site(&Actor::Rules, now));
        out
    }

    /// When [`RuleEngine::on_tick`] must next be called; `None` when only events can change
    /// anything.
    pub fn next_deadline(&self) -> Option<SystemTime> {
        let holds = self
            .rules
            .rules()
            .iter()
            .zip(&self.trackers)
            .filter_map(|(rule, tracker)| tracker.deadline(&rule.condition));
        let escalations = self
            .book
            .alarms
            .iter()
            .filter_map(|alarm| self.next_escalation(alarm));
        let silences = self.book.silences.iter().map(|s| s.until);
        holds.chain(escalations).chain(silences).min()
    }

    /// Evaluates the composites after `flips`, applies every change of rule state to the
    /// alarms, and returns the transitions.
    fn settle(&mut self, flips: Vec<(usize, Flip)>, now: SystemTime) -> Vec<Transition> {
        if flips.is_empty() {
            return Vec::new();
        }
        self.settle_composites(flips, now)
    }

    /// [`Self::settle`] even without a rule's flip: an external alarm changed, which
    /// composites may read.
    fn settle_composites(
        &mut self,
        mut flips: Vec<(usize, Flip)>,
        now: SystemTime,
    ) -> Vec<Transition> {
        for i in 0..self.rules.rules().len() {
            if let Some(flip) = self.evaluate_composite(i) {
                flips.push((i, flip));
            }
        }
        let mut pending = Vec::new();
        for (i, flip) in flips {
            let rule = &self.rules.rules()[i];
            let key = AlarmKey::rule(&rule.name);
            let change = if flip.active {
                Some(self.raise_rule(i, flip.why, now))
            } else {
                self.clear(&key, flip.why, now)
            };
            pending.extend(change);
        }
        self.deliver(pending, &Actor::Rules, now)
    }

    fn evaluate_composite(&mut self, i: usize) -> Option<Flip> {
        let Condition::Composite { combine, rules } = &self.rules.rules()[i].condition else {
            return None;
        };
        let active_of = |name: &String| match name.strip_prefix(EXTERNAL_PREFIX) {
            Some(pattern) => self.book.alarms.iter().any(|a| {
                a.active
                    && matches!(a.key, AlarmKey::External { .. })
                    && glob_match(pattern, &a.key.to_string())
            }),
            None => self
                .rules
                .position(name)
                .is_some_and(|j| self.trackers[j].active),
        };
        let active: Vec<&String> = rules.iter().filter(|n| active_of(n)).collect();
        let holds = match combine {
            Combine::All => active.len() == rules.len(),
            Combine::Any => !active.is_empty(),
        };
        let why = if holds {
            let names: Vec<&str> = active.iter().map(|n| n.as_str()).collect();
            format!("{} active", names.join(" and "))
        } else {
            let idle: Vec<&str> = rules
                .iter()
                .filter(|n| !active.contains(n))
                .map(String::as_str)
                .collect();
            format!("{} no longer active", idle.join(", "))
        };
        self.trackers[i].set(holds, why)
    }

    fn raise_rule(&mut self, i: usize, why: String, now: SystemTime) -> Pending {
        let rule = &self.rules.rules()[i];
        let key = AlarmKey::rule(&rule.name);
        let summary = rule.summary.clone().unwrap_or_else(|| why.clone());
        let alarm = match self.book.alarms.iter_mut().find(|a| a.key == key) {
            Some(listed) => {
                listed.summary = summary;
                listed.base_severity = rule.severity;
                reraise(listed, now);
                listed.clone()
            }
            None => {
                let alarm = new_rule_alarm(rule, &self.rules, key, summary, now);
                self.book.alarms.push(alarm.clone());
                alarm
            }
        };
        Pending {
            alarm,
            change: PendingChange::Raised,
            why,
        }
    }

    /// Marks an active alarm cleared (removing it unless it must wait for acknowledgement).
    fn clear(&mut self, key: &AlarmKey, why: String, now: SystemTime) -> Option<Pending> {
        let index = self
            .book
            .alarms
            .iter()
            .position(|a| a.key == *key && a.active)?;
        let alarm = &mut self.book.alarms[index];
        alarm.active = false;
        alarm.cleared_at = Some(now);
        let listed = alarm.listed_after_clear();
        let alarm = if listed {
            alarm.clone()
        } else {
            self.book.alarms.remove(index)
        };
        Some(Pending {
            alarm,
            change: PendingChange::Cleared { listed },
            why,
        })
    }

    /// Turns changes into transitions, deciding delivery once every change of the call is
    /// applied (an inhibitor raised by the same event already mutes).
    fn deliver(&self, pending: Vec<Pending>, by: &Actor, now: SystemTime) -> Vec<Transition> {
        pending
            .into_iter()
            .map(|p| {
                let delivery = self.delivery(&p.alarm, now);
                let alarm = p.alarm.key.clone();
                let change = match p.change {
                    PendingChange::Raised => Change::AlarmRaised {
                        alarm,
                        severity: p.alarm.severity,
                        summary: p.alarm.summary.clone(),
                        delivery,
                    },
                    PendingChange::Updated => Change::AlarmUpdated {
                        alarm,
                        severity: p.alarm.severity,
                        summary: p.alarm.summary.clone(),
                        delivery,
                    },
                    PendingChange::Cleared { listed } => Change::AlarmCleared {
                        alarm,
                        listed_until_acknowledged: listed,
                        delivery,
                    },
                };
                Transition {
                    at: now,
                    by: by.clone(),
                    change,
                    why: p.why,
                }
            })
            .collect()
    }

    fn delivery(&self, alarm: &Alarm, now: SystemTime) -> Delivery {
        if let Some(by) = self.inhibitor(&alarm.key) {
            return Delivery::Inhibited { by: by.to_string() };
        }
        match self
            .book
            .silences
            .iter()
            .find(|s| s.until > now && s.matcher.matches(alarm))
        {
            Some(silence) => Delivery::Silenced {
                silence: silence.id,
            },
            None => Delivery::Notify,
        }
    }

    /// The first rule whose condition holds and which inhibits this alarm's rule.
    fn inhibitor(&self, key: &AlarmKey) -> Option<&str> {
        let name = key.rule_name()?;
        self.rules
            .rules()
            .iter()
            .zip(&self.trackers)
            .find(|(rule, tracker)| tracker.active && rule.inhibits.iter().any(|n| n == name))
            .map(|(rule, _)| rule.name.as_str())
    }

    fn escalation_steps(&self, alarm: &Alarm) -> &[super::config::EscalationStep] {
        alarm
            .key
            .rule_name()
            .and_then(|name| self.rules.get(name))
            .map_or(&[], |rule| rule.escalation.as_slice())
    }

    fn next_escalation(&self, alarm: &Alarm) -> Option<SystemTime> {
        if !alarm.active || alarm.acknowledged.is_some() {
            return None;
        }
        let step = self.escalation_steps(alarm).get(alarm.escalation_step)?;
        Some(alarm.raised_at + step.after)
    }

    /// Takes every escalation step that is due on active, unacknowledged alarms.
    fn escalate(&mut self, now: SystemTime) -> Vec<Transition> {
        let mut out = Vec::new();
        for index in 0..self.book.alarms.len() {
            while let Some(due) = self.next_escalation(&self.book.alarms[index]) {
                if due > now {
                    break;
                }
                let step = self.escalation_steps(&self.book.alarms[index])
                    [self.book.alarms[index].escalation_step]
                    .clone();
                let alarm = &mut self.book.alarms[index];
                alarm.escalation_step += 1;
                if let Some(severity) = step.severity.filter(|s| *s > alarm.severity) {
                    alarm.severity = severity;
                }
                let alarm = alarm.clone();
                out.push(Transition {
                    at: now,
                    by: Actor::Rules,
                    change: Change::AlarmEscalated {
                        alarm: alarm.key.clone(),
                        step: alarm.escalation_step,
                        severity: alarm.severity,
                        notify: step.notify.clone(),
                        delivery: self.delivery(&alarm, now),
                    },
                    why: format!("unacknowledged for {} s", step.after.as_secs()),
                });
            }
        }
        out
    }

    fn expire_silences(&mut self, now: SystemTime) -> Vec<Transition> {
        let (over, kept): (Vec<Silence>, Vec<Silence>) = std::mem::take(&mut self.book.silences)
            .into_iter()
            .partition(|s| s.until <= now);
        self.book.silences = kept;
        over.into_iter()
            .map(|s| Transition {
                at: now,
                by: Actor::Rules,
                change: Change::SilenceExpired { silence: s.id },
                why: format!("silence {} by {} of {} ran out", s.id, s.author, s.matcher),
            })
            .collect()
    }

    fn derive_site(&self) -> SiteStatus {
        site_state::derive(&self.book.alarms, |alarm| {
            self.inhibitor(&alarm.key).is_some()
        })
    }

    fn inhibited_now(&self) -> BTreeMap<AlarmKey, String> {
        self.book
            .alarms
            .iter()
            .filter(|a| a.active)
            .filter_map(|a| Some((a.key.clone(), self.inhibitor(&a.key)?.to_string())))
            .collect()
    }

    /// Alarms still active whose inhibitor cleared: notified now, since they were muted when
    /// they changed (Alertmanager does the same when an inhibition ends).
    fn release_uninhibited(&mut self, now: SystemTime) -> Vec<Transition> {
        let now_inhibited = self.inhibited_now();
        let before = std::mem::replace(&mut self.inhibited, now_inhibited);
        before
            .into_iter()
            .filter(|(key, _)| !self.inhibited.contains_key(key))
            .filter_map(|(key, inhibitor)| {
                let alarm = self.alarm(&key).filter(|a| a.active)?;
                Some(Transition {
                    at: now,
                    by: Actor::Rules,
                    change: Change::AlarmReleased {
                        alarm: key,
                        severity: alarm.severity,
                        summary: alarm.summary.clone(),
                        delivery: self.delivery(alarm, now),
                    },
                    why: format!("no longer inhibited: {inhibitor} is not active"),
                })
            })
            .collect()
    }

    fn update_site(&mut self, by: &Actor, now: SystemTime) -> Option<Transition> {
        let status = self.derive_site();
        if status == self.site {
            return None;
        }
        let from = std::mem::replace(&mut self.site, status);
        let reason = if self.site.reason.is_empty() {
            "No active alarm calls for another state.".to_string()
        } else {
            self.site.reason.clone()
        };
        Some(Transition {
            at: now,
            by: by.clone(),
            change: Change::SiteStateChanged {
                from: from.state,
                to: self.site.state,
                reason: self.site.reason.clone(),
            },
            why: reason,
        })
    }

    fn index_of(&self, key: &AlarmKey) -> Result<usize, ActionError> {
        self.book
            .alarms
            .iter()
            .position(|a| a.key == *key)
            .ok_or_else(|| ActionError::NoSuchAlarm(key.to_string()))
    }
}

/// The alarm of `rule`; a composite's sensors are those of the rules it reads.
fn new_rule_alarm(
    rule: &Rule,
    rules: &RuleSet,
    key: AlarmKey,
    summary: String,
    now: SystemTime,
) -> Alarm {
    Alarm {
        key,
        summary,
        detail: String::new(),
        base_severity: rule.severity,
        severity: rule.severity,
        site_state: rule.site_state,
        sensors: sensors_of(rule, rules),
        raised_at: now,
        active: true,
        cleared_at: None,
        acknowledged: None,
        escalation_step: 0,
    }
}

fn sensors_of(rule: &Rule, rules: &RuleSet) -> Vec<crate::sensor::SensorId> {
    match &rule.condition {
        Condition::Composite { rules: names, .. } => {
            let mut sensors: Vec<_> = names
                .iter()
                .filter_map(|n| rules.get(n))
                .flat_map(|r| sensors_of(r, rules))
                .collect();
            sensors.sort();
            sensors.dedup();
            sensors
        }
        other => other.sensor().cloned().into_iter().collect(),
    }
}

/// A listed (cleared) alarm raised again: a new occurrence, unacknowledged, not escalated.
fn reraise(alarm: &mut Alarm, now: SystemTime) {
    alarm.severity = alarm.base_severity;
    alarm.raised_at = now;
    alarm.active = true;
    alarm.cleared_at = None;
    alarm.acknowledged = None;
    alarm.escalation_step = 0;
}

#[path = "engine_actions.rs"]
mod actions;

pub use actions::{ActionError, MAX_EXTERNAL_NAME};

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
