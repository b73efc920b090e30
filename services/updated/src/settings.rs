//! updated's configuration: `updated.toml` (the image's defaults, then the site's file).
//!
//! ```toml
//! [release]
//! trusted_root = "/usr/share/bunkeros/update/root.json"  # the TUF root this image trusts
//! source = "usb"                # where `bunkerctl update check|install` look without a source
//!
//! [install]
//! boot_tries = 3                # boots a new slot gets before systemd-boot falls back
//! esp = "/efi"                  # where the EFI system partition is mounted
//!
//! [health_gate]
//! timeout = 300                 # seconds a new slot has to become healthy
//! units = ["trustd.service", "hubd.service", "minerd.service", "sited.service"]
//!
//! [rollout]
//! exchange = "/srv/bunkeros/rollout"  # where plans, instructions and reports travel; none: no rollouts
//! hub = "zurich-1"              # this appliance's id in rollout plans
//!
//! [metrics]
//! listen = "127.0.0.1:9105"
//! ```
//!
//! Every problem is refused before anything starts, as `FILE:LINE:COLUMN: sentence`, and
//! updated exits with status 78.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use appliance::config::{ConfigError, ConfigPaths, Invalid, Port, ServiceConfig};
use appliance::metrics::MetricsSection;
use serde::Deserialize;

use crate::health_gate::HealthGateSettings;

/// The service name: the config file stem, the log identifier and the state directory.
pub const SERVICE: &str = "updated";

/// Default port of the loopback metrics endpoint (DESIGN: updated 9105).
pub const DEFAULT_METRICS_PORT: Port = Port::from_const(9105);

/// `[release]`: which releases this appliance accepts and where it looks for them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReleaseSection {
    /// The TUF root.json the image ships: every release must verify against it.
    pub trusted_root: PathBuf,
    /// The default source: `usb`, an absolute directory, or an `https://` mirror.
    pub source: String,
    /// PEM files of the CAs an HTTPS mirror's certificate must chain to (the site CA's root,
    /// `bunkerctl ca root`; the system's roots only if their bundle is listed). Empty: no mirror
    /// is trusted, so only the medium and directories work.
    pub mirror_trust_anchors: Vec<PathBuf>,
}

impl Default for ReleaseSection {
    fn default() -> Self {
        ReleaseSection {
            trusted_root: PathBuf::from("/usr/share/bunkeros/update/root.json"),
            source: "usb".to_owned(),
            mirror_trust_anchors: Vec::new(),
        }
    }
}

/// `[install]`: how a release goes into the inactive slot.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstallSection {
    /// Boots a new slot gets (systemd-boot's counter) before it falls back: 1 to 9.
    pub boot_tries: u8,
    /// The mounted EFI system partition.
    pub esp: PathBuf,
    /// The disk holding the slots; empty: the disk of the partition labelled `root-a`.
    pub disk: Option<PathBuf>,
}

impl Default for InstallSection {
    fn default() -> Self {
        InstallSection {
            boot_tries: 3,
            esp: PathBuf::from("/efi"),
            disk: None,
        }
    }
}

/// `[rollout]`: rollouts across hubs (see `rollout`). Without `exchange`, none.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutSection {
    /// The directory plans, instructions and reports travel through (shared by the hubs of a
    /// site, or carried between them).
    pub exchange: Option<PathBuf>,
    /// This appliance's hub id, as rollout plans name it.
    pub hub: Option<String>,
}

/// Everything updated reads from `updated.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct UpdatedConfig {
    pub release: ReleaseSection,
    pub install: InstallSection,
    /// `[health_gate]`: what a new slot must show before it is blessed (see `health_gate`).
    pub health_gate: HealthGateSettings,
    /// `[rollout]`: the exchange directory and this hub's id.
    pub rollout: RolloutSection,
    pub metrics: MetricsSection<{ DEFAULT_METRICS_PORT.get() }>,
}

impl ServiceConfig for UpdatedConfig {
    fn validate(&self) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        if !(1..=9).contains(&self.install.boot_tries) {
            problems.push(Invalid::new(
                "install.boot_tries",
                "must be 1 to 9: a new slot needs at least one boot, and more than a few only delays the fallback",
            ));
        }
        if !self.release.trusted_root.is_absolute() {
            problems.push(Invalid::new(
                "release.trusted_root",
                "must be an absolute path",
            ));
        }
        if !self.install.esp.is_absolute() {
            problems.push(Invalid::new("install.esp", "must be an absolute path"));
        }
        if self.install.disk.as_ref().is_some_and(|d| !d.is_absolute()) {
            problems.push(Invalid::new("install.disk", "must be an absolute path"));
        }
        match (&self.rollout.exchange, &self.rollout.hub) {
            (Some(exchange), _) if !exchange.is_absolute() => {
                problems.push(Invalid::new("rollout.exchange", "must be an absolute path"));
            }
            (Some(_), None) => problems.push(Invalid::new(
                "rollout.hub",
                "must name this hub (as rollout plans do) when rollout.exchange is set",
            )),
            _ => {}
        }
        if let Some(hub) = &self.rollout.hub
            && (hub.is_empty()
                || hub.len() > 63
                || !hub.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
                }))
        {
            problems.push(Invalid::new(
                "rollout.hub",
                "must be 1 to 63 of a-z 0-9 - _ . (a hub id as rollout plans write it)",
            ));
        }
        if let Err(gate) = self.health_gate.validate() {
            problems.extend(gate);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// The loaded configuration and where it came from.
#[derive(Debug, Clone)]
pub struct UpdatedSetup {
    pub config: UpdatedConfig,
    pub sources: String,
}

impl UpdatedSetup {
    /// What `--check-config` prints and the journal records at start.
    pub fn report(&self) -> String {
        let c = &self.config;
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.sources);
        let _ = writeln!(
            out,
            "release: trusted root {}, default source {}",
            c.release.trusted_root.display(),
            c.release.source
        );
        let _ = writeln!(
            out,
            "install: {} boot tries, ESP at {}, disk {}",
            c.install.boot_tries,
            c.install.esp.display(),
            c.install
                .disk
                .as_deref()
                .map_or("(the disk of root-a)".to_owned(), |d| d
                    .display()
                    .to_string())
        );
        let _ = writeln!(
            out,
            "health gate: {} s for {}",
            c.health_gate.timeout.secs(),
            c.health_gate.units.join(", ")
        );
        match (&c.rollout.exchange, &c.rollout.hub) {
            (Some(exchange), Some(hub)) => {
                let _ = writeln!(out, "rollout: hub {hub}, exchange {}", exchange.display());
            }
            _ => {
                let _ = writeln!(out, "rollout: none (no [rollout] exchange)");
            }
        }
        let _ = writeln!(out, "metrics: {}", c.metrics.listen);
        out
    }
}

/// Reads `updated.toml` (`--config` replaces the site layer).
pub fn load(explicit: Option<&Path>) -> Result<UpdatedSetup, ConfigError> {
    let loaded = ConfigPaths::for_service(SERVICE, explicit).load::<UpdatedConfig>()?;
    let sources = loaded.summary();
    Ok(UpdatedSetup {
        config: loaded.into_inner(),
        sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<UpdatedConfig, Vec<Invalid>> {
        let config: UpdatedConfig =
            toml::from_str(text).map_err(|e| vec![Invalid::new("toml", e.to_string())])?;
        config.validate().map(|()| config)
    }

    #[test]
    fn the_defaults_are_valid_and_name_the_image_root_and_port_9105() {
        let config = parse("").unwrap();
        assert_eq!(config.install.boot_tries, 3);
        assert_eq!(config.metrics.listen.to_string(), "127.0.0.1:9105");
        assert_eq!(config.health_gate.units.len(), 4);
        assert_eq!(config.health_gate.timeout.secs(), 300);
    }

    #[test]
    fn nonsense_is_refused_with_the_key_to_fix() {
        let problems =
            parse("[install]\nboot_tries = 0\nesp = \"efi\"\n[health_gate]\nunits = [\"sited\"]\n")
                .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["install.boot_tries", "install.esp", "health_gate.units[0]"]
        );
        assert!(parse("[install]\nboot_trys = 3\n").is_err());
        assert!(parse("[health_gate]\ntimeout = 7200\n").is_err());
        let problems = parse("[rollout]\nexchange = \"/srv/rollout\"\n").unwrap_err();
        assert_eq!(problems[0].key, "rollout.hub");
        assert!(parse("[rollout]\nexchange = \"/srv/rollout\"\nhub = \"Zurich 1\"\n").is_err());
        assert!(parse("[rollout]\nexchange = \"/srv/rollout\"\nhub = \"zurich-1\"\n").is_ok());
        assert!(parse("[metrics]\nlisten = \"0.0.0.0:9105\"\n").is_err());
    }
}
