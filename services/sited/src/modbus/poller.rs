//! The poller of one `modbus-tcp` bus: every poll period it reads the register map in as few
//! requests as [`plan_reads`] allows and reports every sensor: a `Sample`, or `Lost` with the
//! reason. A sensor whose request fails is reported lost in that same poll, so a sensor is never
//! left showing its last value: since one poll (connect, reads and retries included) fits in a
//! poll period (see [`ModbusSettings::validate`]), `Lost` follows the last good sample within
//! two poll periods.

use std::time::SystemTime;

use appliance::profile::{ModbusRegister, ModbusTable, SensorBus, SensorBusKind};
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, interval};
use tokio_modbus::{Request, Response};

use super::ModbusSettings;
use super::decode::{Raw, decode};
use super::link::{Failure, Link};
use super::plan::{ReadBlock, plan_reads};
use crate::sensor::{BadSensorId, SensorEvent, SensorId};

/// A bus the poller cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollerError {
    #[error("sensor bus `{0}` is not a modbus-tcp bus")]
    NotModbus(String),
    #[error("sensor bus `{0}` has no address")]
    NoAddress(String),
    #[error("sensor bus `{bus}`: {source}")]
    BadSensor { bus: String, source: BadSensorId },
}

/// What one read request brought back.
enum BlockData {
    Registers(Vec<u16>),
    Bits(Vec<bool>),
}

/// Polls one Modbus TCP bus and sends what it reads as [`SensorEvent`]s.
pub struct ModbusPoller {
    bus: String,
    settings: ModbusSettings,
    link: Link,
    registers: Vec<ModbusRegister>,
    sensors: Vec<SensorId>,
    blocks: Vec<ReadBlock>,
    events: mpsc::Sender<SensorEvent>,
}

impl ModbusPoller {
    /// A poller for `bus` (from a validated profile) sending into `events`.
    pub fn new(
        bus: &SensorBus,
        settings: &ModbusSettings,
        events: mpsc::Sender<SensorEvent>,
    ) -> Result<ModbusPoller, PollerError> {
        if bus.kind != SensorBusKind::ModbusTcp {
            return Err(PollerError::NotModbus(bus.name.clone()));
        }
        let Some(address) = bus.address.clone() else {
            return Err(PollerError::NoAddress(bus.name.clone()));
        };
        let sensors = bus
            .registers
            .iter()
            .map(|r| SensorId::new(r.sensor.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| PollerError::BadSensor {
                bus: bus.name.clone(),
                source,
            })?;
        Ok(ModbusPoller {
            bus: bus.name.clone(),
            settings: settings.clone(),
            link: settings.link(address),
            registers: bus.registers.clone(),
            sensors,
            blocks: plan_reads(&bus.registers),
            events,
        })
    }

    /// The read requests one poll makes.
    pub fn blocks(&self) -> &[ReadBlock] {
        &self.blocks
    }

    /// Polls every poll period until the receiver of the events is dropped.
    pub async fn run(mut self) {
        let mut ticks = interval(self.settings.poll_period());
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tracing::info!(bus = %self.bus, requests = self.blocks.len(), sensors = self.sensors.len(), "polling Modbus bus");
        loop {
            ticks.tick().await;
            if !self.poll_once().await {
                tracing::debug!(bus = %self.bus, "event receiver gone; poller stops");
                return;
            }
        }
    }

    /// Reads every block once and sends an event for every sensor. `false` once the receiver
    /// is gone.
    pub async fn poll_once(&mut self) -> bool {
        // After a failure that cost the connection the device is gone for this poll: the
        // remaining blocks are reported with the same reason instead of each waiting out its
        // own deadline. A device that answered (an exception, a short answer) is asked on.
        let mut gone: Option<Failure> = None;
        for b in 0..self.blocks.len() {
            let result = match &gone {
                Some(failure) => Err(failure.clone()),
                None => self.read_with_retries(b).await,
            };
            if let Err(failure) = &result {
                tracing::debug!(bus = %self.bus, start = self.blocks[b].start, %failure, "Modbus read failed");
                if !self.link.is_connected() {
                    gone = Some(failure.clone());
                }
            }
            if !self.report(b, result).await {
                return false;
            }
        }
        true
    }

    async fn read_with_retries(&mut self, b: usize) -> Result<BlockData, Failure> {
        let mut attempt = 0;
        loop {
            match self.read(b).await {
                Err(failure) if failure.is_retryable() && attempt < self.settings.retries() => {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn read(&mut self, b: usize) -> Result<BlockData, Failure> {
        let block = &self.blocks[b];
        let (start, count) = (block.start, block.count);
        let request = match block.table {
            ModbusTable::Holding => Request::ReadHoldingRegisters(start, count),
            ModbusTable::Input => Request::ReadInputRegisters(start, count),
            ModbusTable::Coil => Request::ReadCoils(start, count),
            ModbusTable::Discrete => Request::ReadDiscreteInputs(start, count),
        };
        let response = self.link.call(block.unit, request).await?;
        let wanted = usize::from(count);
        let data = match response {
            Response::ReadHoldingRegisters(words) | Response::ReadInputRegisters(words) => {
                BlockData::Registers(words)
            }
            Response::ReadCoils(mut bits) | Response::ReadDiscreteInputs(mut bits) => {
                // Bits come in whole bytes; the padding is not data.
                if bits.len() >= wanted {
                    bits.truncate(wanted);
                }
                BlockData::Bits(bits)
            }
            other => {
                return Err(Failure::Malformed(format!(
                    "answered {:?} to a read",
                    other.function_code()
                )));
            }
        };
        let got = match &data {
            BlockData::Registers(words) => words.len(),
            BlockData::Bits(bits) => bits.len(),
        };
        if got != wanted {
            return Err(Failure::Malformed(format!(
                "asked for {wanted} {}, got {got}",
                if block.table.is_bits() {
                    "bits"
                } else {
                    "registers"
                }
            )));
        }
        Ok(data)
    }

    /// Sends the events of block `b`'s sensors. `false` once the receiver is gone.
    async fn report(&mut self, b: usize, result: Result<BlockData, Failure>) -> bool {
        let block = &self.blocks[b];
        let at = SystemTime::now();
        for &i in &block.entries {
            let sensor = self.sensors[i].clone();
            let register = &self.registers[i];
            let event = match &result {
                Ok(data) => {
                    let offset = usize::from(register.address - block.start);
                    let raw = match data {
                        BlockData::Registers(words) => Raw::Registers(&words[offset..]),
                        BlockData::Bits(bits) => Raw::Bits(&bits[offset..]),
                    };
                    match decode(register, raw) {
                        Ok(value) => SensorEvent::Sample { sensor, value, at },
                        Err(error) => SensorEvent::Lost {
                            sensor,
                            reason: error.lost_reason(),
                            at,
                        },
                    }
                }
                Err(failure) => SensorEvent::Lost {
                    sensor,
                    reason: failure.lost_reason(),
                    at,
                },
            };
            if self.events.send(event).await.is_err() {
                return false;
            }
        }
        true
    }
}
