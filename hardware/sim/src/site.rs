//! A simulated EMP-shielded bunker site on Modbus TCP, for sited's tests, its benchmarks and the
//! QEMU profile: five devices (environment, power, shielding, doors, safety), each a Modbus TCP
//! server on its own port serving several unit ids, read from a ticking physical model, with
//! relay coils whose writes are recorded with their time, and faults on demand.
//!
//! The register map it serves is data ([`RegisterMap`]) and prints as hardware-profile TOML, so
//! sited is configured for the simulator by the simulator. Inputs (doors, grid, arresters…) and
//! faults are set in process through [`SiteHandle`] or by line commands on a control socket
//! ([`control`]).

pub mod control;
mod device;
pub mod fault;
pub mod model;
pub mod register_map;
pub mod spec;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use control::SiteCommand;
pub use fault::{Fault, FaultTarget};
pub use model::{ModelError, RelayState};
pub use register_map::{
    Bus, DEVICES, ModbusTable, ModbusType, Quantity, Register, RegisterMap, Relay, RelayCoil,
    WordOrder, planned_addresses,
};
pub use spec::{SiteSpec, SpecError};

use device::{DeviceLayout, Shared, SiteState, clean_words, lock};
use fault::ActiveFault;
use model::Model;

/// A command the site refuses; nothing changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SiteError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("no sensor '{0}' (sitesim --print-map lists them)")]
    UnknownSensor(String),
    #[error("no device '{0}' ({devices})", devices = DEVICES.join(", "))]
    UnknownDevice(String),
}

/// One relay's state on the control socket.
#[derive(Debug, Serialize)]
struct RelayReport<'a> {
    name: &'a str,
    #[serde(flatten)]
    state: RelayState,
}

/// Drives a running site: inputs, faults, relay states. Cheap to clone.
#[derive(Clone)]
pub struct SiteHandle {
    shared: Shared,
    map: Arc<RegisterMap>,
}

impl SiteHandle {
    pub fn register_map(&self) -> &RegisterMap {
        &self.map
    }

    /// Runs one command; the reply is what the control socket answers (`ok` or JSON).
    pub fn apply(&self, command: SiteCommand) -> Result<String, SiteError> {
        let ok = |r: Result<(), ModelError>| r.map(|()| "ok".to_string()).map_err(SiteError::from);
        let mut state = lock(&self.shared);
        let model = &mut state.model;
        match command {
            SiteCommand::Door { door, open: true } => ok(model.open_door(door)),
            SiteCommand::Door { door, open: false } => ok(model.close_door(door)),
            SiteCommand::Grid { feed, present } => ok(model.set_grid(feed, present)),
            SiteCommand::ItLoad { kw } => ok(model.set_it_load(kw)),
            SiteCommand::Filter { filter, tripped } => ok(model.set_filter(filter, tripped)),
            SiteCommand::Arrester { arrester, tripped } => {
                ok(model.set_arrester(arrester, tripped))
            }
            SiteCommand::Intrusion { contact, active } => ok(model.set_intrusion(contact, active)),
            SiteCommand::DegradeShielding { zone, db } => ok(model.degrade_shielding(zone, db)),
            SiteCommand::OutsideField { zone, dbuv } => ok(model.set_outside_field(zone, dbuv)),
            SiteCommand::Advance { seconds } => {
                model.advance(seconds);
                Ok("ok".to_string())
            }
            SiteCommand::Fault { target, fault } => {
                self.inject_locked(&mut state, target, fault)?;
                Ok("ok".to_string())
            }
            SiteCommand::Clear(target) => {
                self.clear_locked(&mut state, target)?;
                Ok("ok".to_string())
            }
            SiteCommand::Relays => {
                let reports: Vec<RelayReport> = self
                    .relay_coils()
                    .map(|coil| RelayReport {
                        name: &coil.name,
                        state: state.model.relay(coil.relay),
                    })
                    .collect();
                Ok(serde_json::to_string(&reports).unwrap_or_else(|e| format!("error: {e}")))
            }
            SiteCommand::Read { sensor } => {
                let (_, register) = self
                    .map
                    .sensor(&sensor)
                    .ok_or_else(|| SiteError::UnknownSensor(sensor.clone()))?;
                let value = state.model.value(register.quantity);
                Ok(serde_json::json!({ "sensor": sensor, "value": value }).to_string())
            }
        }
    }

    fn relay_coils(&self) -> impl Iterator<Item = &RelayCoil> {
        self.map.buses.iter().flat_map(|b| b.relays.iter())
    }

    fn inject_locked(
        &self,
        state: &mut SiteState,
        target: FaultTarget,
        fault: Fault,
    ) -> Result<(), SiteError> {
        let sensors: Vec<&Register> = match &target {
            FaultTarget::Sensor(name) => vec![
                self.map
                    .sensor(name)
                    .ok_or_else(|| SiteError::UnknownSensor(name.clone()))?
                    .1,
            ],
            FaultTarget::Device(name) => self
                .map
                .buses
                .iter()
                .find(|b| &b.name == name)
                .ok_or_else(|| SiteError::UnknownDevice(name.clone()))?
                .registers
                .iter()
                .collect(),
        };
        let frozen: HashMap<String, Vec<u16>> = match fault {
            Fault::Stuck => sensors
                .iter()
                .map(|r| (r.sensor.clone(), clean_words(&state.model, r)))
                .collect(),
            _ => HashMap::new(),
        };
        tracing::info!(?target, ?fault, "fault injected");
        let active = ActiveFault { fault, frozen };
        match target {
            FaultTarget::Sensor(name) => state.faults.sensors.insert(name, active),
            FaultTarget::Device(name) => state.faults.devices.insert(name, active),
        };
        Ok(())
    }

    fn clear_locked(
        &self,
        state: &mut SiteState,
        target: Option<FaultTarget>,
    ) -> Result<(), SiteError> {
        match target {
            None => {
                state.faults.sensors.clear();
                state.faults.devices.clear();
            }
            Some(FaultTarget::Sensor(name)) => {
                self.map
                    .sensor(&name)
                    .ok_or_else(|| SiteError::UnknownSensor(name.clone()))?;
                state.faults.sensors.remove(&name);
            }
            Some(FaultTarget::Device(name)) => {
                state.faults.devices.remove(&name);
            }
        }
        tracing::info!(faults_left = !state.faults.is_empty(), "faults cleared");
        Ok(())
    }

    /// Opens (true) or closes a door (numbered from 1); closing an open door counts a cycle.
    pub fn set_door(&self, door: u16, open: bool) -> Result<(), SiteError> {
        self.apply(SiteCommand::Door { door, open }).map(drop)
    }

    /// Grid present or lost on one feed (from 1) or every feed.
    pub fn set_grid(&self, feed: Option<u16>, present: bool) -> Result<(), SiteError> {
        self.apply(SiteCommand::Grid { feed, present }).map(drop)
    }

    pub fn set_it_load(&self, kw: f64) -> Result<(), SiteError> {
        self.apply(SiteCommand::ItLoad { kw }).map(drop)
    }

    pub fn set_filter(&self, filter: u16, tripped: bool) -> Result<(), SiteError> {
        self.apply(SiteCommand::Filter { filter, tripped })
            .map(drop)
    }

    pub fn set_arrester(&self, arrester: u16, tripped: bool) -> Result<(), SiteError> {
        self.apply(SiteCommand::Arrester { arrester, tripped })
            .map(drop)
    }

    pub fn set_intrusion(&self, contact: u16, active: bool) -> Result<(), SiteError> {
        self.apply(SiteCommand::Intrusion { contact, active })
            .map(drop)
    }

    /// Zone `zone` (or every zone) loses `db` of shielding effectiveness; 0 repairs it.
    pub fn degrade_shielding(&self, zone: Option<u16>, db: f64) -> Result<(), SiteError> {
        self.apply(SiteCommand::DegradeShielding { zone, db })
            .map(drop)
    }

    pub fn set_outside_field(&self, zone: Option<u16>, dbuv: f64) -> Result<(), SiteError> {
        self.apply(SiteCommand::OutsideField { zone, dbuv })
            .map(drop)
    }

    pub fn inject(&self, target: FaultTarget, fault: Fault) -> Result<(), SiteError> {
        self.apply(SiteCommand::Fault { target, fault }).map(drop)
    }

    /// Clears the faults on `target`, or every fault (`None`).
    pub fn clear(&self, target: Option<FaultTarget>) -> Result<(), SiteError> {
        self.apply(SiteCommand::Clear(target)).map(drop)
    }

    /// Steps the model by simulated time (tests freeze the clock with `time_scale = 0`).
    pub fn advance(&self, by: Duration) {
        lock(&self.shared).model.advance(by.as_secs_f64());
    }

    /// A sensor's true value in engineering units (what the registers show without faults).
    pub fn value(&self, sensor: &str) -> Option<f64> {
        let (_, register) = self.map.sensor(sensor)?;
        Some(lock(&self.shared).model.value(register.quantity))
    }

    /// A relay's state and when a client last changed it.
    pub fn relay(&self, name: &str) -> Option<RelayState> {
        let (_, coil) = self.map.relay(name)?;
        Some(lock(&self.shared).model.relay(coil.relay))
    }

    /// Waits until a client has set relay `name` to `on` (at once if it already is); `None`
    /// for a relay the site does not have. The state carries when it changed, so a benchmark
    /// measures input change → coil set without polling. Bound the wait with a timeout.
    pub async fn wait_relay(&self, name: &str, on: bool) -> Option<RelayState> {
        let (_, coil) = self.map.relay(name)?;
        // Subscribed before looking, so a write between the look and the wait is not missed.
        let mut writes = lock(&self.shared).relay_writes.subscribe();
        loop {
            let state = lock(&self.shared).model.relay(coil.relay);
            if state.on == on {
                return Some(state);
            }
            writes.changed().await.ok()?;
        }
    }

    /// Every relay, in map order.
    pub fn relays(&self) -> Vec<(String, RelayState)> {
        let state = lock(&self.shared);
        self.relay_coils()
            .map(|c| (c.name.clone(), state.model.relay(c.relay)))
            .collect()
    }
}

/// A running site: its devices listening, its model ticking. Dropping it stops everything.
pub struct Site {
    handle: SiteHandle,
    addresses: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Site {
    /// Binds the devices at ports counting up from `listen` (port 0: any free ports) and starts
    /// serving and ticking.
    pub async fn start(spec: SiteSpec, listen: SocketAddr) -> std::io::Result<Site> {
        spec.validate().map_err(|invalid| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, SpecError::from(invalid))
        })?;
        let mut listeners = Vec::new();
        for address in planned_addresses(listen) {
            listeners.push(TcpListener::bind(address).await?);
        }
        let addresses = listeners
            .iter()
            .map(TcpListener::local_addr)
            .collect::<std::io::Result<Vec<_>>>()?;
        let map = Arc::new(RegisterMap::new(&spec, &addresses));
        let shared: Shared = Arc::new(Mutex::new(SiteState {
            model: Model::new(&spec),
            faults: Default::default(),
            relay_writes: tokio::sync::watch::Sender::new(0),
        }));
        let mut tasks: Vec<JoinHandle<()>> = listeners
            .into_iter()
            .zip(&map.buses)
            .map(|(listener, bus)| {
                device::serve(
                    listener,
                    Arc::new(DeviceLayout::new(bus.clone())),
                    shared.clone(),
                )
            })
            .collect();
        if spec.time_scale > 0.0 {
            tasks.push(tokio::spawn(tick(
                shared.clone(),
                spec.tick(),
                spec.time_scale,
            )));
        }
        tracing::info!(devices = ?addresses, sensors = map.sensor_count(), "site simulator serving");
        Ok(Site {
            handle: SiteHandle { shared, map },
            addresses,
            tasks,
        })
    }

    pub fn handle(&self) -> SiteHandle {
        self.handle.clone()
    }

    pub fn register_map(&self) -> &RegisterMap {
        &self.handle.map
    }

    /// The devices' addresses, in [`DEVICES`] order.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// The address of a device by name (`site-doors`…).
    pub fn address(&self, device: &str) -> Option<SocketAddr> {
        DEVICES
            .iter()
            .position(|d| *d == device)
            .map(|i| self.addresses[i])
    }

    /// Stops serving and ticking, and waits until the tasks are gone.
    pub async fn stop(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Steps the model every `period` by `period × time_scale` simulated seconds.
async fn tick(shared: Shared, period: Duration, time_scale: f64) {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    let mut last = tokio::time::Instant::now();
    loop {
        interval.tick().await;
        let now = tokio::time::Instant::now();
        let elapsed = now.duration_since(last).as_secs_f64();
        last = now;
        lock(&shared).model.advance(elapsed * time_scale);
    }
}
