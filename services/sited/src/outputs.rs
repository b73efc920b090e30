//! Local outputs that need no uplink: which relay (siren, beacon, door interlock) is on, from
//! the alarms and the site state. `[[output]]` in `sited.toml`:
//!
//! ```toml
//! [[output]]
//! relay = "siren"                       # a relay of the hardware profile
//! alarms = ["door-*-forced", "intrusion-*", "arrester-*"]
//! on_while = "unacknowledged"           # quiet once an operator acknowledges
//!
//! [[output]]
//! relay = "door-1.interlock"
//! site_states = ["lockdown"]            # hold the door shut while the site is sealed off
//! ```
//!
//! A relay is on while any of its conditions holds: an alarm whose name matches one of
//! `alarms` (`*` matches any run of characters) is active (`on_while = "active"`, the
//! default) or active and not yet acknowledged (`"unacknowledged"`), or the site is in one of
//! `site_states`. An alarm muted by inhibition does not drive outputs; a silence does not
//! change them (it holds back notifications, while a siren is for the people in the building).
//! A relay named by no output is left as it is.

use std::collections::BTreeMap;

use appliance::config::Invalid;
use appliance::dbus::contracts::SiteState;
use serde::{Deserialize, Serialize};

use crate::rules::alarm::glob_match;
use crate::rules::{Alarm, SiteEffect};

/// When an alarm keeps its outputs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnWhile {
    /// While the alarm is active.
    #[default]
    Active,
    /// While the alarm is active and nobody has acknowledged it.
    Unacknowledged,
}

/// One `[[output]]`: a relay and what switches it on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// The relay's name in the hardware profile (`[[sensor_bus.relay]]`).
    pub relay: String,
    /// Alarm names (globs) that switch it on.
    #[serde(default)]
    pub alarms: Vec<String>,
    #[serde(default)]
    pub on_while: OnWhile,
    /// Site states that switch it on.
    #[serde(default)]
    pub site_states: Vec<SiteEffect>,
}

/// Checks the outputs against the relays the profile declares.
pub fn validate(outputs: &[OutputSpec], relay_exists: &dyn Fn(&str) -> bool) -> Vec<Invalid> {
    let mut problems = Vec::new();
    for (i, output) in outputs.iter().enumerate() {
        if !relay_exists(&output.relay) {
            problems.push(Invalid::new(
                format!("output[{i}].relay"),
                format!(
                    "`{}` is not a relay of the hardware profile ([[sensor_bus.relay]])",
                    output.relay
                ),
            ));
        }
        if outputs[..i].iter().any(|o| o.relay == output.relay) {
            problems.push(Invalid::new(
                format!("output[{i}].relay"),
                format!(
                    "`{}` already has an [[output]]: list every condition in one",
                    output.relay
                ),
            ));
        }
        if output.alarms.is_empty() && output.site_states.is_empty() {
            problems.push(Invalid::new(
                format!("output[{i}]"),
                "switches on for nothing: give `alarms`, `site_states` or both",
            ));
        }
        for (j, pattern) in output.alarms.iter().enumerate() {
            if pattern.trim().is_empty() || pattern.chars().any(char::is_whitespace) {
                problems.push(Invalid::new(
                    format!("output[{i}].alarms[{j}]"),
                    format!("`{pattern}` is not an alarm name pattern"),
                ));
            }
        }
    }
    problems
}

/// Whether each configured relay should be on now. `muted` says whether an alarm is muted by
/// inhibition.
pub fn wanted(
    outputs: &[OutputSpec],
    alarms: &[Alarm],
    muted: &dyn Fn(&Alarm) -> bool,
    state: SiteState,
) -> BTreeMap<String, bool> {
    outputs
        .iter()
        .map(|output| (output.relay.clone(), is_on(output, alarms, muted, state)))
        .collect()
}

fn is_on(
    output: &OutputSpec,
    alarms: &[Alarm],
    muted: &dyn Fn(&Alarm) -> bool,
    state: SiteState,
) -> bool {
    let by_state = output.site_states.iter().any(|effect| {
        let wanted = match effect {
            SiteEffect::Warning => SiteState::Warning,
            SiteEffect::Critical => SiteState::Critical,
            SiteEffect::Lockdown => SiteState::Lockdown,
        };
        wanted == state
    });
    by_state
        || alarms.iter().any(|alarm| {
            let holds = match output.on_while {
                OnWhile::Active => alarm.active,
                OnWhile::Unacknowledged => alarm.active && alarm.acknowledged.is_none(),
            };
            holds
                && !muted(alarm)
                && output
                    .alarms
                    .iter()
                    .any(|pattern| glob_match(pattern, &alarm.key.to_string()))
        })
}

#[cfg(test)]
#[path = "outputs_tests.rs"]
mod tests;
