//! The server's own hwmon sensors: where sysfs lists them, what the bus is called, how often to
//! read them and how long one read may take.

use std::path::PathBuf;
use std::time::Duration;

use appliance::config::Invalid;
use serde::Deserialize;

use crate::sensor::SensorId;

/// The longest bus name: `<bus>.<chip>.<label>` must stay within a sensor name's 64 characters.
pub const MAX_BUS_LEN: usize = 16;

fn default_root() -> PathBuf {
    PathBuf::from("/sys/class/hwmon")
}

fn default_poll_ms() -> u64 {
    // Server temperatures move over tens of seconds; reading sysfs more often only costs I2C
    // and SMBus traffic on boards whose sensors sit behind a slow controller.
    5000
}

fn default_deadline_ms() -> u64 {
    1000
}

/// Where and how often the hwmon driver reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HwmonSettings {
    /// The sensor bus's name (the profile's `[[sensor_bus]]` name); sensors are named
    /// `<bus>.<chip>.<label>`.
    pub bus: String,
    /// The sysfs class directory listing `hwmonN` entries.
    #[serde(default = "default_root")]
    pub root: PathBuf,
    /// How often to read every input.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Bound on one poll (discovery included); at most `poll_ms`, so a hung sysfs read is
    /// reported lost within two poll periods of the last good sample.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
}

impl HwmonSettings {
    /// Settings with the default root, period and deadline for a bus.
    pub fn for_bus(bus: &str) -> HwmonSettings {
        HwmonSettings {
            bus: bus.to_owned(),
            root: default_root(),
            poll_ms: default_poll_ms(),
            deadline_ms: default_deadline_ms(),
        }
    }

    pub fn poll_period(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    /// `prefix` is where the table sits in the file, e.g. `hwmon`.
    pub fn validate(&self, prefix: &str) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        let mut complain = |key: &str, reason: String| {
            problems.push(Invalid::new(format!("{prefix}.{key}"), reason));
        };
        if SensorId::new(self.bus.as_str()).is_err()
            || self.bus.contains('.')
            || self.bus.len() > MAX_BUS_LEN
        {
            complain(
                "bus",
                format!(
                    "`{}` must be 1 to {MAX_BUS_LEN} of a-z 0-9 _ -, starting with a letter or digit",
                    self.bus
                ),
            );
        }
        if !self.root.is_absolute() {
            complain(
                "root",
                format!("`{}` must be an absolute path", self.root.display()),
            );
        }
        if !(200..=3_600_000).contains(&self.poll_ms) {
            complain("poll_ms", "must be between 200 ms and 3,600,000 ms".into());
        }
        if self.deadline_ms < 50 || self.deadline_ms > self.poll_ms {
            complain(
                "deadline_ms",
                "must be at least 50 ms and at most `poll_ms`, so a hung read is lost within two poll periods".into(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml_text: &str) -> HwmonSettings {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn defaults_read_sysfs_every_five_seconds() {
        let s = settings("bus = \"server\"");
        assert_eq!(s, HwmonSettings::for_bus("server"));
        assert_eq!(s.root, PathBuf::from("/sys/class/hwmon"));
        assert_eq!(s.poll_period(), Duration::from_secs(5));
        assert_eq!(s.deadline(), Duration::from_secs(1));
        assert!(s.validate("hwmon").is_ok());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<HwmonSettings>("bus = \"s\"\npoll = 3").is_err());
    }

    #[test]
    fn nonsense_is_named_by_key() {
        let s = settings(
            "bus = \"Server.Room\"\nroot = \"sys/class/hwmon\"\npoll_ms = 100\ndeadline_ms = 20",
        );
        let keys: Vec<String> = s
            .validate("hwmon")
            .unwrap_err()
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(
            keys,
            [
                "hwmon.bus",
                "hwmon.root",
                "hwmon.poll_ms",
                "hwmon.deadline_ms"
            ]
        );
        let long = HwmonSettings::for_bus(&"b".repeat(MAX_BUS_LEN + 1));
        assert_eq!(long.validate("hwmon").unwrap_err()[0].key, "hwmon.bus");
        let slow = HwmonSettings {
            deadline_ms: 6000,
            ..HwmonSettings::for_bus("server")
        };
        assert_eq!(
            slow.validate("hwmon").unwrap_err()[0].key,
            "hwmon.deadline_ms"
        );
    }
}
