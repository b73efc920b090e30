//! A real Modbus TCP device for the driver's tests: tokio-modbus's server over a register bank
//! the test can change, and faults on demand (exceptions, silence, closed connections, garbage
//! that is not Modbus, refused writes).

#![allow(dead_code)] // each test file uses part of it

use std::collections::HashMap;
use std::future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appliance::profile::{ModbusRegister, ModbusRelay, SensorBus, SensorBusKind};
use sited::modbus::ModbusSettings;
use sited::sensor::{LostReason, SensorEvent, SensorId, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_modbus::server::Service;
use tokio_modbus::server::tcp::Server;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

/// How the device misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers every read with this exception.
    Exception(ExceptionCode),
    /// Keeps connections open and answers nothing.
    Silent,
    /// Accepts connections and closes them at once.
    Close,
    /// Answers every request with bytes that are not a Modbus frame.
    Garbage,
    /// Answers register reads with one register fewer than asked (bits are answered well).
    ShortRegisters,
}

/// The data of every unit, and the faults.
#[derive(Debug, Default)]
struct Bank {
    holding: HashMap<(u8, u16), u16>,
    input: HashMap<(u8, u16), u16>,
    coils: HashMap<(u8, u16), bool>,
    discrete: HashMap<(u8, u16), bool>,
    fault: Option<Fault>,
    /// Writes refused with this exception.
    refuse_writes: Option<ExceptionCode>,
    /// Writes acknowledged but not done (a stuck relay).
    ignore_writes: bool,
}

type Shared = Arc<Mutex<Bank>>;

/// A simulated Modbus TCP device on a loopback port.
pub struct Device {
    bank: Shared,
    addr: SocketAddr,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Device {
    pub async fn start() -> Device {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let device = Device {
            bank: Shared::default(),
            addr,
            server: Mutex::new(None),
        };
        device.serve(listener);
        device
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set_holding(&self, unit: u8, address: u16, value: u16) {
        self.bank
            .lock()
            .unwrap()
            .holding
            .insert((unit, address), value);
    }

    pub fn set_input(&self, unit: u8, address: u16, value: u16) {
        self.bank
            .lock()
            .unwrap()
            .input
            .insert((unit, address), value);
    }

    pub fn set_discrete(&self, unit: u8, address: u16, value: bool) {
        self.bank
            .lock()
            .unwrap()
            .discrete
            .insert((unit, address), value);
    }

    pub fn add_coil(&self, unit: u8, address: u16) {
        self.bank
            .lock()
            .unwrap()
            .coils
            .insert((unit, address), false);
    }

    pub fn coil(&self, unit: u8, address: u16) -> Option<bool> {
        self.bank
            .lock()
            .unwrap()
            .coils
            .get(&(unit, address))
            .copied()
    }

    pub fn refuse_writes(&self, exception: Option<ExceptionCode>) {
        self.bank.lock().unwrap().refuse_writes = exception;
    }

    pub fn ignore_writes(&self, ignore: bool) {
        self.bank.lock().unwrap().ignore_writes = ignore;
    }

    /// Starts misbehaving (or stops, with `None`). Open connections are closed, as a device
    /// that reboots into the fault would.
    pub async fn set_fault(&self, fault: Option<Fault>) {
        self.stop().await;
        self.bank.lock().unwrap().fault = fault;
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    /// Stops listening and closes every connection: connecting is refused from now on.
    pub async fn stop(&self) {
        let task = self.server.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again after [`Device::stop`].
    pub async fn restart(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let bank = self.bank.clone();
        let task = tokio::spawn(async move {
            let server = Server::new(listener);
            let on_connected = |stream: TcpStream, _peer: SocketAddr| {
                let bank = bank.clone();
                async move {
                    let fault = bank.lock().unwrap().fault;
                    match fault {
                        Some(Fault::Close) => Ok(None),
                        Some(Fault::Garbage) => {
                            tokio::spawn(answer_garbage(stream));
                            Ok(None)
                        }
                        _ => Ok::<_, io::Error>(Some((BankService { bank }, stream))),
                    }
                }
            };
            let _ = server.serve(&on_connected, |_error| {}).await;
        });
        *self.server.lock().unwrap() = Some(task);
    }

    /// A `modbus-tcp` bus at this device with `registers` and `relays`.
    pub fn bus(&self, registers: Vec<ModbusRegister>, relays: Vec<ModbusRelay>) -> SensorBus {
        SensorBus {
            name: "plant".into(),
            kind: SensorBusKind::ModbusTcp,
            address: Some(self.addr.to_string()),
            registers,
            relays,
        }
    }
}

/// Reads whatever the client sends and answers with a frame whose protocol identifier is not
/// Modbus's (0), as a device speaking something else on port 502 would.
async fn answer_garbage(mut stream: TcpStream) {
    let mut buf = [0u8; 260];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            return;
        }
        let garbage = [0x13, 0x37, 0xBE, 0xEF, 0x00, 0x04, 0x01, 0x03, 0x02, 0xFF];
        if stream.write_all(&garbage).await.is_err() {
            return;
        }
    }
}

struct BankService {
    bank: Shared,
}

impl Service for BankService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = future::Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, request: SlaveRequest<'static>) -> Self::Future {
        let mut bank = self.bank.lock().unwrap();
        future::ready(answer(&mut bank, request.slave, request.request))
    }
}

fn answer(
    bank: &mut Bank,
    unit: u8,
    request: Request<'_>,
) -> Result<Option<Response>, ExceptionCode> {
    match bank.fault {
        Some(Fault::Silent) => return Ok(None),
        Some(Fault::Exception(code)) => return Err(code),
        _ => {}
    }
    let words = |table: &HashMap<(u8, u16), u16>, start: u16, count: u16| {
        (0..count)
            .map(|i| table.get(&(unit, start.wrapping_add(i))).copied())
            .collect::<Option<Vec<u16>>>()
            .ok_or(ExceptionCode::IllegalDataAddress)
    };
    let bits = |table: &HashMap<(u8, u16), bool>, start: u16, count: u16| {
        (0..count)
            .map(|i| table.get(&(unit, start.wrapping_add(i))).copied())
            .collect::<Option<Vec<bool>>>()
            .ok_or(ExceptionCode::IllegalDataAddress)
    };
    let short = bank.fault == Some(Fault::ShortRegisters);
    let words = |table: &HashMap<(u8, u16), u16>, start: u16, count: u16| {
        let mut read = words(table, start, count)?;
        if short {
            read.pop();
        }
        Ok::<_, ExceptionCode>(read)
    };
    let response = match request {
        Request::ReadHoldingRegisters(start, count) => {
            Response::ReadHoldingRegisters(words(&bank.holding, start, count)?)
        }
        Request::ReadInputRegisters(start, count) => {
            Response::ReadInputRegisters(words(&bank.input, start, count)?)
        }
        Request::ReadCoils(start, count) => Response::ReadCoils(bits(&bank.coils, start, count)?),
        Request::ReadDiscreteInputs(start, count) => {
            Response::ReadDiscreteInputs(bits(&bank.discrete, start, count)?)
        }
        Request::WriteSingleCoil(address, on) => {
            if let Some(code) = bank.refuse_writes {
                return Err(code);
            }
            let Some(coil) = bank.coils.get_mut(&(unit, address)) else {
                return Err(ExceptionCode::IllegalDataAddress);
            };
            if !bank.ignore_writes {
                *coil = on;
            }
            Response::WriteSingleCoil(address, on)
        }
        _ => return Err(ExceptionCode::IllegalFunction),
    };
    Ok(Some(response))
}

/// Fast settings for tests: a 200 ms poll, 40 ms deadline, one retry, reconnects at least
/// every 400 ms.
pub fn fast_settings() -> ModbusSettings {
    let settings: ModbusSettings = toml::from_str(
        "poll_period_ms = 200\ndeadline_ms = 40\nretries = 1\nreconnect_backoff_max_ms = 400",
    )
    .unwrap();
    settings.validate().unwrap();
    settings
}

/// Slower settings for the relay tests, where a missed deadline would fail a write: 500 ms
/// deadline, one retry, a 2 s period (the reconnect backoff starts there).
pub fn relay_settings() -> ModbusSettings {
    let settings: ModbusSettings = toml::from_str(
        "poll_period_ms = 2000\ndeadline_ms = 500\nretries = 1\nreconnect_backoff_max_ms = 2000",
    )
    .unwrap();
    settings.validate().unwrap();
    settings
}

/// How long a test waits for an event before calling the driver hung (the events come every
/// 200 ms when it works).
pub const HUNG: Duration = Duration::from_secs(10);

/// Reads events of `sensor` (dropping the others) until `want` accepts one; returns it and how
/// many samples of `sensor` came before it (losses in between, e.g. a deadline missed on a
/// loaded machine, are not counted: they are never a stale value).
pub async fn wait_for(
    events: &mut mpsc::Receiver<SensorEvent>,
    sensor: &str,
    want: impl Fn(&SensorEvent) -> bool,
) -> (SensorEvent, usize) {
    let mut before = 0;
    loop {
        let event = tokio::time::timeout(HUNG, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no event for {sensor} within {HUNG:?}"))
            .expect("the poller stopped");
        if event.sensor().as_str() != sensor {
            continue;
        }
        if want(&event) {
            return (event, before);
        }
        if matches!(event, SensorEvent::Sample { .. }) {
            before += 1;
        }
    }
}

/// The next sample of `sensor`'s value (skipping losses).
pub async fn next_sample(events: &mut mpsc::Receiver<SensorEvent>, sensor: &str) -> Value {
    let (event, _) = wait_for(events, sensor, |e| matches!(e, SensorEvent::Sample { .. })).await;
    match event {
        SensorEvent::Sample { value, .. } => value,
        SensorEvent::Lost { .. } => unreachable!(),
    }
}

/// Drops the events already queued, so what follows is what the driver saw from now on.
pub fn drain(events: &mut mpsc::Receiver<SensorEvent>) {
    while events.try_recv().is_ok() {}
}

/// Waits until `sensor` is reported lost for a reason `expected` accepts, after a fault was
/// made (with the queue drained just before): at most one sample may still come first (the
/// poll already under way when the fault began), so the loss is reported by the next poll,
/// within two poll periods of the last good sample. Returns the reason.
pub async fn lost_within_two_polls(
    events: &mut mpsc::Receiver<SensorEvent>,
    sensor: &str,
    expected: impl Fn(&LostReason) -> bool,
) -> LostReason {
    let (mut samples, mut other_losses) = (0, 0);
    loop {
        let (event, _) = wait_for(events, sensor, |_| true).await;
        match event {
            SensorEvent::Sample { .. } => {
                samples += 1;
                assert!(
                    samples <= 1,
                    "{sensor}: {samples} stale samples after the fault"
                );
            }
            SensorEvent::Lost { reason, .. } if expected(&reason) => return reason,
            // The moment a device goes down shows first as another loss (e.g. refused while
            // it restarts into the fault); still lost, never a stale value.
            SensorEvent::Lost { reason, .. } => {
                other_losses += 1;
                assert!(other_losses <= 10, "{sensor}: still lost as {reason:?}");
            }
        }
    }
}

pub fn id(name: &str) -> SensorId {
    SensorId::new(name).unwrap()
}
