//! The register map the site simulator serves, as data: which sensor sits at which unit id,
//! table and address, how its words decode (type, word order, scale, offset) and its valid
//! range; and which coils are relays. `to_toml` renders it as the hardware profile's
//! `[[sensor_bus]]` entries with their `[[sensor_bus.register]]` and `[[sensor_bus.relay]]`
//! lists, so a profile for the simulated site is printed, never typed by hand.

use std::net::SocketAddr;

use appliance::profile::{Finite, ModbusRegister, ModbusRelay, SensorBus, SensorBusKind};
pub use appliance::profile::{ModbusTable, ModbusType, WordOrder};
use serde::Serialize;

use super::spec::SiteSpec;

/// The physical quantity behind a register: what the model is asked for. Indices count from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantity {
    HallTemperature { hall: u16, probe: u16 },
    HallHumidity { hall: u16, probe: u16 },
    CoolingPower { hall: u16 },
    GridPresent { feed: u16 },
    GeneratorRunning { feed: u16 },
    FeedPower { feed: u16 },
    OutsideField { zone: u16 },
    InsideField { zone: u16 },
    DoorOpen { door: u16 },
    DoorLatched { door: u16 },
    SealPressure { door: u16 },
    DoorCycles { door: u16 },
    FilterTripped { filter: u16 },
    ArresterTripped { arrester: u16 },
    Intrusion { contact: u16 },
}

/// The relay a coil drives. Indices count from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relay {
    Cooling { hall: u16 },
    DoorInterlock { door: u16 },
    Siren,
    Beacon,
}

/// One sensor's place on the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Register {
    pub sensor: String,
    pub unit: u8,
    pub table: ModbusTable,
    pub address: u16,
    pub value_type: ModbusType,
    pub word_order: WordOrder,
    /// value = raw × scale + offset
    pub scale: f64,
    pub offset: f64,
    /// Empty for contacts.
    pub unit_of_measure: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub quantity: Quantity,
}

/// One relay coil.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayCoil {
    pub name: String,
    pub unit: u8,
    pub address: u16,
    pub relay: Relay,
}

/// One Modbus TCP server (a gateway with several unit ids) and what it serves.
#[derive(Debug, Clone, PartialEq)]
pub struct Bus {
    pub name: String,
    pub address: String,
    pub registers: Vec<Register>,
    pub relays: Vec<RelayCoil>,
}

/// Everything the simulated site serves.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterMap {
    pub buses: Vec<Bus>,
}

impl Register {
    /// The entry as the hardware profile declares it: defaults left out, and word order,
    /// scale, offset, unit and range only where the profile takes them (numbers; word order
    /// for 32-bit values only).
    pub fn to_profile(&self) -> ModbusRegister {
        let number = self.value_type != ModbusType::Bool;
        let finite = |v: f64| Finite::try_from(v).expect("the map's numbers are finite");
        ModbusRegister {
            sensor: self.sensor.clone(),
            unit: self.unit,
            table: self.table,
            address: self.address,
            value_type: self.value_type,
            word_order: (self.value_type.width() == 2).then_some(self.word_order),
            scale: (number && self.scale != 1.0).then(|| finite(self.scale)),
            offset: (number && self.offset != 0.0).then(|| finite(self.offset)),
            unit_of_measure: (number && !self.unit_of_measure.is_empty())
                .then(|| self.unit_of_measure.clone()),
            min: self.min.filter(|_| number).map(finite),
            max: self.max.filter(|_| number).map(finite),
        }
    }
}

impl Bus {
    /// The device as a hardware profile's `[[sensor_bus]]`.
    pub fn to_profile(&self) -> SensorBus {
        SensorBus {
            name: self.name.clone(),
            kind: SensorBusKind::ModbusTcp,
            address: Some(self.address.clone()),
            registers: self.registers.iter().map(Register::to_profile).collect(),
            relays: self
                .relays
                .iter()
                .map(|r| ModbusRelay {
                    name: r.name.clone(),
                    unit: r.unit,
                    coil: r.address,
                })
                .collect(),
        }
    }
}

/// The site's devices, in the order their ports count up from the base address.
pub const DEVICES: [&str; 5] = [
    "site-environment",
    "site-power",
    "site-shielding",
    "site-doors",
    "site-safety",
];

/// Where each block of a unit's addresses starts (room for [`super::spec::MAX_PER_BLOCK`]).
const BLOCK: u16 = 100;

impl Register {
    /// The raw words for an engineering value, clamped to what the type can hold.
    pub fn encode(&self, value: f64) -> Vec<u16> {
        let raw = (value - self.offset) / self.scale;
        let pair = |bits: u32| {
            let (high, low) = ((bits >> 16) as u16, bits as u16);
            match self.word_order {
                WordOrder::Big => vec![high, low],
                WordOrder::Little => vec![low, high],
            }
        };
        match self.value_type {
            ModbusType::U16 => vec![raw.round().clamp(0.0, u16::MAX as f64) as u16],
            ModbusType::I16 => {
                vec![raw.round().clamp(i16::MIN as f64, i16::MAX as f64) as i16 as u16]
            }
            ModbusType::U32 => pair(raw.round().clamp(0.0, u32::MAX as f64) as u32),
            ModbusType::I32 => {
                pair(raw.round().clamp(i32::MIN as f64, i32::MAX as f64) as i32 as u32)
            }
            ModbusType::F32 => pair((raw as f32).to_bits()),
            ModbusType::Bool => vec![u16::from(value != 0.0)],
        }
    }

    /// The engineering value of raw words read from the bus (`words.len()` must be
    /// `value_type.width()`); what a driver does with this map.
    pub fn decode(&self, words: &[u16]) -> f64 {
        let bits = || match self.word_order {
            WordOrder::Big => (u32::from(words[0]) << 16) | u32::from(words[1]),
            WordOrder::Little => (u32::from(words[1]) << 16) | u32::from(words[0]),
        };
        let raw = match self.value_type {
            ModbusType::U16 => f64::from(words[0]),
            ModbusType::I16 => f64::from(words[0] as i16),
            ModbusType::U32 => f64::from(bits()),
            ModbusType::I32 => f64::from(bits() as i32),
            ModbusType::F32 => f64::from(f32::from_bits(bits())),
            ModbusType::Bool => return f64::from(u8::from(words[0] != 0)),
        };
        raw * self.scale + self.offset
    }
}

/// The `n`th unit id (units count from 1).
fn unit(n: u16) -> u8 {
    (n + 1) as u8
}

struct Entry {
    name: String,
    table: ModbusTable,
    address: u16,
    value_type: ModbusType,
    word_order: WordOrder,
    scale: f64,
    uom: &'static str,
    range: Option<(f64, f64)>,
    quantity: Quantity,
}

impl Entry {
    fn register(self, unit: u8) -> Register {
        Register {
            sensor: self.name,
            unit,
            table: self.table,
            address: self.address,
            value_type: self.value_type,
            word_order: self.word_order,
            scale: self.scale,
            offset: 0.0,
            unit_of_measure: self.uom.to_string(),
            min: self.range.map(|r| r.0),
            max: self.range.map(|r| r.1),
            quantity: self.quantity,
        }
    }
}

fn number(
    name: String,
    address: u16,
    value_type: ModbusType,
    scale: f64,
    uom: &'static str,
    range: (f64, f64),
    quantity: Quantity,
) -> Entry {
    Entry {
        name,
        table: ModbusTable::Input,
        address,
        value_type,
        word_order: WordOrder::Big,
        scale,
        uom,
        range: Some(range),
        quantity,
    }
}

fn contact(name: String, address: u16, quantity: Quantity) -> Entry {
    Entry {
        name,
        table: ModbusTable::Discrete,
        address,
        value_type: ModbusType::Bool,
        word_order: WordOrder::Big,
        scale: 1.0,
        uom: "",
        range: None,
        quantity,
    }
}

fn relay(name: String, unit: u8, address: u16, relay: Relay) -> RelayCoil {
    RelayCoil {
        name,
        unit,
        address,
        relay,
    }
}

fn environment(spec: &SiteSpec) -> (Vec<Register>, Vec<RelayCoil>) {
    let mut registers = Vec::new();
    let mut relays = Vec::new();
    for hall in 0..spec.halls {
        let h = hall + 1;
        let mut entries = Vec::new();
        for probe in 0..spec.probes_per_hall {
            let p = probe + 1;
            entries.push(number(
                format!("hall-{h}.temperature-{p}"),
                probe,
                ModbusType::I16,
                0.1,
                "°C",
                (-20.0, 80.0),
                Quantity::HallTemperature { hall, probe },
            ));
            entries.push(number(
                format!("hall-{h}.humidity-{p}"),
                BLOCK + probe,
                ModbusType::U16,
                0.1,
                "%RH",
                (0.0, 100.0),
                Quantity::HallHumidity { hall, probe },
            ));
        }
        entries.push(number(
            format!("hall-{h}.cooling-kw"),
            2 * BLOCK,
            ModbusType::U16,
            0.1,
            "kW",
            (0.0, spec.cooling_kw_per_hall.max(1.0) * 1.5),
            Quantity::CoolingPower { hall },
        ));
        registers.extend(entries.into_iter().map(|e| e.register(unit(hall))));
        relays.push(relay(
            format!("hall-{h}.cooling"),
            unit(hall),
            0,
            Relay::Cooling { hall },
        ));
    }
    (registers, relays)
}

fn power(spec: &SiteSpec) -> Vec<Register> {
    let feed_max =
        (spec.it_load_kw + spec.cooling_kw_per_hall * f64::from(spec.halls)).max(1.0) * 2.0;
    (0..spec.feeds)
        .flat_map(|feed| {
            let f = feed + 1;
            [
                contact(
                    format!("feed-{f}.grid-present"),
                    0,
                    Quantity::GridPresent { feed },
                ),
                contact(
                    format!("feed-{f}.generator-running"),
                    1,
                    Quantity::GeneratorRunning { feed },
                ),
                number(
                    format!("feed-{f}.kw"),
                    0,
                    ModbusType::F32,
                    1.0,
                    "kW",
                    (0.0, feed_max),
                    Quantity::FeedPower { feed },
                ),
            ]
            .map(|e| e.register(unit(feed)))
        })
        .collect()
}

fn shielding(spec: &SiteSpec) -> Vec<Register> {
    (0..spec.shield_zones)
        .flat_map(|zone| {
            let z = zone + 1;
            [
                number(
                    format!("shield-{z}.outside"),
                    0,
                    ModbusType::I16,
                    0.1,
                    "dBµV/m",
                    (-20.0, 200.0),
                    Quantity::OutsideField { zone },
                ),
                number(
                    format!("shield-{z}.inside"),
                    1,
                    ModbusType::I16,
                    0.1,
                    "dBµV/m",
                    (-20.0, 200.0),
                    Quantity::InsideField { zone },
                ),
            ]
            .map(|e| e.register(unit(zone)))
        })
        .collect()
}

fn doors(spec: &SiteSpec) -> (Vec<Register>, Vec<RelayCoil>) {
    let mut registers = Vec::new();
    let mut relays = Vec::new();
    for door in 0..spec.doors {
        let d = door + 1;
        let mut cycles = number(
            format!("door-{d}.cycles"),
            1,
            ModbusType::U32,
            1.0,
            "cycles",
            (0.0, f64::from(u32::MAX)),
            Quantity::DoorCycles { door },
        );
        cycles.word_order = WordOrder::Little;
        let entries = [
            contact(format!("door-{d}.open"), 0, Quantity::DoorOpen { door }),
            contact(
                format!("door-{d}.latched"),
                1,
                Quantity::DoorLatched { door },
            ),
            number(
                format!("door-{d}.seal-kpa"),
                0,
                ModbusType::U16,
                0.1,
                "kPa",
                (0.0, spec.seal_kpa * 1.5),
                Quantity::SealPressure { door },
            ),
            cycles,
        ];
        registers.extend(entries.map(|e| e.register(unit(door))));
        relays.push(relay(
            format!("door-{d}.interlock"),
            unit(door),
            0,
            Relay::DoorInterlock { door },
        ));
    }
    (registers, relays)
}

fn safety(spec: &SiteSpec) -> (Vec<Register>, Vec<RelayCoil>) {
    let mut entries = Vec::new();
    for filter in 0..spec.filters {
        entries.push(contact(
            format!("filter-{}.tripped", filter + 1),
            filter,
            Quantity::FilterTripped { filter },
        ));
    }
    for arrester in 0..spec.arresters {
        entries.push(contact(
            format!("arrester-{}.tripped", arrester + 1),
            BLOCK + arrester,
            Quantity::ArresterTripped { arrester },
        ));
    }
    for contact_index in 0..spec.intrusion_contacts {
        entries.push(contact(
            format!("intrusion-{}.active", contact_index + 1),
            2 * BLOCK + contact_index,
            Quantity::Intrusion {
                contact: contact_index,
            },
        ));
    }
    let registers = entries.into_iter().map(|e| e.register(1)).collect();
    let relays = vec![
        relay("siren".to_string(), 1, 0, Relay::Siren),
        relay("beacon".to_string(), 1, 1, Relay::Beacon),
    ];
    (registers, relays)
}

/// The addresses the devices take when their ports count up from `base` (port 0: the system
/// picks each port, and the map shows port 0 until the site is started).
pub fn planned_addresses(base: SocketAddr) -> Vec<SocketAddr> {
    (0..DEVICES.len() as u16)
        .map(|i| {
            let port = if base.port() == 0 {
                0
            } else {
                base.port().saturating_add(i)
            };
            SocketAddr::new(base.ip(), port)
        })
        .collect()
}

impl RegisterMap {
    /// The map of `spec`'s site with the devices at `addresses` (one per [`DEVICES`] entry).
    pub fn new(spec: &SiteSpec, addresses: &[SocketAddr]) -> RegisterMap {
        let (environment, cooling) = environment(spec);
        let (doors, interlocks) = doors(spec);
        let (safety, alarms) = safety(spec);
        let contents = [
            (environment, cooling),
            (power(spec), Vec::new()),
            (shielding(spec), Vec::new()),
            (doors, interlocks),
            (safety, alarms),
        ];
        let buses = contents
            .into_iter()
            .zip(DEVICES)
            .zip(addresses)
            .map(|(((registers, relays), name), address)| Bus {
                name: name.to_string(),
                address: address.to_string(),
                registers,
                relays,
            })
            .collect();
        RegisterMap { buses }
    }

    pub fn sensor_count(&self) -> usize {
        self.buses.iter().map(|b| b.registers.len()).sum()
    }

    /// The bus and register of a sensor.
    pub fn sensor(&self, name: &str) -> Option<(&Bus, &Register)> {
        self.buses.iter().find_map(|bus| {
            bus.registers
                .iter()
                .find(|r| r.sensor == name)
                .map(|r| (bus, r))
        })
    }

    /// The bus and coil of a relay.
    pub fn relay(&self, name: &str) -> Option<(&Bus, &RelayCoil)> {
        self.buses
            .iter()
            .find_map(|bus| bus.relays.iter().find(|r| r.name == name).map(|r| (bus, r)))
    }

    /// The map as hardware-profile TOML: one `[[sensor_bus]]` per device, each followed by its
    /// `[[sensor_bus.register]]` and `[[sensor_bus.relay]]` entries.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        #[derive(Serialize)]
        struct Profile {
            sensor_bus: Vec<SensorBus>,
        }
        let profile = Profile {
            sensor_bus: self.buses.iter().map(Bus::to_profile).collect(),
        };
        let header = "# The site simulator's register map (sitesim --print-map), as hardware-profile\n\
                      # entries: value = raw × scale + offset; 32-bit values span two registers.\n\n";
        Ok(format!("{header}{}", toml::to_string(&profile)?))
    }
}

#[cfg(test)]
#[path = "register_map_tests.rs"]
mod tests;
