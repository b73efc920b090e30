//! Which sensors the site has, where each comes from and in which unit: the names the rules,
//! the outputs and the console may use, known before the first poll.
//!
//! Modbus sensors come from the hardware profile's register maps, SNMP sensors from
//! `sited.toml`'s `[snmp.<bus>]` OIDs, NUT sensors from the UPS names in the profile, derived
//! sensors from the site model. hwmon chips are discovered at run time, so any name under a
//! `hwmon` bus's prefix (`<bus>.`) is accepted.

use std::collections::BTreeMap;

use appliance::profile::{Profile, SensorBusKind};

use crate::nut::NutSettings;
use crate::sensor::SensorId;
use crate::snmp::SnmpSettings;

/// Where a sensor comes from and its unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensorInfo {
    /// The profile's bus name, or `site-model` for derived sensors.
    pub bus: String,
    /// For people: `°C`, `%RH`, `W`, `dB`; `None` for contacts.
    pub unit: Option<String>,
}

/// The bus name derived sensors are listed under.
pub const DERIVED_BUS: &str = "site-model";

/// Every sensor sited knows of.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SensorCatalogue {
    sensors: BTreeMap<SensorId, SensorInfo>,
    /// `hwmon` buses: any sensor named `<bus>.…` may appear.
    discovered_prefixes: Vec<String>,
}

impl SensorCatalogue {
    /// The sensors of the profile's buses and of the SNMP agents configured for them.
    /// Names the profile or the settings got wrong are skipped here: their own checks
    /// refuse them with the key to fix.
    pub fn of_site(profile: &Profile, snmp: &BTreeMap<String, SnmpSettings>) -> SensorCatalogue {
        let mut catalogue = SensorCatalogue::default();
        for bus in &profile.sensor_buses {
            match bus.kind {
                SensorBusKind::ModbusTcp => {
                    for register in &bus.registers {
                        catalogue.add(
                            &register.sensor,
                            &bus.name,
                            register.unit_of_measure.clone(),
                        );
                    }
                }
                SensorBusKind::Nut => {
                    let settings = bus
                        .address
                        .as_deref()
                        .and_then(|address| NutSettings::for_bus(&bus.name, address));
                    for (name, unit) in settings.iter().flat_map(crate::nut::driver::sensors) {
                        catalogue.add(&name, &bus.name, unit.map(str::to_owned));
                    }
                }
                SensorBusKind::Snmp => {
                    for oid in snmp.get(&bus.name).iter().flat_map(|agent| &agent.oid) {
                        catalogue.add(oid.sensor.as_str(), &bus.name, oid.unit_of_measure.clone());
                    }
                }
                SensorBusKind::Hwmon => {
                    catalogue.discovered_prefixes.push(format!("{}.", bus.name))
                }
            }
        }
        catalogue
    }

    /// Adds a sensor (a derived one, or one of a bus).
    pub fn add(&mut self, name: &str, bus: &str, unit: Option<String>) {
        if let Ok(id) = SensorId::new(name) {
            self.sensors.insert(
                id,
                SensorInfo {
                    bus: bus.to_owned(),
                    unit,
                },
            );
        }
    }

    /// Whether a rule or output may name `sensor`.
    pub fn knows(&self, sensor: &SensorId) -> bool {
        self.sensors.contains_key(sensor) || self.bus_of_discovered(sensor).is_some()
    }

    /// Where `sensor` comes from: listed, or under a hwmon bus.
    pub fn info(&self, sensor: &SensorId) -> Option<SensorInfo> {
        if let Some(info) = self.sensors.get(sensor) {
            return Some(info.clone());
        }
        let bus = self.bus_of_discovered(sensor)?;
        // hwmon labels fans `fanN` or `<something>_fan`; everything else it reports here is a temperature.
        let unit = if sensor.as_str().contains("fan") {
            "RPM"
        } else {
            "°C"
        };
        Some(SensorInfo {
            bus,
            unit: Some(unit.to_owned()),
        })
    }

    /// The sensors known before any poll, in name order.
    pub fn listed(&self) -> impl Iterator<Item = (&SensorId, &SensorInfo)> {
        self.sensors.iter()
    }

    pub fn len(&self) -> usize {
        self.sensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sensors.is_empty()
    }

    fn bus_of_discovered(&self, sensor: &SensorId) -> Option<String> {
        self.discovered_prefixes
            .iter()
            .find(|prefix| sensor.as_str().starts_with(prefix.as_str()))
            .map(|prefix| prefix.trim_end_matches('.').to_owned())
    }
}
