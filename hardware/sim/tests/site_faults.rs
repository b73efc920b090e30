//! Each fault the site simulator injects does what it says, on a sensor or a whole device, and
//! clearing it brings the honest value back.

mod site_common;

use std::time::Duration;

use sim::site::{Fault, FaultTarget};
use site_common::{client_for, frozen_site, read_exception, read_raw, read_sensor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_modbus::ExceptionCode;
use tokio_modbus::client::{Reader, Writer};

/// Long enough for a healthy reply (milliseconds) many times over; a lost device never answers.
const SILENCE: Duration = Duration::from_secs(2);

fn sensor(name: &str) -> FaultTarget {
    FaultTarget::Sensor(name.to_string())
}

fn device(name: &str) -> FaultTarget {
    FaultTarget::Device(name.to_string())
}

#[tokio::test]
async fn stuck_freezes_the_value_while_the_model_moves() {
    let site = frozen_site([127, 70, 2, 1]).await;
    let handle = site.handle();
    handle
        .inject(sensor("door-1.seal-kpa"), Fault::Stuck)
        .unwrap();
    let frozen = read_sensor(&site, "door-1.seal-kpa").await;
    handle.set_door(1, true).unwrap();
    handle.advance(Duration::from_secs(5));
    assert!(
        handle.value("door-1.seal-kpa").unwrap() < frozen - 50.0,
        "the model moved"
    );
    assert_eq!(
        read_sensor(&site, "door-1.seal-kpa").await,
        frozen,
        "the register did not"
    );
    handle.clear(Some(sensor("door-1.seal-kpa"))).unwrap();
    assert!(
        read_sensor(&site, "door-1.seal-kpa").await < frozen - 50.0,
        "cleared"
    );

    // A stuck device freezes every sensor it serves, contacts too.
    handle.inject(device("site-doors"), Fault::Stuck).unwrap();
    handle.set_door(1, false).unwrap();
    assert_eq!(
        read_sensor(&site, "door-1.open").await,
        1.0,
        "still shows open"
    );
    assert_eq!(
        read_sensor(&site, "feed-1.grid-present").await,
        1.0,
        "other devices live"
    );
    handle.clear(None).unwrap();
    assert_eq!(read_sensor(&site, "door-1.open").await, 0.0);
}

#[tokio::test]
async fn lost_never_answers_and_the_client_times_out() {
    let site = frozen_site([127, 70, 2, 2]).await;
    let handle = site.handle();
    handle
        .inject(sensor("shield-1.inside"), Fault::Lost)
        .unwrap();
    let (inside, mut context) = client_for(&site, "shield-1.inside").await;
    let read = tokio::time::timeout(SILENCE, read_raw(&mut context, &inside)).await;
    assert!(read.is_err(), "no answer for a lost sensor: {read:?}");
    assert!(
        read_sensor(&site, "shield-1.outside").await > 0.0,
        "its neighbour answers"
    );

    handle.inject(device("site-power"), Fault::Lost).unwrap();
    let (feed, mut context) = client_for(&site, "feed-2.kw").await;
    let read = tokio::time::timeout(SILENCE, read_raw(&mut context, &feed)).await;
    assert!(read.is_err(), "no answer from a lost device: {read:?}");

    handle.clear(None).unwrap();
    assert!(read_sensor(&site, "shield-1.inside").await > 0.0);
    assert!(read_sensor(&site, "feed-2.kw").await > 0.0);
}

#[tokio::test]
async fn exception_answers_with_its_code() {
    let site = frozen_site([127, 70, 2, 3]).await;
    let handle = site.handle();
    handle
        .inject(
            sensor("hall-2.humidity-1"),
            Fault::Exception(ExceptionCode::IllegalDataAddress),
        )
        .unwrap();
    assert_eq!(
        read_exception(&site, "hall-2.humidity-1").await,
        ExceptionCode::IllegalDataAddress
    );
    handle
        .inject(
            device("site-safety"),
            Fault::Exception(ExceptionCode::ServerDeviceFailure),
        )
        .unwrap();
    assert_eq!(
        read_exception(&site, "arrester-1.tripped").await,
        ExceptionCode::ServerDeviceFailure
    );
    // Relay writes on a failed device are refused too, and change nothing.
    let (bus, siren) = site.register_map().relay("siren").unwrap();
    let mut context = tokio_modbus::client::tcp::connect_slave(
        bus.address.parse().unwrap(),
        tokio_modbus::Slave(siren.unit),
    )
    .await
    .unwrap();
    let write = context
        .write_single_coil(siren.address, true)
        .await
        .unwrap();
    assert_eq!(write, Err(ExceptionCode::ServerDeviceFailure));
    assert!(!handle.relay("siren").unwrap().on);
    handle.clear(None).unwrap();
    assert_eq!(read_sensor(&site, "arrester-1.tripped").await, 0.0);
}

#[tokio::test]
async fn garbage_is_not_a_modbus_frame() {
    let site = frozen_site([127, 70, 2, 4]).await;
    let handle = site.handle();
    handle
        .inject(sensor("hall-1.temperature-2"), Fault::Garbage)
        .unwrap();
    let (probe, mut context) = client_for(&site, "hall-1.temperature-2").await;
    let read = read_raw(&mut context, &probe).await;
    assert!(read.is_err(), "the client refuses the reply: {read:?}");

    // On the wire: a whole frame comes back, but not a Modbus TCP one (protocol id not 0).
    let address = site.address("site-environment").unwrap();
    let mut raw = TcpStream::connect(address).await.unwrap();
    let [high, low] = probe.address.to_be_bytes();
    // transaction 7, protocol 0, length 6, unit, function 04, address, count 1
    raw.write_all(&[0, 7, 0, 0, 0, 6, probe.unit, 4, high, low, 0, 1])
        .await
        .unwrap();
    let mut reply = [0u8; 11];
    tokio::time::timeout(Duration::from_secs(10), raw.read_exact(&mut reply))
        .await
        .expect("a reply arrives")
        .unwrap();
    assert_eq!(&reply[..2], &[0, 7], "the transaction id is kept");
    assert_ne!(
        &reply[2..4],
        &[0, 0],
        "the protocol id is not Modbus: {reply:?}"
    );
    assert_ne!(reply[7], 4, "nor is the function code");

    handle.clear(Some(sensor("hall-1.temperature-2"))).unwrap();
    let value = read_sensor(&site, "hall-1.temperature-2").await;
    assert!((value - handle.value("hall-1.temperature-2").unwrap()).abs() <= 0.05);
}

#[tokio::test]
async fn noisy_jitters_around_the_true_value() {
    let site = frozen_site([127, 70, 2, 5]).await;
    let handle = site.handle();
    let truth = handle.value("hall-1.temperature-1").unwrap();
    handle
        .inject(sensor("hall-1.temperature-1"), Fault::Noisy(3.0))
        .unwrap();
    let (probe, mut context) = client_for(&site, "hall-1.temperature-1").await;
    let mut readings = Vec::new();
    for _ in 0..20 {
        let words = read_raw(&mut context, &probe).await.unwrap().unwrap();
        readings.push(probe.decode(&words));
    }
    assert!(
        readings.iter().all(|r| (r - truth).abs() <= 3.05),
        "{readings:?} around {truth}"
    );
    let spread = readings.iter().cloned().fold(f64::MIN, f64::max)
        - readings.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread > 0.5, "the readings jitter: {readings:?}");
    handle.clear(None).unwrap();
    let words = read_raw(&mut context, &probe).await.unwrap().unwrap();
    assert!((probe.decode(&words) - truth).abs() <= 0.05);
}

#[tokio::test]
async fn unmapped_addresses_and_units_get_the_standard_exceptions() {
    let site = frozen_site([127, 70, 2, 6]).await;
    let (_, mut context) = client_for(&site, "hall-1.temperature-1").await;
    assert_eq!(
        context.read_input_registers(50, 1).await.unwrap(),
        Err(ExceptionCode::IllegalDataAddress)
    );
    assert_eq!(
        context.read_holding_registers(0, 1).await.unwrap(),
        Err(ExceptionCode::IllegalDataAddress)
    );
    assert_eq!(
        context.write_single_register(0, 1).await.unwrap(),
        Err(ExceptionCode::IllegalFunction)
    );
    // Both temperature probes in one read.
    assert_eq!(
        context
            .read_input_registers(0, 2)
            .await
            .unwrap()
            .unwrap()
            .len(),
        2
    );
    let mut stranger = tokio_modbus::client::tcp::connect_slave(
        site.address("site-environment").unwrap(),
        tokio_modbus::Slave(99),
    )
    .await
    .unwrap();
    assert_eq!(
        stranger.read_input_registers(0, 1).await.unwrap(),
        Err(ExceptionCode::GatewayTargetDevice)
    );
}
