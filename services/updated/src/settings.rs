//! updated's configuration: `updated.toml` (the image's defaults, then the site's file).
//!
//! ```toml
//! [release]
//! trusted_root = "/usr/share/bunkeros/update/root.json"  # the TUF root this image trusts
//! source = "usb"                # where `bunkerctl update check|install` look without a source
//! mirror_trust_anchors = []     # PEM CA files an https:// mirror must chain to (none: no mirror)
//! mirror_connect_timeout = 10   # seconds for a mirror's TCP connection, and for its TLS handshake
//! mirror_idle_timeout = 30      # seconds a mirror may stay silent before the attempt fails
//! mirror_tries = 4              # attempts per file (a download resumes where it stopped)
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
//! hub = "zurich-1"              # this appliance's id in rollout plans
//! exchange = "/var/lib/updated/rollout"  # a directory: this hub coordinates rollouts (or the
//!                               # hubs of one site share it); none and no coordinator: no rollouts
//!
//! [rollout.serve]               # the coordinator serves its exchange to the other hubs, which
//! listen = "127.0.0.1:9106"     # reach it through hubd ([[service]] name = "rollout" publish = …)
//! name = "rollout.geneva.bunker.example"  # the DNS name of its certificate (trustd, `service`)
//! hub_roots = "/var/lib/bunkeros/config/updated/hub-roots"  # <hub id>.pem: each hub's site root, pinned
//!
//! [rollout.coordinator]         # or: this hub follows the rollouts of a coordinator elsewhere
//! hub = "geneva-1"
//! address = "127.0.0.1:17106"   # hubd's listener for the coordinator's "rollout" service
//! name = "rollout.geneva.bunker.example"
//! root = "/var/lib/bunkeros/config/updated/hub-roots/geneva-1.pem"  # the coordinator's site root
//!
//! [metrics]
//! listen = "127.0.0.1:9105"
//! ```
//!
//! Every problem is refused before anything starts, as `FILE:LINE:COLUMN: sentence`, and
//! updated exits with status 78.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use appliance::config::{
    Bounded, ConfigError, ConfigPaths, DurationSecs, Invalid, Port, ServiceConfig,
};
use appliance::metrics::MetricsSection;
use serde::Deserialize;

use crate::health_gate::HealthGateSettings;
use crate::mirror::MirrorOptions;
use crate::rollout::plan::is_name;

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
    /// Seconds to wait for a mirror's TCP connection, and again for its TLS handshake.
    pub mirror_connect_timeout: DurationSecs<1, 300>,
    /// Seconds a mirror may stay silent (before its headers, between pieces of a file) before
    /// the attempt counts as failed; a download resumes where it stopped.
    pub mirror_idle_timeout: DurationSecs<1, 3600>,
    /// Attempts per file before the fetch fails.
    pub mirror_tries: Bounded<1, 20>,
}

impl ReleaseSection {
    /// The HTTPS mirror's options as configured.
    pub fn mirror_options(&self) -> MirrorOptions {
        MirrorOptions {
            connect_timeout: self.mirror_connect_timeout.as_duration(),
            idle_timeout: self.mirror_idle_timeout.as_duration(),
            tries: u32::try_from(self.mirror_tries.get()).unwrap_or(u32::MAX),
            ..MirrorOptions::new(self.mirror_trust_anchors.clone())
        }
    }
}

impl Default for ReleaseSection {
    fn default() -> Self {
        ReleaseSection {
            trusted_root: PathBuf::from("/usr/share/bunkeros/update/root.json"),
            source: "usb".to_owned(),
            mirror_trust_anchors: Vec::new(),
            mirror_connect_timeout: DurationSecs::from_const(10),
            mirror_idle_timeout: DurationSecs::from_const(30),
            mirror_tries: Bounded::from_const(4),
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

/// `[rollout]`: rollouts across hubs (see `rollout`). Without `exchange` or `coordinator`, none.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutSection {
    /// The directory plans, instructions and reports travel through: this hub coordinates (or
    /// the hubs of a site share it).
    pub exchange: Option<PathBuf>,
    /// This appliance's hub id, as rollout plans name it.
    pub hub: Option<String>,
    /// `[rollout.serve]`: serve the exchange to other hubs over hubd.
    pub serve: Option<ServeSection>,
    /// `[rollout.coordinator]`: follow a coordinator at another hub over hubd.
    pub coordinator: Option<CoordinatorSection>,
}

/// `[rollout.serve]`: the coordinator's exchange listener (published through hubd).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    pub listen: SocketAddr,
    /// The DNS name (of this site) the listener's certificate carries.
    pub name: String,
    /// A directory of `<hub id>.pem`: the root each hub's certificate must chain to.
    pub hub_roots: PathBuf,
}

/// `[rollout.coordinator]`: where this hub reaches the coordinator's exchange.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorSection {
    /// The coordinating hub's id.
    pub hub: String,
    /// hubd's local listener for the coordinator's `rollout` service.
    pub address: SocketAddr,
    /// The DNS name the coordinator's certificate must carry.
    pub name: String,
    /// The coordinator's site root (PEM), the only root its certificate may chain to.
    pub root: PathBuf,
}

fn is_dns_name(name: &str) -> bool {
    rustls_pki_types::DnsName::try_from(name).is_ok() && name.contains('.')
}

impl RolloutSection {
    fn check(&self, problems: &mut Vec<Invalid>) {
        const HUB_RULE: &str = "must be 1 to 63 of a-z 0-9 - _ . starting with a letter or digit (a hub id as rollout plans write it)";
        if let Some(exchange) = &self.exchange
            && !exchange.is_absolute()
        {
            problems.push(Invalid::new("rollout.exchange", "must be an absolute path"));
        }
        let takes_part = self.exchange.is_some() || self.coordinator.is_some();
        match &self.hub {
            None if takes_part => problems.push(Invalid::new(
                "rollout.hub",
                "must name this hub (as rollout plans do) when rollout.exchange or [rollout.coordinator] is set",
            )),
            Some(hub) if !is_name(hub) => problems.push(Invalid::new("rollout.hub", HUB_RULE)),
            _ => {}
        }
        if self.exchange.is_some() && self.coordinator.is_some() {
            problems.push(Invalid::new(
                "rollout.coordinator",
                "a hub either coordinates through its own exchange directory or follows a coordinator, not both",
            ));
        }
        if let Some(serve) = &self.serve {
            if self.exchange.is_none() {
                problems.push(Invalid::new(
                    "rollout.serve",
                    "serves the exchange directory: set rollout.exchange too",
                ));
            }
            if !is_dns_name(&serve.name) {
                problems.push(Invalid::new(
                    "rollout.serve.name",
                    "must be a DNS name of this site, e.g. rollout.geneva.bunker.example",
                ));
            }
            if !serve.hub_roots.is_absolute() {
                problems.push(Invalid::new(
                    "rollout.serve.hub_roots",
                    "must be an absolute path",
                ));
            }
        }
        if let Some(coordinator) = &self.coordinator {
            if !is_name(&coordinator.hub) {
                problems.push(Invalid::new("rollout.coordinator.hub", HUB_RULE));
            } else if self.hub.as_deref() == Some(coordinator.hub.as_str()) {
                problems.push(Invalid::new(
                    "rollout.coordinator.hub",
                    "is this hub; a coordinating hub sets rollout.exchange instead",
                ));
            }
            if !is_dns_name(&coordinator.name) {
                problems.push(Invalid::new(
                    "rollout.coordinator.name",
                    "must be the DNS name of the coordinator's certificate ([rollout.serve] name there)",
                ));
            }
            if !coordinator.root.is_absolute() {
                problems.push(Invalid::new(
                    "rollout.coordinator.root",
                    "must be an absolute path",
                ));
            }
        }
    }
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
        self.rollout.check(&mut problems);
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
            "release: trusted root {}, default source {}, mirror waits {} s to connect and {} s of silence, {} tries",
            c.release.trusted_root.display(),
            c.release.source,
            c.release.mirror_connect_timeout.secs(),
            c.release.mirror_idle_timeout.secs(),
            c.release.mirror_tries.get()
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
        let _ = writeln!(out, "rollout: {}", rollout_summary(&c.rollout));
        let _ = writeln!(out, "metrics: {}", c.metrics.listen);
        out
    }
}

fn rollout_summary(rollout: &RolloutSection) -> String {
    let hub = rollout.hub.as_deref().unwrap_or("");
    match (&rollout.exchange, &rollout.coordinator, &rollout.serve) {
        (Some(exchange), _, None) => format!("hub {hub}, exchange {}", exchange.display()),
        (Some(exchange), _, Some(serve)) => format!(
            "hub {hub}, exchange {}, served to the hubs of {} on {} as {}",
            exchange.display(),
            serve.hub_roots.display(),
            serve.listen,
            serve.name
        ),
        (None, Some(coordinator), _) => format!(
            "hub {hub}, following coordinator {} at {} ({})",
            coordinator.hub, coordinator.address, coordinator.name
        ),
        (None, None, _) => "none (no [rollout] exchange or coordinator)".to_owned(),
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
        assert!(parse("[release]\nmirror_tries = 0\n").is_err());
        assert!(parse("[release]\nmirror_idle_timeout = 0\n").is_err());
    }

    #[test]
    fn the_mirror_waits_and_tries_are_the_configured_ones() {
        let defaults = parse("").unwrap().release.mirror_options();
        assert_eq!(defaults.connect_timeout.as_secs(), 10);
        assert_eq!(defaults.idle_timeout.as_secs(), 30);
        assert_eq!(defaults.tries, 4);
        let options = parse(
            "[release]\nmirror_connect_timeout = 3\nmirror_idle_timeout = 120\nmirror_tries = 9\n",
        )
        .unwrap()
        .release
        .mirror_options();
        assert_eq!(
            (
                options.connect_timeout.as_secs(),
                options.idle_timeout.as_secs(),
                options.tries
            ),
            (3, 120, 9)
        );
    }

    #[test]
    fn a_coordinator_serves_and_a_hub_follows_and_mixed_up_sections_are_refused() {
        let serving = "[rollout]\nhub = \"geneva-1\"\nexchange = \"/var/lib/updated/rollout\"\n\
                       [rollout.serve]\nlisten = \"127.0.0.1:9106\"\nname = \"rollout.geneva.example\"\n\
                       hub_roots = \"/var/lib/bunkeros/config/updated/hub-roots\"\n";
        let config = parse(serving).unwrap();
        assert_eq!(
            rollout_summary(&config.rollout),
            "hub geneva-1, exchange /var/lib/updated/rollout, served to the hubs of \
             /var/lib/bunkeros/config/updated/hub-roots on 127.0.0.1:9106 as rollout.geneva.example"
        );
        let following = "[rollout]\nhub = \"lisbon-1\"\n[rollout.coordinator]\nhub = \"geneva-1\"\n\
                         address = \"127.0.0.1:17106\"\nname = \"rollout.geneva.example\"\n\
                         root = \"/var/lib/bunkeros/config/updated/geneva-root.pem\"\n";
        let config = parse(following).unwrap();
        assert_eq!(
            rollout_summary(&config.rollout),
            "hub lisbon-1, following coordinator geneva-1 at 127.0.0.1:17106 (rollout.geneva.example)"
        );

        let keys = |text: &str| -> Vec<String> {
            parse(text)
                .unwrap_err()
                .into_iter()
                .map(|problem| problem.key)
                .collect()
        };
        // following without naming this hub; serving without a directory; both roles at once
        assert_eq!(
            keys(&following.replace("hub = \"lisbon-1\"\n", "")),
            ["rollout.hub"]
        );
        assert_eq!(
            keys(&serving.replace("exchange = \"/var/lib/updated/rollout\"\n", "")),
            ["rollout.serve"]
        );
        let both = format!(
            "{serving}[rollout.coordinator]\nhub = \"bern-1\"\naddress = \"127.0.0.1:1\"\nname = \"a.b\"\nroot = \"/r.pem\"\n"
        );
        assert_eq!(keys(&both), ["rollout.coordinator"]);
        // a coordinator that is this hub, names that are not DNS names, relative paths
        assert_eq!(
            keys(&following.replace("hub = \"geneva-1\"", "hub = \"lisbon-1\"")),
            ["rollout.coordinator.hub"]
        );
        assert_eq!(
            keys(&following.replace("rollout.geneva.example", "geneva")),
            ["rollout.coordinator.name"]
        );
        assert_eq!(
            keys(&serving.replace("/var/lib/bunkeros/config/updated/hub-roots", "hub-roots")),
            ["rollout.serve.hub_roots"]
        );
        assert!(parse(&following.replace("address", "adress")).is_err());
    }
}
