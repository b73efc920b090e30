//! Starts one driver per sensor bus of the hardware profile, each sending its
//! [`SensorEvent`](crate::sensor::SensorEvent)s into the daemon's channel, and one relay
//! driver per Modbus bus with relays.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use appliance::config::Invalid;
use appliance::profile::SensorBusKind;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::hwmon::{HwmonDriver, HwmonSettings};
use crate::modbus::poller::ModbusPoller;
use crate::modbus::relay::RelayBank;
use crate::nut::{NutDriver, NutSettings};
use crate::relay_driver::{self, RelayStates};
use crate::sensor::SensorEvent;
use crate::settings::SitedSetup;
use crate::snmp::SnmpPoller;

/// Spawns every bus's driver. Drivers stop when the receiver of `events` is dropped.
pub fn spawn_sensor_drivers(setup: &SitedSetup, events: &mpsc::Sender<SensorEvent>) -> Result<()> {
    let config = &setup.config;
    for bus in &setup.profile.sensor_buses {
        match bus.kind {
            SensorBusKind::ModbusTcp => {
                let poller = ModbusPoller::new(bus, &config.modbus, events.clone())
                    .with_context(|| format!("sensor bus `{}`", bus.name))?;
                tokio::spawn(poller.run());
            }
            SensorBusKind::Nut => {
                let address = bus.address.as_deref().unwrap_or_default();
                let settings = NutSettings::for_bus(&bus.name, address).ok_or_else(|| {
                    anyhow!(
                        "sensor bus `{}`: `{address}` is not UPS@HOST[:PORT]",
                        bus.name
                    )
                })?;
                let driver =
                    NutDriver::new(settings).map_err(|problems| refused(&bus.name, &problems))?;
                tokio::spawn(driver.run(events.clone()));
            }
            SensorBusKind::Snmp => {
                // Checked against the profile at load: every snmp bus has its agent settings.
                let Some((_, agent)) = config
                    .snmp_agents(&setup.profile)
                    .into_iter()
                    .find(|(name, _)| *name == bus.name)
                else {
                    return Err(anyhow!(
                        "sensor bus `{}` has no [snmp.{}]",
                        bus.name,
                        bus.name
                    ));
                };
                let poller = SnmpPoller::new(&agent, events.clone())
                    .map_err(|problems| refused(&bus.name, &problems))?;
                tokio::spawn(poller.run());
            }
            SensorBusKind::Hwmon => {
                let driver = HwmonDriver::new(HwmonSettings::for_bus(&bus.name))
                    .map_err(|problems| refused(&bus.name, &problems))?;
                tokio::spawn(driver.run(events.clone()));
            }
        }
    }
    Ok(())
}

/// Spawns a relay driver for every Modbus bus with relays, following `wanted`.
pub fn spawn_relay_drivers(
    setup: &SitedSetup,
    wanted: &watch::Receiver<BTreeMap<String, bool>>,
    states: &RelayStates,
    cancel: &CancellationToken,
) -> Result<()> {
    for bus in &setup.profile.sensor_buses {
        if bus.relays.is_empty() {
            continue;
        }
        let bank = RelayBank::new(bus, &setup.config.modbus)
            .with_context(|| format!("the relays of sensor bus `{}`", bus.name))?;
        tokio::spawn(relay_driver::drive(
            bank,
            bus.name.clone(),
            wanted.clone(),
            states.clone(),
            cancel.clone(),
        ));
    }
    Ok(())
}

/// A driver that refused its settings (which the configuration checks should have caught).
fn refused(bus: &str, problems: &[Invalid]) -> anyhow::Error {
    let said: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.key, p.reason))
        .collect();
    anyhow!("sensor bus `{bus}`: {}", said.join("; "))
}
