//! The site state the alarms call for: the worst effect among the active alarms that no
//! other alarm inhibits, with a sentence naming them.
//!
//! Each alarm's effect is its severity's (critical → `critical`, warning → `warning`, info →
//! none) or the `site_state` its rule forces, whichever is worse; a cleared alarm, even one
//! still listed for acknowledgement, has none.

use appliance::dbus::contracts::SiteState;

use super::alarm::{Alarm, state_rank};

/// The site state and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteStatus {
    pub state: SiteState,
    /// Names the alarms that cause the state; empty when `normal`.
    pub reason: String,
}

impl SiteStatus {
    pub fn normal() -> SiteStatus {
        SiteStatus {
            state: SiteState::Normal,
            reason: String::new(),
        }
    }
}

/// The state from `alarms`; `inhibited` says whether an alarm is muted by another.
pub fn derive<'a>(
    alarms: impl IntoIterator<Item = &'a Alarm>,
    inhibited: impl Fn(&Alarm) -> bool,
) -> SiteStatus {
    let mut worst = SiteState::Normal;
    let mut causes: Vec<&Alarm> = Vec::new();
    for alarm in alarms {
        if !alarm.active || inhibited(alarm) {
            continue;
        }
        let effect = alarm.site_effect();
        if effect == SiteState::Normal {
            continue;
        }
        match state_rank(effect).cmp(&state_rank(worst)) {
            std::cmp::Ordering::Greater => {
                worst = effect;
                causes = vec![alarm];
            }
            std::cmp::Ordering::Equal => causes.push(alarm),
            std::cmp::Ordering::Less => {}
        }
    }
    if causes.is_empty() {
        return SiteStatus::normal();
    }
    let named: Vec<String> = causes
        .iter()
        .map(|a| format!("{} ({})", a.key, a.summary))
        .collect();
    let reason = if named.len() == 1 {
        format!("The site is in {worst} because of alarm {}.", named[0])
    } else {
        format!(
            "The site is in {worst} because of alarms {}.",
            named.join(", ")
        )
    };
    SiteStatus {
        state: worst,
        reason,
    }
}
