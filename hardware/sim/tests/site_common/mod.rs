//! Helpers for the site simulator's tests: a frozen-clock site on 127.70.x.y and a plain
//! tokio-modbus client that reads a sensor the way the register map says.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use sim::site::{ModbusTable, Register, Site, SiteSpec};
use tokio_modbus::client::{Context, Reader, tcp};
use tokio_modbus::{ExceptionCode, Slave};

/// Separates "answered" from "hung"; a healthy reply takes milliseconds.
pub const ANSWER_BOUND: Duration = Duration::from_secs(10);

/// The small site with its clock frozen: the model moves only when a test advances it.
pub async fn frozen_site(ip: [u8; 4]) -> Site {
    let mut spec = SiteSpec::small();
    spec.time_scale = 0.0;
    Site::start(spec, SocketAddr::from((ip, 0)))
        .await
        .expect("the site starts")
}

/// The register of `sensor` and a client connected to its device and unit.
pub async fn client_for(site: &Site, sensor: &str) -> (Register, Context) {
    let (bus, register) = site
        .register_map()
        .sensor(sensor)
        .unwrap_or_else(|| panic!("{sensor} is in the map"));
    let address: SocketAddr = bus.address.parse().expect("bus address");
    let context = tcp::connect_slave(address, Slave(register.unit))
        .await
        .expect("connects");
    (register.clone(), context)
}

/// Reads `register`'s raw words (or bit, as 0/1) within the bound.
pub async fn read_raw(
    context: &mut Context,
    register: &Register,
) -> tokio_modbus::Result<Vec<u16>> {
    let count = register.value_type.width();
    let read = async {
        match register.table {
            ModbusTable::Input => context.read_input_registers(register.address, count).await,
            ModbusTable::Holding => {
                context
                    .read_holding_registers(register.address, count)
                    .await
            }
            ModbusTable::Discrete => context
                .read_discrete_inputs(register.address, 1)
                .await
                .map(|r| r.map(|bits| vec![u16::from(bits[0])])),
            ModbusTable::Coil => context
                .read_coils(register.address, 1)
                .await
                .map(|r| r.map(|bits| vec![u16::from(bits[0])])),
        }
    };
    tokio::time::timeout(ANSWER_BOUND, read)
        .await
        .expect("the device answers within the bound")
}

/// Reads and decodes `sensor` on a fresh connection.
pub async fn read_sensor(site: &Site, sensor: &str) -> f64 {
    let (register, mut context) = client_for(site, sensor).await;
    let words = read_raw(&mut context, &register)
        .await
        .expect("a valid Modbus reply")
        .expect("no exception");
    register.decode(&words)
}

/// Reads `sensor` expecting a Modbus exception.
pub async fn read_exception(site: &Site, sensor: &str) -> ExceptionCode {
    let (register, mut context) = client_for(site, sensor).await;
    read_raw(&mut context, &register)
        .await
        .expect("a valid Modbus reply")
        .expect_err("an exception")
}
