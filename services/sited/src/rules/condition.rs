//! One rule's condition over time: whether it holds now, and when it may next change by time
//! alone.
//!
//! - Threshold and rate rules see a value in the raising zone, the clearing zone, or (for a
//!   threshold with `clear_at`) the band between, where nothing changes: that band is the
//!   hysteresis that stops an alarm flapping around its limit. A change of state waits for its
//!   hold (`hold` to raise, `clear_hold` to clear), counted from the first sample in the new
//!   zone; a sample back out of the zone cancels the wait.
//! - Contact rules follow the contact on the event itself: no hold, no cycle (the fast path).
//! - Lost rules hold from a `Lost` event, or once no sample came for `stale_after`, until the
//!   next sample.
//! - Composite rules are computed by the engine from the other rules' states.
//!
//! A `Lost` event keeps a threshold or rate rule's state (the lost rule alarms on the loss) but
//! cancels a change waiting for its hold and empties the rate window.
//!
//! Time: holds and staleness run on the engine's `now`; rates use the samples' own times.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use super::config::{Condition, Limit, Rate, Threshold};
use crate::sensor::{SensorEvent, Value};

/// A change of a rule's state, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Flip {
    pub active: bool,
    pub why: String,
}

/// A change waiting for its hold.
#[derive(Debug, Clone, PartialEq)]
struct Pending {
    towards: bool,
    since: SystemTime,
    why: String,
}

/// The state of one rule's condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracker {
    pub active: bool,
    pending: Option<Pending>,
    /// Rate rules: (sample time, value), oldest first, at most one window old.
    samples: VecDeque<(SystemTime, f64)>,
    /// Lost rules: the last sample (or the engine's start).
    last_seen: SystemTime,
}

impl Tracker {
    /// A rule's tracker at `now`; `active` when restored from a saved active alarm.
    pub fn new(now: SystemTime, active: bool) -> Tracker {
        Tracker {
            active,
            pending: None,
            samples: VecDeque::new(),
            last_seen: now,
        }
    }

    /// Feeds one event for the rule's sensor.
    pub fn on_event(
        &mut self,
        condition: &Condition,
        event: &SensorEvent,
        now: SystemTime,
    ) -> Option<Flip> {
        match (condition, event) {
            (Condition::Threshold(t), SensorEvent::Sample { value, .. }) => {
                let value = number(value)?;
                let (zone, why) = threshold_zone(t, value);
                self.towards(zone, why, (t.hold, t.clear_hold), now)
            }
            (Condition::Rate(r), SensorEvent::Sample { value, at, .. }) => {
                let value = number(value)?;
                let (zone, why) = self.rate_zone(r, *at, value);
                self.towards(zone, why, (r.hold, r.clear_hold), now)
            }
            (Condition::Contact { active, sensor }, SensorEvent::Sample { value, .. }) => {
                let Value::Contact(contact) = value else {
                    return None;
                };
                let on = contact == active;
                let why = format!(
                    "{sensor} is {}",
                    if on {
                        "in its active state"
                    } else {
                        "back to rest"
                    }
                );
                self.towards(Some(on), why, (Duration::ZERO, Duration::ZERO), now)
            }
            (Condition::Lost { sensor, .. }, SensorEvent::Sample { .. }) => {
                self.last_seen = now;
                self.set(false, format!("{sensor} reports again"))
            }
            (Condition::Lost { sensor, .. }, SensorEvent::Lost { reason, .. }) => {
                self.set(true, format!("{sensor} is lost: {reason}"))
            }
            (Condition::Threshold(_) | Condition::Rate(_), SensorEvent::Lost { .. }) => {
                // No value is known now: a change waiting for its hold must not complete on
                // the strength of samples from before the loss, and a rate starts afresh.
                self.pending = None;
                self.samples.clear();
                None
            }
            _ => None,
        }
    }

    /// Lets time pass: a hold that has run out, a sensor that went silent.
    pub fn on_tick(&mut self, condition: &Condition, now: SystemTime) -> Option<Flip> {
        if let Condition::Lost {
            sensor,
            stale_after,
        } = condition
        {
            if !self.active && elapsed(self.last_seen, now) >= *stale_after {
                return self.set(
                    true,
                    format!(
                        "{sensor} sent no sample for {} s",
                        elapsed(self.last_seen, now).as_secs()
                    ),
                );
            }
            return None;
        }
        let hold = self.hold_of(condition)?;
        let pending = self.pending.as_ref()?;
        if elapsed(pending.since, now) >= hold {
            let pending = self.pending.take()?;
            return self.set(pending.towards, pending.why);
        }
        None
    }

    /// When time alone may change this rule next.
    pub fn deadline(&self, condition: &Condition) -> Option<SystemTime> {
        if let Condition::Lost { stale_after, .. } = condition {
            return (!self.active).then(|| self.last_seen + *stale_after);
        }
        let pending = self.pending.as_ref()?;
        Some(pending.since + self.hold_of(condition)?)
    }

    /// Sets the state outright (composites, lost rules).
    pub fn set(&mut self, active: bool, why: String) -> Option<Flip> {
        self.pending = None;
        if self.active == active {
            return None;
        }
        self.active = active;
        Some(Flip { active, why })
    }

    /// The hold for the pending change of a threshold or rate rule.
    fn hold_of(&self, condition: &Condition) -> Option<Duration> {
        let towards = self.pending.as_ref()?.towards;
        let (hold, clear_hold) = match condition {
            Condition::Threshold(t) => (t.hold, t.clear_hold),
            Condition::Rate(r) => (r.hold, r.clear_hold),
            _ => return None,
        };
        Some(if towards { hold } else { clear_hold })
    }

    /// Moves towards `zone` (None: the hysteresis band, nothing changes).
    fn towards(
        &mut self,
        zone: Option<bool>,
        why: String,
        (hold, clear_hold): (Duration, Duration),
        now: SystemTime,
    ) -> Option<Flip> {
        let Some(towards) = zone.filter(|&z| z != self.active) else {
            self.pending = None;
            return None;
        };
        let since = match &self.pending {
            Some(p) if p.towards == towards => p.since,
            _ => now,
        };
        let wait = if towards { hold } else { clear_hold };
        if elapsed(since, now) >= wait {
            return self.set(towards, why);
        }
        self.pending = Some(Pending {
            towards,
            since,
            why,
        });
        None
    }

    /// The zone of a rate rule after adding a sample: the change per minute from the oldest
    /// sample in the window to this one, once the samples span at least half the window.
    fn rate_zone(&mut self, rate: &Rate, at: SystemTime, value: f64) -> (Option<bool>, String) {
        if self.samples.back().is_some_and(|&(last, _)| at < last) {
            // A sample older than the newest one says nothing new about the trend.
            return (None, String::new());
        }
        self.samples.push_back((at, value));
        while self
            .samples
            .front()
            .is_some_and(|&(t, _)| elapsed(t, at) > rate.window)
        {
            self.samples.pop_front();
        }
        let Some(&(first_at, first)) = self.samples.front() else {
            return (None, String::new());
        };
        let span = elapsed(first_at, at);
        if span < rate.window / 2 || span.is_zero() {
            return (None, String::new());
        }
        let per_minute = (value - first) / span.as_secs_f64() * 60.0;
        let rising = rate.rise_per_minute.is_some_and(|r| per_minute >= r);
        let falling = rate.fall_per_minute.is_some_and(|f| -per_minute >= f);
        let why = format!(
            "{} changed by {per_minute:+.2} per minute over {} s",
            rate.sensor,
            span.as_secs()
        );
        (Some(rising || falling), why)
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(v) if v.is_finite() => Some(*v),
        _ => None,
    }
}

/// Raising zone (`Some(true)`), clearing zone (`Some(false)`) or the band between (`None`).
fn threshold_zone(t: &Threshold, value: f64) -> (Option<bool>, String) {
    let sensor = &t.sensor;
    match t.limit {
        Limit::Above(limit) if value > limit => {
            (Some(true), format!("{sensor} is {value}, above {limit}"))
        }
        Limit::Below(limit) if value < limit => {
            (Some(true), format!("{sensor} is {value}, below {limit}"))
        }
        Limit::Above(_) if value <= t.clear_at => (
            Some(false),
            format!("{sensor} is {value}, at or below {}", t.clear_at),
        ),
        Limit::Below(_) if value >= t.clear_at => (
            Some(false),
            format!("{sensor} is {value}, at or above {}", t.clear_at),
        ),
        _ => (None, String::new()),
    }
}

/// Time from `earlier` to `later`; zero if the clock went backwards.
pub fn elapsed(earlier: SystemTime, later: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

#[cfg(test)]
#[path = "condition_tests.rs"]
mod tests;
