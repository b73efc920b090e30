//! sited's Prometheus metrics on 127.0.0.1:9104 (`[metrics] listen`):
//!
//! - `sited_site_state{state}`: 1 for the current state, 0 for the others;
//! - `sited_power_budget_watts`, `sited_thermal_headroom_celsius`;
//! - `sited_sensor_value{sensor,bus}`: the last value (contacts 1/0); absent while not read;
//! - `sited_sensor_up{sensor,bus}`: 1 read, 0 lost;
//! - `sited_sensor_events_total{bus,kind}`: samples and losses received (`kind` `sample` or
//!   `lost`);
//! - `sited_alarms{severity}`: active alarms; `sited_alarms_unacknowledged`;
//! - `sited_alarm_transitions_total{change}`: transitions recorded (`alarm.raised`, …);
//! - `sited_relay_on{relay,bus}`: 1 on, 0 off (absent while unknown);
//!   `sited_relay_errors{relay,bus}`: 1 while the relay cannot be switched or read;
//! - `sited_uplink_queued`: notifications waiting for the uplink; `sited_uplink_delivered`,
//!   `sited_uplink_dropped` since start; `sited_uplink_reachable` 1 or 0.

use std::sync::atomic::AtomicU64;

use appliance::dbus::contracts::SiteState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::relay_driver::RelayState;
use crate::rules::{Alarm, Severity, Transition};
use crate::sensor::{SensorEvent, Value};
use crate::sensor_table::{Reading, SensorRow};
use crate::uplink::OutboxStatus;

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SensorLabels {
    sensor: String,
    bus: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    bus: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeverityLabel {
    severity: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabel {
    change: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RelayLabels {
    relay: String,
    bus: String,
}

/// The metrics, registered once.
#[derive(Clone)]
pub struct SiteMetrics {
    state: Family<StateLabel, Gauge>,
    budget: FloatGauge,
    headroom: FloatGauge,
    sensor_value: Family<SensorLabels, FloatGauge>,
    sensor_up: Family<SensorLabels, Gauge>,
    events: Family<EventLabels, Counter>,
    alarms: Family<SeverityLabel, Gauge>,
    unacknowledged: Gauge,
    transitions: Family<ChangeLabel, Counter>,
    relay_on: Family<RelayLabels, Gauge>,
    relay_errors: Family<RelayLabels, Gauge>,
    uplink_queued: Gauge,
    uplink_delivered: Gauge,
    uplink_dropped: Gauge,
    uplink_reachable: Gauge,
}

impl SiteMetrics {
    pub fn register(registry: &mut Registry) -> SiteMetrics {
        let metrics = SiteMetrics {
            state: Family::default(),
            budget: FloatGauge::default(),
            headroom: FloatGauge::default(),
            sensor_value: Family::default(),
            sensor_up: Family::default(),
            events: Family::default(),
            alarms: Family::default(),
            unacknowledged: Gauge::default(),
            transitions: Family::default(),
            relay_on: Family::default(),
            relay_errors: Family::default(),
            uplink_queued: Gauge::default(),
            uplink_delivered: Gauge::default(),
            uplink_dropped: Gauge::default(),
            uplink_reachable: Gauge::default(),
        };
        let r = registry;
        r.register(
            "sited_site_state",
            "The site's state (1 for the current one)",
            metrics.state.clone(),
        );
        r.register(
            "sited_power_budget_watts",
            "Power the site's loads may draw",
            metrics.budget.clone(),
        );
        r.register(
            "sited_thermal_headroom_celsius",
            "How far the hottest zone is below its limit",
            metrics.headroom.clone(),
        );
        r.register(
            "sited_sensor_value",
            "A sensor's last value (contacts 1 or 0)",
            metrics.sensor_value.clone(),
        );
        r.register(
            "sited_sensor_up",
            "1 while the sensor reads, 0 while it is lost",
            metrics.sensor_up.clone(),
        );
        r.register(
            "sited_sensor_events",
            "Samples and losses received from the drivers",
            metrics.events.clone(),
        );
        r.register(
            "sited_alarms",
            "Active alarms by severity",
            metrics.alarms.clone(),
        );
        r.register(
            "sited_alarms_unacknowledged",
            "Listed alarms nobody acknowledged",
            metrics.unacknowledged.clone(),
        );
        r.register(
            "sited_alarm_transitions",
            "Alarm and site transitions recorded",
            metrics.transitions.clone(),
        );
        r.register(
            "sited_relay_on",
            "1 while a relay is on, 0 while off",
            metrics.relay_on.clone(),
        );
        r.register(
            "sited_relay_errors",
            "1 while a relay cannot be switched or read",
            metrics.relay_errors.clone(),
        );
        r.register(
            "sited_uplink_queued",
            "Notifications waiting for the uplink",
            metrics.uplink_queued.clone(),
        );
        r.register(
            "sited_uplink_delivered",
            "Notifications the control centre accepted since start",
            metrics.uplink_delivered.clone(),
        );
        r.register(
            "sited_uplink_dropped",
            "Notifications the queue limit dropped since start",
            metrics.uplink_dropped.clone(),
        );
        r.register(
            "sited_uplink_reachable",
            "1 while the last delivery attempt reached the control centre",
            metrics.uplink_reachable.clone(),
        );
        metrics
    }

    /// One driver event (after it is in the sensor table, whose row has the bus).
    pub fn observe_event(&self, event: &SensorEvent, row: &SensorRow) {
        let labels = SensorLabels {
            sensor: event.sensor().to_string(),
            bus: row.bus.clone(),
        };
        let kind = match &row.reading {
            Reading::Ok(value) => {
                let number = match value {
                    Value::Number(n) => *n,
                    Value::Contact(c) => f64::from(u8::from(*c)),
                };
                self.sensor_value.get_or_create(&labels).set(number);
                self.sensor_up.get_or_create(&labels).set(1);
                "sample"
            }
            Reading::Lost(_) => {
                self.sensor_value.remove(&labels);
                self.sensor_up.get_or_create(&labels).set(0);
                "lost"
            }
            Reading::Waiting => return,
        };
        self.events
            .get_or_create(&EventLabels {
                bus: row.bus.clone(),
                kind: kind.into(),
            })
            .inc();
    }

    pub fn observe_transitions(&self, transitions: &[Transition]) {
        for transition in transitions {
            self.transitions
                .get_or_create(&ChangeLabel {
                    change: transition.action().into(),
                })
                .inc();
        }
    }

    pub fn observe_site(&self, state: SiteState, alarms: &[Alarm], budget_w: f64, headroom_c: f64) {
        for each in SiteState::ALL {
            self.state
                .get_or_create(&StateLabel {
                    state: each.as_str().into(),
                })
                .set(i64::from(each == state));
        }
        for severity in [Severity::Info, Severity::Warning, Severity::Critical] {
            let active = alarms
                .iter()
                .filter(|a| a.active && a.severity == severity)
                .count();
            self.alarms
                .get_or_create(&SeverityLabel {
                    severity: severity.as_str().into(),
                })
                .set(i64::try_from(active).unwrap_or(i64::MAX));
        }
        let unacknowledged = alarms.iter().filter(|a| a.acknowledged.is_none()).count();
        self.unacknowledged
            .set(i64::try_from(unacknowledged).unwrap_or(i64::MAX));
        self.budget.set(budget_w);
        self.headroom.set(headroom_c);
    }

    pub fn observe_relay(&self, name: &str, state: &RelayState) {
        let labels = RelayLabels {
            relay: name.into(),
            bus: state.bus.clone(),
        };
        match state.on {
            Some(on) => {
                self.relay_on.get_or_create(&labels).set(i64::from(on));
            }
            None => {
                self.relay_on.remove(&labels);
            }
        }
        self.relay_errors
            .get_or_create(&labels)
            .set(i64::from(state.error.is_some()));
    }

    pub fn observe_uplink(&self, status: &OutboxStatus) {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.uplink_queued
            .set(i64::try_from(status.queued).unwrap_or(i64::MAX));
        self.uplink_delivered.set(count(status.delivered_total));
        self.uplink_dropped.set(count(status.dropped_total));
        self.uplink_reachable.set(i64::from(status.reachable));
    }
}
