//! One SNMP agent (a PDU, an environmental probe) read over SNMP v2c: where, which community,
//! how often, and which OIDs are which sensors.

use std::time::Duration;

use appliance::config::Invalid;
use serde::Deserialize;

use crate::sensor::SensorId;

/// The SNMP agent port.
pub const DEFAULT_PORT: u16 = 161;

/// Most OIDs one GET may carry: small agents (PDU cards) answer `tooBig` or drop requests with
/// long variable-binding lists, and an answer this size stays far below any MTU.
pub const MAX_OIDS_PER_REQUEST: usize = 64;

fn default_poll_ms() -> u64 {
    5000
}

fn default_deadline_ms() -> u64 {
    1000
}

fn default_retries() -> u32 {
    1
}

fn default_oids_per_request() -> usize {
    16
}

fn default_scale() -> f64 {
    1.0
}

/// An SNMP v2c agent and the sensors read from it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnmpSettings {
    /// `HOST:PORT` or `HOST` (port 161), e.g. `"10.0.0.20"`. In `sited.toml` it is left out:
    /// sited takes it from the hardware profile's `snmp` bus of the same name.
    #[serde(default)]
    pub address: String,
    /// The read community, e.g. `"public"`.
    pub community: String,
    /// Milliseconds between polls. Default: 5000.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Milliseconds one GET may wait for its answer. Default: 1000.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Further attempts after a GET that timed out or got a malformed answer. Default: 1.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Most OIDs in one GET, 1 to 64. Default: 16.
    #[serde(default = "default_oids_per_request")]
    pub oids_per_request: usize,
    /// The sensors (`[[oid]]`).
    pub oid: Vec<OidSensor>,
}

/// One OID read as one sensor: a number (`value × scale`, in `unit_of_measure`, within
/// `min..=max`) or, with `contact`, a contact that is active when the agent's integer is one
/// of the listed values.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidSensor {
    /// The sensor's name in the site model, e.g. `pdu-a.outlet-3.current_a`.
    pub sensor: SensorId,
    /// Dotted numeric OID, e.g. `"1.3.6.1.4.1.318.1.1.12.2.3.1.1.2.1"` (a leading dot is allowed).
    pub oid: String,
    /// Multiplies the agent's value (tenths of amps: 0.1). Default: 1.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Unit of the scaled value, e.g. `"A"`, `"degC"`, `"%RH"`.
    #[serde(default)]
    pub unit_of_measure: Option<String>,
    /// Lowest and highest scaled value the sensor can physically report; outside is a broken
    /// probe (lost, `OutOfRange`), not a reading.
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    /// The integer values that mean the contact is active (e.g. `[2]` for an APC
    /// `emsInputContactStatus` "open").
    #[serde(default)]
    pub contact: Option<Vec<i64>>,
}

/// An OID string that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a numeric OID: use dotted decimal arcs like 1.3.6.1.2.1.1.3.0 (first arc 0 to 2, \
     second below 40 under 0 and 1, at most 128 arcs of 32 bits)"
)]
pub struct BadOid(pub String);

/// Parses a dotted numeric OID into its arcs.
pub fn parse_oid(text: &str) -> Result<Vec<u32>, BadOid> {
    let bad = || BadOid(text.to_owned());
    let body = text.strip_prefix('.').unwrap_or(text);
    let arcs = body
        .split('.')
        .map(|arc| {
            if arc.is_empty() || !arc.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            arc.parse::<u32>().map_err(|_| bad())
        })
        .collect::<Result<Vec<u32>, BadOid>>()?;
    let well_formed =
        (2..=128).contains(&arcs.len()) && arcs[0] <= 2 && (arcs[0] == 2 || arcs[1] < 40);
    if well_formed { Ok(arcs) } else { Err(bad()) }
}

impl SnmpSettings {
    pub fn poll_period(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    /// The agent's `HOST:PORT`.
    pub fn agent_address(&self) -> String {
        let bracketed_v6 = self.address.starts_with('[') && self.address.ends_with(']');
        if self.address.contains(':') && !bracketed_v6 {
            self.address.clone()
        } else {
            format!("{}:{DEFAULT_PORT}", self.address)
        }
    }

    /// The longest one poll waits on a silent agent: every attempt runs out its deadline (once
    /// the agent is silent, the remaining requests of the poll do not wait again).
    pub fn worst_case_poll(&self) -> Duration {
        self.deadline() * (1 + self.retries)
    }

    /// `prefix` is where the table sits in the file, e.g. `snmp[0]`.
    pub fn validate(&self, prefix: &str) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        let mut complain = |key: String, reason: String| {
            problems.push(Invalid::new(format!("{prefix}.{key}"), reason));
        };
        if self.address.trim().is_empty() || self.address.contains(char::is_whitespace) {
            complain(
                "address".into(),
                format!("`{}` is not HOST or HOST:PORT", self.address),
            );
        }
        if self.community.is_empty() || self.community.len() > 255 {
            complain(
                "community".into(),
                "must be 1 to 255 bytes (the agent's read community)".into(),
            );
        }
        if !(100..=3_600_000).contains(&self.poll_ms) {
            complain(
                "poll_ms".into(),
                format!("{} must be 100 to 3,600,000", self.poll_ms),
            );
        }
        if !(10..=60_000).contains(&self.deadline_ms) {
            complain(
                "deadline_ms".into(),
                format!("{} must be 10 to 60,000", self.deadline_ms),
            );
        } else if self.retries > 5 {
            complain("retries".into(), format!("{} must be 0 to 5", self.retries));
        } else if self.worst_case_poll() > self.poll_period() {
            complain(
                "deadline_ms".into(),
                format!(
                    "{} ms with {} retries can take {} ms, longer than the poll period of {} ms: \
                     a silent agent would be noticed late; shorten the deadline, retry less or \
                     poll less often",
                    self.deadline_ms,
                    self.retries,
                    self.worst_case_poll().as_millis(),
                    self.poll_ms
                ),
            );
        }
        if !(1..=MAX_OIDS_PER_REQUEST).contains(&self.oids_per_request) {
            complain(
                "oids_per_request".into(),
                format!(
                    "{} must be 1 to {MAX_OIDS_PER_REQUEST}",
                    self.oids_per_request
                ),
            );
        }
        if self.oid.is_empty() {
            complain(
                "oid".into(),
                "lists no sensors: add at least one [[oid]]".into(),
            );
        }
        for (i, entry) in self.oid.iter().enumerate() {
            for (key, reason) in entry.problems() {
                complain(format!("oid[{i}].{key}"), reason);
            }
            if self.oid[..i].iter().any(|e| e.sensor == entry.sensor) {
                complain(
                    format!("oid[{i}].sensor"),
                    format!("`{}` is already named by an earlier [[oid]]", entry.sensor),
                );
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

impl OidSensor {
    /// The OID's arcs; `None` if [`SnmpSettings::validate`] would refuse it.
    pub fn arcs(&self) -> Option<Vec<u32>> {
        parse_oid(&self.oid).ok()
    }

    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if let Err(bad) = parse_oid(&self.oid) {
            problems.push(("oid", bad.to_string()));
        }
        if !self.scale.is_finite() || self.scale == 0.0 {
            problems.push((
                "scale",
                format!("{} must be a finite non-zero number", self.scale),
            ));
        }
        for (key, bound) in [("min", self.min), ("max", self.max)] {
            if bound.is_some_and(|b| !b.is_finite()) {
                problems.push((key, "must be a finite number".to_owned()));
            }
        }
        if let (Some(min), Some(max)) = (self.min, self.max)
            && min > max
        {
            problems.push(("max", format!("{max} is below min {min}")));
        }
        if let Some(active) = &self.contact {
            if active.is_empty() {
                problems.push((
                    "contact",
                    "lists no values: give the integer(s) that mean active".to_owned(),
                ));
            }
            let numeric = self.scale != 1.0
                || self.min.is_some()
                || self.max.is_some()
                || self.unit_of_measure.is_some();
            if numeric {
                problems.push((
                    "contact",
                    "a contact has no scale, unit_of_measure, min or max".to_owned(),
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
