//! What Mining1's state-changing calls do: `StartAction` becomes a job over
//! [`operations::run_bulk`](crate::operations::run_bulk) (intent and each miner's result in the
//! audit log, with the caller as actor), `Scan` asks the daemon's discovery loop and records
//! who asked.

use std::net::SocketAddr;
use std::sync::Arc;

use appliance::audit_log::Entry;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use zbus::object_server::SignalEmitter;

use super::jobs::Jobs;
use super::{Mining1, MiningError};
use crate::cgminer::ClientConfig;
use crate::config::MinerdConfig;
use crate::discovery::DiscoveryReport;
use crate::hijack_guard::HijackGuard;
use crate::inventory::{Inventory, MinerRecord, MinerState};
use crate::operations::{
    BulkReport, BulkRequest, MinerAction, MinerTarget, Progress, SharedAuditLog, run_bulk,
};
use crate::snapshot::Republish;

/// Longest note `Release` takes for the audit log.
pub const MAX_NOTE: usize = 1024;
/// Highest power target accepted, in watts (no ASIC draws 20 kW).
pub const MAX_POWER_TARGET_W: u32 = 20_000;
/// The password miners present to minerd's proxy (it does not check one).
const PROXY_PASSWORD: &str = "x";

/// A request to the discovery loop: scan now, answer here.
pub type ScanRequest = oneshot::Sender<Result<DiscoveryReport, String>>;

/// An action as the operator asked for it, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// Restore each miner's sanctioned pools (minerd's proxy, its owner's identity).
    SetPools,
    Reboot,
    Sleep,
    Wake,
    PowerTarget {
        watts: u32,
    },
}

impl Requested {
    /// `action` and `argument` of `StartAction`.
    pub fn parse(action: &str, argument: &str) -> Result<Requested, MiningError> {
        let argument = argument.trim();
        let requested = match action {
            "set-pools" => Requested::SetPools,
            "reboot" => Requested::Reboot,
            "sleep" => Requested::Sleep,
            "wake" => Requested::Wake,
            "power-target" => {
                let watts = argument
                    .parse::<u32>()
                    .ok()
                    .filter(|w| (1..=MAX_POWER_TARGET_W).contains(w));
                return watts.map(|watts| Requested::PowerTarget { watts }).ok_or_else(|| {
                    MiningError::InvalidArgument(format!(
                        "power-target takes the watts as its argument, 1 to {MAX_POWER_TARGET_W}, not `{argument}`"
                    ))
                });
            }
            other => {
                return Err(MiningError::InvalidArgument(format!(
                    "`{other}` is not an action; actions are set-pools, reboot, sleep, wake and power-target"
                )));
            }
        };
        if !argument.is_empty() {
            return Err(MiningError::InvalidArgument(format!(
                "{action} takes no argument, but `{argument}` was given"
            )));
        }
        Ok(requested)
    }

    /// The action on the miner at `target`: set-pools differs per miner (its identity).
    fn for_miner(self, config: &MinerdConfig, target: &MinerTarget) -> MinerAction {
        match self {
            Requested::SetPools => {
                let ip = match target.api {
                    SocketAddr::V4(v4) => *v4.ip(),
                    SocketAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
                };
                MinerAction::SetPools {
                    pools: config.sanctioned_pools_for(ip),
                    password: PROXY_PASSWORD.to_owned(),
                }
            }
            Requested::Reboot => MinerAction::Reboot,
            Requested::Sleep => MinerAction::Sleep,
            Requested::Wake => MinerAction::Wake,
            Requested::PowerTarget { watts } => MinerAction::SetPowerTarget { watts },
        }
    }

    /// The audit name, as the operations module names it.
    fn audit_name(self) -> &'static str {
        match self {
            Requested::SetPools => "miner.set-pools",
            Requested::Reboot => "miner.reboot",
            Requested::Sleep => "miner.sleep",
            Requested::Wake => "miner.wake",
            Requested::PowerTarget { .. } => "miner.set-power-target",
        }
    }

    /// The inventory change a miner's success makes, if any.
    fn inventory_change(self) -> Option<InventoryChange> {
        match self {
            Requested::Sleep => Some(InventoryChange::State(MinerState::Sleeping)),
            Requested::Wake => Some(InventoryChange::State(MinerState::Active)),
            Requested::PowerTarget { watts } => {
                Some(InventoryChange::PowerTarget(f64::from(watts)))
            }
            Requested::SetPools | Requested::Reboot => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum InventoryChange {
    State(MinerState),
    PowerTarget(f64),
}

/// Refuses a note that is empty or too long for the audit log.
pub fn check_note(note: &str) -> Result<(), MiningError> {
    if note.trim().is_empty() {
        return Err(MiningError::InvalidArgument(
            "a note for the audit log is required: say what was checked".to_owned(),
        ));
    }
    if note.len() > MAX_NOTE {
        return Err(MiningError::InvalidArgument(format!(
            "the note is {} bytes; at most {MAX_NOTE}",
            note.len()
        )));
    }
    Ok(())
}

/// What actions need from the daemon.
pub struct ActionContext {
    pub config: Arc<MinerdConfig>,
    pub inventory: Arc<Inventory>,
    pub audit: SharedAuditLog,
    pub jobs: Jobs,
    /// The cgminer client bounds actions run under.
    pub client: ClientConfig,
    pub scans: mpsc::Sender<ScanRequest>,
    /// The hijack guard, which releases quarantined miners.
    pub guard: Arc<HijackGuard>,
    /// Asked when an action changed the inventory, so the daemon publishes a fresh snapshot.
    pub republish: Arc<Republish>,
}

impl ActionContext {
    /// Starts `requested` on `miners` for `actor`; returns the job id at once.
    pub fn start(
        self: &Arc<Self>,
        actor: String,
        requested: Requested,
        selection: &str,
        miners: Vec<MinerRecord>,
        emitter: SignalEmitter<'static>,
    ) -> String {
        let argument = match requested {
            Requested::PowerTarget { watts } => watts.to_string(),
            _ => String::new(),
        };
        let action_name = requested.audit_name().trim_start_matches("miner.");
        let id = self
            .jobs
            .start(action_name, &argument, selection, miners.len());
        let context = Arc::clone(self);
        let job = id.clone();
        tokio::spawn(async move {
            context
                .run_job(job, actor, requested, miners, emitter)
                .await;
        });
        id
    }

    async fn run_job(
        self: Arc<Self>,
        id: String,
        actor: String,
        requested: Requested,
        miners: Vec<MinerRecord>,
        emitter: SignalEmitter<'static>,
    ) {
        let targets: Vec<MinerTarget> = miners
            .iter()
            .map(|m| MinerTarget {
                id: m.addr.ip().to_string(),
                api: SocketAddr::V4(m.addr),
                firmware: m.firmware,
            })
            .collect();
        let parameters = requested.for_miner(&self.config, &targets[0]).parameters();
        let request = BulkRequest {
            actor,
            action: requested.audit_name().to_owned(),
            parameters: json!({ "job": id, "action": parameters }),
        };
        let (progress, mut updates) = mpsc::unbounded_channel::<Progress>();
        let config = Arc::clone(&self.config);
        let client = self.client;
        let run = run_bulk(
            request,
            targets,
            self.config.operations,
            &self.audit,
            Some(progress),
            move |target: MinerTarget| {
                let action = requested.for_miner(&config, &target);
                async move {
                    action
                        .perform(&target, &client)
                        .await
                        .map_err(|e| e.to_string())
                }
            },
        );
        let forward = async {
            while let Some(update) = updates.recv().await {
                self.jobs.progress(&id, &update);
                let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
                if let Err(error) = Mining1::job_progress(
                    &emitter,
                    &id,
                    count(update.done),
                    count(update.failed),
                    count(update.total),
                )
                .await
                {
                    tracing::warn!(job = %id, %error, "cannot signal JobProgress");
                }
            }
        };
        let (outcome, ()) = tokio::join!(run, forward);
        let stopped = match outcome {
            Ok(report) => {
                self.apply_to_inventory(requested, &miners, &report).await;
                report.audit_failure
            }
            Err(error) => Some(format!("the audit log cannot record the action: {error}")),
        };
        if let Some(why) = &stopped {
            tracing::error!(job = %id, "job stopped: {why}");
        }
        self.jobs.finish(&id, stopped);
        self.republish.request();
    }

    /// An operator releases a quarantined miner (the guard closes its findings, audits, lifts
    /// the quarantine in the inventory and the proxy, clears the alarm). Returns the snapshot
    /// generation that shows it.
    pub async fn release(
        &self,
        ip: std::net::Ipv4Addr,
        actor: &str,
        note: &str,
    ) -> Result<u64, MiningError> {
        let released = self.guard.release(ip, actor, note).await;
        let generation = self.republish.request();
        released.map(|()| generation).map_err(|error| match error {
            crate::hijack_guard::GuardError::UnknownMiner(_) => {
                MiningError::NotFound(error.to_string())
            }
            other => MiningError::Unavailable(format!("the release did not complete: {other}")),
        })
    }

    /// Keeps the inventory in step with what succeeded (sleeping, woken, power target).
    async fn apply_to_inventory(
        &self,
        requested: Requested,
        miners: &[MinerRecord],
        report: &BulkReport,
    ) {
        let Some(change) = requested.inventory_change() else {
            return;
        };
        let changed: Vec<_> = miners
            .iter()
            .filter(|m| {
                report
                    .results
                    .iter()
                    .any(|r| r.ok && r.target == m.addr.ip().to_string())
            })
            .map(|m| m.id)
            .collect();
        let inventory = Arc::clone(&self.inventory);
        let written = tokio::task::spawn_blocking(move || {
            for id in changed {
                match change {
                    InventoryChange::State(state) => inventory.set_state(id, state)?,
                    InventoryChange::PowerTarget(watts) => {
                        inventory.set_power_target(id, Some(watts))?;
                    }
                }
            }
            Ok::<_, crate::inventory::InventoryError>(())
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(%error, "the inventory did not take an action's result")
            }
            Err(error) => tracing::error!(%error, "updating the inventory failed"),
        }
    }

    /// Scans now through the daemon's discovery loop, and records who asked and what it found.
    pub async fn scan(&self, actor: &str) -> Result<DiscoveryReport, MiningError> {
        let (reply, answer) = oneshot::channel();
        let stopping = || MiningError::Unavailable("minerd is stopping".to_owned());
        self.scans.send(reply).await.map_err(|_| stopping())?;
        let report = answer.await.map_err(|_| stopping())?.map_err(|e| {
            MiningError::Unavailable(format!("the scan could not be recorded: {e}"))
        })?;
        let entry = Entry::new(
            actor,
            "discovery.scan",
            "layout",
            json!({
                "scanned": report.addresses_scanned,
                "found": report.miners_found,
                "new": report.changes.new.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>(),
                "missing": report.changes.missing.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>(),
            }),
        );
        self.audit.lock().await.append(entry).await.map_err(|e| {
            MiningError::Unavailable(format!("the audit log cannot record the scan: {e}"))
        })?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_arguments_are_checked() {
        assert_eq!(Requested::parse("reboot", "").unwrap(), Requested::Reboot);
        assert_eq!(
            Requested::parse("set-pools", " ").unwrap(),
            Requested::SetPools
        );
        assert_eq!(
            Requested::parse("power-target", "3100").unwrap(),
            Requested::PowerTarget { watts: 3100 }
        );
        for (action, argument) in [
            ("explode", ""),
            ("reboot", "now"),
            ("power-target", ""),
            ("power-target", "0"),
            ("power-target", "-5"),
            ("power-target", "99999"),
        ] {
            assert!(
                matches!(
                    Requested::parse(action, argument),
                    Err(MiningError::InvalidArgument(_))
                ),
                "{action} {argument}"
            );
        }
    }

    #[test]
    fn notes_are_required_and_bounded() {
        assert!(check_note("checked the pool list by hand").is_ok());
        assert!(check_note("  ").is_err());
        assert!(check_note(&"x".repeat(MAX_NOTE + 1)).is_err());
    }
}
