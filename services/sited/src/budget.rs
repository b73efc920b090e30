//! What the site can afford: the power budget and thermal headroom sited publishes on Site1
//! (`PowerBudgetWatts`, `ThermalHeadroomCelsius`), which minerd curtails to.
//!
//! Pure and deterministic: the daemon passes every sensor event to [`BudgetModel::on_event`]
//! (the site model's derived events too, though the model reads the zones' probes itself) and
//! publishes the [`Budget`] it gets back.
//!
//! The rule throughout: a site that cannot see must not overspend. What is lost or not read
//! yet is assumed to be the worse case.
//!
//! Where the power comes from ([`PowerSource`]), in this order:
//! 1. any `on_battery` contact active: **battery**, whatever the feeds say (a UPS knows best
//!    whether its input is usable). A lost `on_battery` sensor does not by itself mean battery;
//! 2. a grid feed present: **grid**, with `grid_w × present / feeds` (each feed carries an
//!    equal share of the contracted capacity). A lost or unread feed contact counts as absent.
//!    With no `feeds` configured the grid counts as present;
//! 3. no feed present but a `generators` contact active: **generator**, with `generator_w`
//!    (a lost or unread generator contact counts as stopped);
//! 4. otherwise: **battery**.
//!
//! The power budget is the capacity less `reserve_w` (cooling, IT, lighting), never below 0.
//! On battery the loads get `battery_w`, which is already their share (the reserve is not
//! taken from it again), and nothing at all when any `ups_charge` is below `low_charge_pct` or
//! lost or unread: the last of the battery belongs to the reserve. Before any feed, generator
//! or UPS contact has reported, the source is **unknown** and the budget 0, unless none is
//! configured at all (then the grid is all there is).
//!
//! The thermal headroom is the smallest `limit_c − hottest` over the zones with a `limit_c`,
//! negative when a zone is over its limit. The hottest is taken over the zone's probes that
//! have a value; a zone none of whose probes has a value has headroom 0. With no zone limit at
//! all the headroom is `unmonitored_headroom_c`. Both figures are always finite.

use std::collections::{BTreeSet, HashMap};

use appliance::config::Invalid;
use serde::{Deserialize, Serialize};

use crate::sensor::{SensorEvent, SensorId, Value};
use crate::site_model::ZoneSpec;

/// The `[power]` section: the site's supplies and what the loads may have of them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PowerConfig {
    /// Contracted grid capacity in W, all feeds together (each feed carries an equal share).
    pub grid_w: f64,
    /// What the generators deliver together, in W.
    #[serde(default)]
    pub generator_w: f64,
    /// What the loads may draw on battery alone, in W; 0 (the default) sheds everything.
    #[serde(default)]
    pub battery_w: f64,
    /// Cooling, IT and lighting, in W: never given to the loads.
    #[serde(default)]
    pub reserve_w: f64,
    /// Contacts, one per grid feed: the feed is present.
    #[serde(default)]
    pub feeds: Vec<SensorId>,
    /// Contacts: a generator runs.
    #[serde(default)]
    pub generators: Vec<SensorId>,
    /// Contacts: a UPS runs on battery (NUT `<bus>.<ups>.on_battery`).
    #[serde(default)]
    pub on_battery: Vec<SensorId>,
    /// UPS charges in %; on battery, one below `low_charge_pct` (or unknown) sheds everything.
    #[serde(default)]
    pub ups_charge: Vec<SensorId>,
    /// The charge below which the loads get nothing on battery, in %.
    #[serde(default = "default_low_charge_pct")]
    pub low_charge_pct: f64,
}

fn default_low_charge_pct() -> f64 {
    50.0
}

/// The `[thermal]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThermalConfig {
    /// The headroom published when no zone has a `limit_c`, in °C.
    pub unmonitored_headroom_c: f64,
}

impl Default for ThermalConfig {
    fn default() -> Self {
        ThermalConfig {
            unmonitored_headroom_c: 20.0,
        }
    }
}

/// The largest `unmonitored_headroom_c`, in °C.
pub const MAX_UNMONITORED_HEADROOM_C: f64 = 100.0;

impl PowerConfig {
    /// Checks the section against the sensors the drivers provide, or says every problem with
    /// its key (`power.feeds[1]`).
    pub fn validate(&self, known_sensor: &dyn Fn(&SensorId) -> bool) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        let watts = [
            ("grid_w", self.grid_w),
            ("generator_w", self.generator_w),
            ("battery_w", self.battery_w),
            ("reserve_w", self.reserve_w),
        ];
        for (key, w) in watts {
            if !(w.is_finite() && w >= 0.0) {
                let reason = format!("{w} W is not a power: use 0 or more");
                problems.push(Invalid::new(format!("power.{key}"), reason));
            }
        }
        if !(0.0..=100.0).contains(&self.low_charge_pct) {
            let reason = format!("{} % is not a charge: use 0 to 100", self.low_charge_pct);
            problems.push(Invalid::new("power.low_charge_pct", reason));
        }
        if self.generator_w > 0.0 && self.generators.is_empty() {
            problems.push(Invalid::new(
                "power.generator_w",
                "is set but no `generators` contact says when a generator runs",
            ));
        }
        let lists = [
            ("feeds", &self.feeds),
            ("generators", &self.generators),
            ("on_battery", &self.on_battery),
            ("ups_charge", &self.ups_charge),
        ];
        let mut seen = BTreeSet::new();
        for (list, sensors) in lists {
            for (i, sensor) in sensors.iter().enumerate() {
                let key = format!("power.{list}[{i}]");
                if !known_sensor(sensor) {
                    let reason = format!("no sensor driver provides `{sensor}`");
                    problems.push(Invalid::new(key, reason));
                } else if !seen.insert(sensor) {
                    let reason = format!("`{sensor}` is already listed above");
                    problems.push(Invalid::new(key, reason));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

impl ThermalConfig {
    /// Checks the section (`thermal.unmonitored_headroom_c`).
    pub fn validate(&self) -> Result<(), Vec<Invalid>> {
        let h = self.unmonitored_headroom_c;
        if (0.0..=MAX_UNMONITORED_HEADROOM_C).contains(&h) {
            return Ok(());
        }
        Err(vec![Invalid::new(
            "thermal.unmonitored_headroom_c",
            format!("{h} °C is not a headroom: use 0 to {MAX_UNMONITORED_HEADROOM_C}"),
        )])
    }
}

/// Where the site's power comes from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerSource {
    Grid,
    Generator,
    Battery,
    /// No contact has reported yet.
    Unknown,
}

impl PowerSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerSource::Grid => "grid",
            PowerSource::Generator => "generator",
            PowerSource::Battery => "battery",
            PowerSource::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for PowerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the site can afford now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Budget {
    /// The power the loads may draw, in W: finite, never negative.
    pub power_w: f64,
    /// How far the hottest monitored zone is below its limit, in °C: finite; negative when
    /// a zone is over it.
    pub headroom_c: f64,
    pub source: PowerSource,
    /// Why, for people: "1 of 2 feeds present: 100000 W of grid less 30000 W reserve; zone
    /// `hall-a` is 12.5 °C below its limit of 35 °C".
    pub why: String,
}

/// What the model last heard from one sensor.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reading {
    /// Not read yet, or lost: either way not known.
    Unknown,
    Contact(bool),
    Number(f64),
}

impl Reading {
    fn of(event: &SensorEvent) -> Reading {
        match event {
            SensorEvent::Sample {
                value: Value::Contact(c),
                ..
            } => Reading::Contact(*c),
            SensorEvent::Sample {
                value: Value::Number(n),
                ..
            } if n.is_finite() => Reading::Number(*n),
            SensorEvent::Sample { .. } | SensorEvent::Lost { .. } => Reading::Unknown,
        }
    }
}

/// A zone the headroom is measured in.
#[derive(Debug, Clone)]
struct LimitedZone {
    name: String,
    limit_c: f64,
    temperature: Vec<SensorId>,
}

/// The budget at run time, following the power and temperature sensors.
#[derive(Debug, Clone)]
pub struct BudgetModel {
    power: PowerConfig,
    thermal: ThermalConfig,
    zones: Vec<LimitedZone>,
    readings: HashMap<SensorId, Reading>,
    /// A feed, generator or on-battery contact has reported (a sample or a loss).
    contacts_reported: bool,
    current: Budget,
}

impl BudgetModel {
    /// The model of checked `[power]`, `[thermal]` and `[[zone]]` sections, at its
    /// conservative start.
    pub fn new(power: &PowerConfig, thermal: &ThermalConfig, zones: &[ZoneSpec]) -> BudgetModel {
        let zones: Vec<LimitedZone> = zones
            .iter()
            .filter_map(|z| {
                Some(LimitedZone {
                    name: z.name.clone(),
                    limit_c: z.limit_c?,
                    temperature: z.temperature.clone(),
                })
            })
            .collect();
        let watched = power
            .feeds
            .iter()
            .chain(&power.generators)
            .chain(&power.on_battery)
            .chain(&power.ups_charge)
            .chain(zones.iter().flat_map(|z| &z.temperature));
        let readings = watched.map(|s| (s.clone(), Reading::Unknown)).collect();
        let mut model = BudgetModel {
            power: power.clone(),
            thermal: thermal.clone(),
            zones,
            readings,
            contacts_reported: false,
            current: Budget {
                power_w: 0.0,
                headroom_c: 0.0,
                source: PowerSource::Unknown,
                why: String::new(),
            },
        };
        model.current = model.assess();
        model
    }

    pub fn current(&self) -> &Budget {
        &self.current
    }

    /// The new budget when this event changes the power budget, the headroom or the source;
    /// `None` otherwise (the reason in [`current`](Self::current) is kept up to date anyway).
    pub fn on_event(&mut self, event: &SensorEvent) -> Option<Budget> {
        let reading = self.readings.get_mut(event.sensor())?;
        *reading = Reading::of(event);
        let p = &self.power;
        if [&p.feeds, &p.generators, &p.on_battery]
            .iter()
            .any(|list| list.contains(event.sensor()))
        {
            self.contacts_reported = true;
        }
        let next = self.assess();
        let changed = next.power_w != self.current.power_w
            || next.headroom_c != self.current.headroom_c
            || next.source != self.current.source;
        self.current = next;
        changed.then(|| self.current.clone())
    }

    fn assess(&self) -> Budget {
        let (power_w, source, power_why) = self.power();
        let (headroom_c, thermal_why) = self.headroom();
        Budget {
            power_w: finite_or_zero(power_w.max(0.0)),
            headroom_c: finite_or_zero(headroom_c),
            source,
            why: format!("{power_why}; {thermal_why}"),
        }
    }

    fn contact(&self, sensor: &SensorId) -> bool {
        self.readings.get(sensor) == Some(&Reading::Contact(true))
    }

    /// The loads' power, where it comes from, and why.
    fn power(&self) -> (f64, PowerSource, String) {
        let p = &self.power;
        let any_contacts =
            !(p.feeds.is_empty() && p.generators.is_empty() && p.on_battery.is_empty());
        if any_contacts && !self.contacts_reported {
            let why = "no feed, generator or UPS contact has reported yet: nothing may be spent";
            return (0.0, PowerSource::Unknown, why.into());
        }
        let on_battery: Vec<String> = p
            .on_battery
            .iter()
            .filter(|s| self.contact(s))
            .map(|s| format!("`{s}`"))
            .collect();
        if !on_battery.is_empty() {
            return self.battery(format!("on battery ({})", on_battery.join(", ")));
        }
        let reserve = format!("less {} reserve", watts(p.reserve_w));
        if p.feeds.is_empty() {
            let why = format!(
                "grid assumed present (no feed contacts): {} of grid {reserve}",
                watts(p.grid_w)
            );
            return (p.grid_w - p.reserve_w, PowerSource::Grid, why);
        }
        let present = p.feeds.iter().filter(|s| self.contact(s)).count();
        if present > 0 {
            let total = p.feeds.len();
            let capacity = p.grid_w * present as f64 / total as f64;
            let why = format!(
                "{present} of {total} feeds present: {} of grid {reserve}",
                watts(capacity)
            );
            return (capacity - p.reserve_w, PowerSource::Grid, why);
        }
        if p.generators.iter().any(|s| self.contact(s)) {
            let why = format!(
                "no grid feed present, generator running: {} of generator {reserve}",
                watts(p.generator_w)
            );
            return (p.generator_w - p.reserve_w, PowerSource::Generator, why);
        }
        self.battery("no grid feed present and no generator running: on battery".into())
    }

    /// On battery: `battery_w`, unless a UPS charge is low or unknown.
    fn battery(&self, situation: String) -> (f64, PowerSource, String) {
        let p = &self.power;
        for sensor in &p.ups_charge {
            let why = match self.readings.get(sensor) {
                Some(Reading::Number(pct)) if *pct >= p.low_charge_pct => continue,
                Some(Reading::Number(pct)) => format!(
                    "{situation} and `{sensor}` at {pct} % is below {} %: nothing may be spent",
                    p.low_charge_pct
                ),
                _ => format!(
                    "{situation} and the charge `{sensor}` is not known: nothing may be spent"
                ),
            };
            return (0.0, PowerSource::Battery, why);
        }
        let why = format!(
            "{situation}: the loads may draw {} on battery",
            watts(p.battery_w)
        );
        (p.battery_w, PowerSource::Battery, why)
    }

    /// The smallest headroom over the zones with a limit, and why.
    fn headroom(&self) -> (f64, String) {
        let mut tightest: Option<(f64, String)> = None;
        for zone in &self.zones {
            let hottest = zone
                .temperature
                .iter()
                .filter_map(|s| match self.readings.get(s) {
                    Some(Reading::Number(t)) => Some(*t),
                    _ => None,
                })
                .reduce(f64::max);
            let (headroom, why) = match hottest {
                None => (
                    0.0,
                    format!(
                        "zone `{}` has no temperature reading: no headroom",
                        zone.name
                    ),
                ),
                Some(t) => {
                    let headroom = zone.limit_c - t;
                    let side = if headroom >= 0.0 { "below" } else { "over" };
                    let why = format!(
                        "zone `{}` is {} °C {side} its limit of {} °C",
                        zone.name,
                        headroom.abs(),
                        zone.limit_c
                    );
                    (headroom, why)
                }
            };
            if tightest.as_ref().is_none_or(|(h, _)| headroom < *h) {
                tightest = Some((headroom, why));
            }
        }
        tightest.unwrap_or_else(|| {
            let h = self.thermal.unmonitored_headroom_c;
            (
                h,
                format!("no zone has a temperature limit: {h} °C of headroom assumed"),
            )
        })
    }
}

fn watts(w: f64) -> String {
    format!("{w:.0} W")
}

fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
