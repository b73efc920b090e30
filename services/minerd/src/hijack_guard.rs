//! The crypto-jacking guard (issue 5 §5): after every telemetry cycle it compares each
//! inventoried miner with what it is sanctioned to do ([`crate::hijack::HijackWatch`], one per
//! miner) and acts on every new finding:
//!
//! 1. a `tracing` error line naming the miner, its owner, the kind and the sentence;
//! 2. an alarm to sited (key `hijack/<ip>`, [`SiteAlarms`]), best effort and bounded;
//! 3. a `hijack.detected` record in minerd's audit log;
//! 4. quarantine: the inventory state `quarantined`, `Proxy::quarantine(ip, true)`, and the
//!    sanctioned pools restored on the miner through `operations` (`miner.set-pools`, actor
//!    `minerd`, audited, bounded by the operations limits);
//! 5. the finding kept in [`finding_store`] (first/last seen, kind, severity, sentence,
//!    open/closed), so a kill -9 keeps it.
//!
//! What a miner is sanctioned to do: mine on the URL(s) miners are told to use (minerd's
//! proxy, from configuration: [`GuardConfig::miner_urls`]) as the identity its owner's layout
//! gives its address (`Owner::identity_for`). A miner whose owner the layout does not name is
//! skipped (the proxy does not admit it either).
//!
//! Hook points for the daemon:
//! - [`HijackGuard::open`] once at start (it re-applies the proxy quarantine of miners the
//!   inventory holds as quarantined, which a restart would otherwise lift);
//! - [`HijackGuard::check`] after every telemetry cycle (from `Telemetry::run`'s `on_cycle`,
//!   spawned, since `on_cycle` is synchronous; checks must not overlap: hold the guard in an
//!   `Arc` and let one task run them in order);
//! - [`HijackGuard::findings`] for Mining1's `Hijacks` document;
//! - [`HijackGuard::release`] for Mining1's release method (an operator's decision).

pub mod finding_store;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appliance::audit_log::Entry;
use serde_json::json;
use tokio::time::Instant;

use crate::cgminer::{ClientConfig, Hashrate};
use crate::hijack::{
    Finding, HijackSettings, HijackWatch, Observation, ProxyView, SanctionedPool, Severity,
    expected_share_interval,
};
use crate::inventory::{Inventory, InventoryError, MinerRecord, MinerState, unix_now};
use crate::operations::{BulkLimits, MinerAction, MinerTarget, SharedAuditLog, run_on_miners};
use crate::proxy::{MinerView, Proxy};
use crate::site_alarms::{AlarmSeverity, SiteAlarms};
use crate::site_layout::SiteLayout;
use crate::telemetry::{MinerStatus, Telemetry};

pub use finding_store::{FINDINGS_FILE, FindingStore, StoreError, StoredFinding};

/// The actor of everything the guard does by itself.
pub const ACTOR: &str = "minerd";

/// When the proxy has no difficulty or the miner no hashrate yet, silence is judged against
/// this interval (the settings' `min_silence` still applies on top).
const FALLBACK_SHARE_INTERVAL: Duration = Duration::from_secs(60);

/// What the guard needs from configuration.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// The pool URL(s) miners are told to mine on (minerd's proxy), in priority order.
    pub miner_urls: Vec<String>,
    /// The Stratum password written with restored pools.
    pub pool_password: String,
    pub settings: HijackSettings,
    /// Bounds of the pool restore (`[operations]`).
    pub restore_limits: BulkLimits,
    /// The cgminer client used for the restore.
    pub client: ClientConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error("no miner at {0} in the inventory")]
    UnknownMiner(Ipv4Addr),
    #[error("the audit log cannot be written: {0}")]
    Audit(String),
}

/// A finding that was new in this check, as acted on.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFinding {
    pub ip: Ipv4Addr,
    pub owner: String,
    pub finding: Finding,
}

/// What the guard remembers of one miner between checks (not persisted: a restart begins a
/// fresh history, the open findings are in the store).
struct MinerWatch {
    watch: HijackWatch,
    /// When the proxy first saw the current connection (the proxy's view has no start time).
    connected_since: Option<Instant>,
}

pub struct HijackGuard {
    config: GuardConfig,
    layout: SiteLayout,
    inventory: Arc<Inventory>,
    proxy: Arc<Proxy>,
    audit: SharedAuditLog,
    alarms: Arc<SiteAlarms>,
    store: FindingStore,
    watches: Mutex<HashMap<Ipv4Addr, MinerWatch>>,
    /// Quarantined miners whose pools could not be restored yet: tried again on every check.
    unrestored: Mutex<HashSet<Ipv4Addr>>,
}

impl std::fmt::Debug for HijackGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HijackGuard")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl HijackGuard {
    /// Opens the findings in `state_dir` and re-applies the proxy quarantine the inventory
    /// records.
    pub fn open(
        state_dir: &Path,
        config: GuardConfig,
        layout: SiteLayout,
        inventory: Arc<Inventory>,
        proxy: Arc<Proxy>,
        audit: SharedAuditLog,
        alarms: Arc<SiteAlarms>,
    ) -> Result<HijackGuard, GuardError> {
        let store = FindingStore::open(&state_dir.join(FINDINGS_FILE))?;
        for miner in inventory.list(&Default::default())? {
            if miner.state == MinerState::Quarantined {
                proxy.quarantine(IpAddr::V4(*miner.addr.ip()), true);
            }
        }
        Ok(HijackGuard {
            config,
            layout,
            inventory,
            proxy,
            audit,
            alarms,
            store,
            watches: Mutex::new(HashMap::new()),
            unrestored: Mutex::new(HashSet::new()),
        })
    }

    /// Every finding kept, open ones first.
    pub fn findings(&self) -> Result<Vec<StoredFinding>, GuardError> {
        Ok(self.store.all()?)
    }

    /// The pools a miner at `ip` owned by `owner` is sanctioned to use.
    pub fn sanctioned_for(&self, ip: Ipv4Addr, owner: &str) -> Option<Vec<SanctionedPool>> {
        let owner = self.layout.owner(owner)?;
        let user = owner.identity_for(ip);
        Some(
            self.config
                .miner_urls
                .iter()
                .map(|url| SanctionedPool {
                    url: url.clone(),
                    user: user.clone(),
                })
                .collect(),
        )
    }

    /// One pass over the last telemetry cycle; returns the findings that were new (each
    /// already logged, alarmed, audited, stored, and its miner quarantined).
    pub async fn check(&self, telemetry: &Telemetry) -> Result<Vec<NewFinding>, GuardError> {
        let records = {
            let inventory = Arc::clone(&self.inventory);
            blocking(move || inventory.list(&Default::default())).await?
        };
        let mut fresh = Vec::new();
        for record in &records {
            let Some(status) = telemetry.status(record.id) else {
                continue;
            };
            for finding in self.observe(record, &status) {
                if self.remember(record, &finding)? {
                    fresh.push(NewFinding {
                        ip: *record.addr.ip(),
                        owner: record.owner.clone(),
                        finding,
                    });
                }
            }
        }
        let mut acted: Vec<Ipv4Addr> = Vec::new();
        for new in &fresh {
            self.report(new).await?;
            if !acted.contains(&new.ip) {
                acted.push(new.ip);
                let record = records.iter().find(|r| *r.addr.ip() == new.ip);
                if let Some(record) = record {
                    self.quarantine(record).await?;
                }
            }
        }
        let retry: Vec<Ipv4Addr> = self
            .unrestored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|ip| !acted.contains(ip))
            .copied()
            .collect();
        for record in records.iter().filter(|r| retry.contains(r.addr.ip())) {
            self.restore_pools(record).await?;
        }
        Ok(fresh)
    }

    /// Runs the miner's watch on its latest poll; nothing for a miner that did not answer.
    fn observe(&self, record: &MinerRecord, status: &MinerStatus) -> Vec<Finding> {
        let Some(snapshot) = status.snapshot.as_ref().filter(|_| status.is_up()) else {
            return Vec::new();
        };
        let ip = *record.addr.ip();
        let Some(sanctioned) = self.sanctioned_for(ip, &record.owner) else {
            tracing::debug!(miner = %ip, owner = %record.owner, "owner not in the site layout; not checked");
            return Vec::new();
        };
        let now = Instant::now();
        let view = self.proxy.miner(IpAddr::V4(ip));
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        let entry = watches.entry(ip).or_insert_with(|| MinerWatch {
            watch: HijackWatch::new(sanctioned.clone(), self.config.settings.clone()),
            connected_since: None,
        });
        entry.watch.set_sanctioned(sanctioned);
        let connected = view.as_ref().is_some_and(|v| v.connected);
        entry.connected_since = match (connected, entry.connected_since) {
            (true, None) => Some(now),
            (true, since) => since,
            (false, _) => None,
        };
        let reported = snapshot.hashrate_5s.or(snapshot.hashrate_average);
        let proxy_view = proxy_view(view.as_ref(), entry.connected_since, now, reported);
        let observation = Observation {
            at: now,
            snapshot,
            asleep: record.state == MinerState::Sleeping,
            proxy: &proxy_view,
        };
        entry.watch.observe(&observation)
    }

    /// Stores the finding; true when it is new.
    fn remember(&self, record: &MinerRecord, finding: &Finding) -> Result<bool, GuardError> {
        let ip = record.addr.ip().to_string();
        let sentence = finding.to_string();
        Ok(self.store.record(&finding_store::Sighting {
            ip: &ip,
            owner: &record.owner,
            kind: finding.kind(),
            subject: subject(finding),
            severity: severity_word(finding.severity()),
            sentence: &sentence,
            at: unix_now(),
        })?)
    }

    async fn report(&self, new: &NewFinding) -> Result<(), GuardError> {
        let kind = new.finding.kind();
        let sentence = new.finding.to_string();
        let severity = severity_word(new.finding.severity());
        tracing::error!(miner = %new.ip, owner = %new.owner, kind, severity, "crypto-jacking: {sentence}");
        let detail = json!({
            "miner": new.ip.to_string(),
            "owner": new.owner,
            "kind": kind,
            "subject": subject(&new.finding),
        });
        let alarm_severity = match new.finding.severity() {
            Severity::Critical => AlarmSeverity::Critical,
            Severity::Warning => AlarmSeverity::Warning,
        };
        let summary = format!("miner {} ({}): {sentence}", new.ip, new.owner);
        self.alarms
            .raise(&alarm_key(new.ip), alarm_severity, &summary, &detail)
            .await;
        let mut audit_detail = detail;
        audit_detail["severity"] = json!(severity);
        audit_detail["sentence"] = json!(sentence);
        self.audit(Entry::new(
            ACTOR,
            "hijack.detected",
            new.ip.to_string(),
            audit_detail,
        ))
        .await
    }

    /// Refuses the miner's foreign work at the proxy, marks it, and puts the sanctioned pools
    /// back on it.
    async fn quarantine(&self, record: &MinerRecord) -> Result<(), GuardError> {
        let ip = *record.addr.ip();
        self.proxy.quarantine(IpAddr::V4(ip), true);
        if record.state != MinerState::Quarantined {
            let (inventory, id) = (Arc::clone(&self.inventory), record.id);
            blocking(move || inventory.set_state(id, MinerState::Quarantined)).await?;
            self.audit(Entry::new(
                ACTOR,
                "miner.quarantine",
                ip.to_string(),
                json!({ "quarantined": true }),
            ))
            .await?;
        }
        self.restore_pools(record).await
    }

    /// Puts the sanctioned pools back on the miner; a failure is logged and tried again on
    /// the next check.
    async fn restore_pools(&self, record: &MinerRecord) -> Result<(), GuardError> {
        let ip = *record.addr.ip();
        let Some(pools) = self.sanctioned_for(ip, &record.owner) else {
            return Ok(());
        };
        let report = run_on_miners(
            ACTOR,
            MinerAction::SetPools {
                pools,
                password: self.config.pool_password.clone(),
            },
            vec![target(record)],
            self.config.restore_limits,
            self.config.client,
            &self.audit,
            None,
        )
        .await
        .map_err(|e| GuardError::Audit(e.to_string()))?;
        let restored = report.results.iter().all(|r| r.ok);
        for result in report.results.iter().filter(|r| !r.ok) {
            tracing::error!(miner = %ip, why = %result.sentence, "sanctioned pools not restored; trying again after the next poll");
        }
        let mut unrestored = self.unrestored.lock().unwrap_or_else(|p| p.into_inner());
        if restored {
            unrestored.remove(&ip);
        } else {
            unrestored.insert(ip);
        }
        Ok(())
    }

    /// An operator lifts the quarantine: the findings close, the proxy takes the miner's work
    /// again, the alarm clears, and the miner's history starts afresh.
    pub async fn release(&self, ip: Ipv4Addr, actor: &str, note: &str) -> Result<(), GuardError> {
        let record = {
            let inventory = Arc::clone(&self.inventory);
            let addr = self.api_address(ip);
            blocking(move || inventory.find(addr)).await?
        }
        .ok_or(GuardError::UnknownMiner(ip))?;
        let closed = self
            .store
            .close_all(&ip.to_string(), actor, note, unix_now())?;
        self.audit(Entry::new(
            actor,
            "miner.release",
            ip.to_string(),
            json!({ "note": note, "findings_closed": closed }),
        ))
        .await?;
        if record.state == MinerState::Quarantined {
            let (inventory, id) = (Arc::clone(&self.inventory), record.id);
            blocking(move || inventory.set_state(id, MinerState::Active)).await?;
        }
        self.proxy.quarantine(IpAddr::V4(ip), false);
        self.watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
        self.unrestored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
        self.alarms.clear(&alarm_key(ip)).await;
        tracing::info!(miner = %ip, actor, note, closed, "quarantine released");
        Ok(())
    }

    /// The miner's inventory address: the layout's port for its range (4028 by default).
    fn api_address(&self, ip: Ipv4Addr) -> SocketAddrV4 {
        let port = self.layout.range_of(ip).map_or(4028, |r| r.port);
        SocketAddrV4::new(ip, port)
    }

    async fn audit(&self, entry: Entry) -> Result<(), GuardError> {
        self.audit
            .lock()
            .await
            .append(entry)
            .await
            .map(|_| ())
            .map_err(|e| GuardError::Audit(e.to_string()))
    }
}

/// The alarm key of a miner's hijack findings at sited.
pub fn alarm_key(ip: Ipv4Addr) -> String {
    format!("hijack/{ip}")
}

fn target(record: &MinerRecord) -> MinerTarget {
    MinerTarget {
        id: record.addr.ip().to_string(),
        api: record.addr.into(),
        firmware: record.firmware,
    }
}

fn proxy_view(
    view: Option<&MinerView>,
    connected_since: Option<Instant>,
    now: Instant,
    reported: Option<Hashrate>,
) -> ProxyView {
    let connected = view.is_some_and(|v| v.connected);
    let last_share_ago = view.and_then(|v| v.last_share_unix).map(|at| {
        let ago = u64::try_from(unix_now()).unwrap_or(0).saturating_sub(at);
        Duration::from_secs(ago)
    });
    let expected = match (view, reported) {
        (Some(v), Some(h)) if v.difficulty > 0.0 => expected_share_interval(v.difficulty, h),
        _ => None,
    };
    ProxyView {
        connected,
        connected_for: connected_since.map_or(Duration::ZERO, |s| now.saturating_duration_since(s)),
        authorized_user: view.and_then(|v| v.authorized_user.clone()),
        last_share_ago,
        expected_share_interval: expected.unwrap_or(FALLBACK_SHARE_INTERVAL),
    }
}

/// What a finding is about, so one row stands for one condition.
fn subject(finding: &Finding) -> &str {
    match finding {
        Finding::ForeignPool { url, .. } | Finding::DevFeeRedirect { url, .. } => url,
        Finding::ChangedUser { user, .. } => user,
        Finding::HashingElsewhere { .. } => "",
    }
}

fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
    }
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
