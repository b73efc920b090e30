//! Carries curtailment out (issue 5 §6): follows the budget, asks the pure
//! [`CurtailmentPlanner`] what to do, and does it through `operations` (audited, actor
//! `minerd`).
//!
//! - **The budget**: sited's (`SiteWatch` reports, `SiteReport::budget`) while sited publishes
//!   one, else `CurtailmentSettings::static_budget_w`.
//! - **When it plans**: within moments of a budget change (the run loop wakes on the watch
//!   channel itself, not on a poll), and after every telemetry cycle ([`after_cycle`]).
//!   Planning happens in the one task of [`CurtailmentDriver::run`], so rounds never overlap.
//! - **The fleet it plans over**: inventoried miners that are `active` or `sleeping` and
//!   answered their last poll (quarantined and missing miners are left alone). Efficiency is
//!   J/TH from the polled power and hashrate, remembered from the last time each miner was seen
//!   awake; firmware that reports no power counts at the inventory's power target (the
//!   operator's figure), and a miner with neither is left out. `can_sleep` where the firmware sleeps over its API (`operations::supports`:
//!   BOSminer's pause/resume), else where the driver has the proxy: it withholds the miner's
//!   work (`Proxy::withhold_work`), so the miner has nothing to hash and idles (audited as
//!   `curtailment.withhold-work` / `curtailment.give-work`); the switch lives in memory, so
//!   [`CurtailmentDriver::run`] re-applies it at start to every miner the inventory holds as
//!   sleeping.
//! - **Power targets** where the firmware takes one over its API: LuxOS's power profiles. The
//!   driver reads a LuxOS miner's profiles once (`profiles`, again if it runs one not among
//!   them); the poll names the running one (`config`). The planner sees the running profile's
//!   watts, the lowest profile as the floor, and as the ceiling the inventory's power target
//!   (the operator's) or else LuxOS's `default` profile. A target becomes the highest profile
//!   at or below it, so shedding saves at least what was asked; a target that would leave the
//!   miner on the profile it runs is not sent at all.
//! - **After the actions**: a miner put to sleep is marked `sleeping` in the inventory, a woken
//!   one `active`; a failed action is forgotten by the planner so the next round plans from
//!   what the miner reports.
//!
//! Every miner the inventory holds as `sleeping` counts as curtailment's to wake (a restart
//! keeps them asleep until the budget allows them back).
//!
//! Hook points for the daemon: [`CurtailmentDriver::new`]; spawn [`CurtailmentDriver::run`]
//! with `SiteWatch::reports()` (or `None` without a bus); call [`after_cycle`] from
//! `Telemetry::run`'s `on_cycle`; [`CurtailmentDriver::status`] for Mining1.
//!
//! [`after_cycle`]: CurtailmentDriver::after_cycle

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use appliance::audit_log::Entry;
use appliance::site_watch::SiteReport;
use serde_json::json;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cgminer::{ClientConfig, FirmwareKind};
use crate::curtailment::{
    Budget, CurtailAction, CurtailmentPlanner, CurtailmentSettings, MinerLoad, Plan, PowerTarget,
};
use crate::inventory::{Inventory, InventoryError, MinerFilter, MinerRecord, MinerState};
use crate::operations::{
    BulkLimits, MinerAction, MinerTarget, PowerProfiles, SharedAuditLog, run_on_miners, supports,
};
use crate::proxy::Proxy;
use crate::telemetry::{Telemetry, aggregate};

/// The profile LuxOS ships running: the ceiling when the operator set no power target.
const LUXOS_STOCK_PROFILE: &str = "default";

/// The actor of curtailment's actions in the audit log.
pub const ACTOR: &str = "minerd";

/// Where the budget came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetSource {
    Sited,
    Static,
}

/// What Mining1 shows of curtailment after the latest round.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CurtailmentStatus {
    pub source: BudgetSource,
    pub budget_w: f64,
    /// °C below the room's limit (sited only).
    pub thermal_headroom_c: Option<f64>,
    /// After thermal derating.
    pub effective_budget_w: f64,
    pub draw_w: f64,
    /// Miners asleep (as the inventory holds them after the round's actions).
    pub asleep: usize,
    /// Watts over the budget with everything sheddable shed.
    pub shortfall_w: f64,
    /// Miners running under their preferred power target (a lower power profile).
    pub lowered: usize,
    /// Actions the latest round issued.
    pub actions: usize,
}

/// What a miner drew and hashed the last time it was seen awake.
#[derive(Debug, Clone, Copy)]
struct AwakeLoad {
    draw_w: f64,
    hashrate_ths: f64,
}

pub struct CurtailmentDriver {
    settings: CurtailmentSettings,
    inventory: Arc<Inventory>,
    telemetry: Arc<Telemetry>,
    audit: SharedAuditLog,
    limits: BulkLimits,
    client: ClientConfig,
    /// For miners whose firmware cannot sleep: their work is withheld instead.
    proxy: Option<Arc<Proxy>>,
    planner: Mutex<CurtailmentPlanner>,
    awake: Mutex<HashMap<Ipv4Addr, AwakeLoad>>,
    /// LuxOS miners' power profiles, as read from each.
    profiles: Mutex<HashMap<Ipv4Addr, PowerProfiles>>,
    status: Mutex<Option<CurtailmentStatus>>,
    cycle_done: Notify,
}

impl std::fmt::Debug for CurtailmentDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurtailmentDriver")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl CurtailmentDriver {
    /// `settings` must have passed `validate`. Without `proxy`, only miners whose firmware
    /// sleeps over its API can be shed.
    pub fn new(
        settings: CurtailmentSettings,
        inventory: Arc<Inventory>,
        telemetry: Arc<Telemetry>,
        audit: SharedAuditLog,
        limits: BulkLimits,
        client: ClientConfig,
        proxy: Option<Arc<Proxy>>,
    ) -> CurtailmentDriver {
        CurtailmentDriver {
            planner: Mutex::new(CurtailmentPlanner::new(settings.clone())),
            settings,
            inventory,
            telemetry,
            audit,
            limits,
            client,
            proxy,
            awake: Mutex::new(HashMap::new()),
            profiles: Mutex::new(HashMap::new()),
            status: Mutex::new(None),
            cycle_done: Notify::new(),
        }
    }

    /// A telemetry cycle ended: plan again with fresh numbers (wakes [`run`](Self::run)).
    pub fn after_cycle(&self) {
        self.cycle_done.notify_one();
    }

    /// The latest round's outcome; `None` before the first round.
    pub fn status(&self) -> Option<CurtailmentStatus> {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Plans at once, then again on every budget change and after every telemetry cycle.
    /// `reports`: `SiteWatch::reports()`, or `None` to follow the static budget only. Runs
    /// until the task is dropped.
    pub async fn run(self: Arc<Self>, mut reports: Option<watch::Receiver<Option<SiteReport>>>) {
        match self.records().await {
            Ok(records) => self.reapply_withholding(&records),
            Err(e) => {
                tracing::warn!(error = %e, "sleeping miners not read; their work flows until the next round")
            }
        }
        loop {
            let report = reports.as_ref().and_then(|r| r.borrow().clone());
            if let Err(e) = self.replan(report.as_ref()).await {
                tracing::warn!(error = %e, "curtailment round could not use the inventory");
            }
            let budget_changed = async {
                match reports.as_mut() {
                    Some(r) => {
                        if r.changed().await.is_err() {
                            // The watch ended: follow the static budget from now on.
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = budget_changed => {}
                () = self.cycle_done.notified() => {}
            }
        }
    }

    /// One round: the budget from `report` (sited) or the static one, the fleet from the
    /// inventory and telemetry, the plan carried out.
    pub async fn replan(&self, report: Option<&SiteReport>) -> Result<Plan, InventoryError> {
        let (source, budget) = match report.and_then(|r| r.budget) {
            Some(b) => (
                BudgetSource::Sited,
                Budget {
                    power_w: b.power_watts,
                    thermal_headroom_c: Some(b.thermal_headroom_c),
                },
            ),
            None => (
                BudgetSource::Static,
                Budget {
                    power_w: self.settings.static_budget_w,
                    thermal_headroom_c: None,
                },
            ),
        };
        let records = self.records().await?;
        self.learn_profiles(&records).await;
        let loads = self.loads(&records);
        let plan = self.planner.lock().unwrap_or_else(|p| p.into_inner()).plan(
            Instant::now(),
            budget,
            &loads,
        );
        if !plan.actions.is_empty() {
            tracing::info!(
                source = ?source, budget_w = budget.power_w, draw_w = plan.draw_w,
                effective_budget_w = plan.effective_budget_w, actions = plan.actions.len(),
                "curtailment acting"
            );
        }
        let actions = self.drop_unchanged_profiles(plan.actions.clone(), &loads);
        self.execute(&actions, &records).await?;
        let asleep = self
            .records()
            .await?
            .iter()
            .filter(|r| r.state == MinerState::Sleeping)
            .count();
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = Some(CurtailmentStatus {
            source,
            budget_w: budget.power_w,
            thermal_headroom_c: budget.thermal_headroom_c,
            effective_budget_w: plan.effective_budget_w,
            draw_w: plan.draw_w,
            asleep,
            shortfall_w: plan.shortfall_w,
            lowered: loads
                .iter()
                .filter_map(|m| m.power_target)
                .filter(|t| t.current_w < t.preferred_w)
                .count(),
            actions: plan.actions.len(),
        });
        Ok(plan)
    }

    /// Sleeping miners that cannot sleep by themselves had their work withheld before a
    /// restart: withhold it again.
    fn reapply_withholding(&self, records: &[MinerRecord]) {
        let Some(proxy) = &self.proxy else { return };
        for record in records {
            if record.state == MinerState::Sleeping && !sleeps_by_api(record) {
                proxy.withhold_work(std::net::IpAddr::V4(*record.addr.ip()), true);
            }
        }
    }

    async fn records(&self) -> Result<Vec<MinerRecord>, InventoryError> {
        let inventory = Arc::clone(&self.inventory);
        let filter = MinerFilter {
            states: Some(vec![MinerState::Active, MinerState::Sleeping]),
            ..MinerFilter::default()
        };
        blocking(move || inventory.list(&filter)).await
    }

    fn loads(&self, records: &[MinerRecord]) -> Vec<MinerLoad> {
        let mut awake = self.awake.lock().unwrap_or_else(|p| p.into_inner());
        records
            .iter()
            .filter_map(|record| self.load(record, &mut awake))
            .collect()
    }

    /// One miner's load; `None` when it did not answer its last poll or nothing is known of
    /// its draw awake.
    fn load(
        &self,
        record: &MinerRecord,
        awake: &mut HashMap<Ipv4Addr, AwakeLoad>,
    ) -> Option<MinerLoad> {
        let status = self.telemetry.status(record.id)?;
        let snapshot = status.snapshot.as_ref().filter(|_| status.is_up())?;
        let ip = *record.addr.ip();
        let hashrate_ths = aggregate::hashrate_ths(snapshot);
        let hashing = hashrate_ths > 0.0;
        let measured_w = snapshot.power_watts;
        // Firmware that reports no power (stock Antminer, LuxOS) counts at the operator's
        // figure in the inventory.
        let nominal_w = measured_w.or(record.power_target_w);
        let asleep = record.state == MinerState::Sleeping;
        if let (false, true, Some(draw_w)) = (asleep, hashing, nominal_w) {
            awake.insert(
                ip,
                AwakeLoad {
                    draw_w,
                    hashrate_ths,
                },
            );
        }
        let known = awake.get(&ip).copied()?;
        // A poll taken before the latest sleep or wake still shows the old state: the draw
        // follows what the inventory says the miner does now.
        let draw_w = match (asleep, hashing) {
            (true, true) => self.settings.sleep_draw_w,
            (true, false) => measured_w.unwrap_or(self.settings.sleep_draw_w),
            (false, true) => nominal_w.unwrap_or(known.draw_w),
            (false, false) => known.draw_w,
        };
        Some(MinerLoad {
            id: ip.to_string(),
            asleep,
            draw_w,
            awake_draw_w: known.draw_w,
            awake_hashrate_ths: known.hashrate_ths,
            power_target: self.power_target(record, snapshot.power_profile.as_deref()),
            can_sleep: sleeps_by_api(record) || self.proxy.is_some(),
        })
    }

    /// Reads the power profiles of LuxOS miners that answered their last poll and whose
    /// running profile is not among what was read (first sight, or new firmware). A miner that
    /// does not answer is asked again next round; until then it has no power target.
    async fn learn_profiles(&self, records: &[MinerRecord]) {
        let wanted: Vec<(Ipv4Addr, std::net::SocketAddr)> = records
            .iter()
            .filter(|r| r.firmware == FirmwareKind::Luxos)
            .filter_map(|r| {
                let status = self.telemetry.status(r.id)?;
                let running = status.snapshot.as_ref()?.power_profile.clone()?;
                let ip = *r.addr.ip();
                let known = self
                    .lock_profiles()
                    .get(&ip)
                    .map(|p| p.named(&running).is_some());
                (known != Some(true)).then_some((ip, r.addr.into()))
            })
            .collect();
        let limit = Arc::new(Semaphore::new(self.limits.concurrency.max(1)));
        let mut reads = JoinSet::new();
        for (ip, api) in wanted {
            let (limit, client) = (Arc::clone(&limit), self.client);
            reads.spawn(async move {
                let _permit = limit.acquire_owned().await;
                (ip, PowerProfiles::read(api, &client).await)
            });
        }
        while let Some(joined) = reads.join_next().await {
            let Ok((ip, read)) = joined else { continue };
            match read {
                Ok(read) => {
                    self.lock_profiles().insert(ip, read);
                }
                Err(e) => {
                    tracing::warn!(miner = %ip, error = %e, "power profiles not read; no power target for it this round")
                }
            }
        }
    }

    fn lock_profiles(&self) -> std::sync::MutexGuard<'_, HashMap<Ipv4Addr, PowerProfiles>> {
        self.profiles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The power target curtailment may move: LuxOS with known profiles and a running one.
    fn power_target(&self, record: &MinerRecord, running: Option<&str>) -> Option<PowerTarget> {
        let profiles = self.lock_profiles();
        let profiles = profiles.get(record.addr.ip())?;
        let current_w = profiles.named(running?)?.watts;
        let min_w = profiles.lowest()?.watts;
        let preferred_w = record
            .power_target_w
            .or_else(|| profiles.named(LUXOS_STOCK_PROFILE).map(|p| p.watts))
            .unwrap_or(current_w)
            .max(min_w);
        Some(PowerTarget {
            current_w,
            min_w,
            preferred_w,
        })
    }

    /// A target that maps to the profile the miner already runs changes nothing: it is not
    /// sent (nor audited), and the planner plans again from the miner's report.
    fn drop_unchanged_profiles(
        &self,
        actions: Vec<CurtailAction>,
        loads: &[MinerLoad],
    ) -> Vec<CurtailAction> {
        let profiles = self.lock_profiles();
        let mut planner = self.planner.lock().unwrap_or_else(|p| p.into_inner());
        actions
            .into_iter()
            .filter(|action| {
                let CurtailAction::SetPowerTarget { id, watts } = action else {
                    return true;
                };
                let chosen = id
                    .parse::<Ipv4Addr>()
                    .ok()
                    .and_then(|ip| profiles.get(&ip))
                    .and_then(|p| p.for_target(*watts));
                let running = loads
                    .iter()
                    .find(|m| &m.id == id)
                    .and_then(|m| m.power_target);
                let unchanged = matches!((chosen, running),
                    (Some(chosen), Some(running)) if chosen.watts == running.current_w);
                if unchanged {
                    planner.forget(id);
                }
                !unchanged
            })
            .collect()
    }

    async fn execute(
        &self,
        actions: &[CurtailAction],
        records: &[MinerRecord],
    ) -> Result<(), InventoryError> {
        let mut by_action: Vec<(MinerAction, Vec<MinerTarget>)> = Vec::new();
        for action in actions {
            let Some(record) = records
                .iter()
                .find(|r| r.addr.ip().to_string() == action.miner())
            else {
                continue;
            };
            let what = MinerAction::from(action);
            if let (Some(proxy), false) = (&self.proxy, sleeps_by_api(record)) {
                let withhold = match what {
                    MinerAction::Sleep => Some(true),
                    MinerAction::Wake => Some(false),
                    _ => None,
                };
                if let Some(on) = withhold {
                    self.withhold(proxy, record, on).await?;
                    continue;
                }
            }
            let target = MinerTarget {
                id: action.miner().to_owned(),
                api: record.addr.into(),
                firmware: record.firmware,
            };
            match by_action.iter_mut().find(|(a, _)| *a == what) {
                Some((_, targets)) => targets.push(target),
                None => by_action.push((what, vec![target])),
            }
        }
        for (action, targets) in by_action {
            self.run_action(action, targets, records).await?;
        }
        Ok(())
    }

    /// Sleep or wake by the proxy: the switch, the audit record, the inventory state.
    async fn withhold(
        &self,
        proxy: &Proxy,
        record: &MinerRecord,
        on: bool,
    ) -> Result<(), InventoryError> {
        let ip = *record.addr.ip();
        let entry = Entry::new(
            ACTOR,
            if on {
                "curtailment.withhold-work"
            } else {
                "curtailment.give-work"
            },
            ip.to_string(),
            json!({ "firmware": format!("{:?}", record.firmware) }),
        );
        if let Err(e) = self.audit.lock().await.append(entry).await {
            tracing::error!(error = %e, miner = %ip, "audit log not writable; work not withheld");
            self.planner
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .forget(&ip.to_string());
            return Ok(());
        }
        proxy.withhold_work(std::net::IpAddr::V4(ip), on);
        let state = if on {
            MinerState::Sleeping
        } else {
            MinerState::Active
        };
        let (inventory, miner) = (Arc::clone(&self.inventory), record.id);
        blocking(move || inventory.set_state(miner, state)).await
    }

    async fn run_action(
        &self,
        action: MinerAction,
        targets: Vec<MinerTarget>,
        records: &[MinerRecord],
    ) -> Result<(), InventoryError> {
        let new_state = match action {
            MinerAction::Sleep => Some(MinerState::Sleeping),
            MinerAction::Wake => Some(MinerState::Active),
            _ => None,
        };
        let ids: Vec<String> = targets.iter().map(|t| t.id.clone()).collect();
        let report = run_on_miners(
            ACTOR,
            action,
            targets,
            self.limits,
            self.client,
            &self.audit,
            None,
        )
        .await;
        let results = match report {
            Ok(report) => report.results,
            Err(e) => {
                tracing::error!(error = %e, "audit log not writable; curtailment did nothing");
                let mut planner = self.planner.lock().unwrap_or_else(|p| p.into_inner());
                ids.iter().for_each(|id| planner.forget(id));
                return Ok(());
            }
        };
        for id in &ids {
            let ok = results.iter().any(|r| &r.target == id && r.ok);
            if !ok {
                tracing::warn!(miner = %id, "curtailment action failed; planning again from the miner's report");
                self.planner
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .forget(id);
                continue;
            }
            let record = records.iter().find(|r| &r.addr.ip().to_string() == id);
            if let (Some(state), Some(record)) = (new_state, record) {
                let (inventory, miner) = (Arc::clone(&self.inventory), record.id);
                blocking(move || inventory.set_state(miner, state)).await?;
            }
        }
        Ok(())
    }
}

/// The firmware pauses hashing on command (BOSminer).
fn sleeps_by_api(record: &MinerRecord) -> bool {
    supports(record.firmware, &MinerAction::Sleep)
}

/// Runs blocking inventory work off the async threads. A panic there is re-raised; a task
/// cancelled because the runtime is shutting down never returns (nothing is waiting for it).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => std::future::pending().await,
    }
}
