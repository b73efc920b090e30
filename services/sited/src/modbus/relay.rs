//! Relay outputs on Modbus coils (siren, beacon, door interlock): a write is only done once the
//! coil reads back as written, so a relay that did not switch is an error the caller sees (and
//! can alarm on), never assumed.

use appliance::profile::{ModbusRelay, SensorBus, SensorBusKind};
use tokio_modbus::{Request, Response};

use super::ModbusSettings;
use super::link::{Failure, Link};

/// Why a relay could not be set or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    #[error("no relay called `{0}` on this bus")]
    Unknown(String),
    #[error("sensor bus `{0}` is not a modbus-tcp bus with an address")]
    NotModbus(String),
    #[error("relay `{relay}`: {failure}")]
    Failed { relay: String, failure: Failure },
    /// The write was accepted but the coil reads back otherwise.
    #[error("relay `{relay}` reads {read} after being set to {wanted}")]
    NotSwitched {
        relay: String,
        wanted: bool,
        read: bool,
    },
}

/// The relays of one `modbus-tcp` bus, over their own connection (a slow sensor poll never
/// delays a siren).
pub struct RelayBank {
    relays: Vec<ModbusRelay>,
    retries: u64,
    link: Link,
}

impl RelayBank {
    /// The relays declared on `bus` (from a validated profile).
    pub fn new(bus: &SensorBus, settings: &ModbusSettings) -> Result<RelayBank, RelayError> {
        let address = match (&bus.kind, &bus.address) {
            (SensorBusKind::ModbusTcp, Some(address)) => address.clone(),
            _ => return Err(RelayError::NotModbus(bus.name.clone())),
        };
        Ok(RelayBank {
            relays: bus.relays.clone(),
            retries: settings.retries(),
            link: settings.link(address),
        })
    }

    /// The relays' names, in profile order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.relays.iter().map(|r| r.name.as_str())
    }

    /// Switches relay `name` on or off and checks that its coil reads back as written.
    pub async fn set(&mut self, name: &str, on: bool) -> Result<(), RelayError> {
        let relay = self.relay(name)?;
        let request = Request::WriteSingleCoil(relay.coil, on);
        match self.call(&relay, request).await? {
            Response::WriteSingleCoil(address, value) if address == relay.coil && value == on => {}
            other => {
                return Err(failed(
                    &relay,
                    Failure::Malformed(format!("the write was answered with {other:?}")),
                ));
            }
        }
        let read = self.read(name).await?;
        if read != on {
            return Err(RelayError::NotSwitched {
                relay: relay.name,
                wanted: on,
                read,
            });
        }
        tracing::info!(relay = name, on, "relay switched");
        Ok(())
    }

    /// Whether relay `name`'s coil is on.
    pub async fn read(&mut self, name: &str) -> Result<bool, RelayError> {
        let relay = self.relay(name)?;
        match self.call(&relay, Request::ReadCoils(relay.coil, 1)).await? {
            Response::ReadCoils(bits) if !bits.is_empty() => Ok(bits[0]),
            other => Err(failed(
                &relay,
                Failure::Malformed(format!("a coil read was answered with {other:?}")),
            )),
        }
    }

    fn relay(&self, name: &str) -> Result<ModbusRelay, RelayError> {
        self.relays
            .iter()
            .find(|r| r.name == name)
            .cloned()
            .ok_or_else(|| RelayError::Unknown(name.to_owned()))
    }

    async fn call(
        &mut self,
        relay: &ModbusRelay,
        request: Request<'static>,
    ) -> Result<Response, RelayError> {
        let mut attempt = 0;
        loop {
            match self.link.call(relay.unit, request.clone()).await {
                Ok(response) => return Ok(response),
                Err(failure) if failure.is_retryable() && attempt < self.retries => attempt += 1,
                Err(failure) => return Err(failed(relay, failure)),
            }
        }
    }
}

fn failed(relay: &ModbusRelay, failure: Failure) -> RelayError {
    RelayError::Failed {
        relay: relay.name.clone(),
        failure,
    }
}
