//! The poller of one SNMP agent: every poll period it GETs every configured OID, at most
//! `oids_per_request` per request, and reports every sensor: a `Sample`, or `Lost` with the
//! reason. A sensor whose request fails is reported lost in that same poll; since one poll
//! (attempts and retries included) fits in a poll period (see [`SnmpSettings::validate`]),
//! `Lost` follows the last good sample within two poll periods.

use std::time::SystemTime;

use appliance::config::Invalid;
use snmp2::Oid;
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, interval};

use super::agent::{self, Failure, Reading};
use super::settings::{OidSensor, SnmpSettings};
use crate::sensor::{LostReason, SensorEvent, Value};

/// Polls one SNMP v2c agent and sends what it reads as [`SensorEvent`]s.
pub struct SnmpPoller {
    settings: SnmpSettings,
    address: String,
    oids: Vec<Oid<'static>>,
    events: mpsc::Sender<SensorEvent>,
}

impl SnmpPoller {
    /// A poller for the agent in `settings` sending into `events`; refuses settings that
    /// [`SnmpSettings::validate`] refuses (keys under `snmp`).
    pub fn new(
        settings: &SnmpSettings,
        events: mpsc::Sender<SensorEvent>,
    ) -> Result<SnmpPoller, Vec<Invalid>> {
        settings.validate("snmp")?;
        let oids = settings
            .oid
            .iter()
            .map(|entry| {
                let arcs: Vec<u64> = entry
                    .arcs()
                    .unwrap_or_default()
                    .into_iter()
                    .map(u64::from)
                    .collect();
                Oid::from(&arcs).map_err(|_| {
                    Invalid::new(
                        "snmp.oid",
                        format!("`{}` cannot be encoded as an OID", entry.oid),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|invalid| vec![invalid])?;
        Ok(SnmpPoller {
            address: settings.agent_address(),
            settings: settings.clone(),
            oids,
            events,
        })
    }

    /// Polls every poll period until the receiver of the events is dropped.
    pub async fn run(mut self) {
        let mut ticks = interval(self.settings.poll_period());
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tracing::info!(agent = %self.address, sensors = self.oids.len(), "polling SNMP agent");
        loop {
            ticks.tick().await;
            if !self.poll_once().await {
                tracing::debug!(agent = %self.address, "event receiver gone; poller stops");
                return;
            }
        }
    }

    /// GETs every OID once and sends an event for every sensor. `false` once the receiver is
    /// gone.
    pub async fn poll_once(&mut self) -> bool {
        // Once the agent is silent or unreachable, the poll's remaining requests are reported
        // with the same reason instead of each waiting out its own deadline.
        let mut gone: Option<Failure> = None;
        let per_request = self.settings.oids_per_request.max(1);
        for start in (0..self.oids.len()).step_by(per_request) {
            let end = (start + per_request).min(self.oids.len());
            let result = match &gone {
                Some(failure) => Err(failure.clone()),
                None => self.get_with_retries(start..end).await,
            };
            if let Err(failure) = &result {
                tracing::debug!(agent = %self.address, %failure, "SNMP GET failed");
                if failure.agent_gone() {
                    gone = Some(failure.clone());
                }
            }
            if !self.report(start..end, result).await {
                return false;
            }
        }
        true
    }

    async fn get_with_retries(
        &self,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<Reading>, Failure> {
        let community = self.settings.community.as_bytes();
        let mut attempt = 0;
        loop {
            let result = agent::get(
                &self.address,
                community,
                &self.oids[range.clone()],
                self.settings.deadline(),
            )
            .await;
            match result {
                // A refusal is the agent's considered answer; asking again changes nothing.
                Err(failure)
                    if !matches!(failure, Failure::Refused(_))
                        && attempt < self.settings.retries =>
                {
                    tracing::debug!(agent = %self.address, %failure, attempt, "SNMP GET retried");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Sends the events of the sensors in `range`. `false` once the receiver is gone.
    async fn report(
        &self,
        range: std::ops::Range<usize>,
        result: Result<Vec<Reading>, Failure>,
    ) -> bool {
        let at = SystemTime::now();
        for (k, i) in range.enumerate() {
            let entry = &self.settings.oid[i];
            let sensor = entry.sensor.clone();
            let outcome = match &result {
                Ok(readings) => sensor_value(entry, &readings[k]),
                Err(failure) => Err(failure.lost_reason()),
            };
            let event = match outcome {
                Ok(value) => SensorEvent::Sample { sensor, value, at },
                Err(reason) => SensorEvent::Lost { sensor, reason, at },
            };
            if self.events.send(event).await.is_err() {
                return false;
            }
        }
        true
    }
}

/// What one agent value means for its sensor: a scaled number within range, a contact's state,
/// or why the sensor is lost.
pub fn sensor_value(entry: &OidSensor, reading: &Reading) -> Result<Value, LostReason> {
    let number = match reading {
        Reading::Absent(what) => {
            return Err(LostReason::Refused {
                detail: format!("{what} for {}", entry.oid),
            });
        }
        Reading::NotANumber(what) => {
            let detail = format!("{} is not a number: {what}", entry.oid);
            // Bounded: the text comes from the agent and ends up in logs and alarms.
            let end = (0..=detail.len().min(160))
                .rev()
                .find(|&i| detail.is_char_boundary(i))
                .unwrap_or(0);
            return Err(LostReason::Malformed {
                detail: detail[..end].to_owned(),
            });
        }
        Reading::Integer(n) => {
            if let Some(active) = &entry.contact {
                return Ok(Value::Contact(active.iter().any(|&a| i128::from(a) == *n)));
            }
            *n as f64
        }
        Reading::Decimal(n) => {
            if entry.contact.is_some() {
                return Err(LostReason::Malformed {
                    detail: format!("{} is {n}, a contact needs an integer", entry.oid),
                });
            }
            *n
        }
    };
    let value = number * entry.scale;
    let (min, max) = (
        entry.min.unwrap_or(f64::NEG_INFINITY),
        entry.max.unwrap_or(f64::INFINITY),
    );
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(Value::Number(value))
    } else {
        Err(LostReason::OutOfRange { value, min, max })
    }
}

#[cfg(test)]
#[path = "poller_tests.rs"]
mod tests;
