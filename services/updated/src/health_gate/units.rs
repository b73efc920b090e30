//! The BunkerOS service units as systemd reports them, read over D-Bus, and what each state
//! means for the gate.
//!
//! The proxies cover only what the gate reads: `Manager.LoadUnit` (which returns a loaded
//! unit's object as `GetUnit` does, and loads one that is not, so a unit the boot never pulled
//! in is still reported rather than an error), the `Unit` properties `LoadState`, `ActiveState`,
//! `SubState`, `ConditionResult`, `ConditionTimestampMonotonic`, and the `Service` property
//! `Result`. Properties are read fresh each round (no cache): the gate polls.
//!
//! The units are `Type=notify`: systemd shows them `active` only after they said READY=1, so
//! `active` is READY.

use zbus::Connection;
use zbus::proxy::CacheProperties;
use zbus::zvariant::OwnedObjectPath;

use super::settings::unit_check_name;
use super::verdict::Check;

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
pub trait SystemdManager {
    /// The unit's object, loading the unit from disk if systemd has not yet.
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1"
)]
pub trait SystemdUnit {
    /// `loaded`, `not-found`, `bad-setting`, `error`, `masked`.
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;
    /// `active`, `reloading`, `inactive`, `failed`, `activating`, `deactivating`.
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    /// The unit type's own state, e.g. `running`, `start`, `auto-restart`, `dead`.
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
    /// Whether the unit's conditions held when last checked (false also when never checked).
    #[zbus(property)]
    fn condition_result(&self) -> zbus::Result<bool>;
    /// When the conditions were last checked; 0 when never: what tells "skipped by its
    /// condition" from "never started", which both read `ConditionResult=false`.
    #[zbus(property)]
    fn condition_timestamp_monotonic(&self) -> zbus::Result<u64>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1"
)]
pub trait SystemdService {
    /// `success`, or why the last run failed: `exit-code`, `signal`, `core-dump`, `watchdog`,
    /// `timeout`, `start-limit-hit`, `resources`, `oom-kill`, ...
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
}

/// A service unit's state, as systemd reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitObservation {
    /// e.g. `trustd.service`.
    pub unit: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    /// The service's `Result`.
    pub result: String,
    /// Whether systemd has checked the unit's conditions in this boot.
    pub condition_checked: bool,
    /// What the check said.
    pub condition_result: bool,
}

impl UnitObservation {
    /// systemd did not start the unit because a condition did not hold (e.g. hubd before the
    /// operator provides hubd.toml): the service is not configured on this appliance.
    pub fn skipped_by_condition(&self) -> bool {
        self.condition_checked && !self.condition_result && self.active_state == "inactive"
    }

    /// The unit's check: active (READY) or skipped by its condition passes; anything else
    /// fails, saying the state and, where there is one, why the last run failed.
    pub fn judge(&self) -> Check {
        let name = unit_check_name(&self.unit);
        let unit = &self.unit;
        let (active, sub) = (self.active_state.as_str(), self.sub_state.as_str());
        if self.load_state == "not-found" {
            return Check::fail(name, format!("{unit} is not installed (not-found)"));
        }
        if self.load_state != "loaded" {
            return Check::fail(
                name,
                format!(
                    "{unit} cannot be used: its load state is {}",
                    self.load_state
                ),
            );
        }
        match active {
            "active" | "reloading" => Check::pass(name, format!("{unit} is {active} ({sub})")),
            "inactive" if self.skipped_by_condition() => Check::pass(
                name,
                format!(
                    "{unit} is not configured here: systemd skipped it, its condition does not hold"
                ),
            ),
            "failed" => Check::fail(
                name,
                format!("{unit} failed ({sub}, result {})", self.result),
            ),
            "activating" => Check::fail(
                name,
                format!(
                    "{unit} is still activating ({sub}), not ready{}",
                    self.last_failure()
                ),
            ),
            _ => Check::fail(
                name,
                format!(
                    "{unit} is {active} ({sub}), not running{}",
                    self.last_failure()
                ),
            ),
        }
    }

    /// `; its last run ended with result exit-code`, or nothing after a clean run.
    fn last_failure(&self) -> String {
        match self.result.as_str() {
            "success" | "" => String::new(),
            result => format!("; its last run ended with result {result}"),
        }
    }
}

/// Reads `unit` from systemd on `connection`.
pub async fn observe_unit(connection: &Connection, unit: &str) -> zbus::Result<UnitObservation> {
    let manager = SystemdManagerProxy::builder(connection)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let path = manager.load_unit(unit).await?;
    let unit_proxy = SystemdUnitProxy::builder(connection)
        .path(path.clone())?
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let service = SystemdServiceProxy::builder(connection)
        .path(path)?
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let load_state = unit_proxy.load_state().await?;
    // A unit that is not found has no Service properties worth reading.
    let result = if load_state == "loaded" {
        service.result().await?
    } else {
        String::new()
    };
    Ok(UnitObservation {
        unit: unit.to_owned(),
        load_state,
        active_state: unit_proxy.active_state().await?,
        sub_state: unit_proxy.sub_state().await?,
        result,
        condition_checked: unit_proxy.condition_timestamp_monotonic().await? != 0,
        condition_result: unit_proxy.condition_result().await?,
    })
}
