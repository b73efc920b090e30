//! The health gate after booting a new slot (issue 7, item 3).
//!
//! The integrator runs it when the booted UKI still has a boot counter: the slot is on trial.
//! Every second, until all pass in the same round or the timeout ends, it checks that
//!
//! - every configured BunkerOS service unit is active (READY), or skipped by its condition
//!   (not configured on this appliance) — `unit:<name>`, see [`units`];
//! - trustd is ready and its CA key really signs the gate's statement for this boot, verified
//!   against the CA key of its status — `trustd-signs`;
//! - every configured hub link is up, or this appliance is not a hub — `hub-links`;
//! - the site is neither critical nor in lockdown — `site-state`.
//!
//! The [`Verdict`] names every check with a sentence (serde, for the recorded reason and
//! `Update1`); a healthy one carries trustd's signature as evidence for a rollout. [`bless`]
//! then acts on it: `systemd-bless-boot good`, or `bad` and an orderly reboot into the previous
//! slot. The gate waits out the whole timeout even when a unit has failed: a unit restarting
//! (`Restart=on-failure`) or a site leaving `critical` may still come good in time.

mod blessing;
mod hub_links;
mod settings;
mod site_state;
mod trustd_signs;
pub mod units;
mod verdict;

#[cfg(test)]
#[path = "health_gate/tests.rs"]
mod tests;

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;
use zbus::Connection;
use zbus::names::BusName;

pub use blessing::{BlessError, Blessing, CommandFailed, bless, request_reboot};
pub use hub_links::judge_links;
pub use settings::{HealthGateSettings, unit_check_name};
pub use site_state::judge_site;
pub use units::UnitObservation;
pub use verdict::{
    BootId, BootIdError, Check, GateSignature, STATEMENT_DOMAIN, Verdict, check_names,
    statement_digest,
};

/// How long one D-Bus check may take: a hung service fails its check, not the gate's loop.
const CALL_LIMIT: Duration = Duration::from_secs(10);

/// How often the checks run while any fails.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// One round of every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    /// Units first (in the settings' order), then `trustd-signs`, `hub-links`, `site-state`.
    pub checks: Vec<Check>,
    /// trustd's signature, when `trustd-signs` passed.
    pub signature: Option<GateSignature>,
}

impl Round {
    /// Whether every check passed.
    pub fn all_passed(&self) -> bool {
        self.checks.iter().all(|check| check.passed)
    }
}

/// The gate for one boot.
#[derive(Debug, Clone)]
pub struct HealthGate {
    connection: Connection,
    settings: HealthGateSettings,
    boot: BootId,
}

impl HealthGate {
    /// The gate for `boot`, asking systemd, trustd, hubd and sited on `connection` (the system
    /// bus on the appliance). `settings` must have passed [`HealthGateSettings::validate`].
    pub fn new(connection: Connection, settings: HealthGateSettings, boot: BootId) -> Self {
        Self {
            connection,
            settings,
            boot,
        }
    }

    /// Runs rounds until all checks pass in one, or the timeout ends (the last round decides).
    pub async fn run(&self) -> Verdict {
        self.run_observed(|_, _| {}).await
    }

    /// Like [`run`](Self::run), handing each round and the time since the start to `on_round`
    /// first (for `Update1`'s progress while the gate waits).
    pub async fn run_observed(&self, mut on_round: impl FnMut(&Round, Duration)) -> Verdict {
        let started = Instant::now();
        let deadline = started + self.settings.timeout.as_duration();
        let mut last_failures = Vec::new();
        loop {
            let round = self.round().await;
            on_round(&round, started.elapsed());
            let after_secs = started.elapsed().as_secs();
            if let (true, Some(signature)) = (round.all_passed(), round.signature.clone()) {
                return Verdict::Healthy {
                    checks: round.checks,
                    signature,
                    after_secs,
                };
            }
            let (passed, failed): (Vec<Check>, Vec<Check>) =
                round.checks.into_iter().partition(|check| check.passed);
            if Instant::now() >= deadline {
                return Verdict::Unhealthy {
                    failed,
                    passed,
                    after_secs,
                };
            }
            if failed != last_failures {
                for check in &failed {
                    tracing::info!(check = %check.name, "waiting: {}", check.sentence);
                }
                last_failures = failed;
            }
            let now = Instant::now();
            tokio::time::sleep(POLL_EVERY.min(deadline.saturating_duration_since(now))).await;
        }
    }

    /// Every check once.
    pub async fn round(&self) -> Round {
        let readings = join_all(
            self.settings
                .units
                .iter()
                .map(|unit| within(units::observe_unit(&self.connection, unit))),
        )
        .await;
        let mut checks = Vec::new();
        let mut observed = Vec::new();
        for (unit, reading) in self.settings.units.iter().zip(readings) {
            match reading {
                Ok(observation) => {
                    checks.push(observation.judge());
                    observed.push(observation);
                }
                Err(why) => checks.push(Check::fail(
                    unit_check_name(unit),
                    format!("cannot read {unit} from systemd: {why}"),
                )),
            }
        }
        let (trust, hub, site) = tokio::join!(
            within(async {
                Ok::<_, Infallible>(
                    trustd_signs::check_trustd_signs(
                        &self.connection,
                        &self.settings.sign_as,
                        &self.boot,
                    )
                    .await,
                )
            }),
            within(async {
                Ok::<_, Infallible>(hub_links::check_hub_links(&self.connection, &observed).await)
            }),
            within(async {
                Ok::<_, Infallible>(site_state::check_site_state(&self.connection, &observed).await)
            }),
        );
        let (trust, signature) = trust.unwrap_or_else(|why| {
            (
                Check::fail(
                    check_names::TRUSTD_SIGNS,
                    format!("trustd cannot sign: {why}"),
                ),
                None,
            )
        });
        checks.push(trust);
        checks.push(hub.unwrap_or_else(|why| Check::fail(check_names::HUB_LINKS, why)));
        checks.push(site.unwrap_or_else(|why| Check::fail(check_names::SITE_STATE, why)));
        Round { checks, signature }
    }
}

/// `check` within [`CALL_LIMIT`]; errors as sentences.
async fn within<T, E: std::fmt::Display>(
    check: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_LIMIT, check).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} s", CALL_LIMIT.as_secs())),
    }
}

/// Whether `name` has an owner on the bus.
async fn on_bus(connection: &Connection, name: &str) -> Result<bool, String> {
    let text = name;
    let name = BusName::try_from(text).map_err(|e| format!("{text:?}: {e}"))?;
    let bus = zbus::fdo::DBusProxy::new(connection)
        .await
        .map_err(|e| format!("cannot ask the bus: {e}"))?;
    bus.name_has_owner(name)
        .await
        .map_err(|e| format!("cannot ask the bus whether {text} is there: {e}"))
}

/// The check of a service that is not on the bus: it passes as `meaning` ("not a hub") when its
/// unit was skipped by its condition (not configured here) or is not one the gate checks; it
/// fails when its unit should be running.
fn absent_service(
    check: &str,
    daemon: &str,
    bus_name: &str,
    units: &[UnitObservation],
    meaning: &str,
) -> Check {
    let unit = format!("{daemon}.service");
    match units.iter().find(|observed| observed.unit == unit) {
        Some(observed) if observed.skipped_by_condition() => Check::pass(
            check,
            format!("{meaning}: {unit} is not configured here (skipped by its condition)"),
        ),
        Some(_) => Check::fail(
            check,
            format!("{daemon} is not on the bus ({bus_name} has no owner)"),
        ),
        None => Check::pass(
            check,
            format!(
                "{meaning}: {daemon} is not on the bus and {unit} is not a unit the gate checks"
            ),
        ),
    }
}
