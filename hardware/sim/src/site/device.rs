//! One simulated Modbus TCP device: a gateway on its own address serving several unit ids,
//! answering reads from the model, recording relay coil writes, and misbehaving as the faults
//! in force say (no answer, an exception, a scrambled frame, a frozen or jittering value).

use std::collections::{HashMap, HashSet};
use std::future::{Ready, ready};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_modbus::server::Service;
use tokio_modbus::server::tcp::Server;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use super::fault::{ActiveFault, Fault, Faults};
use super::model::Model;
use super::register_map::{Bus, ModbusTable, Register, Relay};

/// Most registers one read may ask for (Modbus application protocol, function 03/04).
const MAX_READ_REGISTERS: u16 = 125;
/// Most bits one read may ask for (functions 01/02).
const MAX_READ_BITS: u16 = 2000;

/// The site's changing state: the model, the faults in force, and a count of relay writes
/// that wakes whoever waits for a relay ([`super::SiteHandle::wait_relay`]).
pub(super) struct SiteState {
    pub model: Model,
    pub faults: Faults,
    pub relay_writes: tokio::sync::watch::Sender<u64>,
}

pub(super) type Shared = Arc<Mutex<SiteState>>;

pub(super) fn lock(shared: &Shared) -> MutexGuard<'_, SiteState> {
    // A panic while holding the lock leaves plain data behind, still usable.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where each address of one device leads.
pub(super) struct DeviceLayout {
    pub bus: Bus,
    /// (unit, table, address) → (index into `bus.registers`, word within the value)
    words: HashMap<(u8, ModbusTable, u16), (usize, u16)>,
    coils: HashMap<(u8, u16), Relay>,
    units: HashSet<u8>,
}

impl DeviceLayout {
    pub fn new(bus: Bus) -> DeviceLayout {
        let mut words = HashMap::new();
        let mut units = HashSet::new();
        for (i, register) in bus.registers.iter().enumerate() {
            units.insert(register.unit);
            for word in 0..register.value_type.width() {
                words.insert(
                    (register.unit, register.table, register.address + word),
                    (i, word),
                );
            }
        }
        let mut coils = HashMap::new();
        for coil in &bus.relays {
            units.insert(coil.unit);
            coils.insert((coil.unit, coil.address), coil.relay);
        }
        DeviceLayout {
            bus,
            words,
            coils,
            units,
        }
    }
}

/// The words a register shows with no fault on it.
pub(super) fn clean_words(model: &Model, register: &Register) -> Vec<u16> {
    register.encode(model.value(register.quantity))
}

/// The words a register shows under `fault` (stuck, noisy or none).
fn words_under(model: &mut Model, register: &Register, fault: Option<&ActiveFault>) -> Vec<u16> {
    match fault.map(|f| (f.fault, f.frozen.get(&register.sensor))) {
        Some((Fault::Stuck, Some(frozen))) => frozen.clone(),
        Some((Fault::Noisy(amplitude), _)) => {
            let value = model.value(register.quantity);
            let jitter = model.noise(amplitude);
            if register.table == ModbusTable::Discrete {
                // A chattering contact: flips on about half the reads.
                register.encode(if jitter > 0.0 { 1.0 - value } else { value })
            } else {
                register.encode(value + jitter)
            }
        }
        _ => clean_words(model, register),
    }
}

/// How a request is answered.
enum Outcome {
    Answer(Response),
    Silence,
    Refuse(ExceptionCode),
}

struct DeviceService {
    layout: Arc<DeviceLayout>,
    shared: Shared,
    /// Scramble the reply now on its way out (set per request, cleared once it is sent).
    garble: Arc<AtomicBool>,
}

impl Service for DeviceService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, request: Self::Request) -> Self::Future {
        ready(match self.answer(request) {
            Outcome::Answer(response) => Ok(Some(response)),
            Outcome::Silence => {
                // Nothing goes out, so nothing is left to scramble for a later reply.
                self.garble.store(false, Ordering::SeqCst);
                Ok(None)
            }
            Outcome::Refuse(code) => Err(code),
        })
    }
}

impl DeviceService {
    fn answer(&self, request: SlaveRequest<'static>) -> Outcome {
        let unit = request.slave;
        let mut state = lock(&self.shared);
        if let Some(outcome) = self.fault_outcome(state.faults.devices.get(&self.layout.bus.name)) {
            return outcome;
        }
        if !self.layout.units.contains(&unit) {
            return Outcome::Refuse(ExceptionCode::GatewayTargetDevice);
        }
        let result = match request.request {
            Request::ReadInputRegisters(address, count) => self
                .read_words(&mut state, unit, ModbusTable::Input, address, count)
                .map(Response::ReadInputRegisters),
            Request::ReadHoldingRegisters(address, count) => self
                .read_words(&mut state, unit, ModbusTable::Holding, address, count)
                .map(Response::ReadHoldingRegisters),
            Request::ReadDiscreteInputs(address, count) => self
                .read_bits(&mut state, unit, address, count)
                .map(Response::ReadDiscreteInputs),
            Request::ReadCoils(address, count) => self
                .read_coils(&state, unit, address, count)
                .map(Response::ReadCoils),
            Request::WriteSingleCoil(address, on) => self
                .write_coils(&mut state, unit, address, &[on])
                .map(|()| Response::WriteSingleCoil(address, on)),
            Request::WriteMultipleCoils(address, ref values) => self
                .write_coils(&mut state, unit, address, values)
                .map(|()| Response::WriteMultipleCoils(address, values.len() as u16)),
            _ => Err(Outcome::Refuse(ExceptionCode::IllegalFunction)),
        };
        result.map_or_else(|outcome| outcome, Outcome::Answer)
    }

    /// What a device- or sensor-wide fault does to the whole request, if anything.
    fn fault_outcome(&self, fault: Option<&ActiveFault>) -> Option<Outcome> {
        match fault?.fault {
            Fault::Lost => Some(Outcome::Silence),
            Fault::Exception(code) => Some(Outcome::Refuse(code)),
            Fault::Garbage => {
                self.garble.store(true, Ordering::SeqCst);
                None
            }
            Fault::Stuck | Fault::Noisy(_) => None,
        }
    }

    /// The registers a read covers, each once, or the exception for an unmapped address.
    fn covered(
        &self,
        unit: u8,
        table: ModbusTable,
        address: u16,
        count: u16,
        max: u16,
    ) -> Result<Vec<(usize, u16)>, Outcome> {
        if count == 0 || count > max {
            return Err(Outcome::Refuse(ExceptionCode::IllegalDataValue));
        }
        (0..count)
            .map(|i| {
                address
                    .checked_add(i)
                    .and_then(|a| self.layout.words.get(&(unit, table, a)).copied())
                    .ok_or(Outcome::Refuse(ExceptionCode::IllegalDataAddress))
            })
            .collect()
    }

    /// Each covered register's words as its faults make them, or the fault's outcome.
    fn values(
        &self,
        state: &mut SiteState,
        covered: &[(usize, u16)],
    ) -> Result<HashMap<usize, Vec<u16>>, Outcome> {
        let SiteState { model, faults, .. } = state;
        let device_fault = faults.devices.get(&self.layout.bus.name);
        let mut values = HashMap::new();
        for &(i, _) in covered {
            if values.contains_key(&i) {
                continue;
            }
            let register = &self.layout.bus.registers[i];
            let sensor_fault = faults.sensors.get(&register.sensor);
            if let Some(outcome) = self.fault_outcome(sensor_fault) {
                return Err(outcome);
            }
            values.insert(
                i,
                words_under(model, register, sensor_fault.or(device_fault)),
            );
        }
        Ok(values)
    }

    fn read_words(
        &self,
        state: &mut SiteState,
        unit: u8,
        table: ModbusTable,
        address: u16,
        count: u16,
    ) -> Result<Vec<u16>, Outcome> {
        let covered = self.covered(unit, table, address, count, MAX_READ_REGISTERS)?;
        let values = self.values(state, &covered)?;
        Ok(covered
            .iter()
            .map(|(i, word)| values[i][usize::from(*word)])
            .collect())
    }

    fn read_bits(
        &self,
        state: &mut SiteState,
        unit: u8,
        address: u16,
        count: u16,
    ) -> Result<Vec<bool>, Outcome> {
        let covered = self.covered(unit, ModbusTable::Discrete, address, count, MAX_READ_BITS)?;
        let values = self.values(state, &covered)?;
        Ok(covered.iter().map(|(i, _)| values[i][0] != 0).collect())
    }

    fn relays(&self, unit: u8, address: u16, count: usize) -> Result<Vec<Relay>, Outcome> {
        if count == 0 || count > usize::from(MAX_READ_BITS) {
            return Err(Outcome::Refuse(ExceptionCode::IllegalDataValue));
        }
        (0..count)
            .map(|i| {
                u16::try_from(i)
                    .ok()
                    .and_then(|i| address.checked_add(i))
                    .and_then(|a| self.layout.coils.get(&(unit, a)).copied())
                    .ok_or(Outcome::Refuse(ExceptionCode::IllegalDataAddress))
            })
            .collect()
    }

    fn read_coils(
        &self,
        state: &SiteState,
        unit: u8,
        address: u16,
        count: u16,
    ) -> Result<Vec<bool>, Outcome> {
        let relays = self.relays(unit, address, usize::from(count))?;
        Ok(relays
            .into_iter()
            .map(|r| state.model.relay(r).on)
            .collect())
    }

    fn write_coils(
        &self,
        state: &mut SiteState,
        unit: u8,
        address: u16,
        values: &[bool],
    ) -> Result<(), Outcome> {
        let relays = self.relays(unit, address, values.len())?;
        for (relay, on) in relays.into_iter().zip(values) {
            state.model.write_relay(relay, *on);
            tracing::debug!(device = %self.layout.bus.name, unit, ?relay, on, "coil written");
        }
        state.relay_writes.send_modify(|writes| *writes += 1);
        Ok(())
    }
}

/// A connection whose replies can be scrambled: the protocol id and the PDU are mangled, the
/// length left right, so a client reads a whole frame and finds it is not Modbus.
struct GarblingStream {
    inner: TcpStream,
    garble: Arc<AtomicBool>,
    /// Bytes of the current reply written so far (replies are flushed one at a time).
    written: usize,
}

impl AsyncRead for GarblingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GarblingStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if !self.garble.load(Ordering::SeqCst) {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        let start = self.written;
        let scrambled: Vec<u8> = buf
            .iter()
            .enumerate()
            .map(|(i, byte)| match start + i {
                2 | 3 => 0xA5,
                0..7 => *byte,
                _ => byte ^ 0xA5,
            })
            .collect();
        let result = Pin::new(&mut self.inner).poll_write(cx, &scrambled);
        if let Poll::Ready(Ok(n)) = result {
            self.written += n;
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        if result.is_ready() {
            self.written = 0;
            self.garble.store(false, Ordering::SeqCst);
        }
        result
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves one device on `listener` until the returned task is aborted.
pub(super) fn serve(
    listener: TcpListener,
    layout: Arc<DeviceLayout>,
    shared: Shared,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let name = layout.bus.name.clone();
        let on_connected = move |stream: TcpStream, peer: SocketAddr| {
            let garble = Arc::new(AtomicBool::new(false));
            let service = DeviceService {
                layout: layout.clone(),
                shared: shared.clone(),
                garble: garble.clone(),
            };
            tracing::debug!(device = %service.layout.bus.name, %peer, "client connected");
            let stream = GarblingStream {
                inner: stream,
                garble,
                written: 0,
            };
            async move { Ok(Some((service, stream))) }
        };
        let on_error = |e: io::Error| tracing::debug!(error = %e, "modbus connection ended");
        if let Err(e) = Server::new(listener).serve(&on_connected, on_error).await {
            tracing::warn!(device = %name, error = %e, "modbus server stopped");
        }
    })
}
