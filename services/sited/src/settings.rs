//! sited's configuration: `sited.toml` (the image's defaults, then the site's file), checked
//! on its own and against the hardware profile (`/usr/share/bunkeros/profile.toml`), which
//! declares the sensor buses, their register maps and the relays.
//!
//! ```toml
//! [site]
//! name = "bunker-zurich-1"         # labels notifications and the event log
//!
//! [modbus]                          # how Modbus devices are polled (see sited::modbus)
//! poll_period_ms = 250
//!
//! [snmp.pdu-a]                      # the agent behind the profile's `snmp` bus `pdu-a`
//! community = "public"
//! [[snmp.pdu-a.oid]]
//! sensor = "pdu-a.load_a"
//! oid = "1.3.6.1.4.1.318.1.1.12.2.3.1.1.2.1"
//! scale = 0.1
//!
//! [[rule]]                          # see sited::rules::config
//! [[output]]                        # see sited::outputs
//! [audit]                           # when trustd seals the event log
//! [metrics]                         # listen = "127.0.0.1:9104"
//! ```
//!
//! Every problem is refused before anything starts, as `FILE:LINE:COLUMN: sentence`, and sited
//! exits with status 78.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use appliance::audit_log::SealPolicy;
use appliance::config::{ConfigError, ConfigPaths, Invalid, Port, ServiceConfig};
use appliance::metrics::MetricsSection;
use appliance::profile::{Profile, SensorBusKind};
use serde::Deserialize;

use crate::budget::{PowerConfig, ThermalConfig};
use crate::catalogue::{DERIVED_BUS, SensorCatalogue};
use crate::modbus::ModbusSettings;
use crate::outputs::{self, OutputSpec};
use crate::rules::{RuleSet, RuleSpec, compile};
use crate::site_model::{DoorSpec, MaintenanceSpec, SiteModelConfig, ZoneSpec};
use crate::snmp::SnmpSettings;
use crate::uplink::UplinkSettings;

/// The service name: the config file stem, the log identifier, the state directory, and the
/// name trustd signs the event log's seals for.
pub const SERVICE: &str = "sited";

/// Default port of the loopback metrics endpoint (DESIGN: sited 9104).
pub const DEFAULT_METRICS_PORT: Port = Port::from_const(9104);

/// `[site]`: who this site is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteSection {
    /// The site's name in notifications: 1 to 64 of `a-z 0-9 . _ -`. Default: `bunker`.
    pub name: String,
}

impl Default for SiteSection {
    fn default() -> Self {
        SiteSection {
            name: "bunker".into(),
        }
    }
}

/// Everything sited reads from `sited.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SitedConfig {
    pub site: SiteSection,
    /// `[modbus]`: polling of the profile's `modbus-tcp` buses.
    pub modbus: ModbusSettings,
    /// `[snmp.<bus>]`: the OIDs of each of the profile's `snmp` buses.
    pub snmp: BTreeMap<String, SnmpSettings>,
    /// `[[zone]]`: rooms and shielded enclosures, their probes and limits.
    pub zone: Vec<ZoneSpec>,
    /// `[[door]]`: shielded doors, their contacts, seals and cycle limits.
    pub door: Vec<DoorSpec>,
    /// `[[maintenance]]`: hardness-maintenance tasks and their due dates.
    pub maintenance: Vec<MaintenanceSpec>,
    /// `[power]`: the site's supplies and what the loads may draw (required).
    pub power: Option<PowerConfig>,
    /// `[thermal]`: the headroom published when no zone has a limit.
    pub thermal: ThermalConfig,
    /// `[[rule]]`: what the sensors' values mean, beyond what the site model implies.
    pub rule: Vec<RuleSpec>,
    /// `[[output]]`: relays driven by alarms and the site state.
    pub output: Vec<OutputSpec>,
    /// `[uplink]`: the control centre's Alertmanager notifications go to; none: local only.
    pub uplink: Option<UplinkSettings>,
    /// `[audit]`: when the event log is sealed through trustd.
    pub audit: SealPolicy,
    /// `[metrics]`: the loopback Prometheus endpoint.
    pub metrics: MetricsSection<{ DEFAULT_METRICS_PORT.get() }>,
}

impl ServiceConfig for SitedConfig {
    /// What can be checked without the hardware profile.
    fn validate(&self) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        if crate::sensor::SensorId::new(self.site.name.clone()).is_err() {
            problems.push(Invalid::new(
                "site.name",
                format!("`{}` must be 1 to 64 of a-z 0-9 . _ -", self.site.name),
            ));
        }
        if let Err(more) = self.modbus.validate() {
            problems.extend(
                more.into_iter()
                    .map(|p| Invalid::new(format!("modbus.{}", p.key), p.reason)),
            );
        }
        if let Err(invalid) = self.audit.validate("audit") {
            problems.push(invalid);
        }
        if let Err(more) = self.thermal.validate() {
            problems.extend(more);
        }
        if let Some(uplink) = &self.uplink
            && let Err(more) = uplink.validate()
        {
            problems.extend(more);
        }
        if self.power.is_none() {
            problems.push(Invalid::new(
                "power",
                "is missing: sited publishes the site's power budget, so say what the supplies \
                 give ([power] grid_w, and the feed and generator contacts)",
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

impl SitedConfig {
    /// What needs the profile: SNMP agents for its `snmp` buses (their addresses come from
    /// it), rules over sensors that exist, outputs on relays that exist.
    pub fn validate_against(&self, profile: &Profile) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        for (bus, agent) in &self.snmp {
            let key = format!("snmp.{bus}");
            match profile.sensor_bus(bus) {
                Some(found) if found.kind == SensorBusKind::Snmp => {}
                _ => problems.push(Invalid::new(
                    key.clone(),
                    format!("the hardware profile has no `snmp` [[sensor_bus]] named `{bus}`"),
                )),
            }
            if !agent.address.is_empty() {
                problems.push(Invalid::new(
                    format!("{key}.address"),
                    "comes from the hardware profile's [[sensor_bus]]; leave it out here",
                ));
            }
            let mut filled = agent.clone();
            filled.address = "profile".into();
            if let Err(more) = filled.validate(&key) {
                problems.extend(more);
            }
        }
        for bus in &profile.sensor_buses {
            if bus.kind == SensorBusKind::Snmp && !self.snmp.contains_key(&bus.name) {
                problems.push(Invalid::new(
                    "snmp",
                    format!(
                        "the hardware profile's `snmp` bus `{}` needs a [snmp.{}] table with its community and OIDs",
                        bus.name, bus.name
                    ),
                ));
            }
        }
        let bus_sensors = SensorCatalogue::of_site(profile, &self.snmp);
        if let Err(more) = self
            .site_model()
            .validate(&|sensor| bus_sensors.knows(sensor))
        {
            problems.extend(more);
        }
        let catalogue = self.catalogue(profile);
        if let Some(power) = &self.power
            && let Err(more) = power.validate(&|sensor| catalogue.knows(sensor))
        {
            problems.extend(more);
        }
        if let Err(more) = self.rules(&catalogue) {
            problems.extend(more);
        }
        let relay_exists = |name: &str| {
            profile
                .sensor_buses
                .iter()
                .any(|b| b.relays.iter().any(|r| r.name == name))
        };
        problems.extend(outputs::validate(&self.output, &relay_exists));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The site model's part of the configuration.
    pub fn site_model(&self) -> SiteModelConfig {
        SiteModelConfig {
            zone: self.zone.clone(),
            door: self.door.clone(),
            maintenance: self.maintenance.clone(),
        }
    }

    /// Every sensor: the buses' and the site model's derived ones.
    pub fn catalogue(&self, profile: &Profile) -> SensorCatalogue {
        let mut catalogue = SensorCatalogue::of_site(profile, &self.snmp);
        for (sensor, unit) in self.site_model().derived_sensors() {
            catalogue.add(sensor.as_str(), DERIVED_BUS, Some(unit.to_owned()));
        }
        catalogue
    }

    /// The operator's rules and those the site model implies, compiled together.
    pub fn rules(&self, catalogue: &SensorCatalogue) -> Result<RuleSet, Vec<Invalid>> {
        let mut specs = self.rule.clone();
        specs.extend(self.site_model().implied_rules());
        compile(&specs, &|sensor| catalogue.knows(sensor))
    }

    /// The power section (checked present by `validate`).
    pub fn power(&self) -> &PowerConfig {
        self.power
            .as_ref()
            .expect("validate refuses a configuration without [power]")
    }

    /// The SNMP agents with their addresses from the profile.
    pub fn snmp_agents(&self, profile: &Profile) -> Vec<(String, SnmpSettings)> {
        self.snmp
            .iter()
            .filter_map(|(bus, agent)| {
                let address = profile.sensor_bus(bus)?.address.clone()?;
                let mut agent = agent.clone();
                agent.address = address;
                Some((bus.clone(), agent))
            })
            .collect()
    }
}

/// The checked configuration, the profile it was checked against, and what follows from both.
#[derive(Debug, Clone)]
pub struct SitedSetup {
    pub config: SitedConfig,
    pub profile: Profile,
    pub catalogue: SensorCatalogue,
    pub rules: RuleSet,
    /// The configuration files read, in layer order.
    pub files: Vec<PathBuf>,
}

/// Reads the profile (`profile`, or the installed one) and `sited.toml` (`explicit` replaces
/// the site layer) and checks them together.
pub fn load(explicit: Option<&Path>, profile: Option<&Path>) -> Result<SitedSetup, ConfigError> {
    let profile = match profile {
        Some(path) => Profile::load(path)?,
        None => Profile::load_installed()?,
    };
    let loaded = ConfigPaths::for_service(SERVICE, explicit)
        .load_checked(|config: &SitedConfig| config.validate_against(&profile))?;
    let files = loaded.files.clone();
    let config = loaded.into_inner();
    let catalogue = config.catalogue(&profile);
    let rules = config
        .rules(&catalogue)
        .expect("the rules were checked by validate_against");
    Ok(SitedSetup {
        config,
        profile,
        catalogue,
        rules,
        files,
    })
}

impl SitedSetup {
    /// What `sited --check-config` prints: the files read and what they set up.
    pub fn report(&self) -> String {
        let mut out = String::new();
        if self.files.is_empty() {
            out.push_str("config OK: no sited.toml found, using built-in defaults\n");
        } else {
            let files: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
            let _ = writeln!(out, "config OK: read {}", files.join(", "));
        }
        let _ = writeln!(out, "site: {}", self.config.site.name);
        for bus in &self.profile.sensor_buses {
            let relays = if bus.relays.is_empty() {
                String::new()
            } else {
                format!(", {} relay(s)", bus.relays.len())
            };
            let _ = writeln!(
                out,
                "  bus {} ({}) at {}{relays}",
                bus.name,
                bus.kind.as_str(),
                bus.address.as_deref().unwrap_or("/sys/class/hwmon"),
            );
        }
        let _ = writeln!(
            out,
            "{} sensor(s) known before the first poll; {} rule(s), {} of them implied by the site model; {} output(s); uplink: {}; event log sealed every {} records or {} s; metrics on {}",
            self.catalogue.len(),
            self.rules.rules().len(),
            self.config.site_model().implied_rules().len(),
            self.config.output.len(),
            self.config
                .uplink
                .as_ref()
                .map_or("none (alarms stay local)", |u| u.alertmanager.as_str()),
            self.config.audit.every_records,
            self.config.audit.every.secs(),
            self.config.metrics.listen,
        );
        out
    }
}
