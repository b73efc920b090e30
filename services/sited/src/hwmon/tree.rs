//! The hwmon tree as sysfs shows it: which chips (`hwmonN`) there are, which inputs each has,
//! what the sensors are called, and what one input reads. Blocking file I/O only; the driver
//! runs it off the async runtime.
//!
//! Names are `<bus>.<chip>.<label>`: the chip's `name` file and the input's `tempN_label` /
//! `fanN_label` (or `tempN` / `fanN` without one), lowercased, with every character a sensor
//! name does not allow turned into `-`. Two chips with one name (two `coretemp` on a dual-socket
//! board) both get their hwmon index appended: `coretemp-2`, `coretemp-3`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::sensor::{LostReason, SensorId};

/// The longest chip or label part of a sensor name before a disambiguating suffix.
const MAX_PART_LEN: usize = 16;

/// The most a sysfs value file is read; real ones hold a number and a newline.
const MAX_VALUE_LEN: u64 = 64;

/// What an input measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quantity {
    /// `tempN_input`: millidegrees Celsius, reported in °C.
    Temperature,
    /// `fanN_input`: revolutions per minute.
    Fan,
}

impl Quantity {
    fn attribute_prefix(self) -> &'static str {
        match self {
            Quantity::Temperature => "temp",
            Quantity::Fan => "fan",
        }
    }

    /// What the quantity can physically be; anything outside is a broken probe or a driver's
    /// error code read as a value.
    pub fn range(self) -> (f64, f64) {
        match self {
            Quantity::Temperature => (-60.0, 200.0),
            // Server fans top out near 30,000 RPM; a higher figure is a counter misread.
            Quantity::Fan => (0.0, 100_000.0),
        }
    }

    /// sysfs units per reported unit.
    fn scale(self) -> f64 {
        match self {
            Quantity::Temperature => 1000.0,
            Quantity::Fan => 1.0,
        }
    }
}

/// One input file and the sensor it feeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub sensor: SensorId,
    pub quantity: Quantity,
    /// The `tempN_input` / `fanN_input` file.
    pub path: PathBuf,
    /// `tempN_max` in °C, where the chip states one (read once, at discovery).
    pub max: Option<f64>,
    /// `tempN_crit` in °C, where the chip states one (read once, at discovery).
    pub crit: Option<f64>,
}

/// The `hwmonN` entries under `root` (an absent `root` has none: a machine without hwmon).
pub fn chip_entries(root: &Path) -> io::Result<BTreeSet<String>> {
    let listing = match std::fs::read_dir(root) {
        Ok(listing) => listing,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(error) => return Err(error),
    };
    let mut entries = BTreeSet::new();
    for entry in listing {
        let name = entry?.file_name();
        if let Some(name) = name.to_str().filter(|n| hwmon_index(n).is_some()) {
            entries.insert(name.to_owned());
        }
    }
    Ok(entries)
}

/// Every input under `root`, named for `bus`.
pub fn discover(root: &Path, bus: &str) -> io::Result<Vec<Input>> {
    let entries = chip_entries(root)?;
    Ok(inputs_of(root, bus, &entries))
}

/// Every input of the chips `entries` under `root`, in hwmon index order. A chip that cannot be
/// listed is left out (and logged): the others still read.
pub fn inputs_of(root: &Path, bus: &str, entries: &BTreeSet<String>) -> Vec<Input> {
    let mut chips: Vec<(u32, PathBuf, String)> = entries
        .iter()
        .filter_map(|entry| {
            let index = hwmon_index(entry)?;
            let dir = root.join(entry);
            let name = read_trimmed(&dir.join("name"))
                .and_then(|name| name_part(&name))
                .unwrap_or_else(|| entry.clone());
            Some((index, dir, name))
        })
        .collect();
    chips.sort_by_key(|(index, _, _)| *index);
    let mut chips_per_name: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, name) in &chips {
        *chips_per_name.entry(name.clone()).or_default() += 1;
    }
    let mut inputs = Vec::new();
    for (index, dir, name) in &chips {
        let chip = if chips_per_name[name] > 1 {
            format!("{name}-{index}")
        } else {
            name.clone()
        };
        match chip_inputs(dir, &format!("{bus}.{chip}")) {
            Ok(found) => inputs.extend(found),
            Err(error) => {
                tracing::warn!(chip = %dir.display(), %error, "cannot list hwmon chip");
            }
        }
    }
    inputs
}

/// The inputs of one chip directory, sensors named `<prefix>.<label>`.
fn chip_inputs(dir: &Path, prefix: &str) -> io::Result<Vec<Input>> {
    let mut attributes = BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(attribute) = name.to_str().and_then(input_attribute) {
            attributes.insert(attribute);
        }
    }
    let mut used = BTreeSet::new();
    let mut inputs = Vec::new();
    for (quantity, number) in attributes {
        let attribute = format!("{}{number}", quantity.attribute_prefix());
        let label = read_trimmed(&dir.join(format!("{attribute}_label")))
            .and_then(|label| name_part(&label))
            .unwrap_or_else(|| attribute.clone());
        // Two inputs with one label (some Super I/O chips label several `AUXTIN`): the
        // attribute keeps them apart.
        let label = if used.contains(&label) {
            format!("{label}-{attribute}")
        } else {
            label
        };
        used.insert(label.clone());
        let name = format!("{prefix}.{label}");
        let Ok(sensor) = SensorId::new(name.as_str()) else {
            tracing::warn!(sensor = %name, "hwmon input left out: its name is not a sensor name");
            continue;
        };
        let limit = |suffix: &str| match quantity {
            Quantity::Temperature => read_trimmed(&dir.join(format!("{attribute}_{suffix}")))
                .and_then(|raw| raw.parse::<i64>().ok())
                .map(|milli| milli as f64 / quantity.scale()),
            Quantity::Fan => None,
        };
        inputs.push(Input {
            sensor,
            quantity,
            path: dir.join(format!("{attribute}_input")),
            max: limit("max"),
            crit: limit("crit"),
        });
    }
    Ok(inputs)
}

/// Reads one input: its value in °C or RPM, or why the sensor is lost.
pub fn read(input: &Input) -> Result<f64, LostReason> {
    let path = input.path.display();
    let mut raw = Vec::new();
    let outcome =
        File::open(&input.path).and_then(|file| file.take(MAX_VALUE_LEN).read_to_end(&mut raw));
    match outcome {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(LostReason::Unreachable {
                detail: format!("{path} is gone"),
            });
        }
        // ENXIO, EIO, ENODATA: what drivers return while the sensor behind them is faulty.
        Err(error) => {
            return Err(LostReason::Unreachable {
                detail: format!("reading {path}: {error}"),
            });
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let units: i64 = text.trim().parse().map_err(|_| LostReason::Malformed {
        detail: format!("{path} holds {:?}, not a number", text.trim()),
    })?;
    let value = units as f64 / input.quantity.scale();
    let (min, max) = input.quantity.range();
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(LostReason::OutOfRange { value, min, max })
    }
}

/// `N` of `hwmonN`.
fn hwmon_index(entry: &str) -> Option<u32> {
    let digits = entry.strip_prefix("hwmon")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `(Temperature, N)` for `tempN_input`, `(Fan, N)` for `fanN_input`.
fn input_attribute(file: &str) -> Option<(Quantity, u32)> {
    let stem = file.strip_suffix("_input")?;
    [Quantity::Temperature, Quantity::Fan]
        .into_iter()
        .find_map(|quantity| {
            let digits = stem.strip_prefix(quantity.attribute_prefix())?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((quantity, digits.parse().ok()?))
        })
}

/// A chip name or label as one part of a sensor name: lowercase, `a-z 0-9 _ -` only (the dot
/// separates parts), at most [`MAX_PART_LEN`] characters. `None` when nothing is left.
pub fn name_part(raw: &str) -> Option<String> {
    let part: String = raw
        .trim()
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(MAX_PART_LEN)
        .collect();
    let part = part.trim_matches('-').to_owned();
    (!part.is_empty()).then_some(part)
}

/// A small file's contents without surrounding whitespace; `None` if absent or unreadable.
fn read_trimmed(path: &Path) -> Option<String> {
    let mut raw = Vec::new();
    File::open(path)
        .and_then(|file| file.take(256).read_to_end(&mut raw))
        .ok()?;
    Some(String::from_utf8_lossy(&raw).trim().to_owned())
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
