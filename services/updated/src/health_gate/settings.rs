//! What the health gate checks and how long it waits: the `[health_gate]` table of updated's
//! settings (the integrator nests [`HealthGateSettings`] under that key; [`validate`] names its
//! keys so).
//!
//! [`validate`]: HealthGateSettings::validate

use std::path::PathBuf;

use appliance::audit_log::seal::valid_service_name;
use appliance::config::{DurationSecs, Invalid};
use serde::{Deserialize, Serialize};

/// The key under which updated's settings hold these, for [`Invalid`] keys.
const KEY: &str = "health_gate";

/// The health gate's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthGateSettings {
    /// The BunkerOS service units that must be active (or skipped by their condition, i.e. not
    /// configured on this appliance): `.service` units only, whose `Result` says why one failed.
    pub units: Vec<String>,
    /// How long the gate waits for every check to pass after boot (1 s to 1 h; 300 s).
    pub timeout: DurationSecs<1, 3600>,
    /// systemd's `systemd-bless-boot`, which renames the booted UKI's boot-counting entry.
    pub bless_boot: PathBuf,
    /// `systemctl`, which asks systemd for an orderly reboot after a failed gate.
    pub systemctl: PathBuf,
    /// The service name trustd signs the gate's statement under (`[a-z0-9-]{1,32}`): updated's
    /// own user name, or any name when updated runs as root.
    pub sign_as: String,
}

impl Default for HealthGateSettings {
    fn default() -> Self {
        Self {
            units: ["trustd", "hubd", "minerd", "sited"]
                .map(|daemon| format!("{daemon}.service"))
                .to_vec(),
            timeout: DurationSecs::from_const(300),
            bless_boot: PathBuf::from("/usr/lib/systemd/systemd-bless-boot"),
            systemctl: PathBuf::from("/usr/bin/systemctl"),
            sign_as: "updated".to_owned(),
        }
    }
}

impl HealthGateSettings {
    /// Every problem at once: unit names that are not service units, duplicates, relative
    /// command paths, a service name trustd would refuse.
    pub fn validate(&self) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        for (index, unit) in self.units.iter().enumerate() {
            if let Some(reason) = unit_name_problem(unit) {
                problems.push(Invalid::new(format!("{KEY}.units[{index}]"), reason));
            } else if self.units[..index].contains(unit) {
                problems.push(Invalid::new(
                    format!("{KEY}.units[{index}]"),
                    format!("names {unit} a second time"),
                ));
            }
        }
        for (key, path) in [
            ("bless_boot", &self.bless_boot),
            ("systemctl", &self.systemctl),
        ] {
            if !path.is_absolute() {
                problems.push(Invalid::new(
                    format!("{KEY}.{key}"),
                    format!("must be an absolute path, not {}", path.display()),
                ));
            }
        }
        if !valid_service_name(&self.sign_as) {
            problems.push(Invalid::new(
                format!("{KEY}.sign_as"),
                "must be 1 to 32 characters of a-z, 0-9 and - (trustd's service names)",
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// Why `unit` cannot be checked, if it cannot: only a `.service` unit has the `Result` that
/// says why it failed, and the name must be one systemd could have.
fn unit_name_problem(unit: &str) -> Option<String> {
    let Some(stem) = unit.strip_suffix(".service") else {
        return Some(format!("{unit:?} is not a .service unit"));
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c);
    if stem.is_empty() || unit.len() > 255 || !stem.chars().all(allowed) {
        return Some(format!("{unit:?} is not a systemd unit name"));
    }
    None
}

/// The check's name for a unit: `unit:trustd` for `trustd.service`.
pub fn unit_check_name(unit: &str) -> String {
    format!("unit:{}", unit.strip_suffix(".service").unwrap_or(unit))
}
