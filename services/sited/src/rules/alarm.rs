//! Alarms, silences, and the transition records the engine returns.
//!
//! An alarm is raised when its rule's condition becomes true (or another service raises it),
//! may be acknowledged (by whom, when, with a note), and is cleared when the condition ends.
//! A cleared alarm leaves the list at once unless it is critical and unacknowledged: such an
//! alarm stays listed until someone acknowledges it, as Zabbix and Alertmanager operators
//! expect (a door that opened and closed at 3 a.m. is still news at 8).

use std::fmt;
use std::time::SystemTime;

use appliance::audit_log::Entry;
use appliance::dbus::contracts::SiteState;
use serde::{Deserialize, Serialize};

use super::config::{Severity, SiteEffect};
use crate::sensor::SensorId;

/// Which alarm: a configured rule's, or one another service raised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum AlarmKey {
    Rule { rule: String },
    External { source: String, key: String },
}

impl AlarmKey {
    pub fn rule(name: impl Into<String>) -> AlarmKey {
        AlarmKey::Rule { rule: name.into() }
    }

    pub fn external(source: impl Into<String>, key: impl Into<String>) -> AlarmKey {
        AlarmKey::External {
            source: source.into(),
            key: key.into(),
        }
    }

    /// The rule's name, for a rule's alarm.
    pub fn rule_name(&self) -> Option<&str> {
        match self {
            AlarmKey::Rule { rule } => Some(rule),
            AlarmKey::External { .. } => None,
        }
    }
}

/// The alarm's name as operators see it and silences match it: the rule's name, or
/// `source/key` for an external alarm.
impl fmt::Display for AlarmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlarmKey::Rule { rule } => f.write_str(rule),
            AlarmKey::External { source, key } => write!(f, "{source}/{key}"),
        }
    }
}

/// Who acknowledged an alarm, when, and what they said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub by: String,
    pub at: SystemTime,
    pub note: String,
}

/// One alarm in the book.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    pub key: AlarmKey,
    /// A sentence for the operator.
    pub summary: String,
    /// For external alarms: the raiser's detail (a JSON object as text); empty for rules.
    pub detail: String,
    /// The severity it was raised with.
    pub base_severity: Severity,
    /// The severity now (escalation may have raised it).
    pub severity: Severity,
    /// The site state the rule forces while the alarm is active.
    pub site_state: Option<SiteEffect>,
    /// The sensors the alarm's rule reads (silences by sensor match them).
    pub sensors: Vec<SensorId>,
    pub raised_at: SystemTime,
    /// False once the condition is over (the alarm may still be listed, see the module docs).
    pub active: bool,
    pub cleared_at: Option<SystemTime>,
    pub acknowledged: Option<Acknowledgement>,
    /// How many escalation steps were taken since it was raised.
    pub escalation_step: usize,
}

impl Alarm {
    /// The state this alarm pushes the site to while active (`Normal` for info alarms).
    pub fn site_effect(&self) -> SiteState {
        let by_severity = match self.severity {
            Severity::Info => SiteState::Normal,
            Severity::Warning => SiteState::Warning,
            Severity::Critical => SiteState::Critical,
        };
        let forced = match self.site_state {
            None => SiteState::Normal,
            Some(SiteEffect::Warning) => SiteState::Warning,
            Some(SiteEffect::Critical) => SiteState::Critical,
            Some(SiteEffect::Lockdown) => SiteState::Lockdown,
        };
        if state_rank(forced) > state_rank(by_severity) {
            forced
        } else {
            by_severity
        }
    }

    /// Whether the alarm stays listed now that it is cleared.
    pub fn listed_after_clear(&self) -> bool {
        self.severity == Severity::Critical && self.acknowledged.is_none()
    }
}

/// Orders site states from normal to lockdown.
pub fn state_rank(state: SiteState) -> u8 {
    match state {
        SiteState::Normal => 0,
        SiteState::Warning => 1,
        SiteState::Critical => 2,
        SiteState::Lockdown => 3,
    }
}

/// What another service reports through `Site1.RaiseAlarm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalAlarm {
    pub source: String,
    pub key: String,
    pub severity: Severity,
    pub summary: String,
    /// A JSON object as text, kept as given.
    pub detail: String,
}

/// What a silence matches: alarm names or the sensors alarms read, with `*` for any run of
/// characters (`hall-a.*`, `minerd/*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "match", content = "pattern", rename_all = "snake_case")]
pub enum SilenceMatch {
    Alarm(String),
    Sensor(String),
}

impl SilenceMatch {
    pub fn matches(&self, alarm: &Alarm) -> bool {
        match self {
            SilenceMatch::Alarm(pattern) => glob_match(pattern, &alarm.key.to_string()),
            SilenceMatch::Sensor(pattern) => alarm
                .sensors
                .iter()
                .any(|s| glob_match(pattern, s.as_str())),
        }
    }
}

impl fmt::Display for SilenceMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SilenceMatch::Alarm(p) => write!(f, "alarms `{p}`"),
            SilenceMatch::Sensor(p) => write!(f, "sensors `{p}`"),
        }
    }
}

/// `*` matches any run of characters (also none); everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| glob_match(rest, &tail[i..]))
        }
    }
}

/// A silence: notifications for matching alarms are held back until `until`; the alarms and
/// the site state are unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: u64,
    pub matcher: SilenceMatch,
    pub author: String,
    pub comment: String,
    pub created: SystemTime,
    pub until: SystemTime,
}

/// Whether the operators are told about a transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "delivery", rename_all = "snake_case")]
pub enum Delivery {
    Notify,
    /// A silence holds the notification back.
    Silenced {
        silence: u64,
    },
    /// The named rule's active alarm inhibits this one.
    Inhibited {
        by: String,
    },
}

/// Who caused a transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "actor", content = "name", rename_all = "snake_case")]
pub enum Actor {
    /// The rules, from sensor events or time passing.
    Rules,
    /// A person, by the name the D-Bus edge checked.
    Operator(String),
    /// Another service (RaiseAlarm, ClearAlarm).
    Service(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Rules => f.write_str("sited"),
            Actor::Operator(name) => write!(f, "operator:{name}"),
            Actor::Service(name) => f.write_str(name),
        }
    }
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    AlarmRaised {
        alarm: AlarmKey,
        severity: Severity,
        summary: String,
        delivery: Delivery,
    },
    /// An external alarm raised again with another severity or summary.
    AlarmUpdated {
        alarm: AlarmKey,
        severity: Severity,
        summary: String,
        delivery: Delivery,
    },
    AlarmCleared {
        alarm: AlarmKey,
        /// Critical and unacknowledged: listed until acknowledged.
        listed_until_acknowledged: bool,
        delivery: Delivery,
    },
    /// Acknowledging a cleared alarm also removes it from the list.
    AlarmAcknowledged {
        alarm: AlarmKey,
        note: String,
    },
    /// An active alarm whose inhibitor cleared: its first notification since it was muted.
    AlarmReleased {
        alarm: AlarmKey,
        severity: Severity,
        summary: String,
        delivery: Delivery,
    },
    AlarmEscalated {
        alarm: AlarmKey,
        /// 1 for the first step.
        step: usize,
        severity: Severity,
        notify: Vec<String>,
        delivery: Delivery,
    },
    SilenceAdded {
        silence: Silence,
    },
    SilenceExpired {
        silence: u64,
    },
    SilenceRemoved {
        silence: u64,
    },
    SiteStateChanged {
        #[serde(serialize_with = "site_state_word")]
        from: SiteState,
        #[serde(serialize_with = "site_state_word")]
        to: SiteState,
        reason: String,
    },
}

fn site_state_word<S: serde::Serializer>(state: &SiteState, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(state.as_str())
}

/// One record of what happened: what, when, why, by whom.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub at: SystemTime,
    pub by: Actor,
    pub change: Change,
    /// A sentence: the value that crossed the limit, the rule that inhibits, the note.
    pub why: String,
}

impl Transition {
    /// The dotted verb for the audit log: `alarm.raised`, `silence.expired`, `site.state`.
    pub fn action(&self) -> &'static str {
        match self.change {
            Change::AlarmRaised { .. } => "alarm.raised",
            Change::AlarmUpdated { .. } => "alarm.updated",
            Change::AlarmCleared { .. } => "alarm.cleared",
            Change::AlarmAcknowledged { .. } => "alarm.acknowledged",
            Change::AlarmReleased { .. } => "alarm.released",
            Change::AlarmEscalated { .. } => "alarm.escalated",
            Change::SilenceAdded { .. } => "silence.added",
            Change::SilenceExpired { .. } => "silence.expired",
            Change::SilenceRemoved { .. } => "silence.removed",
            Change::SiteStateChanged { .. } => "site.state",
        }
    }

    /// What it is about: the alarm's name, `silence:ID`, or `site`.
    pub fn target(&self) -> String {
        match &self.change {
            Change::AlarmRaised { alarm, .. }
            | Change::AlarmUpdated { alarm, .. }
            | Change::AlarmCleared { alarm, .. }
            | Change::AlarmAcknowledged { alarm, .. }
            | Change::AlarmReleased { alarm, .. }
            | Change::AlarmEscalated { alarm, .. } => alarm.to_string(),
            Change::SilenceAdded { silence } => format!("silence:{}", silence.id),
            Change::SilenceExpired { silence } | Change::SilenceRemoved { silence } => {
                format!("silence:{silence}")
            }
            Change::SiteStateChanged { .. } => "site".into(),
        }
    }

    /// The delivery decision, for transitions that notify.
    pub fn delivery(&self) -> Option<&Delivery> {
        match &self.change {
            Change::AlarmRaised { delivery, .. }
            | Change::AlarmUpdated { delivery, .. }
            | Change::AlarmCleared { delivery, .. }
            | Change::AlarmReleased { delivery, .. }
            | Change::AlarmEscalated { delivery, .. } => Some(delivery),
            _ => None,
        }
    }

    /// The record for [`appliance::audit_log`]; `detail` holds the whole transition.
    pub fn audit_entry(&self) -> Entry {
        let detail = serde_json::to_value(self).unwrap_or_else(
            |e| serde_json::json!({ "unencodable": e.to_string(), "why": self.why }),
        );
        Entry::new(self.by.to_string(), self.action(), self.target(), detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_runs_of_characters() {
        assert!(glob_match("hall-a.*", "hall-a.door-1"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*.door-*", "hall-b.door-2"));
        assert!(glob_match("minerd/*", "minerd/hijack-127.1.0.2"));
        assert!(!glob_match("hall-a.*", "hall-b.door-1"));
        assert!(!glob_match("door", "door-1"));
        assert!(glob_match("dé*r", "dé-door"));
    }

    #[test]
    fn alarm_names_are_rule_names_or_source_slash_key() {
        assert_eq!(
            AlarmKey::rule("ups-on-battery").to_string(),
            "ups-on-battery"
        );
        assert_eq!(
            AlarmKey::external("minerd", "hijack").to_string(),
            "minerd/hijack"
        );
    }
}
