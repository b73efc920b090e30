//! What operators and other services do to alarms: acknowledge, silence, raise and clear
//! external alarms. Each action either changes the book and returns its transitions, or is
//! refused with an [`ActionError`] and changes nothing.

use std::time::SystemTime;

use super::{Pending, PendingChange, RuleEngine, reraise};
use crate::rules::alarm::{
    Acknowledgement, Actor, Alarm, AlarmKey, Change, ExternalAlarm, Silence, SilenceMatch,
    Transition,
};
use crate::rules::condition::elapsed;

/// The longest source or key of an external alarm, in characters.
pub const MAX_EXTERNAL_NAME: usize = 64;

/// An operator's or a service's action that was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("there is no alarm `{0}`")]
    NoSuchAlarm(String),
    #[error("alarm `{alarm}` was already acknowledged by {by}")]
    AlreadyAcknowledged { alarm: String, by: String },
    #[error("there is no silence {0}")]
    NoSuchSilence(u64),
    #[error("a silence must end in the future")]
    SilenceInThePast,
    #[error("a silence needs a pattern to match")]
    EmptyPattern,
    #[error("`{what}` is not a usable {field}: {reason}")]
    BadExternal {
        field: &'static str,
        what: String,
        reason: &'static str,
    },
    #[error("alarm `{0}` is not raised")]
    NotRaised(String),
}

impl RuleEngine {
    /// An operator acknowledges an alarm; a cleared alarm then leaves the list.
    pub fn acknowledge(
        &mut self,
        key: &AlarmKey,
        by: &str,
        note: &str,
        now: SystemTime,
    ) -> Result<Vec<Transition>, ActionError> {
        let index = self.index_of(key)?;
        let alarm = &mut self.book.alarms[index];
        if let Some(ack) = &alarm.acknowledged {
            return Err(ActionError::AlreadyAcknowledged {
                alarm: key.to_string(),
                by: ack.by.clone(),
            });
        }
        alarm.acknowledged = Some(Acknowledgement {
            by: by.to_string(),
            at: now,
            note: note.to_string(),
        });
        let why = if alarm.active {
            format!("acknowledged by {by}")
        } else {
            self.book.alarms.remove(index);
            format!("acknowledged by {by}; it was cleared, so it leaves the list")
        };
        Ok(vec![Transition {
            at: now,
            by: Actor::Operator(by.to_string()),
            change: Change::AlarmAcknowledged {
                alarm: key.clone(),
                note: note.to_string(),
            },
            why,
        }])
    }

    /// An operator holds back notifications of matching alarms until `until`.
    pub fn silence(
        &mut self,
        matcher: SilenceMatch,
        author: &str,
        comment: &str,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<(u64, Vec<Transition>), ActionError> {
        let (SilenceMatch::Alarm(pattern) | SilenceMatch::Sensor(pattern)) = &matcher;
        if pattern.trim().is_empty() {
            return Err(ActionError::EmptyPattern);
        }
        if until <= now {
            return Err(ActionError::SilenceInThePast);
        }
        let silence = Silence {
            id: self.book.next_silence_id,
            matcher,
            author: author.to_string(),
            comment: comment.to_string(),
            created: now,
            until,
        };
        self.book.next_silence_id += 1;
        self.book.silences.push(silence.clone());
        let id = silence.id;
        let why = format!(
            "{author} silenced {} for {} s: {comment}",
            silence.matcher,
            elapsed(now, until).as_secs()
        );
        let transition = Transition {
            at: now,
            by: Actor::Operator(author.to_string()),
            change: Change::SilenceAdded { silence },
            why,
        };
        Ok((id, vec![transition]))
    }

    /// An operator ends a silence early.
    pub fn remove_silence(
        &mut self,
        id: u64,
        by: &str,
        now: SystemTime,
    ) -> Result<Vec<Transition>, ActionError> {
        let index = self
            .book
            .silences
            .iter()
            .position(|s| s.id == id)
            .ok_or(ActionError::NoSuchSilence(id))?;
        self.book.silences.remove(index);
        Ok(vec![Transition {
            at: now,
            by: Actor::Operator(by.to_string()),
            change: Change::SilenceRemoved { silence: id },
            why: format!("{by} ended silence {id}"),
        }])
    }

    /// Another service raises (or updates) an alarm (`Site1.RaiseAlarm`).
    pub fn raise_external(
        &mut self,
        raised: ExternalAlarm,
        now: SystemTime,
    ) -> Result<Vec<Transition>, ActionError> {
        check_external_name("source", &raised.source)?;
        check_external_name("key", &raised.key)?;
        let key = AlarmKey::external(&raised.source, &raised.key);
        let actor = Actor::Service(raised.source.clone());
        let why = format!("{} reports: {}", raised.source, raised.summary);
        let pending = match self.book.alarms.iter_mut().find(|a| a.key == key) {
            Some(alarm) if alarm.active => {
                let same = alarm.base_severity == raised.severity
                    && alarm.summary == raised.summary
                    && alarm.detail == raised.detail;
                if same {
                    return Ok(Vec::new());
                }
                alarm.base_severity = raised.severity;
                alarm.severity = raised.severity;
                alarm.summary = raised.summary;
                alarm.detail = raised.detail;
                Pending {
                    alarm: alarm.clone(),
                    change: PendingChange::Updated,
                    why,
                }
            }
            Some(alarm) => {
                alarm.base_severity = raised.severity;
                alarm.summary = raised.summary;
                alarm.detail = raised.detail;
                reraise(alarm, now);
                Pending {
                    alarm: alarm.clone(),
                    change: PendingChange::Raised,
                    why,
                }
            }
            None => {
                let alarm = Alarm {
                    key,
                    summary: raised.summary,
                    detail: raised.detail,
                    base_severity: raised.severity,
                    severity: raised.severity,
                    site_state: None,
                    sensors: Vec::new(),
                    raised_at: now,
                    active: true,
                    cleared_at: None,
                    acknowledged: None,
                    escalation_step: 0,
                };
                self.book.alarms.push(alarm.clone());
                Pending {
                    alarm,
                    change: PendingChange::Raised,
                    why,
                }
            }
        };
        let mut out = self.deliver(vec![pending], &actor, now);
        out.extend(self.settle_composites(Vec::new(), now));
        out.extend(self.release_uninhibited(now));
        out.extend(self.update_site(&actor, now));
        Ok(out)
    }

    /// Another service says its condition is over (`Site1.ClearAlarm`).
    pub fn clear_external(
        &mut self,
        source: &str,
        key: &str,
        now: SystemTime,
    ) -> Result<Vec<Transition>, ActionError> {
        let alarm_key = AlarmKey::external(source, key);
        let actor = Actor::Service(source.to_string());
        let pending = self
            .clear(&alarm_key, format!("{source} cleared it"), now)
            .ok_or_else(|| ActionError::NotRaised(alarm_key.to_string()))?;
        let mut out = self.deliver(vec![pending], &actor, now);
        out.extend(self.settle_composites(Vec::new(), now));
        out.extend(self.release_uninhibited(now));
        out.extend(self.update_site(&actor, now));
        Ok(out)
    }
}

fn check_external_name(field: &'static str, what: &str) -> Result<(), ActionError> {
    let reason = if what.is_empty() {
        Some("it is empty")
    } else if what.chars().count() > MAX_EXTERNAL_NAME {
        Some("it is longer than 64 characters")
    } else if what.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Some("it holds spaces or control characters")
    } else if field == "source" && what.contains('/') {
        Some("a source may not contain `/`")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ActionError::BadExternal {
            field,
            what: what.chars().take(MAX_EXTERNAL_NAME).collect(),
            reason,
        }),
        None => Ok(()),
    }
}
