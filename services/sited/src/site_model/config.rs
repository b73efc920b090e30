//! The site model as written in `sited.toml`: `[[zone]]`, `[[door]]` and `[[maintenance]]`
//! tables, read with serde and checked before the daemon starts.
//!
//! Every check names the key to fix (`zone[2].limit_c`, `door[0].cycle_limit`), which the
//! config loader turns into `FILE:LINE:COLUMN`, and every problem is reported at once.

use std::collections::BTreeSet;

use appliance::config::Invalid;
use serde::{Deserialize, Serialize};
use time::{Date, Month};

use crate::sensor::SensorId;

/// The longest zone, door or maintenance name: short enough that every derived sensor name
/// (`maintenance.<name>.days_left`, `zone.<name>.shielding_margin_db`) stays a sensor name.
pub const MAX_NAME_LEN: usize = 32;
/// The lowest and highest temperature limit a zone may set, in °C.
pub const LIMIT_C_RANGE: (f64, f64) = (-50.0, 150.0);
/// The highest shielding effectiveness a zone may require, in dB (measured SE tops out far
/// below this; a larger figure is a typo).
pub const MAX_REQUIRED_DB: f64 = 200.0;
/// The longest warning before a maintenance due date: ten years.
pub const MAX_WARN_DAYS: u32 = 3650;

/// Units of the derived sensors, as Site1's `Sensors` shows them.
pub const UNIT_DB: &str = "dB";
pub const UNIT_CELSIUS: &str = "°C";
pub const UNIT_CYCLES: &str = "cycles";
pub const UNIT_DAYS: &str = "days";

/// The site model: what the sensors of the hardware profile mean.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteModelConfig {
    pub zone: Vec<ZoneSpec>,
    pub door: Vec<DoorSpec>,
    pub maintenance: Vec<MaintenanceSpec>,
}

/// One `[[zone]]`: a room or hall with its temperature probes and, for a shielded enclosure,
/// the field probes either side of the shield.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    /// 1 to 32 of `a-z 0-9 -`, unique among zones.
    pub name: String,
    /// The zone's temperature probes (°C); the hottest one counts.
    #[serde(default)]
    pub temperature: Vec<SensorId>,
    /// The temperature the hottest probe must stay below; the thermal headroom is measured
    /// against it.
    #[serde(default)]
    pub limit_c: Option<f64>,
    /// The shielding-effectiveness proxy of this zone's enclosure.
    #[serde(default)]
    pub shielding: Option<ShieldingSpec>,
}

/// A live shielding-effectiveness proxy: a field probe outside the shield and one inside, both
/// in the same logarithmic unit (e.g. dBµV/m); their difference is the attenuation in dB.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShieldingSpec {
    pub outside: SensorId,
    pub inside: SensorId,
    /// The attenuation the enclosure must keep (e.g. 80 dB for MIL-STD-188-125-1).
    pub required_db: f64,
}

/// One `[[door]]`: a shielded door's position, latch, pneumatic seal and cycle counter.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DoorSpec {
    /// 1 to 32 of `a-z 0-9 -`, unique among doors.
    pub name: String,
    /// Contact: the door is open.
    pub open: SensorId,
    /// Contact: the door is latched.
    #[serde(default)]
    pub latched: Option<SensorId>,
    /// The seal's inflation pressure (kPa).
    #[serde(default)]
    pub seal_kpa: Option<SensorId>,
    /// The door's cycle counter (fingerstock wear).
    #[serde(default)]
    pub cycles: Option<SensorId>,
    /// The cycles after which the door is due for maintenance (needs `cycles`).
    #[serde(default)]
    pub cycle_limit: Option<u64>,
}

/// One `[[maintenance]]`: a hardness-maintenance task with its due date.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSpec {
    /// 1 to 32 of `a-z 0-9 -`, unique among maintenance tasks.
    pub name: String,
    /// What is due, for people: "HEMP shielding effectiveness survey (MIL-STD-188-125-1)".
    pub what: String,
    /// The due date, `YYYY-MM-DD` (UTC).
    pub due: String,
    /// Days before `due` from which the task counts as due soon.
    #[serde(default = "default_warn_days")]
    pub warn_days: u32,
}

fn default_warn_days() -> u32 {
    30
}

/// The names of the derived sensors.
pub fn zone_shielding_db(zone: &str) -> String {
    format!("zone.{zone}.shielding_db")
}
pub fn zone_shielding_margin_db(zone: &str) -> String {
    format!("zone.{zone}.shielding_margin_db")
}
pub fn zone_hottest_c(zone: &str) -> String {
    format!("zone.{zone}.hottest_c")
}
pub fn door_cycles_left(door: &str) -> String {
    format!("door.{door}.cycles_left")
}
pub fn maintenance_days_left(task: &str) -> String {
    format!("maintenance.{task}.days_left")
}

/// Reads a `YYYY-MM-DD` date strictly (four-digit year, two-digit month and day).
pub fn parse_date(text: &str) -> Option<Date> {
    let bytes = text.as_bytes();
    let digits_at = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    if !(digits_at(0..4) && digits_at(5..7) && digits_at(8..10)) {
        return None;
    }
    let year: i32 = text[0..4].parse().ok()?;
    let month: u8 = text[5..7].parse().ok()?;
    let day: u8 = text[8..10].parse().ok()?;
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

/// A derived sensor with its unit and the key of the table that makes it.
pub(crate) struct DerivedName {
    pub name: String,
    pub unit: &'static str,
    pub key: String,
}

impl SiteModelConfig {
    /// Checks the model against the sensors the drivers provide (`known_sensor` answers for the
    /// hardware profile's sensors, not for the derived ones), or says every problem with the key
    /// to fix.
    pub fn validate(&self, known_sensor: &dyn Fn(&SensorId) -> bool) -> Result<(), Vec<Invalid>> {
        let mut check = Checker {
            known_sensor,
            problems: Vec::new(),
        };
        check.names("zone", self.zone.iter().map(|z| z.name.as_str()));
        check.names("door", self.door.iter().map(|d| d.name.as_str()));
        check.names(
            "maintenance",
            self.maintenance.iter().map(|m| m.name.as_str()),
        );
        for (i, zone) in self.zone.iter().enumerate() {
            check.zone(&format!("zone[{i}]"), zone);
        }
        for (i, door) in self.door.iter().enumerate() {
            check.door(&format!("door[{i}]"), door);
        }
        for (i, task) in self.maintenance.iter().enumerate() {
            check.maintenance(&format!("maintenance[{i}]"), task);
        }
        for derived in self.derived_names() {
            if SensorId::new(derived.name.clone()).is_ok_and(|id| known_sensor(&id)) {
                check.complain(
                    &derived.key,
                    format!(
                        "makes the sensor `{}`, which a driver already provides: rename one",
                        derived.name
                    ),
                );
            }
        }
        if check.problems.is_empty() {
            Ok(())
        } else {
            Err(check.problems)
        }
    }

    /// The derived sensors the rules may read, with their unit: `zone.<z>.shielding_db` (dB,
    /// outside − inside), `zone.<z>.shielding_margin_db` (shielding − required),
    /// `zone.<z>.hottest_c`, `door.<d>.cycles_left` (cycle_limit − cycles),
    /// `maintenance.<m>.days_left` (whole days, negative when overdue).
    ///
    /// Names that are not sensor names (a config [`validate`](Self::validate) refuses) are left
    /// out.
    pub fn derived_sensors(&self) -> Vec<(SensorId, &'static str)> {
        self.derived_names()
            .into_iter()
            .filter_map(|d| Some((SensorId::new(d.name).ok()?, d.unit)))
            .collect()
    }

    pub(crate) fn derived_names(&self) -> Vec<DerivedName> {
        let mut names = Vec::new();
        let mut add = |name: String, unit, key: String| names.push(DerivedName { name, unit, key });
        for (i, zone) in self.zone.iter().enumerate() {
            if zone.shielding.is_some() {
                add(
                    zone_shielding_db(&zone.name),
                    UNIT_DB,
                    format!("zone[{i}].name"),
                );
                let margin = zone_shielding_margin_db(&zone.name);
                add(margin, UNIT_DB, format!("zone[{i}].name"));
            }
            if !zone.temperature.is_empty() {
                add(
                    zone_hottest_c(&zone.name),
                    UNIT_CELSIUS,
                    format!("zone[{i}].name"),
                );
            }
        }
        for (i, door) in self.door.iter().enumerate() {
            if door.cycles.is_some() && door.cycle_limit.is_some() {
                add(
                    door_cycles_left(&door.name),
                    UNIT_CYCLES,
                    format!("door[{i}].name"),
                );
            }
        }
        for (i, task) in self.maintenance.iter().enumerate() {
            let name = maintenance_days_left(&task.name);
            add(name, UNIT_DAYS, format!("maintenance[{i}].name"));
        }
        names
    }
}

/// Collects the problems of one model.
struct Checker<'a> {
    known_sensor: &'a dyn Fn(&SensorId) -> bool,
    problems: Vec<Invalid>,
}

impl Checker<'_> {
    fn complain(&mut self, key: &str, reason: impl Into<String>) {
        self.problems.push(Invalid::new(key, reason));
    }

    /// Names of one kind of table: the allowed characters, each used once.
    fn names<'n>(&mut self, table: &str, names: impl Iterator<Item = &'n str>) {
        let mut seen = BTreeSet::new();
        for (i, name) in names.enumerate() {
            let key = format!("{table}[{i}].name");
            if !is_model_name(name) {
                self.complain(
                    &key,
                    format!(
                        "`{name}` is not a {table} name: use 1 to {MAX_NAME_LEN} of a-z 0-9 -, \
                         starting with a letter or digit"
                    ),
                );
            } else if !seen.insert(name) {
                self.complain(
                    &key,
                    format!("a {table} named `{name}` is already defined above"),
                );
            }
        }
    }

    fn sensor(&mut self, key: &str, sensor: &SensorId) {
        if !(self.known_sensor)(sensor) {
            self.complain(key, format!("no sensor driver provides `{sensor}`"));
        }
    }

    fn zone(&mut self, key: &str, zone: &ZoneSpec) {
        let mut seen = BTreeSet::new();
        for (j, sensor) in zone.temperature.iter().enumerate() {
            self.sensor(&format!("{key}.temperature[{j}]"), sensor);
            if !seen.insert(sensor) {
                self.complain(
                    &format!("{key}.temperature[{j}]"),
                    format!("`{sensor}` is listed twice"),
                );
            }
        }
        if let Some(limit) = zone.limit_c {
            let (low, high) = LIMIT_C_RANGE;
            if !(low..=high).contains(&limit) {
                self.complain(
                    &format!("{key}.limit_c"),
                    format!("{limit} °C is not a room temperature limit: use {low} to {high}"),
                );
            }
            if zone.temperature.is_empty() {
                self.complain(
                    &format!("{key}.limit_c"),
                    "needs at least one `temperature` sensor to compare with",
                );
            }
        }
        if let Some(shielding) = &zone.shielding {
            self.shielding(&format!("{key}.shielding"), shielding);
        }
    }

    fn shielding(&mut self, key: &str, shielding: &ShieldingSpec) {
        self.sensor(&format!("{key}.outside"), &shielding.outside);
        self.sensor(&format!("{key}.inside"), &shielding.inside);
        if shielding.outside == shielding.inside {
            self.complain(
                &format!("{key}.inside"),
                "is the same probe as `outside`: the attenuation would always read 0 dB",
            );
        }
        let required = shielding.required_db;
        if !(required > 0.0 && required <= MAX_REQUIRED_DB) {
            self.complain(
                &format!("{key}.required_db"),
                format!(
                    "{required} dB is not a shielding requirement: use more than 0 and at most \
                     {MAX_REQUIRED_DB}"
                ),
            );
        }
    }

    fn door(&mut self, key: &str, door: &DoorSpec) {
        self.sensor(&format!("{key}.open"), &door.open);
        let optional = [
            ("latched", &door.latched),
            ("seal_kpa", &door.seal_kpa),
            ("cycles", &door.cycles),
        ];
        for (field, sensor) in optional {
            if let Some(sensor) = sensor {
                self.sensor(&format!("{key}.{field}"), sensor);
            }
        }
        match (door.cycle_limit, &door.cycles) {
            (Some(0), _) => self.complain(&format!("{key}.cycle_limit"), "must be at least 1"),
            (Some(_), None) => self.complain(
                &format!("{key}.cycle_limit"),
                "needs a `cycles` counter to count against",
            ),
            _ => {}
        }
    }

    fn maintenance(&mut self, key: &str, task: &MaintenanceSpec) {
        if task.what.trim().is_empty() {
            self.complain(&format!("{key}.what"), "must say what is due");
        }
        if parse_date(&task.due).is_none() {
            self.complain(
                &format!("{key}.due"),
                format!("`{}` is not a date: write YYYY-MM-DD", task.due),
            );
        }
        if task.warn_days > MAX_WARN_DAYS {
            self.complain(
                &format!("{key}.warn_days"),
                format!("{} days is more than {MAX_WARN_DAYS}", task.warn_days),
            );
        }
    }
}

/// 1 to [`MAX_NAME_LEN`] of `a-z 0-9 -`, starting with a letter or digit.
fn is_model_name(name: &str) -> bool {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    (1..=MAX_NAME_LEN).contains(&name.len()) && !name.starts_with('-') && name.chars().all(allowed)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
