//! Relay outputs over Modbus coils against a real Modbus TCP server: a relay is switched and
//! read back; a refused write, a relay that does not switch, and a device that is gone are
//! errors the caller sees.

mod modbus_support;

use appliance::profile::ModbusRelay;
use modbus_support::*;
use sited::modbus::Failure;
use sited::modbus::relay::{RelayBank, RelayError};
use tokio_modbus::ExceptionCode;

fn relays() -> Vec<ModbusRelay> {
    vec![
        ModbusRelay {
            name: "siren".into(),
            unit: 1,
            coil: 0,
        },
        ModbusRelay {
            name: "door-interlock".into(),
            unit: 3,
            coil: 12,
        },
    ]
}

async fn device_and_bank() -> (Device, RelayBank) {
    let device = Device::start().await;
    device.add_coil(1, 0);
    device.add_coil(3, 12);
    let bank = RelayBank::new(&device.bus(vec![], relays()), &relay_settings()).unwrap();
    (device, bank)
}

#[tokio::test]
async fn relays_switch_and_read_back() {
    let (device, mut bank) = device_and_bank().await;
    assert_eq!(
        bank.names().collect::<Vec<_>>(),
        ["siren", "door-interlock"]
    );
    bank.set("siren", true).await.unwrap();
    assert_eq!(device.coil(1, 0), Some(true));
    assert_eq!(device.coil(3, 12), Some(false), "only the siren's coil");
    assert!(bank.read("siren").await.unwrap());

    bank.set("door-interlock", true).await.unwrap();
    assert_eq!(device.coil(3, 12), Some(true));
    bank.set("siren", false).await.unwrap();
    assert_eq!(device.coil(1, 0), Some(false));
    assert!(!bank.read("siren").await.unwrap());
}

#[tokio::test]
async fn a_refused_write_is_an_error() {
    let (device, mut bank) = device_and_bank().await;
    device.refuse_writes(Some(ExceptionCode::IllegalDataValue));
    let err = bank.set("siren", true).await.unwrap_err();
    assert_eq!(
        err,
        RelayError::Failed {
            relay: "siren".into(),
            failure: Failure::Refused(ExceptionCode::IllegalDataValue)
        }
    );
    assert_eq!(
        err.to_string(),
        "relay `siren`: the device refused with exception IllegalDataValue (0x03)"
    );
    assert_eq!(device.coil(1, 0), Some(false));
    device.refuse_writes(None);
    bank.set("siren", true).await.unwrap();
}

#[tokio::test]
async fn a_relay_that_does_not_switch_is_caught_by_the_read_back() {
    let (device, mut bank) = device_and_bank().await;
    device.ignore_writes(true);
    assert_eq!(
        bank.set("siren", true).await,
        Err(RelayError::NotSwitched {
            relay: "siren".into(),
            wanted: true,
            read: false
        })
    );
}

#[tokio::test]
async fn unknown_relays_and_missing_coils_are_errors() {
    let (device, mut bank) = device_and_bank().await;
    assert_eq!(
        bank.set("beacon", true).await,
        Err(RelayError::Unknown("beacon".into()))
    );
    let mut wrong = relays();
    wrong[0].coil = 99;
    let mut bank_wrong = RelayBank::new(&device.bus(vec![], wrong), &relay_settings()).unwrap();
    assert!(matches!(
        bank_wrong.set("siren", true).await,
        Err(RelayError::Failed {
            failure: Failure::Refused(ExceptionCode::IllegalDataAddress),
            ..
        })
    ));
    // The bank still works for what exists.
    bank.set("siren", true).await.unwrap();
}

#[tokio::test]
async fn a_device_that_is_gone_or_silent_fails_the_write() {
    let (device, mut bank) = device_and_bank().await;
    bank.set("siren", true).await.unwrap();
    device.set_fault(Some(Fault::Silent)).await;
    assert!(matches!(
        bank.set("siren", false).await,
        Err(RelayError::Failed {
            failure: Failure::Timeout,
            ..
        })
    ));
    device.stop().await;
    assert!(matches!(
        bank.set("siren", false).await,
        Err(RelayError::Failed {
            failure: Failure::Unreachable(_),
            ..
        })
    ));
    device.set_fault(None).await;
    // The bank reconnects once its backoff (2 s here) has passed.
    tokio::time::timeout(HUNG, async {
        while bank.set("siren", false).await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the relay bank never reconnected");
    assert_eq!(device.coil(1, 0), Some(false));
}
