//! The latest word on every sensor, for the console, `Site1.Sensors` and the metrics: its
//! value, or that it is lost and why, or that nothing was read yet.

use std::collections::BTreeMap;
use std::time::SystemTime;

use appliance::time_text::rfc3339;
use serde_json::{Value as Json, json};

use crate::catalogue::SensorCatalogue;
use crate::sensor::{LostReason, SensorEvent, SensorId, Value};

/// What is known of one sensor now.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// Listed in the site's configuration, not read yet.
    Waiting,
    Ok(Value),
    Lost(LostReason),
}

/// One sensor's row.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorRow {
    pub bus: String,
    pub unit: Option<String>,
    pub reading: Reading,
    /// When the reading was taken (or the loss seen).
    pub at: Option<SystemTime>,
}

/// Counts for the status document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SensorCounts {
    pub total: usize,
    pub ok: usize,
    pub lost: usize,
}

/// Every sensor, by name.
#[derive(Debug, Clone, Default)]
pub struct SensorTable {
    rows: BTreeMap<SensorId, SensorRow>,
}

impl SensorTable {
    /// Every listed sensor, waiting for its first reading.
    pub fn of(catalogue: &SensorCatalogue) -> SensorTable {
        let rows = catalogue
            .listed()
            .map(|(id, info)| {
                let row = SensorRow {
                    bus: info.bus.clone(),
                    unit: info.unit.clone(),
                    reading: Reading::Waiting,
                    at: None,
                };
                (id.clone(), row)
            })
            .collect();
        SensorTable { rows }
    }

    /// Records an event; a sensor first seen now (a hwmon input) gets its row here.
    pub fn record(&mut self, event: &SensorEvent, catalogue: &SensorCatalogue) {
        let (reading, at) = match event {
            SensorEvent::Sample { value, at, .. } => (Reading::Ok(*value), *at),
            SensorEvent::Lost { reason, at, .. } => (Reading::Lost(reason.clone()), *at),
        };
        let sensor = event.sensor();
        if let Some(row) = self.rows.get_mut(sensor) {
            row.reading = reading;
            row.at = Some(at);
            return;
        }
        let info = catalogue.info(sensor);
        self.rows.insert(
            sensor.clone(),
            SensorRow {
                bus: info
                    .as_ref()
                    .map_or_else(|| "unknown".into(), |i| i.bus.clone()),
                unit: info.and_then(|i| i.unit),
                reading,
                at: Some(at),
            },
        );
    }

    pub fn get(&self, sensor: &SensorId) -> Option<&SensorRow> {
        self.rows.get(sensor)
    }

    pub fn rows(&self) -> impl Iterator<Item = (&SensorId, &SensorRow)> {
        self.rows.iter()
    }

    pub fn counts(&self) -> SensorCounts {
        let mut counts = SensorCounts {
            total: self.rows.len(),
            ..SensorCounts::default()
        };
        for row in self.rows.values() {
            match row.reading {
                Reading::Ok(_) => counts.ok += 1,
                Reading::Lost(_) => counts.lost += 1,
                Reading::Waiting => {}
            }
        }
        counts
    }

    /// `Site1.Sensors`: a JSON array by name.
    pub fn to_json(&self) -> Json {
        let rows: Vec<Json> = self
            .rows
            .iter()
            .map(|(sensor, row)| {
                let (value, state, reason) = match &row.reading {
                    Reading::Waiting => (Json::Null, "waiting", Json::Null),
                    Reading::Ok(Value::Number(n)) => (json!(n), "ok", Json::Null),
                    Reading::Ok(Value::Contact(c)) => (json!(c), "ok", Json::Null),
                    Reading::Lost(reason) => (Json::Null, "lost", json!(reason.to_string())),
                };
                json!({
                    "sensor": sensor.as_str(),
                    "bus": row.bus,
                    "value": value,
                    "unit": row.unit,
                    "state": state,
                    "reason": reason,
                    "at": row.at.map(rfc3339),
                })
            })
            .collect();
        Json::Array(rows)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn id(name: &str) -> SensorId {
        SensorId::new(name).unwrap()
    }

    #[test]
    fn rows_go_from_waiting_to_ok_to_lost_and_new_sensors_find_their_bus() {
        let mut catalogue = SensorCatalogue::default();
        catalogue.add(
            "hall-1.temperature-1",
            "site-environment",
            Some("°C".into()),
        );
        let mut table = SensorTable::of(&catalogue);
        assert_eq!(
            table.counts(),
            SensorCounts {
                total: 1,
                ok: 0,
                lost: 0
            }
        );
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        table.record(
            &SensorEvent::Sample {
                sensor: id("hall-1.temperature-1"),
                value: Value::Number(24.5),
                at,
            },
            &catalogue,
        );
        table.record(
            &SensorEvent::Lost {
                sensor: id("elsewhere.x"),
                reason: LostReason::Timeout,
                at,
            },
            &catalogue,
        );
        assert_eq!(
            table.counts(),
            SensorCounts {
                total: 2,
                ok: 1,
                lost: 1
            }
        );
        let json = table.to_json();
        assert_eq!(json[0]["sensor"], "elsewhere.x");
        assert_eq!(json[0]["state"], "lost");
        assert_eq!(json[0]["bus"], "unknown");
        assert_eq!(json[0]["reason"], "no answer within the deadline");
        assert_eq!(json[1]["value"], 24.5);
        assert_eq!(json[1]["unit"], "°C");
        assert_eq!(json[1]["state"], "ok");
    }
}
