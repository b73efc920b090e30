//! What the control centre is told: a [`Notification`] per alarm transition, and the
//! Alertmanager alerts ([`Alert`]) it becomes.
//!
//! Alertmanager tells alerts apart by their labels only, so the labels are what stays the same
//! while an alarm is the same to the people it pages: `alertname` (the alarm's name), `site`,
//! `severity` and `notify` (the escalation targets, comma-separated, absent until an escalation
//! step names some). Routing on the control centre matches those. A transition that changes
//! severity or targets (an escalation) therefore makes a new alert, and the outbox resolves the
//! previous one at the same instant. Annotations carry what may change without making a new
//! alert: the `summary` sentence and the `change` (`raised`, `updated`, `escalated`, ...).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::rules::{Alarm, Change, Delivery, Transition};

/// One alarm transition for the control centre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The alarm's name: the rule's, or `source/key` for an external alarm.
    pub alarm: String,
    /// `raised`, `updated`, `cleared`, `released` or `escalated`.
    pub change: String,
    /// `info`, `warning` or `critical`; empty when the transition does not say (a clear): the
    /// outbox then takes the severity the alarm was last sent with.
    pub severity: String,
    /// The operator's sentence; empty when the transition does not say (a clear, an
    /// escalation): the outbox then keeps the last one sent.
    pub summary: String,
    /// The site's name, as the control centre knows it.
    pub site: String,
    /// The escalation targets named by the alarm's latest escalation step.
    pub notify: Vec<String>,
    /// When it happened (for a raise: when the alarm started).
    pub at: SystemTime,
    /// Whether the alarm is active after this transition (false only for a clear).
    pub active: bool,
}

impl Notification {
    /// The notification a transition calls for: alarm transitions the rules decided to deliver
    /// ([`Delivery::Notify`]); `None` for silenced or inhibited ones, acknowledgements,
    /// silences and site-state changes.
    pub fn from_transition(t: &Transition, site: &str) -> Option<Notification> {
        if t.delivery() != Some(&Delivery::Notify) {
            return None;
        }
        let (alarm, change, severity, summary, notify, active) = match &t.change {
            Change::AlarmRaised {
                alarm,
                severity,
                summary,
                ..
            } => (
                alarm,
                "raised",
                severity.as_str(),
                summary.as_str(),
                &[][..],
                true,
            ),
            Change::AlarmUpdated {
                alarm,
                severity,
                summary,
                ..
            } => (
                alarm,
                "updated",
                severity.as_str(),
                summary.as_str(),
                &[][..],
                true,
            ),
            Change::AlarmReleased {
                alarm,
                severity,
                summary,
                ..
            } => (
                alarm,
                "released",
                severity.as_str(),
                summary.as_str(),
                &[][..],
                true,
            ),
            Change::AlarmEscalated {
                alarm,
                severity,
                notify,
                ..
            } => (alarm, "escalated", severity.as_str(), "", &notify[..], true),
            Change::AlarmCleared { alarm, .. } => (alarm, "cleared", "", "", &[][..], false),
            _ => return None,
        };
        Some(Notification {
            alarm: alarm.to_string(),
            change: change.to_owned(),
            severity: severity.to_owned(),
            summary: summary.to_owned(),
            site: site.to_owned(),
            notify: notify.to_vec(),
            at: t.at,
            active,
        })
    }

    /// An active alarm as it stands, for [`Outbox::set_active`](super::Outbox::set_active):
    /// `notify` is what its latest escalation step named (empty before any).
    pub fn active_alarm(alarm: &Alarm, site: &str, notify: Vec<String>) -> Notification {
        Notification {
            alarm: alarm.key.to_string(),
            change: if alarm.escalation_step > 0 {
                "escalated".to_owned()
            } else {
                "raised".to_owned()
            },
            severity: alarm.severity.as_str().to_owned(),
            summary: alarm.summary.clone(),
            site: site.to_owned(),
            notify,
            at: alarm.raised_at,
            active: true,
        }
    }

    /// The labels that identify this alarm's alert at Alertmanager.
    pub(crate) fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_owned(), self.alarm.clone());
        labels.insert("site".to_owned(), self.site.clone());
        if !self.severity.is_empty() {
            labels.insert("severity".to_owned(), self.severity.clone());
        }
        if !self.notify.is_empty() {
            labels.insert("notify".to_owned(), self.notify.join(","));
        }
        labels
    }

    /// The annotations: the sentence and what changed.
    pub(crate) fn annotations(&self) -> BTreeMap<String, String> {
        let mut annotations = BTreeMap::new();
        if !self.summary.is_empty() {
            annotations.insert("summary".to_owned(), self.summary.clone());
        }
        annotations.insert("change".to_owned(), self.change.clone());
        annotations
    }
}

/// One alert as Alertmanager's API v2 takes it (`POST /api/v2/alerts`, an array of these).
///
/// A firing alert has no `endsAt`: Alertmanager then keeps it for its `resolve_timeout` after
/// the last time it was sent, which is why the outbox re-sends the firing ones. That also
/// keeps a bunker whose clock drifted during a long outage from sending alerts that look
/// already over. A resolved alert has the time it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt", default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
}

impl Alert {
    /// A firing alert since `starts_at`.
    pub(crate) fn firing(
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
        starts_at: SystemTime,
    ) -> Alert {
        Alert {
            labels,
            annotations,
            starts_at: rfc3339(starts_at),
            ends_at: None,
        }
    }

    /// A resolved alert: `starts_at` to `ends_at` (never before the start, which Alertmanager
    /// would refuse).
    pub(crate) fn resolved(
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
        starts_at: SystemTime,
        ends_at: SystemTime,
    ) -> Alert {
        Alert {
            labels,
            annotations,
            starts_at: rfc3339(starts_at),
            ends_at: Some(rfc3339(ends_at.max(starts_at))),
        }
    }
}

/// RFC 3339 in UTC to the millisecond, as Alertmanager writes its own times back (so a test
/// compares the text it reads back with the text sent).
pub fn rfc3339(at: SystemTime) -> String {
    let since_epoch = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let millis = Duration::from_millis(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX));
    let at = time::OffsetDateTime::UNIX_EPOCH + millis;
    let date = at.date();
    let clock = at.time();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        date.year(),
        u8::from(date.month()),
        date.day(),
        clock.hour(),
        clock.minute(),
        clock.second(),
        clock.millisecond()
    )
}
