//! The Modbus register map of a `modbus-tcp` sensor bus: which registers or bits hold which
//! sensor, how to turn the raw words into a value (type, word order, scale, offset, unit), what
//! range a working probe can report, and which coils drive the site's relays (siren, beacon,
//! door interlock).
//!
//! ```toml
//! [[sensor_bus]]
//! name = "plant-modbus"
//! kind = "modbus-tcp"
//! address = "127.0.0.1:5020"
//!
//! [[sensor_bus.register]]
//! sensor = "hall-a.temp"
//! table = "input"
//! address = 0
//! type = "i16"
//! scale = 0.1
//! unit_of_measure = "°C"
//! min = -40.0
//! max = 125.0
//!
//! [[sensor_bus.register]]
//! sensor = "hall-a.door-1.open"
//! table = "discrete"
//! address = 0
//! type = "bool"
//!
//! [[sensor_bus.relay]]
//! name = "siren"
//! coil = 0
//! ```

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Profile, SensorBusKind};
use crate::config::Invalid;

/// `[[sensor_bus.register]]`: one sensor read from a Modbus device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusRegister {
    /// The sensor this reading is, as the site model and rules name it (`hall-a.temp`): 1 to
    /// 64 of `a-z 0-9 . _ -`, starting with a letter or digit, unique in the profile. Required.
    pub sensor: String,
    /// The Modbus unit (slave) id behind the bus address, 0 to 255. Default: 1.
    #[serde(default = "default_unit")]
    pub unit: u8,
    /// Which of the four Modbus tables holds it. Required.
    pub table: ModbusTable,
    /// The (zero-based, as on the wire) address of the register or bit, 0 to 65535. Required.
    pub address: u16,
    /// How the raw data is read: `u16`, `i16`, `u32`, `i32`, `f32` for registers, `bool` for
    /// coils and discrete inputs. Required.
    #[serde(rename = "type")]
    pub value_type: ModbusType,
    /// For 32-bit types, which register holds the high word: `big` (the first, the Modbus
    /// convention) or `little` (the second). Default: `big`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word_order: Option<WordOrder>,
    /// The value is `raw * scale + offset`. Numbers only. Default: 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<Finite>,
    /// See `scale`. Numbers only. Default: 0.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<Finite>,
    /// The unit of the scaled value, for people (`"°C"`, `"dB"`, `"kPa"`). Numbers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_of_measure: Option<String>,
    /// The lowest scaled value a working probe reports; below it the sensor is lost as out of
    /// range (a broken probe), not read as a value. Numbers only. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Finite>,
    /// The highest scaled value a working probe reports, as `min`. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Finite>,
}

impl ModbusRegister {
    /// `word_order`, or its default.
    pub fn word_order(&self) -> WordOrder {
        self.word_order.unwrap_or_default()
    }

    /// `scale`, or its default 1.0.
    pub fn scale(&self) -> f64 {
        self.scale.map_or(1.0, Finite::get)
    }

    /// `offset`, or its default 0.0.
    pub fn offset(&self) -> f64 {
        self.offset.map_or(0.0, Finite::get)
    }

    /// How many registers (or bits) the value spans.
    pub fn width(&self) -> u16 {
        self.value_type.width()
    }
}

/// `[[sensor_bus.relay]]`: one relay output (siren, beacon, door interlock) on a Modbus coil.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusRelay {
    /// The relay's name as rules and operators use it (`siren`, `beacon`, `door-interlock`):
    /// 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit, unique in the profile.
    /// Required.
    pub name: String,
    /// The Modbus unit id, 1 to 255 (0 is broadcast: nobody answers, so a write cannot be
    /// checked). Default: 1.
    #[serde(default = "default_unit")]
    pub unit: u8,
    /// The coil address, 0 to 65535. Required.
    pub coil: u16,
}

fn default_unit() -> u8 {
    1
}

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModbusTable {
    /// `"holding"`: read/write 16-bit registers (function 3).
    Holding,
    /// `"input"`: read-only 16-bit registers (function 4).
    Input,
    /// `"coil"`: read/write bits (function 1).
    Coil,
    /// `"discrete"`: read-only bits, discrete inputs (function 2).
    Discrete,
}

impl ModbusTable {
    /// The table as profiles spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            ModbusTable::Holding => "holding",
            ModbusTable::Input => "input",
            ModbusTable::Coil => "coil",
            ModbusTable::Discrete => "discrete",
        }
    }

    /// Whether the table holds single bits (coils, discrete inputs) rather than registers.
    pub const fn is_bits(self) -> bool {
        matches!(self, ModbusTable::Coil | ModbusTable::Discrete)
    }
}

impl fmt::Display for ModbusTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a sensor's raw data is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModbusType {
    U16,
    I16,
    U32,
    I32,
    /// IEEE 754 single precision in two registers.
    F32,
    /// One coil or discrete input.
    Bool,
}

impl ModbusType {
    /// The type as profiles spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            ModbusType::U16 => "u16",
            ModbusType::I16 => "i16",
            ModbusType::U32 => "u32",
            ModbusType::I32 => "i32",
            ModbusType::F32 => "f32",
            ModbusType::Bool => "bool",
        }
    }

    /// Registers (or bits, for `bool`) the value spans.
    pub const fn width(self) -> u16 {
        match self {
            ModbusType::U32 | ModbusType::I32 | ModbusType::F32 => 2,
            ModbusType::U16 | ModbusType::I16 | ModbusType::Bool => 1,
        }
    }
}

impl fmt::Display for ModbusType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of a 32-bit value's two registers holds the high word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WordOrder {
    /// `"big"`: the first register holds the high word (the Modbus convention).
    #[default]
    Big,
    /// `"little"`: the first register holds the low word (many PLCs and meters).
    Little,
}

/// A finite number (no NaN or infinity), so register maps compare and scale sanely.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Finite(f64);

// NaN is refused on construction, so equality is total.
impl Eq for Finite {}

/// A number that is NaN or infinite where a finite one is needed.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("{0} is not a finite number")]
pub struct NotFinite(pub f64);

impl Finite {
    pub fn new(value: f64) -> Result<Finite, NotFinite> {
        if value.is_finite() {
            Ok(Finite(value))
        } else {
            Err(NotFinite(value))
        }
    }

    pub const fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Finite {
    type Error = NotFinite;
    fn try_from(value: f64) -> Result<Finite, NotFinite> {
        Finite::new(value)
    }
}

impl From<Finite> for f64 {
    fn from(value: Finite) -> f64 {
        value.0
    }
}

/// What [`is_sensor_name`] accepts, for messages (the same rule as sited's sensor ids).
const SENSOR_NAME_RULE: &str =
    "must be 1 to 64 characters of a-z, 0-9, `.`, `_` and `-`, starting with a letter or digit";

/// A sensor or relay name: sited's `SensorId` rule, checked here so the profile is refused at
/// build time rather than when sited starts.
pub fn is_sensor_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c))
}

/// Every problem with the register maps and relays of `profile`'s buses, in file order.
pub(super) fn check(profile: &Profile, problems: &mut Vec<Invalid>) {
    // Sensor and relay names are global: rules refer to them without the bus.
    let mut sensors: HashMap<&str, String> = HashMap::new();
    let mut relays: HashMap<&str, String> = HashMap::new();
    for (b, bus) in profile.sensor_buses.iter().enumerate() {
        let bus_key = format!("sensor_bus[{b}]");
        if bus.kind != SensorBusKind::ModbusTcp {
            let kind = bus.kind;
            for (what, count) in [
                ("register", bus.registers.len()),
                ("relay", bus.relays.len()),
            ] {
                if count > 0 {
                    problems.push(Invalid::new(
                        format!("{bus_key}.{what}[0]"),
                        format!("a `{kind}` bus has no Modbus {what}s; `{what}` entries belong on a `modbus-tcp` bus"),
                    ));
                }
            }
            continue;
        }
        for (i, register) in bus.registers.iter().enumerate() {
            let key = format!("{bus_key}.register[{i}]");
            check_register(&key, register, problems);
            if let Some(first) = sensors.get(register.sensor.as_str()) {
                problems.push(Invalid::new(
                    format!("{key}.sensor"),
                    format!("`{}` is already the sensor of {first}", register.sensor),
                ));
            } else {
                sensors.insert(&register.sensor, key);
            }
        }
        let mut coils: HashMap<(u8, u16), usize> = HashMap::new();
        for (i, relay) in bus.relays.iter().enumerate() {
            let key = format!("{bus_key}.relay[{i}]");
            check_relay(&key, relay, problems);
            if let Some(first) = relays.get(relay.name.as_str()) {
                problems.push(Invalid::new(
                    format!("{key}.name"),
                    format!("`{}` is already the name of {first}", relay.name),
                ));
            } else {
                relays.insert(&relay.name, key.clone());
            }
            if let Some(first) = coils.insert((relay.unit, relay.coil), i) {
                problems.push(Invalid::new(
                    format!("{key}.coil"),
                    format!(
                        "coil {} of unit {} already drives {bus_key}.relay[{first}]",
                        relay.coil, relay.unit
                    ),
                ));
                coils.insert((relay.unit, relay.coil), first);
            }
        }
    }
}

fn check_register(key: &str, register: &ModbusRegister, problems: &mut Vec<Invalid>) {
    let mut complain = |field: &str, reason: String| {
        problems.push(Invalid::new(format!("{key}.{field}"), reason));
    };
    if !is_sensor_name(&register.sensor) {
        complain(
            "sensor",
            format!("`{}` {SENSOR_NAME_RULE}", register.sensor),
        );
    }
    let (table, value_type) = (register.table, register.value_type);
    match (table.is_bits(), value_type == ModbusType::Bool) {
        (true, false) => complain(
            "type",
            format!(
                "a `{table}` entry is a single bit: its type must be `bool`, not `{value_type}`"
            ),
        ),
        (false, true) => complain(
            "type",
            format!(
                "a `{table}` register holds a number: use u16, i16, u32, i32 or f32, not `bool`"
            ),
        ),
        _ => {}
    }
    if value_type.width() == 2 && register.address == u16::MAX {
        complain(
            "address",
            format!(
                "a `{value_type}` takes two registers; 65535 is the last address, so it has no second one"
            ),
        );
    }
    if register.word_order.is_some() && value_type.width() != 2 {
        complain(
            "word_order",
            format!("only 32-bit types (u32, i32, f32) have a word order, not `{value_type}`"),
        );
    }
    if value_type == ModbusType::Bool {
        for (field, set) in [
            ("scale", register.scale.is_some()),
            ("offset", register.offset.is_some()),
            ("unit_of_measure", register.unit_of_measure.is_some()),
            ("min", register.min.is_some()),
            ("max", register.max.is_some()),
        ] {
            if set {
                complain(
                    field,
                    "a contact (`bool`) has no scale, offset, unit or range".into(),
                );
            }
        }
        return;
    }
    if register.scale() == 0.0 {
        complain(
            "scale",
            "0 would read every value as the offset; use a non-zero scale".into(),
        );
    }
    if let Some(unit) = &register.unit_of_measure
        && (unit.is_empty() || unit.chars().count() > 16 || unit.chars().any(char::is_control))
    {
        complain(
            "unit_of_measure",
            format!("`{unit}` must be 1 to 16 characters on one line, like \"°C\" or \"kPa\""),
        );
    }
    if let (Some(min), Some(max)) = (register.min, register.max)
        && min.get() > max.get()
    {
        complain("min", format!("{} is above max {}", min.get(), max.get()));
    }
}

fn check_relay(key: &str, relay: &ModbusRelay, problems: &mut Vec<Invalid>) {
    if !is_sensor_name(&relay.name) {
        problems.push(Invalid::new(
            format!("{key}.name"),
            format!("`{}` {SENSOR_NAME_RULE}", relay.name),
        ));
    }
    if relay.unit == 0 {
        problems.push(Invalid::new(
            format!("{key}.unit"),
            "unit 0 is broadcast: no device answers, so a relay write could never be checked",
        ));
    }
}
