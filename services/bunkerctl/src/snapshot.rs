//! What `bunkerctl status` learned about the appliance: one typed snapshot per BunkerOS unit.
//!
//! The query (`status.rs`) fills these from systemd; the views (`status_view.rs`, `status_json.rs`)
//! and the verdict below only read them, so every rendering is a pure function of this data.

/// The appliance's state at one instant: its name and every BunkerOS unit, in the operator's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplianceStatus {
    /// From `/proc/sys/kernel/hostname`.
    pub hostname: String,
    /// One entry per unit of `appliance::units::BUNKEROS_UNITS`, in that order.
    pub units: Vec<UnitSnapshot>,
}

/// One unit as systemd reported it. States are systemd's own words (`loaded`, `not-found`,
/// `active`, `failed`, `running`, `auto-restart`, …) so they match `systemctl` and its manual.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSnapshot {
    /// systemd unit name, e.g. `trustd.service`.
    pub unit: String,
    /// What the unit is for, from the shared unit list.
    pub role: String,
    /// `LoadState`: `loaded`, `not-found`, `masked`, `error`, `bad-setting`, …
    pub load_state: String,
    /// `ActiveState`: `active`, `reloading`, `inactive`, `failed`, `activating`, `deactivating`, …
    pub active_state: String,
    /// `SubState`, e.g. `running`, `dead`, `auto-restart`.
    pub sub_state: String,
    /// When the unit entered its current active state (`StateChangeTimestamp`), µs since the Unix
    /// epoch; `None` when systemd never recorded one.
    pub since_usec: Option<u64>,
    /// The last `STATUS=` text the service sent with sd_notify; `None` when empty or not a service.
    pub status_text: Option<String>,
    /// PID of the service's main process; `None` when no main process runs.
    pub main_pid: Option<u32>,
    /// How often systemd restarted the service (`NRestarts`); `None` for units that are not loaded services.
    pub restarts: Option<u32>,
}

impl UnitSnapshot {
    /// Whether the image ships this unit at all. A unit that systemd cannot find is "not installed";
    /// anything else (even `masked` or `bad-setting`) is installed and is expected to be active.
    pub fn is_installed(&self) -> bool {
        self.load_state != "not-found"
    }

    /// Active in the sense of `systemctl is-active`: serving (`active`) or reloading while serving.
    pub fn is_active(&self) -> bool {
        matches!(self.active_state.as_str(), "active" | "reloading")
    }

    /// Whether the service's own `STATUS=` text is current: only while its main process runs, since
    /// systemd keeps the last text of a service that has exited or is waiting to restart.
    pub fn live_status_text(&self) -> Option<&str> {
        self.main_pid.and(self.status_text.as_deref())
    }
}

impl ApplianceStatus {
    /// Units the image ships.
    pub fn installed(&self) -> impl Iterator<Item = &UnitSnapshot> {
        self.units.iter().filter(|unit| unit.is_installed())
    }

    /// The answer `bunkerctl status` gives with its exit code.
    pub fn verdict(&self) -> Verdict {
        if self.installed().all(UnitSnapshot::is_active) {
            Verdict::AllActive
        } else {
            Verdict::SomeNotActive
        }
    }
}

/// Whether every installed BunkerOS unit is active. Units the image does not ship do not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every installed unit is active (also when none is installed).
    AllActive,
    /// At least one installed unit is inactive, failed, or still starting.
    SomeNotActive,
}

impl Verdict {
    /// The process exit code, following `systemctl is-active`: 0 all active, 3 not active.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::AllActive => 0,
            Verdict::SomeNotActive => 3,
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Unit snapshots as systemd reports them in the situations an operator meets.
    use super::{ApplianceStatus, UnitSnapshot};

    /// 2026-01-01T12:00:00Z in µs since the epoch.
    pub const NOW_USEC: u64 = 1_767_268_800_000_000;

    pub fn running(unit: &str, since_usec: u64, status: &str) -> UnitSnapshot {
        UnitSnapshot {
            unit: unit.to_owned(),
            role: format!("role of {unit}"),
            load_state: "loaded".to_owned(),
            active_state: "active".to_owned(),
            sub_state: "running".to_owned(),
            since_usec: Some(since_usec),
            status_text: (!status.is_empty()).then(|| status.to_owned()),
            main_pid: Some(412),
            restarts: Some(0),
        }
    }

    pub fn failed(unit: &str, since_usec: u64, stale_status: &str) -> UnitSnapshot {
        UnitSnapshot {
            active_state: "failed".to_owned(),
            sub_state: "failed".to_owned(),
            main_pid: None,
            restarts: Some(5),
            ..running(unit, since_usec, stale_status)
        }
    }

    pub fn restarting(unit: &str, since_usec: u64) -> UnitSnapshot {
        UnitSnapshot {
            active_state: "activating".to_owned(),
            sub_state: "auto-restart".to_owned(),
            main_pid: None,
            restarts: Some(2),
            ..running(unit, since_usec, "")
        }
    }

    pub fn not_installed(unit: &str) -> UnitSnapshot {
        UnitSnapshot {
            unit: unit.to_owned(),
            role: format!("role of {unit}"),
            load_state: "not-found".to_owned(),
            active_state: "inactive".to_owned(),
            sub_state: "dead".to_owned(),
            since_usec: None,
            status_text: None,
            main_pid: None,
            restarts: None,
        }
    }

    pub fn appliance(units: Vec<UnitSnapshot>) -> ApplianceStatus {
        ApplianceStatus {
            hostname: "bunker-01".to_owned(),
            units,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn all_installed_units_active_exits_zero() {
        let status = appliance(vec![
            running("trustd.service", NOW_USEC, "ready"),
            not_installed("hubd.service"),
        ]);
        assert_eq!(status.verdict(), Verdict::AllActive);
        assert_eq!(status.verdict().exit_code(), 0);
    }

    #[test]
    fn a_failed_unit_exits_three() {
        let status = appliance(vec![
            running("trustd.service", NOW_USEC, "ready"),
            failed("hubd.service", NOW_USEC, ""),
        ]);
        assert_eq!(status.verdict(), Verdict::SomeNotActive);
        assert_eq!(status.verdict().exit_code(), 3);
    }

    #[test]
    fn a_unit_still_starting_is_not_active() {
        let status = appliance(vec![restarting("minerd.service", NOW_USEC)]);
        assert_eq!(status.verdict().exit_code(), 3);
    }

    #[test]
    fn a_reloading_unit_is_active() {
        let mut unit = running("sited.service", NOW_USEC, "");
        unit.active_state = "reloading".to_owned();
        assert_eq!(appliance(vec![unit]).verdict().exit_code(), 0);
    }

    #[test]
    fn a_masked_unit_is_installed_and_not_active() {
        let mut unit = not_installed("updated.service");
        unit.load_state = "masked".to_owned();
        assert!(unit.is_installed());
        assert_eq!(appliance(vec![unit]).verdict().exit_code(), 3);
    }

    #[test]
    fn nothing_installed_is_vacuously_all_active() {
        let status = appliance(vec![not_installed("trustd.service")]);
        assert_eq!(status.verdict().exit_code(), 0);
    }

    #[test]
    fn status_text_of_a_dead_service_is_stale() {
        assert_eq!(
            failed("hubd.service", NOW_USEC, "linking").live_status_text(),
            None
        );
        assert_eq!(
            running("hubd.service", NOW_USEC, "linking").live_status_text(),
            Some("linking")
        );
    }
}
