//! The Modbus poller against a real Modbus TCP server (tokio-modbus's, over a register bank the
//! test changes and faults): values decode as the map says, changes show in the next poll,
//! and every fault (exception, silence, closed connections, refused connections, garbage,
//! a value out of range) makes the sensors lost with the right reason by the next poll, and a
//! sample comes back when the fault ends.

mod modbus_support;

use appliance::profile::{Finite, ModbusRegister, ModbusTable, ModbusType, WordOrder};
use modbus_support::*;
use sited::modbus::poller::ModbusPoller;
use sited::sensor::{LostReason, SensorEvent, Value};
use tokio::sync::mpsc;
use tokio_modbus::ExceptionCode;

fn register(
    sensor: &str,
    table: ModbusTable,
    address: u16,
    value_type: ModbusType,
) -> ModbusRegister {
    ModbusRegister {
        sensor: sensor.into(),
        unit: 1,
        table,
        address,
        value_type,
        word_order: None,
        scale: None,
        offset: None,
        unit_of_measure: None,
        min: None,
        max: None,
    }
}

fn finite(value: f64) -> Option<Finite> {
    Some(Finite::new(value).unwrap())
}

/// The plant's map: a temperature (i16, 0.1 °C, -40..125), an energy counter (u32, little
/// word order), a shielding attenuation (f32, big word order) on unit 2, a door contact.
fn plant_map() -> Vec<ModbusRegister> {
    let mut temp = register("hall-a.temp", ModbusTable::Input, 0, ModbusType::I16);
    temp.scale = finite(0.1);
    temp.min = finite(-40.0);
    temp.max = finite(125.0);
    temp.unit_of_measure = Some("°C".into());
    let mut energy = register("feed.energy_kwh", ModbusTable::Input, 1, ModbusType::U32);
    energy.word_order = Some(WordOrder::Little);
    let mut shield = register(
        "shield.attenuation_db",
        ModbusTable::Holding,
        100,
        ModbusType::F32,
    );
    shield.unit = 2;
    shield.offset = finite(-0.5);
    let door = register(
        "hall-a.door-1.open",
        ModbusTable::Discrete,
        7,
        ModbusType::Bool,
    );
    vec![temp, energy, shield, door]
}

async fn plant_device() -> Device {
    let device = Device::start().await;
    device.set_input(1, 0, (-123i16) as u16); // -12.3 °C
    device.set_input(1, 1, 0x0002); // low word first: 0x0001_0002 = 65538
    device.set_input(1, 2, 0x0001);
    let bits = 80.5f32.to_bits();
    device.set_holding(2, 100, (bits >> 16) as u16);
    device.set_holding(2, 101, bits as u16);
    device.set_discrete(1, 7, true);
    device
}

fn start_poller(device: &Device) -> mpsc::Receiver<SensorEvent> {
    let (tx, rx) = mpsc::channel(256);
    let poller = ModbusPoller::new(&device.bus(plant_map(), vec![]), &fast_settings(), tx).unwrap();
    tokio::spawn(poller.run());
    rx
}

fn number(value: Value) -> f64 {
    match value {
        Value::Number(n) => n,
        Value::Contact(_) => panic!("a number expected"),
    }
}

#[tokio::test]
async fn values_decode_as_the_map_says_and_changes_show_in_the_next_poll() {
    let device = plant_device().await;
    let mut events = start_poller(&device);
    let temp = number(next_sample(&mut events, "hall-a.temp").await);
    assert!((temp - -12.3).abs() < 1e-9, "{temp}");
    assert_eq!(
        next_sample(&mut events, "feed.energy_kwh").await,
        Value::Number(65538.0)
    );
    assert_eq!(
        next_sample(&mut events, "shield.attenuation_db").await,
        Value::Number(80.0)
    );
    assert_eq!(
        next_sample(&mut events, "hall-a.door-1.open").await,
        Value::Contact(true)
    );

    device.set_input(1, 0, 215);
    device.set_discrete(1, 7, false);
    drain(&mut events);
    // The poll under way may still carry the old value; the one after has the new one.
    let (event, before) = wait_for(&mut events, "hall-a.temp", |e| {
        matches!(e, SensorEvent::Sample { value: Value::Number(n), .. } if (n - 21.5).abs() < 1e-9)
    })
    .await;
    assert!(before <= 1, "{before} old samples before {event:?}");
    let (_, before) = wait_for(&mut events, "hall-a.door-1.open", |e| {
        matches!(
            e,
            SensorEvent::Sample {
                value: Value::Contact(false),
                ..
            }
        )
    })
    .await;
    assert!(before <= 1);
}

#[tokio::test]
async fn the_map_is_read_in_few_requests() {
    let device = plant_device().await;
    let (tx, _rx) = mpsc::channel(16);
    let poller = ModbusPoller::new(&device.bus(plant_map(), vec![]), &fast_settings(), tx).unwrap();
    // Input 0..3 of unit 1 in one request, the door bit, unit 2's float.
    assert_eq!(poller.blocks().len(), 3);
}

#[tokio::test]
async fn an_exception_makes_every_sensor_lost_as_refused_until_it_ends() {
    let device = plant_device().await;
    let mut events = start_poller(&device);
    next_sample(&mut events, "hall-a.temp").await;
    drain(&mut events);
    device
        .set_fault(Some(Fault::Exception(ExceptionCode::ServerDeviceFailure)))
        .await;
    for sensor in ["hall-a.temp", "shield.attenuation_db", "hall-a.door-1.open"] {
        let reason = lost_within_two_polls(&mut events, sensor, |r| {
            matches!(r, LostReason::Refused { .. })
        })
        .await;
        assert_eq!(
            reason,
            LostReason::Refused {
                detail: "ServerDeviceFailure (0x04)".into()
            }
        );
    }
    device.set_fault(None).await;
    next_sample(&mut events, "hall-a.temp").await;
    next_sample(&mut events, "hall-a.door-1.open").await;
}

#[tokio::test]
async fn an_unmapped_address_is_refused_for_its_own_sensors_only() {
    let device = plant_device().await;
    let mut map = plant_map();
    map.push(register(
        "spare",
        ModbusTable::Holding,
        500,
        ModbusType::U16,
    ));
    let (tx, mut events) = mpsc::channel(256);
    let poller = ModbusPoller::new(&device.bus(map, vec![]), &fast_settings(), tx).unwrap();
    tokio::spawn(poller.run());
    let reason = lost_within_two_polls(&mut events, "spare", |_| true).await;
    assert_eq!(
        reason,
        LostReason::Refused {
            detail: "IllegalDataAddress (0x02)".into()
        }
    );
    // The device answered: the other sensors on it are fine.
    next_sample(&mut events, "hall-a.temp").await;
    device.set_holding(1, 500, 7);
    assert_eq!(next_sample(&mut events, "spare").await, Value::Number(7.0));
}

#[tokio::test]
async fn a_device_that_stops_answering_times_out() {
    let device = plant_device().await;
    let mut events = start_poller(&device);
    next_sample(&mut events, "hall-a.temp").await;
    drain(&mut events);
    device.set_fault(Some(Fault::Silent)).await;
    for sensor in [
        "hall-a.temp",
        "feed.energy_kwh",
        "shield.attenuation_db",
        "hall-a.door-1.open",
    ] {
        let reason =
            lost_within_two_polls(&mut events, sensor, |r| *r == LostReason::Timeout).await;
        assert_eq!(reason, LostReason::Timeout);
    }
    device.set_fault(None).await;
    next_sample(&mut events, "shield.attenuation_db").await;
}

#[tokio::test]
async fn closed_and_refused_connections_make_the_sensors_unreachable() {
    let device = plant_device().await;
    let mut events = start_poller(&device);
    next_sample(&mut events, "hall-a.temp").await;
    drain(&mut events);
    device.set_fault(Some(Fault::Close)).await;
    let unreachable = |r: &LostReason| matches!(r, LostReason::Unreachable { .. });
    lost_within_two_polls(&mut events, "hall-a.temp", unreachable).await;
    lost_within_two_polls(&mut events, "hall-a.door-1.open", unreachable).await;

    // Gone altogether: connecting is refused.
    device.stop().await;
    drain(&mut events);
    let reason = lost_within_two_polls(&mut events, "hall-a.temp", unreachable).await;
    assert!(format!("{reason}").contains("refused"), "{reason}");

    // Back: the poller reconnects (its backoff is at most 400 ms here) and reads again.
    device.set_fault(None).await;
    next_sample(&mut events, "hall-a.temp").await;
    next_sample(&mut events, "hall-a.door-1.open").await;
}

#[tokio::test]
async fn garbage_instead_of_modbus_is_malformed() {
    let device = plant_device().await;
    let mut events = start_poller(&device);
    next_sample(&mut events, "hall-a.temp").await;
    drain(&mut events);
    device.set_fault(Some(Fault::Garbage)).await;
    let malformed = |r: &LostReason| matches!(r, LostReason::Malformed { .. });
    for sensor in ["hall-a.temp", "shield.attenuation_db", "hall-a.door-1.open"] {
        let reason = lost_within_two_polls(&mut events, sensor, malformed).await;
        assert!(format!("{reason}").contains("protocol"), "{reason}");
    }
    device.set_fault(None).await;
    next_sample(&mut events, "hall-a.temp").await;
}

#[tokio::test]
async fn a_short_answer_is_malformed_for_its_own_sensors_only() {
    let device = plant_device().await;
    let mut events = start_poller(&device);
    next_sample(&mut events, "hall-a.temp").await;
    drain(&mut events);
    device.set_fault(Some(Fault::ShortRegisters)).await;
    let reason = lost_within_two_polls(&mut events, "hall-a.temp", |r| {
        matches!(r, LostReason::Malformed { .. })
    })
    .await;
    assert_eq!(
        reason,
        LostReason::Malformed {
            detail: "asked for 3 registers, got 2".into()
        }
    );
    // The device still answers: the bits after the short registers are read.
    drain(&mut events);
    next_sample(&mut events, "hall-a.door-1.open").await;
    device.set_fault(None).await;
    next_sample(&mut events, "feed.energy_kwh").await;
}

#[tokio::test]
async fn an_out_of_range_value_is_a_broken_probe_not_a_reading() {
    let device = plant_device().await;
    let mut events = start_poller(&device);
    next_sample(&mut events, "hall-a.temp").await;
    drain(&mut events);
    device.set_input(1, 0, 0x7FFF); // 3276.7 °C: the probe is open-circuit
    let reason = lost_within_two_polls(&mut events, "hall-a.temp", |r| {
        matches!(r, LostReason::OutOfRange { .. })
    })
    .await;
    let LostReason::OutOfRange { value, min, max } = reason else {
        unreachable!()
    };
    assert!((value - 3276.7).abs() < 1e-9 && min == -40.0 && max == 125.0);
    // The other sensors of the same request are still read.
    next_sample(&mut events, "feed.energy_kwh").await;
    device.set_input(1, 0, 200);
    assert_eq!(
        next_sample(&mut events, "hall-a.temp").await,
        Value::Number(20.0)
    );
}

#[tokio::test]
async fn the_poller_stops_when_nobody_listens() {
    let device = plant_device().await;
    let (tx, rx) = mpsc::channel(1);
    let poller = ModbusPoller::new(&device.bus(plant_map(), vec![]), &fast_settings(), tx).unwrap();
    let task = tokio::spawn(poller.run());
    drop(rx);
    tokio::time::timeout(HUNG, task)
        .await
        .expect("the poller kept running")
        .unwrap();
}
