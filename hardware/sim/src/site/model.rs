//! The site's physics, stepped in simulated seconds: hall temperatures follow the miners' load
//! and the cooling, generators start a while after the grid goes, door seals lose pressure while
//! a door is open, field probes read their level with noise. Inputs a person would cause (a door
//! opened, an arrester tripped, the grid cut) change the state at once; the registers read it.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::register_map::{Quantity, Relay};
use super::spec::SiteSpec;

/// Heat a hall stores per kelvin, kJ/K (air, racks, concrete close by).
const HALL_HEAT_CAPACITY_KJ_PER_K: f64 = 1000.0;
/// Heat a hall exchanges with the rock around it, kW/K.
const HALL_LEAK_KW_PER_K: f64 = 0.5;
/// The cooling controller's proportional gain, kW/K above the setpoint.
const COOLING_GAIN_KW_PER_K: f64 = 20.0;
/// Heat moved per kW of electricity the cooling draws.
const COOLING_COP: f64 = 3.0;
/// Door seal: pressure lost per second while open, regained per second once closed, kPa/s.
const SEAL_LEAK_KPA_PER_S: f64 = 20.0;
const SEAL_PUMP_KPA_PER_S: f64 = 10.0;
/// Field probes' noise, ± dB.
const FIELD_NOISE_DB: f64 = 0.5;
/// Longest simulated step; longer ones are cut up so the thermal model stays stable.
const MAX_STEP_S: f64 = 1.0;
/// Indoor relative humidity, %.
const HUMIDITY_RH: f64 = 45.0;

/// A relay coil's state and when a client last changed it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RelayState {
    pub on: bool,
    /// When a write last changed the state (None: never changed since start).
    #[serde(skip)]
    pub changed_at: Option<Instant>,
    /// The same moment as milliseconds since the Unix epoch, for the control socket.
    pub changed_unix_ms: Option<u64>,
    /// Writes received, changing or not.
    pub writes: u64,
}

impl RelayState {
    fn new(on: bool) -> RelayState {
        RelayState {
            on,
            changed_at: None,
            changed_unix_ms: None,
            writes: 0,
        }
    }

    fn write(&mut self, on: bool) {
        self.writes += 1;
        if self.on != on {
            self.on = on;
            self.changed_at = Some(Instant::now());
            self.changed_unix_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_millis() as u64);
        }
    }
}

/// A command naming something the site does not have, or a door its interlock holds shut.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("there is no {kind} {number} (the site has {count})")]
    NoSuch {
        kind: &'static str,
        number: u16,
        count: usize,
    },
    #[error("door {0} is held shut by its interlock relay")]
    Interlocked(u16),
    #[error("{what} must be between {min} and {max}")]
    OutOfRange {
        what: &'static str,
        min: f64,
        max: f64,
    },
}

struct Hall {
    temperature_c: f64,
    cooling_kw: f64,
    probe_offsets_c: Vec<f64>,
    humidity_offsets: Vec<f64>,
    cooling: RelayState,
}

struct Feed {
    grid_present: bool,
    grid_lost_at: Option<f64>,
    generator_running: bool,
    kw: f64,
}

struct Zone {
    outside_dbuv: f64,
    degradation_db: f64,
    outside_reading: f64,
    inside_reading: f64,
}

struct Door {
    open: bool,
    seal_kpa: f64,
    cycles: u32,
    interlock: RelayState,
}

/// A small deterministic noise source (xorshift64*).
struct Noise(u64);

impl Noise {
    /// Uniform in [-1, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        (bits as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

pub struct Model {
    spec: SiteSpec,
    elapsed_s: f64,
    it_load_kw: f64,
    halls: Vec<Hall>,
    feeds: Vec<Feed>,
    zones: Vec<Zone>,
    doors: Vec<Door>,
    filters: Vec<bool>,
    arresters: Vec<bool>,
    intrusion: Vec<bool>,
    siren: RelayState,
    beacon: RelayState,
    noise: Noise,
}

fn index(kind: &'static str, number: u16, count: usize) -> Result<usize, ModelError> {
    let i = usize::from(number);
    if (1..=count).contains(&i) {
        Ok(i - 1)
    } else {
        Err(ModelError::NoSuch {
            kind,
            number,
            count,
        })
    }
}

impl Model {
    pub fn new(spec: &SiteSpec) -> Model {
        let mut noise = Noise(spec.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let probes = usize::from(spec.probes_per_hall);
        let halls = (0..spec.halls)
            .map(|_| Hall {
                temperature_c: spec.setpoint_c,
                cooling_kw: 0.0,
                probe_offsets_c: (0..probes).map(|_| noise.next() * 0.5).collect(),
                humidity_offsets: (0..probes).map(|_| noise.next() * 2.0).collect(),
                cooling: RelayState::new(true),
            })
            .collect();
        let mut model = Model {
            spec: spec.clone(),
            elapsed_s: 0.0,
            it_load_kw: spec.it_load_kw,
            halls,
            feeds: (0..spec.feeds)
                .map(|_| Feed {
                    grid_present: true,
                    grid_lost_at: None,
                    generator_running: false,
                    kw: 0.0,
                })
                .collect(),
            zones: (0..spec.shield_zones)
                .map(|_| Zone {
                    outside_dbuv: spec.outside_field_dbuv,
                    degradation_db: 0.0,
                    outside_reading: 0.0,
                    inside_reading: 0.0,
                })
                .collect(),
            doors: (0..spec.doors)
                .map(|_| Door {
                    open: false,
                    seal_kpa: spec.seal_kpa,
                    cycles: 0,
                    interlock: RelayState::new(false),
                })
                .collect(),
            filters: vec![false; usize::from(spec.filters)],
            arresters: vec![false; usize::from(spec.arresters)],
            intrusion: vec![false; usize::from(spec.intrusion_contacts)],
            siren: RelayState::new(false),
            beacon: RelayState::new(false),
            noise,
        };
        model.settle_power();
        model.read_fields();
        model
    }

    pub fn elapsed_s(&self) -> f64 {
        self.elapsed_s
    }

    /// Moves the site on by `seconds` of simulated time.
    pub fn advance(&mut self, seconds: f64) {
        let mut left = seconds.max(0.0);
        while left > 0.0 {
            let step = left.min(MAX_STEP_S);
            self.step(step);
            left -= step;
        }
        self.read_fields();
    }

    fn step(&mut self, dt: f64) {
        self.elapsed_s += dt;
        self.run_generators();
        let powered = self.powered();
        let hall_load = if powered {
            self.it_load_kw / self.halls.len() as f64
        } else {
            0.0
        };
        let (setpoint, ambient, capacity) = (
            self.spec.setpoint_c,
            self.spec.ambient_c,
            self.spec.cooling_kw_per_hall,
        );
        for hall in &mut self.halls {
            let leak = HALL_LEAK_KW_PER_K * (hall.temperature_c - ambient);
            hall.cooling_kw = if hall.cooling.on && powered {
                (hall_load - leak + COOLING_GAIN_KW_PER_K * (hall.temperature_c - setpoint))
                    .clamp(0.0, capacity)
            } else {
                0.0
            };
            hall.temperature_c +=
                (hall_load - hall.cooling_kw - leak) / HALL_HEAT_CAPACITY_KJ_PER_K * dt;
        }
        for door in &mut self.doors {
            door.seal_kpa = if door.open {
                (door.seal_kpa - SEAL_LEAK_KPA_PER_S * dt).max(0.0)
            } else {
                (door.seal_kpa + SEAL_PUMP_KPA_PER_S * dt).min(self.spec.seal_kpa)
            };
        }
        self.settle_power();
    }

    fn run_generators(&mut self) {
        let (now, delay) = (self.elapsed_s, self.spec.generator_start_secs);
        for feed in &mut self.feeds {
            if feed.grid_present {
                feed.grid_lost_at = None;
                feed.generator_running = false;
            } else {
                let lost_at = *feed.grid_lost_at.get_or_insert(now);
                feed.generator_running |= now - lost_at >= delay;
            }
        }
    }

    fn powered(&self) -> bool {
        self.feeds
            .iter()
            .any(|f| f.grid_present || f.generator_running)
    }

    /// Shares the site's draw (miners plus cooling) among the feeds that have power.
    fn settle_power(&mut self) {
        let powered = self.powered();
        let cooling_kw: f64 = self.halls.iter().map(|h| h.cooling_kw).sum();
        let demand = if powered {
            self.it_load_kw + cooling_kw / COOLING_COP
        } else {
            0.0
        };
        let live = self
            .feeds
            .iter()
            .filter(|f| f.grid_present || f.generator_running)
            .count()
            .max(1) as f64;
        for feed in &mut self.feeds {
            feed.kw = if feed.grid_present || feed.generator_running {
                demand / live
            } else {
                0.0
            };
        }
    }

    fn read_fields(&mut self) {
        let shielding = self.spec.shielding_db;
        for zone in &mut self.zones {
            zone.outside_reading = zone.outside_dbuv + self.noise.next() * FIELD_NOISE_DB;
            zone.inside_reading = zone.outside_dbuv - (shielding - zone.degradation_db).max(0.0)
                + self.noise.next() * FIELD_NOISE_DB;
        }
    }

    /// The engineering value a sensor shows now (contacts: 1 closed/true, 0 open/false).
    pub fn value(&self, quantity: Quantity) -> f64 {
        let flag = |b: bool| f64::from(u8::from(b));
        let i = |n: u16| usize::from(n);
        match quantity {
            Quantity::HallTemperature { hall, probe } => {
                let h = &self.halls[i(hall)];
                h.temperature_c + h.probe_offsets_c[i(probe)]
            }
            Quantity::HallHumidity { hall, probe } => {
                HUMIDITY_RH + self.halls[i(hall)].humidity_offsets[i(probe)]
            }
            Quantity::CoolingPower { hall } => self.halls[i(hall)].cooling_kw,
            Quantity::GridPresent { feed } => flag(self.feeds[i(feed)].grid_present),
            Quantity::GeneratorRunning { feed } => flag(self.feeds[i(feed)].generator_running),
            Quantity::FeedPower { feed } => self.feeds[i(feed)].kw,
            Quantity::OutsideField { zone } => self.zones[i(zone)].outside_reading,
            Quantity::InsideField { zone } => self.zones[i(zone)].inside_reading,
            Quantity::DoorOpen { door } => flag(self.doors[i(door)].open),
            Quantity::DoorLatched { door } => flag(!self.doors[i(door)].open),
            Quantity::SealPressure { door } => self.doors[i(door)].seal_kpa,
            Quantity::DoorCycles { door } => f64::from(self.doors[i(door)].cycles),
            Quantity::FilterTripped { filter } => flag(self.filters[i(filter)]),
            Quantity::ArresterTripped { arrester } => flag(self.arresters[i(arrester)]),
            Quantity::Intrusion { contact } => flag(self.intrusion[i(contact)]),
        }
    }

    /// Noise for a faulted sensor, uniform in ±`amplitude`.
    pub fn noise(&mut self, amplitude: f64) -> f64 {
        self.noise.next() * amplitude
    }

    pub fn relay(&self, relay: Relay) -> RelayState {
        match relay {
            Relay::Cooling { hall } => self.halls[usize::from(hall)].cooling,
            Relay::DoorInterlock { door } => self.doors[usize::from(door)].interlock,
            Relay::Siren => self.siren,
            Relay::Beacon => self.beacon,
        }
    }

    /// A client wrote the coil.
    pub fn write_relay(&mut self, relay: Relay, on: bool) {
        let state = match relay {
            Relay::Cooling { hall } => &mut self.halls[usize::from(hall)].cooling,
            Relay::DoorInterlock { door } => &mut self.doors[usize::from(door)].interlock,
            Relay::Siren => &mut self.siren,
            Relay::Beacon => &mut self.beacon,
        };
        state.write(on);
    }

    /// Opens door `number` (from 1), unless its interlock relay holds it.
    pub fn open_door(&mut self, number: u16) -> Result<(), ModelError> {
        let i = index("door", number, self.doors.len())?;
        let door = &mut self.doors[i];
        if door.interlock.on {
            return Err(ModelError::Interlocked(number));
        }
        door.open = true;
        Ok(())
    }

    /// Closes door `number`; closing an open door completes one cycle.
    pub fn close_door(&mut self, number: u16) -> Result<(), ModelError> {
        let i = index("door", number, self.doors.len())?;
        let door = &mut self.doors[i];
        if door.open {
            door.open = false;
            door.cycles = door.cycles.wrapping_add(1);
        }
        Ok(())
    }

    /// Grid present or lost on feed `number`, or on every feed (`None`).
    pub fn set_grid(&mut self, feed: Option<u16>, present: bool) -> Result<(), ModelError> {
        if let Some(n) = feed {
            index("feed", n, self.feeds.len())?;
        }
        for (i, f) in self.feeds.iter_mut().enumerate() {
            if feed.is_none_or(|n| usize::from(n) == i + 1) {
                f.grid_present = present;
            }
        }
        self.run_generators();
        self.settle_power();
        Ok(())
    }

    pub fn set_it_load(&mut self, kw: f64) -> Result<(), ModelError> {
        if !(kw.is_finite() && (0.0..=100_000.0).contains(&kw)) {
            return Err(ModelError::OutOfRange {
                what: "the IT load (kW)",
                min: 0.0,
                max: 100_000.0,
            });
        }
        self.it_load_kw = kw;
        self.settle_power();
        Ok(())
    }

    pub fn set_filter(&mut self, number: u16, tripped: bool) -> Result<(), ModelError> {
        let i = index("filter", number, self.filters.len())?;
        self.filters[i] = tripped;
        Ok(())
    }

    pub fn set_arrester(&mut self, number: u16, tripped: bool) -> Result<(), ModelError> {
        let i = index("arrester", number, self.arresters.len())?;
        self.arresters[i] = tripped;
        Ok(())
    }

    pub fn set_intrusion(&mut self, number: u16, active: bool) -> Result<(), ModelError> {
        let i = index("intrusion contact", number, self.intrusion.len())?;
        self.intrusion[i] = active;
        Ok(())
    }

    /// The shield of zone `number` (or every zone) loses `db` of its effectiveness (0 repairs it).
    pub fn degrade_shielding(&mut self, zone: Option<u16>, db: f64) -> Result<(), ModelError> {
        if !(db.is_finite() && (0.0..=self.spec.shielding_db).contains(&db)) {
            return Err(ModelError::OutOfRange {
                what: "the degradation (dB)",
                min: 0.0,
                max: self.spec.shielding_db,
            });
        }
        if let Some(n) = zone {
            index("shield zone", n, self.zones.len())?;
        }
        for (i, z) in self.zones.iter_mut().enumerate() {
            if zone.is_none_or(|n| usize::from(n) == i + 1) {
                z.degradation_db = db;
            }
        }
        self.read_fields();
        Ok(())
    }

    /// The field outside zone `number` (or every zone), dBµV/m.
    pub fn set_outside_field(&mut self, zone: Option<u16>, dbuv: f64) -> Result<(), ModelError> {
        if !(dbuv.is_finite() && (0.0..=200.0).contains(&dbuv)) {
            return Err(ModelError::OutOfRange {
                what: "the outside field (dBµV/m)",
                min: 0.0,
                max: 200.0,
            });
        }
        if let Some(n) = zone {
            index("shield zone", n, self.zones.len())?;
        }
        for (i, z) in self.zones.iter_mut().enumerate() {
            if zone.is_none_or(|n| usize::from(n) == i + 1) {
                z.outside_dbuv = dbuv;
            }
        }
        self.read_fields();
        Ok(())
    }
}
