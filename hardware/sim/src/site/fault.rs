//! Faults injected on demand, on one sensor or a whole device: what a bus driver must survive.

use std::collections::HashMap;

use tokio_modbus::ExceptionCode;

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// The value stays what it was when the fault began.
    Stuck,
    /// Requests touching it get no answer at all (the client times out).
    Lost,
    /// The value jitters by up to ± this much (engineering units); contacts chatter.
    Noisy(f64),
    /// Requests touching it are answered with this Modbus exception.
    Exception(ExceptionCode),
    /// Replies to requests touching it are scrambled: not a valid Modbus TCP frame.
    Garbage,
}

/// What a fault applies to: a sensor by name, or a device (`site-doors`…) with all it serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FaultTarget {
    Sensor(String),
    Device(String),
}

/// A fault in force: a stuck one remembers the words it froze, per sensor name.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ActiveFault {
    pub fault: Fault,
    pub frozen: HashMap<String, Vec<u16>>,
}

/// The faults in force.
#[derive(Debug, Default)]
pub(super) struct Faults {
    pub sensors: HashMap<String, ActiveFault>,
    pub devices: HashMap<String, ActiveFault>,
}

impl Faults {
    pub fn is_empty(&self) -> bool {
        self.sensors.is_empty() && self.devices.is_empty()
    }
}

/// A name for an exception code on the control socket: `illegal-data-address`,
/// `server-device-failure`… or its number.
pub fn parse_exception(word: &str) -> Option<ExceptionCode> {
    let code = match word {
        "illegal-function" => ExceptionCode::IllegalFunction,
        "illegal-data-address" => ExceptionCode::IllegalDataAddress,
        "illegal-data-value" => ExceptionCode::IllegalDataValue,
        "server-device-failure" => ExceptionCode::ServerDeviceFailure,
        "acknowledge" => ExceptionCode::Acknowledge,
        "server-device-busy" => ExceptionCode::ServerDeviceBusy,
        "gateway-path-unavailable" => ExceptionCode::GatewayPathUnavailable,
        "gateway-target-device" => ExceptionCode::GatewayTargetDevice,
        number => ExceptionCode::new(
            number
                .parse::<u8>()
                .ok()
                .filter(|n| (1..0x80).contains(n))?,
        ),
    };
    Some(code)
}
