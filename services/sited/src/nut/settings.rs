//! One UPS read through upsd: where, which UPS, how often, and the optional login.

use std::time::Duration;

use appliance::config::Invalid;
use serde::Deserialize;

use super::client::Credentials;
use crate::sensor::SensorId;

/// upsd's port (IANA "nut").
pub const DEFAULT_PORT: u16 = 3493;

/// The longest sensor suffix the driver appends to `<bus>.<ups>`; every sensor name must fit.
const LONGEST_SUFFIX: &str = ".replace_battery";

fn default_poll_ms() -> u64 {
    // usbhid-ups' default pollinterval: the driver's data is no fresher than this anyway.
    2000
}

fn default_deadline_ms() -> u64 {
    1000
}

/// A UPS behind a NUT server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NutSettings {
    /// The sensor bus's name (the profile's `[[sensor_bus]]` name); sensors are named
    /// `<bus>.<ups>.<sensor>`.
    pub bus: String,
    /// upsd's `HOST:PORT`, e.g. `"127.0.0.1:3493"`.
    pub address: String,
    /// The UPS's name in upsd (`ups.conf` section), e.g. `"rack-ups"`.
    pub ups: String,
    /// How often to read the UPS.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Bound on one read, connecting included; at most `poll_ms` so a UPS that stops answering
    /// is reported lost within two poll periods of its last good sample.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Optional `upsd.users` login; reads work without one.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

impl NutSettings {
    /// Settings with the default period and deadline for a profile's `nut` bus, whose address
    /// is `"ups@HOST:PORT"` (or `"ups@HOST"` for port 3493).
    pub fn for_bus(bus: &str, address: &str) -> Option<NutSettings> {
        let (ups, host) = address.split_once('@')?;
        let address = if host.contains(':') && !host.ends_with(']') {
            host.to_owned()
        } else {
            format!("{host}:{DEFAULT_PORT}")
        };
        Some(NutSettings {
            bus: bus.to_owned(),
            address,
            ups: ups.to_owned(),
            poll_ms: default_poll_ms(),
            deadline_ms: default_deadline_ms(),
            username: None,
            password: None,
        })
    }

    pub fn poll_period(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    pub fn credentials(&self) -> Option<Credentials> {
        match (&self.username, &self.password) {
            (Some(username), Some(password)) => Some(Credentials {
                username: username.clone(),
                password: password.clone(),
            }),
            _ => None,
        }
    }

    /// `<bus>.<ups>`: what every sensor of this UPS is named after (lowercased, as sensor names
    /// are).
    pub fn sensor_prefix(&self) -> String {
        format!("{}.{}", self.bus, self.ups.to_ascii_lowercase())
    }

    /// `prefix` is where the table sits in the file, e.g. `nut[0]`.
    pub fn validate(&self, prefix: &str) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        let mut complain = |key: &str, reason: String| {
            problems.push(Invalid::new(format!("{prefix}.{key}"), reason));
        };
        if !is_nut_name(&self.ups) {
            complain(
                "ups",
                format!(
                    "`{}` must be 1 to 47 characters of A-Z a-z 0-9 `_` `-` `.`, as upsd names a UPS",
                    self.ups
                ),
            );
        } else if SensorId::new(format!("{}{LONGEST_SUFFIX}", self.sensor_prefix())).is_err() {
            complain(
                "bus",
                format!(
                    "`{}` with UPS `{}` does not make sensor names like `{}{LONGEST_SUFFIX}` (a-z 0-9 . _ -, at most 64 characters)",
                    self.bus,
                    self.ups,
                    self.sensor_prefix()
                ),
            );
        }
        if !is_host_port(&self.address) {
            complain(
                "address",
                format!(
                    "`{}` must be HOST:PORT with a port from 1 to 65535",
                    self.address
                ),
            );
        }
        if !(200..=3_600_000).contains(&self.poll_ms) {
            complain("poll_ms", "must be between 200 ms and 3,600,000 ms".into());
        }
        if self.deadline_ms < 50 || self.deadline_ms > self.poll_ms {
            complain(
                "deadline_ms",
                "must be at least 50 ms and at most `poll_ms`, so a silent UPS is lost within two poll periods".into(),
            );
        }
        match (&self.username, &self.password) {
            (Some(_), None) | (None, Some(_)) => complain(
                "password",
                "`username` and `password` go together: set both or neither".into(),
            ),
            (Some(username), Some(password)) => {
                for (key, value) in [("username", username), ("password", password)] {
                    if value.is_empty() || value.chars().any(char::is_control) {
                        complain(
                            key,
                            "must be non-empty and hold no control characters".into(),
                        );
                    }
                }
            }
            (None, None) => {}
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// A UPS name upsd accepts in `ups.conf` (letters, digits and a few marks; no spaces).
fn is_nut_name(name: &str) -> bool {
    (1..=47).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

fn is_host_port(address: &str) -> bool {
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && !host.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(port.parse::<u16>(), Ok(p) if p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml_text: &str) -> NutSettings {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn defaults_follow_usbhid_ups() {
        let s = settings("bus = \"power\"\naddress = \"127.0.0.1:3493\"\nups = \"rack\"");
        assert_eq!(s.poll_period(), Duration::from_secs(2));
        assert_eq!(s.deadline(), Duration::from_secs(1));
        assert_eq!(s.credentials(), None);
        assert_eq!(s.sensor_prefix(), "power.rack");
        assert!(s.validate("nut").is_ok());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = "bus = \"p\"\naddress = \"127.0.0.1:3493\"\nups = \"r\"\npoll = 3";
        assert!(toml::from_str::<NutSettings>(text).is_err());
    }

    #[test]
    fn nonsense_is_named_by_key() {
        let s = settings(
            "bus = \"power\"\naddress = \"nowhere\"\nups = \"bad ups\"\npoll_ms = 1000\n\
             deadline_ms = 5000\nusername = \"mon\"",
        );
        let keys: Vec<String> = s
            .validate("nut")
            .unwrap_err()
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(
            keys,
            ["nut.ups", "nut.address", "nut.deadline_ms", "nut.password"]
        );
    }

    #[test]
    fn upper_case_ups_names_make_lower_case_sensors() {
        let s = settings("bus = \"power\"\naddress = \"h:1\"\nups = \"APC_1\"");
        assert!(s.validate("nut").is_ok());
        assert_eq!(s.sensor_prefix(), "power.apc_1");
        let long = NutSettings {
            bus: "b".repeat(50),
            ..s
        };
        assert_eq!(long.validate("nut").unwrap_err()[0].key, "nut.bus");
    }

    #[test]
    fn credentials_with_newlines_are_refused() {
        let s = settings(
            "bus = \"p\"\naddress = \"h:1\"\nups = \"r\"\nusername = \"a\"\npassword = \"x\\nLOGOUT\"",
        );
        assert_eq!(s.validate("nut").unwrap_err()[0].key, "nut.password");
    }

    #[test]
    fn profile_addresses_name_the_ups() {
        let s = NutSettings::for_bus("power", "rack@10.0.0.5:3494").unwrap();
        assert_eq!(
            (s.ups.as_str(), s.address.as_str()),
            ("rack", "10.0.0.5:3494")
        );
        let s = NutSettings::for_bus("power", "rack@upshost").unwrap();
        assert_eq!(s.address, "upshost:3493");
        assert!(NutSettings::for_bus("power", "10.0.0.5:3493").is_none());
    }
}
