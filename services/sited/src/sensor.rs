//! What every sensor driver produces: samples of a sensor's value, and the sensor going lost
//! (with the reason) when its bus stops answering sensibly. A lost sensor is never a stale
//! value: the driver says `Lost` within two poll periods of the last good sample, and the rules
//! alarm on it.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// A sensor's name in the site model, e.g. `hall-a.door-1.open` (`a-z 0-9 . _ -`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SensorId(String);

/// A sensor name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a sensor name: use 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit"
)]
pub struct BadSensorId(pub String);

impl SensorId {
    pub fn new(name: impl Into<String>) -> Result<SensorId, BadSensorId> {
        let name = name.into();
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c);
        let starts_well = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if (1..=64).contains(&name.len()) && starts_well && name.chars().all(allowed) {
            Ok(SensorId(name))
        } else {
            Err(BadSensorId(name))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SensorId {
    type Error = BadSensorId;
    fn try_from(name: String) -> Result<SensorId, BadSensorId> {
        SensorId::new(name)
    }
}

impl From<SensorId> for String {
    fn from(id: SensorId) -> String {
        id.0
    }
}

impl fmt::Display for SensorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sensor's value: a measured quantity in the sensor's unit, or a contact (door open,
/// arrester tripped, UPS on battery) where `true` is the contact's active state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Number(f64),
    Contact(bool),
}

/// Why a sensor is lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LostReason {
    /// No answer within the deadline, after the retries.
    #[error("no answer within the deadline")]
    Timeout,
    /// The bus could not be reached (connection refused or dropped).
    #[error("unreachable: {detail}")]
    Unreachable { detail: String },
    /// The device answered with an error (a Modbus exception, `ERR` from upsd).
    #[error("the device refused: {detail}")]
    Refused { detail: String },
    /// The answer was not what the protocol allows.
    #[error("malformed answer: {detail}")]
    Malformed { detail: String },
    /// The value is outside what the sensor can physically report (a broken probe).
    #[error("{value} is outside the sensor's range {min}..{max}")]
    OutOfRange { value: f64, min: f64, max: f64 },
    /// The device answers but says its own data is stale (upsd `DATA-STALE`, a driver gone).
    #[error("the device says its data is stale")]
    Stale,
}

/// What a driver reports about one sensor.
#[derive(Debug, Clone, PartialEq)]
pub enum SensorEvent {
    Sample {
        sensor: SensorId,
        value: Value,
        at: SystemTime,
    },
    Lost {
        sensor: SensorId,
        reason: LostReason,
        at: SystemTime,
    },
}

impl SensorEvent {
    pub fn sensor(&self) -> &SensorId {
        match self {
            SensorEvent::Sample { sensor, .. } | SensorEvent::Lost { sensor, .. } => sensor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensor_names_are_checked() {
        assert!(SensorId::new("hall-a.door-1.open").is_ok());
        assert!(SensorId::new("ups.charge_pct").is_ok());
        for bad in ["", "Hall", ".door", "door 1", "door/1", &"x".repeat(65)] {
            assert_eq!(
                SensorId::new(bad),
                Err(BadSensorId(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn sensor_names_deserialize_only_when_valid() {
        #[derive(Deserialize)]
        struct S {
            id: SensorId,
        }
        let read = toml::from_str::<S>("id = \"door-1\"").unwrap();
        assert_eq!(read.id.as_str(), "door-1");
        assert!(toml::from_str::<S>("id = \"Door 1\"").is_err());
    }
}
