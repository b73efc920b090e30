//! What the simulated site is made of: how many halls, probes, feeds, doors and contacts, and
//! the physical constants its model runs with. `small` matches the QEMU profile's bunker;
//! `bench` has over 1,000 sensors for the sited benchmarks; a TOML file can describe any other.

use std::path::Path;
use std::time::Duration;

use appliance::config::Invalid;
use serde::Deserialize;

/// The most units (halls, feeds, zones, doors) one Modbus device can address: unit ids 1..=247.
pub const MAX_UNITS: u16 = 247;
/// The most probes per hall and contacts per kind; each kind has a block of 100 addresses.
pub const MAX_PER_BLOCK: u16 = 100;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteSpec {
    /// Halls (rooms) with their environment probes and one cooling unit each.
    pub halls: u16,
    /// Temperature/humidity probe pairs per hall.
    pub probes_per_hall: u16,
    /// Power feeds, each with its grid contact, feed meter and standby generator.
    pub feeds: u16,
    /// Shielded zones, each with an outside and an inside field probe.
    pub shield_zones: u16,
    /// Shielded doors (open and latch contacts, seal pressure, cycle counter, interlock relay).
    pub doors: u16,
    /// Air filters (tripped contact each).
    pub filters: u16,
    /// Surge arresters (tripped contact each).
    pub arresters: u16,
    /// Intrusion contacts.
    pub intrusion_contacts: u16,
    /// The miners' load at start, kW for the whole site, shared evenly by the halls.
    pub it_load_kw: f64,
    /// Cooling capacity per hall, kW of heat removed at most.
    pub cooling_kw_per_hall: f64,
    /// The temperature the cooling holds, °C.
    pub setpoint_c: f64,
    /// Rock and air around the halls, °C; halls drift towards it.
    pub ambient_c: f64,
    /// The field outside the shield, dBµV/m.
    pub outside_field_dbuv: f64,
    /// The shield's effectiveness when intact, dB (inside = outside − this).
    pub shielding_db: f64,
    /// Inflatable door seal pressure when closed and recovered, kPa.
    pub seal_kpa: f64,
    /// Simulated seconds from grid loss to the generator running.
    pub generator_start_secs: f64,
    /// Real time between model steps, milliseconds.
    pub tick_ms: u64,
    /// Simulated seconds per real second; 0 freezes the model (tests step it by hand).
    pub time_scale: f64,
    /// Seeds the probes' noise and per-probe offsets.
    pub seed: u64,
}

impl Default for SiteSpec {
    fn default() -> Self {
        SiteSpec::small()
    }
}

/// A spec file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("`{key}` {reason}")]
    Invalid { key: String, reason: String },
}

impl From<Invalid> for SpecError {
    fn from(invalid: Invalid) -> Self {
        SpecError::Invalid {
            key: invalid.key,
            reason: invalid.reason,
        }
    }
}

impl SiteSpec {
    /// The QEMU profile's bunker: two halls, two feeds, one shielded zone, two doors.
    pub fn small() -> SiteSpec {
        SiteSpec {
            halls: 2,
            probes_per_hall: 2,
            feeds: 2,
            shield_zones: 1,
            doors: 2,
            filters: 2,
            arresters: 2,
            intrusion_contacts: 2,
            it_load_kw: 200.0,
            cooling_kw_per_hall: 150.0,
            setpoint_c: 24.0,
            ambient_c: 15.0,
            outside_field_dbuv: 120.0,
            shielding_db: 80.0,
            seal_kpa: 250.0,
            generator_start_secs: 10.0,
            tick_ms: 200,
            time_scale: 1.0,
            seed: 1,
        }
    }

    /// A large site for the benchmarks: 1,036 sensors over five devices.
    pub fn bench() -> SiteSpec {
        SiteSpec {
            halls: 8,
            probes_per_hall: 60,
            feeds: 4,
            shield_zones: 4,
            doors: 6,
            filters: 8,
            arresters: 8,
            intrusion_contacts: 8,
            it_load_kw: 2000.0,
            cooling_kw_per_hall: 375.0,
            ..SiteSpec::small()
        }
    }

    /// `small`, `bench`, or the path of a TOML spec file (unset keys take `small`'s values).
    pub fn named_or_file(name: &str) -> Result<SiteSpec, SpecError> {
        let spec = match name {
            "small" => SiteSpec::small(),
            "bench" => SiteSpec::bench(),
            path => SiteSpec::from_file(Path::new(path))?,
        };
        spec.validate()?;
        Ok(spec)
    }

    pub fn from_file(path: &Path) -> Result<SiteSpec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let spec: SiteSpec = toml::from_str(&text).map_err(|source| SpecError::Parse {
            path: path.display().to_string(),
            source,
        })?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        let units = [
            ("halls", self.halls),
            ("feeds", self.feeds),
            ("shield_zones", self.shield_zones),
            ("doors", self.doors),
        ];
        for (key, count) in units {
            if count > MAX_UNITS {
                return Err(Invalid::new(
                    key,
                    format!("must be at most {MAX_UNITS} (Modbus unit ids 1..=247)"),
                ));
            }
        }
        let blocks = [
            ("probes_per_hall", self.probes_per_hall),
            ("filters", self.filters),
            ("arresters", self.arresters),
            ("intrusion_contacts", self.intrusion_contacts),
        ];
        for (key, count) in blocks {
            if count > MAX_PER_BLOCK {
                return Err(Invalid::new(
                    key,
                    format!("must be at most {MAX_PER_BLOCK}"),
                ));
            }
        }
        if self.halls == 0 || self.feeds == 0 {
            return Err(Invalid::new(
                "halls",
                "a site needs at least one hall and one feed",
            ));
        }
        let reals = [
            ("it_load_kw", self.it_load_kw, 0.0, 100_000.0),
            (
                "cooling_kw_per_hall",
                self.cooling_kw_per_hall,
                0.0,
                100_000.0,
            ),
            ("setpoint_c", self.setpoint_c, 5.0, 40.0),
            ("ambient_c", self.ambient_c, -30.0, 50.0),
            ("outside_field_dbuv", self.outside_field_dbuv, 0.0, 200.0),
            ("shielding_db", self.shielding_db, 0.0, 150.0),
            ("seal_kpa", self.seal_kpa, 1.0, 1000.0),
            (
                "generator_start_secs",
                self.generator_start_secs,
                0.0,
                3600.0,
            ),
            ("time_scale", self.time_scale, 0.0, 1000.0),
        ];
        for (key, value, min, max) in reals {
            if !(value.is_finite() && (min..=max).contains(&value)) {
                return Err(Invalid::new(
                    key,
                    format!("must be between {min} and {max}"),
                ));
            }
        }
        if !(10..=60_000).contains(&self.tick_ms) {
            return Err(Invalid::new(
                "tick_ms",
                "must be between 10 and 60000 milliseconds",
            ));
        }
        Ok(())
    }
}
