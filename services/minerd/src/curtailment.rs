//! Curtailment: keep the fleet's draw under the power budget `sited` publishes (or a static
//! one without `sited`), derated when the room runs out of thermal headroom. A pure planner:
//! the fleet as last polled and the budget in, [`CurtailAction`]s out; the caller carries
//! them out (through `operations`) and tells the planner what it issued.
//!
//! Policy (issue 5 §6):
//! - **Over budget: shed at once**, cheapest hashrate first. The cost of a step is the
//!   hashrate lost per watt saved, i.e. 1 / (the miner's J/TH): the least efficient miner is
//!   shed first. For one miner, lowering its power target (where the firmware supports one)
//!   comes before sleeping it: at best equal cost per watt under a linear model (ASICs are in
//!   fact more efficient at lower voltage, so it costs less), it keeps the miner hashing,
//!   and it avoids the minutes of a wake-up. A miner of 50 J/TH is therefore slept before a
//!   25 J/TH miner's target is touched; the last step may lower a target only as far as needed.
//! - **Under budget: restore, most efficient first** (wake, then raise the target), only when
//!   the result stays under the budget minus a margin (`margin_w`, or `margin_fraction` of the
//!   budget if larger) under the *lowest* budget seen within the last `hold`, and only once
//!   `hold` has passed since the last shed. A budget that oscillates around the draw thus
//!   sheds once and then holds for as long as it oscillates; it never flaps miners.
//! - **Thermal headroom** (°C below the room's limit, from `sited`) derates the budget:
//!   at `derate_below_c` or more the budget counts in full; from there down to 0 °C it falls
//!   linearly to `derate_floor` × budget; with no headroom left (negative) the effective
//!   budget is 0 and everything that can be shed is shed.
//! - Actions issued in the last `settle` seconds count as done (a miner takes seconds to stop
//!   drawing after `sleep`), so one budget drop is not answered twice.

mod planner;

use std::time::Duration;

use appliance::config::{DurationSecs, Invalid};
use serde::Deserialize;

pub use planner::{CurtailmentPlanner, Plan};

/// A miner as curtailment sees it. The fleet handed to the planner is the miners it may act
/// on: a miner an operator put to sleep by hand stays out of it, so curtailment never wakes it.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerLoad {
    pub id: String,
    pub asleep: bool,
    /// Watts drawn now.
    pub draw_w: f64,
    /// Watts it draws awake at its current power target (last seen awake, if asleep).
    pub awake_draw_w: f64,
    /// TH/s awake at its current target (last seen awake, if asleep).
    pub awake_hashrate_ths: f64,
    /// Power target support, where the firmware takes one over its API (LuxOS profiles).
    pub power_target: Option<PowerTarget>,
    /// The firmware can sleep (pause hashing, fans down) and wake on command.
    pub can_sleep: bool,
}

impl MinerLoad {
    /// Joules per terahash; a miner that draws and does not hash is infinitely inefficient.
    pub fn joules_per_th(&self) -> f64 {
        if self.awake_hashrate_ths > 0.0 {
            self.awake_draw_w / self.awake_hashrate_ths
        } else {
            f64::INFINITY
        }
    }
}

/// A firmware power target, in watts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerTarget {
    pub current_w: f64,
    /// The lowest the firmware accepts.
    pub min_w: f64,
    /// What the operator set (the inventory's power target): restoring goes back up to it,
    /// never above.
    pub preferred_w: f64,
}

/// The budget to follow: `sited`'s, or the static one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub power_w: f64,
    /// °C below the room's limit; `None` when nobody measures it (static budget).
    pub thermal_headroom_c: Option<f64>,
}

/// What the planner asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum CurtailAction {
    Sleep { id: String },
    Wake { id: String },
    SetPowerTarget { id: String, watts: f64 },
}

impl CurtailAction {
    pub fn miner(&self) -> &str {
        match self {
            CurtailAction::Sleep { id }
            | CurtailAction::Wake { id }
            | CurtailAction::SetPowerTarget { id, .. } => id,
        }
    }
}

/// `[curtailment]` in minerd's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CurtailmentSettings {
    /// The budget followed when `sited` is not there, in watts.
    pub static_budget_w: f64,
    /// Restore only while the draw stays this far under the budget ...
    pub margin_w: f64,
    /// ... or this fraction of the budget, whichever is larger.
    pub margin_fraction: f64,
    /// No restore for this long after a shed.
    pub hold: DurationSecs<0, 86_400>,
    /// An issued action counts as done for this long, while the miner's draw follows it.
    pub settle: DurationSecs<1, 600>,
    /// What a sleeping miner still draws (control board, fans at idle), in watts.
    pub sleep_draw_w: f64,
    /// Thermal headroom (°C) below which the budget is derated.
    pub derate_below_c: f64,
    /// Fraction of the budget left at 0 °C of headroom.
    pub derate_floor: f64,
}

impl Default for CurtailmentSettings {
    /// The static budget fits 1,000 S19-class miners (3.25 kW each) with no curtailment: a
    /// site without `sited` that wants curtailment must set its own.
    fn default() -> Self {
        CurtailmentSettings {
            static_budget_w: 3_250_000.0,
            margin_w: 500.0,
            margin_fraction: 0.02,
            hold: DurationSecs::from_const(300),
            settle: DurationSecs::from_const(30),
            sleep_draw_w: 15.0,
            derate_below_c: 5.0,
            derate_floor: 0.5,
        }
    }
}

impl CurtailmentSettings {
    pub fn validate(&self) -> Result<(), Invalid> {
        let watts = |key: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Invalid::new(
                    format!("curtailment.{key}"),
                    "must be a number of watts, 0 or more",
                ))
            }
        };
        watts("static_budget_w", self.static_budget_w)?;
        watts("margin_w", self.margin_w)?;
        watts("sleep_draw_w", self.sleep_draw_w)?;
        if !(0.0..=0.5).contains(&self.margin_fraction) {
            return Err(Invalid::new(
                "curtailment.margin_fraction",
                "must be between 0 and 0.5",
            ));
        }
        if !(self.derate_below_c.is_finite() && self.derate_below_c > 0.0) {
            return Err(Invalid::new(
                "curtailment.derate_below_c",
                "must be more than 0 °C",
            ));
        }
        if !(0.0..=1.0).contains(&self.derate_floor) {
            return Err(Invalid::new(
                "curtailment.derate_floor",
                "must be between 0 and 1",
            ));
        }
        Ok(())
    }

    /// The budget actually followed, after the thermal derating.
    pub fn effective_budget_w(&self, budget: Budget) -> f64 {
        let power = budget.power_w.max(0.0);
        let Some(headroom) = budget.thermal_headroom_c else {
            return power;
        };
        let factor = if headroom >= self.derate_below_c {
            1.0
        } else if headroom >= 0.0 {
            self.derate_floor + (1.0 - self.derate_floor) * headroom / self.derate_below_c
        } else {
            0.0
        };
        power * factor
    }

    /// The margin kept free before restoring anything.
    pub fn margin_for(&self, budget_w: f64) -> f64 {
        self.margin_w.max(self.margin_fraction * budget_w)
    }

    pub fn hold_time(&self) -> Duration {
        self.hold.as_duration()
    }
}

#[cfg(test)]
#[path = "curtailment_tests.rs"]
mod tests;
