use super::*;
use crate::cgminer::parse_reply;

const S9_VERSION: &[u8] = include_bytes!("../../tests/fixtures/bmminer_s9_version.json");
const BOSMINER: &[u8] = include_bytes!(
    "../../tests/fixtures/bosminer_version+summary+devs+devdetails+temps+fans+tunerstatus+pools.json"
);

#[test]
fn stock_antminer_is_named_by_its_version_record() {
    let reply = parse_reply("version", S9_VERSION).unwrap();
    let Probe::Identified(id) = identify(&reply) else {
        panic!("not identified")
    };
    assert_eq!(id.firmware, FirmwareKind::Bmminer);
    assert_eq!(id.model.as_deref(), Some("Antminer S9"));
    assert_eq!(id.firmware_version.as_deref(), Some("2.0.0"));
}

#[test]
fn bosminer_takes_its_model_from_devdetails() {
    let reply = parse_reply(
        "version+summary+devs+devdetails+temps+fans+tunerstatus+pools",
        BOSMINER,
    )
    .unwrap();
    let Probe::Identified(id) = identify(&reply) else {
        panic!("not identified")
    };
    assert_eq!(id.firmware, FirmwareKind::Bosminer);
    assert_eq!(id.model.as_deref(), Some("Antminer S9"));
    assert_eq!(id.firmware_version.as_deref(), Some("0.2.0-36c56a9363"));
}

#[test]
fn mac_and_serial_are_read_when_reported() {
    let reply = parse_reply(
        "version",
        br#"{"STATUS":[{"STATUS":"S","Description":"cgminer 4.11.1"}],"VERSION":[{"CGMiner":"4.11.1","Type":"Avalon 1246","MAC":"00:11:22:33:44:55","SerialNo":" A1246X9 "}]}"#,
    )
    .unwrap();
    let Probe::Identified(id) = identify(&reply) else {
        panic!("not identified")
    };
    assert_eq!(id.mac.as_deref(), Some("00:11:22:33:44:55"));
    assert_eq!(id.serial.as_deref(), Some("A1246X9"));
}

#[test]
fn a_listener_that_names_nothing_is_unidentified() {
    let reply = parse_reply(
        "version",
        br#"{"STATUS":[{"STATUS":"S","Description":"toaster 1.0"}],"VERSION":[{"API":"3.1"}]}"#,
    )
    .unwrap();
    assert_eq!(identify(&reply), Probe::Failed(PollFailure::Unidentified));
}
