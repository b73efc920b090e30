//! Register maps and relays of `modbus-tcp` buses: what parses, the defaults, and every refusal
//! pointing at its line.

use std::fs;

use tempfile::TempDir;

use super::tests::{MINIMAL, errors};
use super::*;

fn load(text: &str) -> Profile {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("profile.toml");
    fs::write(&path, text).unwrap();
    Profile::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

const BUS: &str = r#"
[[sensor_bus]]
name = "plant"
kind = "modbus-tcp"
address = "127.0.0.1:5020"
"#;

#[test]
fn a_register_map_parses_with_its_defaults() {
    let text = format!(
        r#"{MINIMAL}{BUS}
[[sensor_bus.register]]
sensor = "hall-a.temp"
table = "input"
address = 0
type = "i16"
scale = 0.1
unit_of_measure = "°C"
min = -40
max = 125.5

[[sensor_bus.register]]
sensor = "shield.attenuation_db"
unit = 3
table = "holding"
address = 10
type = "f32"
word_order = "little"
offset = -2.5

[[sensor_bus.register]]
sensor = "hall-a.door-1.open"
table = "discrete"
address = 7
type = "bool"

[[sensor_bus.relay]]
name = "siren"
coil = 0

[[sensor_bus.relay]]
name = "door-interlock"
unit = 2
coil = 0
"#
    );
    let profile = load(&text);
    let bus = profile.sensor_bus("plant").unwrap();
    let [temp, shield, door] = bus.registers.as_slice() else {
        panic!("three registers expected: {:?}", bus.registers);
    };
    assert_eq!(temp.unit, 1);
    assert_eq!(temp.table, ModbusTable::Input);
    assert_eq!(temp.value_type, ModbusType::I16);
    assert_eq!(temp.scale(), 0.1);
    assert_eq!(temp.offset(), 0.0);
    assert_eq!(temp.word_order(), WordOrder::Big);
    assert_eq!(temp.unit_of_measure.as_deref(), Some("°C"));
    assert_eq!(temp.min.map(Finite::get), Some(-40.0));
    assert_eq!(temp.max.map(Finite::get), Some(125.5));
    assert_eq!((shield.unit, shield.address, shield.width()), (3, 10, 2));
    assert_eq!(shield.word_order(), WordOrder::Little);
    assert_eq!((shield.scale(), shield.offset()), (1.0, -2.5));
    assert_eq!(
        (door.table, door.value_type),
        (ModbusTable::Discrete, ModbusType::Bool)
    );
    assert_eq!(
        bus.relays,
        vec![
            ModbusRelay {
                name: "siren".into(),
                unit: 1,
                coil: 0
            },
            ModbusRelay {
                name: "door-interlock".into(),
                unit: 2,
                coil: 0
            },
        ]
    );
    // What is written back reads the same (bunkerctl shows profiles as TOML).
    let again: Profile = toml::from_str(&toml::to_string(&profile).unwrap()).unwrap();
    assert_eq!(again, profile);
}

#[test]
fn a_bus_without_a_map_is_still_valid() {
    let profile = load(&format!("{MINIMAL}{BUS}"));
    let bus = profile.sensor_bus("plant").unwrap();
    assert!(bus.registers.is_empty() && bus.relays.is_empty());
}

#[test]
fn bad_register_entries_are_refused_at_their_line() {
    let text = format!(
        r#"{MINIMAL}{BUS}
[[sensor_bus.register]]
sensor = "Hall A"
table = "holding"
address = 1
type = "bool"

[[sensor_bus.register]]
sensor = "door"
table = "coil"
address = 2
type = "u16"

[[sensor_bus.register]]
sensor = "energy"
table = "input"
address = 65535
type = "u32"

[[sensor_bus.register]]
sensor = "temp"
table = "input"
address = 3
type = "i16"
word_order = "little"
scale = 0
min = 50
max = 10

[[sensor_bus.register]]
sensor = "temp"
table = "discrete"
address = 4
type = "bool"
unit_of_measure = "°C"
"#
    );
    assert_eq!(
        errors(&text),
        [
            "P:22:1: `sensor_bus[0].register[0].sensor`: `Hall A` must be 1 to 64 characters of a-z, 0-9, `.`, `_` and `-`, starting with a letter or digit",
            "P:25:1: `sensor_bus[0].register[0].type`: a `holding` register holds a number: use u16, i16, u32, i32 or f32, not `bool`",
            "P:31:1: `sensor_bus[0].register[1].type`: a `coil` entry is a single bit: its type must be `bool`, not `u16`",
            "P:36:1: `sensor_bus[0].register[2].address`: a `u32` takes two registers; 65535 is the last address, so it has no second one",
            "P:44:1: `sensor_bus[0].register[3].word_order`: only 32-bit types (u32, i32, f32) have a word order, not `i16`",
            "P:45:1: `sensor_bus[0].register[3].scale`: 0 would read every value as the offset; use a non-zero scale",
            "P:46:1: `sensor_bus[0].register[3].min`: 50 is above max 10",
            "P:54:1: `sensor_bus[0].register[4].unit_of_measure`: a contact (`bool`) has no scale, offset, unit or range",
            "P:50:1: `sensor_bus[0].register[4].sensor`: `temp` is already the sensor of sensor_bus[0].register[3]",
        ]
    );
}

#[test]
fn unknown_tables_types_and_numbers_are_refused_by_the_parser() {
    let entry =
        |body: &str| format!("{MINIMAL}{BUS}\n[[sensor_bus.register]]\nsensor = \"t\"\n{body}\n");
    for (body, expected) in [
        (
            "table = \"eeprom\"\naddress = 0\ntype = \"u16\"",
            "unknown value `eeprom`",
        ),
        (
            "table = \"input\"\naddress = 0\ntype = \"u64\"",
            "unknown value `u64`",
        ),
        (
            "table = \"input\"\naddress = 70000\ntype = \"u16\"",
            "70000",
        ),
        (
            "table = \"input\"\naddress = 0\ntype = \"u16\"\nscale = nan",
            "not a finite number",
        ),
        (
            "table = \"input\"\naddress = 0\ntype = \"u16\"\nword_order = \"middle\"",
            "unknown value `middle`",
        ),
        (
            "table = \"input\"\naddress = 0\ntype = \"u16\"\ngain = 2",
            "unknown key `gain`",
        ),
        (
            "unit = 256\ntable = \"input\"\naddress = 0\ntype = \"u16\"",
            "256",
        ),
    ] {
        let lines = errors(&entry(body));
        assert!(
            lines.len() == 1 && lines[0].starts_with("P:2") && lines[0].contains(expected),
            "{body}: {lines:?}"
        );
    }
}

#[test]
fn relays_are_checked() {
    let text = format!(
        r#"{MINIMAL}{BUS}
[[sensor_bus.relay]]
name = "siren"
coil = 0

[[sensor_bus.relay]]
name = "Beacon!"
unit = 0
coil = 0

[[sensor_bus.relay]]
name = "siren"
coil = 1

[[sensor_bus]]
name = "ups"
kind = "nut"
address = "127.0.0.1:3493"

[[sensor_bus.relay]]
name = "ups-bypass"
coil = 0

[[sensor_bus.register]]
sensor = "ups.charge"
table = "input"
address = 0
type = "u16"
"#
    );
    assert_eq!(
        errors(&text),
        [
            "P:26:1: `sensor_bus[0].relay[1].name`: `Beacon!` must be 1 to 64 characters of a-z, 0-9, `.`, `_` and `-`, starting with a letter or digit",
            "P:27:1: `sensor_bus[0].relay[1].unit`: unit 0 is broadcast: no device answers, so a relay write could never be checked",
            "P:31:1: `sensor_bus[0].relay[2].name`: `siren` is already the name of sensor_bus[0].relay[0]",
            "P:43:1: `sensor_bus[1].register[0]`: a `nut` bus has no Modbus registers; `register` entries belong on a `modbus-tcp` bus",
            "P:39:1: `sensor_bus[1].relay[0]`: a `nut` bus has no Modbus relays; `relay` entries belong on a `modbus-tcp` bus",
        ]
    );
}

#[test]
fn the_same_coil_cannot_drive_two_relays() {
    let text = format!(
        "{MINIMAL}{BUS}\n[[sensor_bus.relay]]\nname = \"siren\"\ncoil = 4\n\n[[sensor_bus.relay]]\nname = \"beacon\"\ncoil = 4\n"
    );
    assert_eq!(
        errors(&text),
        [
            "P:27:1: `sensor_bus[0].relay[1].coil`: coil 4 of unit 1 already drives sensor_bus[0].relay[0]"
        ]
    );
}

#[test]
fn sensor_names_follow_sited_rule() {
    assert!(is_sensor_name("hall-a.door-1.open"));
    assert!(is_sensor_name("ups.charge_pct"));
    for bad in ["", "Hall", ".door", "door 1", "door/1", &"x".repeat(65)] {
        assert!(!is_sensor_name(bad), "{bad}");
    }
}

/// The map suggested for the QEMU profile's `plant-modbus` bus (the integrator's README and
/// profile use it once the site simulator serves it).
const PLANT_EXAMPLE: &str = r#"
[[sensor_bus]]
name = "plant-modbus"
kind = "modbus-tcp"
address = "127.0.0.1:5020"

# Hall temperature: signed tenths of a degree; outside -40..125 °C the probe is broken.
[[sensor_bus.register]]
sensor = "hall-a.temp"
table = "input"
address = 0
type = "i16"
scale = 0.1
unit_of_measure = "°C"
min = -40.0
max = 125.0

# Shielding-effectiveness proxy (outside vs inside field probe), a float in dB.
[[sensor_bus.register]]
sensor = "shield.attenuation_db"
table = "input"
address = 10
type = "f32"
unit_of_measure = "dB"
min = 0.0
max = 200.0

# Door seal pressure in hundredths of a kPa.
[[sensor_bus.register]]
sensor = "door-1.seal_kpa"
table = "input"
address = 20
type = "u16"
scale = 0.01
unit_of_measure = "kPa"
min = 0.0
max = 600.0

# Door cycle counter; this controller puts the low word first.
[[sensor_bus.register]]
sensor = "door-1.cycles"
table = "input"
address = 30
type = "u32"
word_order = "little"

[[sensor_bus.register]]
sensor = "door-1.open"
table = "discrete"
address = 0
type = "bool"

[[sensor_bus.register]]
sensor = "hall-a.intrusion"
table = "discrete"
address = 1
type = "bool"

[[sensor_bus.register]]
sensor = "arrester-1.tripped"
table = "discrete"
address = 2
type = "bool"

[[sensor_bus.relay]]
name = "siren"
coil = 0

[[sensor_bus.relay]]
name = "beacon"
coil = 1

[[sensor_bus.relay]]
name = "door-interlock"
coil = 2
"#;

#[test]
fn the_example_plant_map_loads() {
    let profile = load(&format!("{MINIMAL}{PLANT_EXAMPLE}"));
    let bus = profile.sensor_bus("plant-modbus").unwrap();
    assert_eq!(bus.registers.len(), 7);
    assert_eq!(bus.relays.len(), 3);
}
