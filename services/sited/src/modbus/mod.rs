//! The Modbus TCP driver: sensors read through a register map declared in the hardware profile
//! (`[[sensor_bus.register]]`, see `appliance::profile::ModbusRegister`) and relay outputs on
//! coils (`[[sensor_bus.relay]]`).
//!
//! - [`decode`]: raw registers or bits of one map entry → a [`crate::sensor::Value`] or a typed
//!   error (pure; the fuzz target `modbus_registers` drives it);
//! - [`plan`]: the map grouped into as few read requests as the protocol allows;
//! - [`poller`]: one task per bus, reading every poll period and sending
//!   [`crate::sensor::SensorEvent`]s: a sample, or the sensor lost with the reason (timeout,
//!   unreachable, a Modbus exception, a malformed answer, a value out of range);
//! - [`relay`]: set or clear a relay's coil and read it back to check it switched.

pub mod decode;
mod link;
pub mod plan;
pub mod poller;
pub mod relay;

use std::time::Duration;

use appliance::config::{Bounded, Invalid};
use serde::{Deserialize, Serialize};

pub use link::{Failure, exception_name};

/// How the driver talks to Modbus devices (the `[modbus]` section of sited's config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModbusSettings {
    /// Milliseconds between polls of a bus, 50 to 3,600,000. Default: 1000.
    pub poll_period_ms: Bounded<50, 3_600_000>,
    /// Milliseconds a connect or a request may take before it counts as timed out, 10 to
    /// 60,000. Default: 200.
    pub deadline_ms: Bounded<10, 60_000>,
    /// Further attempts after a failed request (timeout, connection lost, device busy), 0 to
    /// 5. Default: 1.
    pub retries: Bounded<0, 5>,
    /// Longest wait between attempts to reconnect to a device that refuses or does not
    /// answer connections, in milliseconds; the wait starts at one poll period and doubles.
    /// 50 to 600,000. Default: 30,000.
    pub reconnect_backoff_max_ms: Bounded<50, 600_000>,
}

impl Default for ModbusSettings {
    fn default() -> Self {
        ModbusSettings {
            poll_period_ms: Bounded::from_const(1000),
            deadline_ms: Bounded::from_const(200),
            retries: Bounded::from_const(1),
            reconnect_backoff_max_ms: Bounded::from_const(30_000),
        }
    }
}

impl ModbusSettings {
    pub fn poll_period(&self) -> Duration {
        Duration::from_millis(self.poll_period_ms.get())
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms.get())
    }

    pub fn retries(&self) -> u64 {
        self.retries.get()
    }

    pub fn reconnect_backoff_max(&self) -> Duration {
        Duration::from_millis(self.reconnect_backoff_max_ms.get())
    }

    /// The longest one failing request can take: the first attempt times out, and each retry
    /// reconnects and times out again.
    pub fn worst_case_request(&self) -> Duration {
        self.deadline() * (2 + 2 * self.retries() as u32)
    }

    /// Settings that cannot keep the promise of a lost sensor within two poll periods.
    /// Keys are relative to the section (`deadline_ms`).
    pub fn validate(&self) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        if self.worst_case_request() > self.poll_period() {
            problems.push(Invalid::new(
                "deadline_ms",
                format!(
                    "{} ms with {} retries can take {} ms, longer than the poll period of {} ms: \
                     a dead device would be noticed late; shorten the deadline, retry less or \
                     poll less often",
                    self.deadline_ms,
                    self.retries,
                    self.worst_case_request().as_millis(),
                    self.poll_period_ms
                ),
            ));
        }
        if self.reconnect_backoff_max() < self.poll_period() {
            problems.push(Invalid::new(
                "reconnect_backoff_max_ms",
                format!(
                    "{} ms is shorter than the poll period of {} ms; reconnects happen at most once a poll",
                    self.reconnect_backoff_max_ms, self.poll_period_ms
                ),
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    fn link(&self, address: String) -> link::Link {
        link::Link::new(
            address,
            self.deadline(),
            self.poll_period(),
            self.reconnect_backoff_max(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_the_file_overrides_them() {
        assert_eq!(ModbusSettings::default().validate(), Ok(()));
        let s: ModbusSettings = toml::from_str("poll_period_ms = 250\ndeadline_ms = 50").unwrap();
        assert_eq!(s.poll_period(), Duration::from_millis(250));
        assert_eq!(s.deadline(), Duration::from_millis(50));
        assert_eq!(s.retries(), 1);
        assert!(toml::from_str::<ModbusSettings>("poll = 1").is_err());
        assert!(toml::from_str::<ModbusSettings>("retries = 9").is_err());
    }

    #[test]
    fn requests_must_fit_in_a_poll_period() {
        let s: ModbusSettings =
            toml::from_str("poll_period_ms = 500\ndeadline_ms = 200\nretries = 1").unwrap();
        let problems = s.validate().unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "deadline_ms");
        assert!(
            problems[0].reason.contains("800 ms"),
            "{}",
            problems[0].reason
        );
        let s: ModbusSettings =
            toml::from_str("poll_period_ms = 5000\nreconnect_backoff_max_ms = 1000").unwrap();
        assert_eq!(s.validate().unwrap_err()[0].key, "reconnect_backoff_max_ms");
    }
}
