//! D-Bus at the edge of every service: connect to the bus, serve one interface under one name.
//!
//! On one appliance the services talk over the D-Bus system bus, the seam systemd itself uses.
//! This module is the only place that knows how a BunkerOS service gets onto that bus, so they all
//! fail the same clear way when it is missing, and none can silently share or steal a name:
//!
//! - [`system_bus`] / [`connect`] open a client connection, honouring `DBUS_SYSTEM_BUS_ADDRESS`
//!   (zbus reads it; tests and the image's early boot point it at a private `dbus-daemon`).
//! - [`serve`] exports an interface at an object path and takes a well-known name, refusing
//!   when another process owns it instead of queueing behind it.
//! - [`contracts`] holds the bus names and object paths of the five services, and later their
//!   interface definitions: the cross-service contract lives here, never in another service.
//!
//! With the `test-support` feature, [`testbus`] starts a private `dbus-daemon` for tests, and
//! [`testsite`] stands in for `sited` on it.

pub mod caller;
pub mod contracts;
#[cfg(any(test, feature = "test-support"))]
pub mod testbus;
#[cfg(any(test, feature = "test-support"))]
pub mod testsite;

#[cfg(test)]
mod tests;

use std::io::ErrorKind;

use zbus::Connection;
use zbus::names::WellKnownName;
use zbus::object_server::Interface;
use zbus::zvariant::ObjectPath;

/// Which bus a connection goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    /// The system bus: `$DBUS_SYSTEM_BUS_ADDRESS` when set, else
    /// `unix:path=/var/run/dbus/system_bus_socket`. What every service uses in production.
    System,
    /// A bus at an explicit D-Bus address such as `unix:path=/run/test/bus.sock`: a test's private
    /// `dbus-daemon`, or a tool pointed at another bus on purpose.
    Address(String),
}

impl Bus {
    /// The address this bus resolves to now (the system bus reads the environment).
    fn resolve(&self) -> Result<zbus::Address, BusError> {
        let (text, parsed) = match self {
            Bus::System => (
                std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_default(),
                zbus::Address::system(),
            ),
            Bus::Address(text) => (text.clone(), text.as_str().try_into()),
        };
        parsed.map_err(|source| BusError::InvalidAddress {
            address: text,
            source: Box::new(source),
        })
    }

    fn describe(&self) -> &'static str {
        match self {
            Bus::System => "system bus",
            Bus::Address(_) => "bus",
        }
    }
}

/// What went wrong on the way onto the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Nothing listens at the bus address: on the appliance, dbus.service is not running;
    /// in a container or a developer's shell, there is simply no system bus.
    #[error("no D-Bus {which} at {address}: is dbus running?")]
    NoBus {
        /// `system bus` or `bus`.
        which: &'static str,
        /// The address that was tried.
        address: String,
        /// The socket error (boxed: zbus errors are large and this one is rare).
        #[source]
        source: Box<zbus::Error>,
    },
    /// The bus is there but the connection failed (refused authentication, policy, protocol).
    #[error("cannot connect to the D-Bus {which} at {address}")]
    Connect {
        /// `system bus` or `bus`.
        which: &'static str,
        /// The address that was tried.
        address: String,
        /// What the bus or zbus reported.
        #[source]
        source: Box<zbus::Error>,
    },
    /// Another connection owns the well-known name: most likely a second instance of the same
    /// service. Queueing behind it would leave this one running but unreachable, so it refuses.
    #[error("the D-Bus name {name} is already owned on {address}: is another instance running?")]
    NameTaken {
        /// The well-known name, e.g. `org.bunkeros.Trust1`.
        name: String,
        /// The bus address.
        address: String,
    },
    /// `DBUS_SYSTEM_BUS_ADDRESS` or the given address is not a D-Bus address.
    #[error("{address:?} is not a valid D-Bus address")]
    InvalidAddress {
        /// The address text.
        address: String,
        /// Why zbus refused it.
        #[source]
        source: Box<zbus::Error>,
    },
    /// The well-known name is malformed (a programming error in the caller's constants).
    #[error("{name:?} is not a valid D-Bus well-known name")]
    InvalidName {
        /// The name text.
        name: String,
        /// Why it is invalid.
        #[source]
        source: zbus::names::Error,
    },
    /// The object path is malformed (a programming error in the caller's constants).
    #[error("{path:?} is not a valid D-Bus object path")]
    InvalidPath {
        /// The path text.
        path: String,
        /// Why it is invalid.
        #[source]
        source: zbus::zvariant::Error,
    },
}

/// Connects to the system bus (or `$DBUS_SYSTEM_BUS_ADDRESS`).
pub async fn system_bus() -> Result<Connection, BusError> {
    connect(&Bus::System).await
}

/// Connects to `bus` as a client.
pub async fn connect(bus: &Bus) -> Result<Connection, BusError> {
    let address = bus.resolve()?;
    let shown = address.to_string();
    let builder = zbus::connection::Builder::address(address)
        .map_err(|source| connect_error(bus, &shown, source))?;
    builder
        .build()
        .await
        .map_err(|source| connect_error(bus, &shown, source))
}

/// Serves `iface` at `path` on `bus` and takes the well-known `name`.
///
/// The interface is exported before the name is requested, so no call that arrives for the
/// name can find the object missing. The name is requested without queueing and without
/// allowing replacement: a second instance fails with [`BusError::NameTaken`] instead of waiting
/// unseen, and no other process can take the name over from a running service. The returned
/// connection keeps serving until it is dropped.
pub async fn serve<I: Interface>(
    bus: &Bus,
    name: &str,
    path: &str,
    iface: I,
) -> Result<Connection, BusError> {
    let well_known = WellKnownName::try_from(name).map_err(|source| BusError::InvalidName {
        name: name.to_owned(),
        source,
    })?;
    let object_path = ObjectPath::try_from(path).map_err(|source| BusError::InvalidPath {
        path: path.to_owned(),
        source,
    })?;
    let address = bus.resolve()?;
    let shown = address.to_string();
    let builder = zbus::connection::Builder::address(address)
        .and_then(|b| b.serve_at(object_path, iface))
        .and_then(|b| b.name(well_known))
        .map_err(|source| connect_error(bus, &shown, source))?;
    builder
        .allow_name_replacements(false)
        .replace_existing_names(false)
        .build()
        .await
        .map_err(|source| match source {
            zbus::Error::NameTaken => BusError::NameTaken {
                name: name.to_owned(),
                address: shown.clone(),
            },
            source => connect_error(bus, &shown, source),
        })
}

/// Tells "no bus there" (missing or dead socket) apart from every other connection failure.
fn connect_error(bus: &Bus, address: &str, source: zbus::Error) -> BusError {
    let absent = match &source {
        zbus::Error::Connection(e, _) | zbus::Error::InputOutput(e) => {
            matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused)
        }
        _ => false,
    };
    let which = bus.describe();
    let address = address.to_owned();
    let source = Box::new(source);
    if absent {
        BusError::NoBus {
            which,
            address,
            source,
        }
    } else {
        BusError::Connect {
            which,
            address,
            source,
        }
    }
}
