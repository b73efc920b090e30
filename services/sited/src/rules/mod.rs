//! Rules and alarms: what the sensors' events mean for the operators and for the site.
//!
//! A pure, deterministic engine: no I/O, no clock, no timers. The daemon passes every
//! [`SensorEvent`](crate::sensor::SensorEvent) and the current time in, calls
//! [`RuleEngine::on_tick`] when [`RuleEngine::next_deadline`] says so, and writes every
//! [`Transition`] it gets back to the audit log (and the notifications, relays and Site1 signals
//! they call for). The same inputs always give the same transitions, so every behaviour is a
//! plain unit test.
//!
//! - [`config`]: the `[[rule]]` language (threshold, rate, contact, lost, composite) and
//!   [`load_rules`]; [`compile`](mod@compile) checks it against the site's sensors, so a bad
//!   rule is refused with `FILE:LINE:COLUMN` and a sentence;
//! - [`condition`]: each rule's condition over time (hysteresis, holds, rate windows,
//!   staleness), the fast path for contacts;
//! - [`alarm`]: alarms and their lifecycle (raised, acknowledged, cleared), external alarms,
//!   silences, and the [`Transition`] records;
//! - [`engine`]: the [`RuleEngine`] tying them together (inhibition, escalation, site state),
//!   and the operators' and services' actions (acknowledge, silence, external alarms);
//! - [`site_state`]: the site state derived from the active alarms;
//! - [`book`]: the [`AlarmBook`] (alarms, acknowledgements, silences) saved atomically so a
//!   restart keeps them.

pub mod alarm;
pub mod book;
pub mod compile;
pub mod condition;
pub mod config;
pub mod engine;
pub mod site_state;

pub use alarm::{
    Acknowledgement, Actor, Alarm, AlarmKey, Change, Delivery, ExternalAlarm, Silence,
    SilenceMatch, Transition,
};
pub use book::{AlarmBook, BookError};
pub use config::{RuleSet, RuleSpec, RulesConfig, Severity, SiteEffect, compile, load_rules};
pub use engine::{ActionError, RuleEngine};
pub use site_state::SiteStatus;
