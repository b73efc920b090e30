//! The site model: what the sensors mean (zones, shielded doors, hardness maintenance) and the
//! derived sensors the rules read.
//!
//! Pure and deterministic: no I/O, no clock. The daemon passes every driver's
//! [`SensorEvent`] to [`SiteModel::on_event`] and feeds the derived events it gets back to the
//! rules like any other sensor's; it calls [`SiteModel::on_tick`] at start and whenever
//! [`SiteModel::next_deadline`] (the next UTC midnight) comes, for the maintenance countdowns.
//!
//! The derived sensors ([`SiteModelConfig::derived_sensors`]):
//! - `zone.<z>.shielding_db` (dB): the outside field probe minus the inside one, a live proxy
//!   of the enclosure's shielding effectiveness;
//! - `zone.<z>.shielding_margin_db` (dB): that attenuation less the zone's `required_db`;
//!   below 0 the shield no longer does what it must;
//! - `zone.<z>.hottest_c` (°C): the hottest of the zone's temperature probes;
//! - `door.<d>.cycles_left` (cycles): the door's `cycle_limit` less its cycle counter;
//!   negative when the door is past its maintenance limit;
//! - `maintenance.<m>.days_left` (days): whole days from today (UTC) to the due date;
//!   0 on the day, negative when overdue.
//!
//! [`SiteModelConfig::implied_rules`] turns the model's limits into `[[rule]]` specs on these
//! sensors (a zone over `limit_c`, a shield below `required_db`, a door at its `cycle_limit`,
//! maintenance within `warn_days` or overdue), compiled with the operator's rules.
//!
//! A derived sensor is never a guess: it is a sample only when every input it needs has a
//! value. When one input is lost the derived sensor is lost with that input's reason (the
//! first lost input in the order of the config), so a rule on it alarms on the loss; while an
//! input has not reported yet the derived sensor waits and says nothing. A sample of the wrong
//! kind (a contact where a number belongs, a non-finite number) counts as a malformed input.

mod config;
mod implied;

use std::collections::HashMap;
use std::time::SystemTime;

use time::{Date, OffsetDateTime};

pub use self::config::{
    DoorSpec, LIMIT_C_RANGE, MAX_NAME_LEN, MAX_REQUIRED_DB, MAX_WARN_DAYS, MaintenanceSpec,
    ShieldingSpec, SiteModelConfig, UNIT_CELSIUS, UNIT_CYCLES, UNIT_DAYS, UNIT_DB, ZoneSpec,
    door_cycles_left, maintenance_days_left, parse_date, zone_hottest_c, zone_shielding_db,
    zone_shielding_margin_db,
};
use crate::sensor::{LostReason, SensorEvent, SensorId, Value};

/// What the model last heard from one input sensor.
#[derive(Debug, Clone, PartialEq)]
enum Reading {
    /// Nothing yet.
    Unread,
    Number(f64),
    Lost(LostReason),
}

impl Reading {
    /// A sample as an input of a formula: every input of the model is a number.
    fn of(event: &SensorEvent) -> Reading {
        match event {
            SensorEvent::Sample {
                value: Value::Number(n),
                ..
            } if n.is_finite() => Reading::Number(*n),
            SensorEvent::Sample {
                value: Value::Number(n),
                ..
            } => Reading::Lost(LostReason::Malformed {
                detail: format!("{n} is not a finite number"),
            }),
            SensorEvent::Sample {
                value: Value::Contact(_),
                ..
            } => Reading::Lost(LostReason::Malformed {
                detail: "a contact where a number was expected".into(),
            }),
            SensorEvent::Lost { reason, .. } => Reading::Lost(reason.clone()),
        }
    }
}

/// How a derived sensor follows from its inputs.
#[derive(Debug, Clone, PartialEq)]
enum Formula {
    /// The largest of the inputs.
    Hottest(Vec<SensorId>),
    /// `minuend − subtrahend − less`.
    Difference {
        minuend: SensorId,
        subtrahend: SensorId,
        less: f64,
    },
    /// `limit − input`.
    Remaining { input: SensorId, limit: f64 },
}

impl Formula {
    fn inputs(&self) -> Vec<&SensorId> {
        match self {
            Formula::Hottest(inputs) => inputs.iter().collect(),
            Formula::Difference {
                minuend,
                subtrahend,
                ..
            } => vec![minuend, subtrahend],
            Formula::Remaining { input, .. } => vec![input],
        }
    }

    /// The value, or `None` while an input has no number.
    fn compute(&self, value: impl Fn(&SensorId) -> Option<f64>) -> Option<f64> {
        match self {
            Formula::Hottest(inputs) => inputs
                .iter()
                .map(&value)
                .try_fold(f64::NEG_INFINITY, |hottest, t| Some(hottest.max(t?))),
            Formula::Difference {
                minuend,
                subtrahend,
                less,
            } => Some(value(minuend)? - value(subtrahend)? - less),
            Formula::Remaining { input, limit } => Some(limit - value(input)?),
        }
    }
}

/// What a derived sensor is now.
enum Outcome {
    Value(f64),
    Lost(LostReason),
    /// An input has not reported yet.
    Waiting,
}

/// One derived sensor and what it last said about being lost (so a loss is said once).
#[derive(Debug, Clone)]
struct Derived {
    sensor: SensorId,
    formula: Formula,
    lost: Option<LostReason>,
}

/// One maintenance task's countdown.
#[derive(Debug, Clone)]
struct Countdown {
    sensor: SensorId,
    due: Date,
}

/// The site model at run time: turns input events into derived ones.
#[derive(Debug, Clone)]
pub struct SiteModel {
    readings: HashMap<SensorId, Reading>,
    derived: Vec<Derived>,
    /// Input sensor → the derived sensors (indices into `derived`) that read it.
    readers: HashMap<SensorId, Vec<usize>>,
    countdowns: Vec<Countdown>,
}

impl SiteModel {
    /// The model of a checked config ([`SiteModelConfig::validate`]); tables whose names or
    /// dates the check would refuse are left out.
    pub fn new(config: &SiteModelConfig) -> SiteModel {
        let derived: Vec<Derived> = formulas(config)
            .into_iter()
            .filter_map(|(name, formula)| {
                Some(Derived {
                    sensor: SensorId::new(name).ok()?,
                    formula,
                    lost: None,
                })
            })
            .collect();
        let mut readers: HashMap<SensorId, Vec<usize>> = HashMap::new();
        let mut readings = HashMap::new();
        for (i, d) in derived.iter().enumerate() {
            for input in d.formula.inputs() {
                readings.insert(input.clone(), Reading::Unread);
                let list = readers.entry(input.clone()).or_default();
                if !list.contains(&i) {
                    list.push(i);
                }
            }
        }
        let countdowns = config
            .maintenance
            .iter()
            .filter_map(|task| {
                Some(Countdown {
                    sensor: SensorId::new(maintenance_days_left(&task.name)).ok()?,
                    due: parse_date(&task.due)?,
                })
            })
            .collect();
        SiteModel {
            readings,
            derived,
            readers,
            countdowns,
        }
    }

    /// The derived events caused by one input event: a sample of every derived sensor reading
    /// it whose inputs are all known, and `Lost` (with the lost input's reason) for one that has
    /// just lost an input. Events of sensors the model does not read give nothing.
    pub fn on_event(&mut self, event: &SensorEvent) -> Vec<SensorEvent> {
        let Some(reading) = self.readings.get_mut(event.sensor()) else {
            return Vec::new();
        };
        *reading = Reading::of(event);
        let at = match event {
            SensorEvent::Sample { at, .. } | SensorEvent::Lost { at, .. } => *at,
        };
        let readers = self
            .readers
            .get(event.sensor())
            .cloned()
            .unwrap_or_default();
        readers
            .into_iter()
            .filter_map(|i| self.update(i, at))
            .collect()
    }

    /// The maintenance countdowns (`maintenance.<m>.days_left`) for `now`, one sample each.
    pub fn on_tick(&mut self, now: SystemTime) -> Vec<SensorEvent> {
        let today = OffsetDateTime::from(now).date();
        self.countdowns
            .iter()
            .map(|c| SensorEvent::Sample {
                sensor: c.sensor.clone(),
                value: Value::Number((c.due - today).whole_days() as f64),
                at: now,
            })
            .collect()
    }

    /// The next UTC midnight after `now`, when a countdown changes; `None` without maintenance
    /// tasks.
    pub fn next_deadline(&self, now: SystemTime) -> Option<SystemTime> {
        if self.countdowns.is_empty() {
            return None;
        }
        let tomorrow = OffsetDateTime::from(now).date().next_day()?;
        Some(tomorrow.midnight().assume_utc().into())
    }

    /// Re-evaluates derived sensor `i` after one of its inputs changed.
    fn update(&mut self, i: usize, at: SystemTime) -> Option<SensorEvent> {
        let outcome = self.evaluate(&self.derived[i].formula);
        let derived = &mut self.derived[i];
        match outcome {
            Outcome::Value(value) => {
                derived.lost = None;
                Some(SensorEvent::Sample {
                    sensor: derived.sensor.clone(),
                    value: Value::Number(value),
                    at,
                })
            }
            Outcome::Lost(reason) if derived.lost.as_ref() != Some(&reason) => {
                derived.lost = Some(reason.clone());
                Some(SensorEvent::Lost {
                    sensor: derived.sensor.clone(),
                    reason,
                    at,
                })
            }
            Outcome::Lost(_) | Outcome::Waiting => None,
        }
    }

    fn evaluate(&self, formula: &Formula) -> Outcome {
        let reading = |sensor: &SensorId| self.readings.get(sensor).unwrap_or(&Reading::Unread);
        let first_lost = formula.inputs().into_iter().find_map(|s| match reading(s) {
            Reading::Lost(reason) => Some(reason.clone()),
            Reading::Unread | Reading::Number(_) => None,
        });
        if let Some(reason) = first_lost {
            return Outcome::Lost(reason);
        }
        let number = |s: &SensorId| match reading(s) {
            Reading::Number(n) => Some(*n),
            Reading::Unread | Reading::Lost(_) => None,
        };
        formula
            .compute(number)
            .map_or(Outcome::Waiting, Outcome::Value)
    }
}

/// Every derived sensor of the model with its formula, in the order of the config.
fn formulas(config: &SiteModelConfig) -> Vec<(String, Formula)> {
    let mut list = Vec::new();
    for zone in &config.zone {
        if let Some(s) = &zone.shielding {
            let difference = |less| Formula::Difference {
                minuend: s.outside.clone(),
                subtrahend: s.inside.clone(),
                less,
            };
            list.push((zone_shielding_db(&zone.name), difference(0.0)));
            let margin = difference(s.required_db);
            list.push((zone_shielding_margin_db(&zone.name), margin));
        }
        if !zone.temperature.is_empty() {
            let hottest = Formula::Hottest(zone.temperature.clone());
            list.push((zone_hottest_c(&zone.name), hottest));
        }
    }
    for door in &config.door {
        if let (Some(cycles), Some(limit)) = (&door.cycles, door.cycle_limit) {
            let remaining = Formula::Remaining {
                input: cycles.clone(),
                limit: limit as f64,
            };
            list.push((door_cycles_left(&door.name), remaining));
        }
    }
    list
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
