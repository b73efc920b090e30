//! [`MiningSnapshot`]: the fleet as minerd last saw it, published by the daemon after every
//! poll cycle, discovery scan and job, and read by the edges (D-Bus `org.bunkeros.Mining1`, the
//! status line) without a round trip to any miner, the proxy's locks or the inventory.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Notify, watch};

use crate::curtailment_driver::CurtailmentStatus;
use crate::discovery::DiscoveryReport;
use crate::hijack_guard::StoredFinding;
use crate::inventory::{MinerId, MinerRecord};
use crate::proxy::{MinerView, ShareCounts, UpstreamView};
use crate::telemetry::{FleetAggregates, MinerStatus, PollFailure};

/// The fleet now.
#[derive(Debug, Clone)]
pub struct MiningSnapshot {
    /// The inventory, in id order.
    pub miners: Vec<MinerRecord>,
    /// The latest telemetry of each miner polled.
    pub telemetry: HashMap<MinerId, MinerStatus>,
    /// Fleet and owner sums of the latest telemetry.
    pub aggregates: FleetAggregates,
    /// The last poll cycle, if one ran.
    pub poll: Option<PollSummary>,
    /// The last discovery scan, if one ran.
    pub discovery: Option<DiscoverySummary>,
    /// The proxy.
    pub proxy: ProxySummary,
    /// The site's power budget as followed now.
    pub budget: BudgetSummary,
    /// The curtailment driver's latest round; `None` before its first.
    pub curtailment: Option<CurtailmentStatus>,
    /// The hijack guard's findings, open first, or why they could not be read.
    pub hijacks: Result<Vec<StoredFinding>, String>,
    /// The audit log.
    pub audit: AuditSummary,
    pub taken_at: SystemTime,
    /// The last [`Republish`] request this snapshot reflects.
    pub generation: u64,
}

/// What the last poll cycle did.
#[derive(Debug, Clone, PartialEq)]
pub struct PollSummary {
    pub at: SystemTime,
    pub duration: Duration,
    pub polled: usize,
    pub ok: usize,
    pub failures: BTreeMap<PollFailure, usize>,
}

/// What the last scan did.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoverySummary {
    pub at: SystemTime,
    pub report: DiscoveryReport,
}

/// The proxy as the operator sees it.
#[derive(Debug, Clone, Default)]
pub struct ProxySummary {
    pub listen: Option<SocketAddr>,
    /// Every miner the proxy has seen since start, by address.
    pub miners: HashMap<IpAddr, MinerView>,
    pub upstreams: Vec<UpstreamView>,
    /// Committed share counts per owner.
    pub owners: BTreeMap<String, ShareCounts>,
    /// Connections refused (unknown source, too many sessions).
    pub refused_connections: u64,
}

impl ProxySummary {
    /// Miners with a live connection.
    pub fn connected(&self) -> usize {
        self.miners.values().filter(|m| m.connected).count()
    }
}

/// Which budget minerd follows: sited's, or the static one of `[curtailment]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetSummary {
    /// True when sited publishes the budget.
    pub from_sited: bool,
    pub power_w: f64,
    /// °C below the room's limit; `None` with the static budget.
    pub headroom_c: Option<f64>,
}

/// The audit log's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditSummary {
    pub records: u64,
    /// The seq of the last seal record (signed or skipped); `None` before the first.
    pub last_sealed_seq: Option<u64>,
}

impl MiningSnapshot {
    /// The snapshot before anything was polled or scanned.
    pub fn empty(budget: BudgetSummary) -> MiningSnapshot {
        MiningSnapshot {
            miners: Vec::new(),
            telemetry: HashMap::new(),
            aggregates: FleetAggregates::default(),
            poll: None,
            discovery: None,
            proxy: ProxySummary::default(),
            budget,
            curtailment: None,
            hijacks: Ok(Vec::new()),
            audit: AuditSummary::default(),
            taken_at: SystemTime::now(),
            generation: 0,
        }
    }

    /// The inventory record of the miner at `ip`.
    pub fn miner_at(&self, ip: IpAddr) -> Option<&MinerRecord> {
        self.miners.iter().find(|m| IpAddr::V4(*m.addr.ip()) == ip)
    }

    /// The status line: `fleet: 812/820 miners up, 96.1 PH/s, 2.71 MW; proxy: 812 connected;
    /// pools: all primary`.
    pub fn status_line(&self) -> String {
        let fleet = &self.aggregates.fleet;
        let pools = pools_phrase(&self.proxy.upstreams);
        format!(
            "fleet: {}/{} miners up, {}, {}; proxy: {} connected; pools: {pools}",
            fleet.up,
            self.miners.len(),
            hashrate_phrase(fleet.hashrate_ths),
            power_phrase(fleet.power_w),
            self.proxy.connected(),
        )
    }
}

/// TH/s in the unit a person reads best: `96.1 PH/s`, `412 TH/s`.
pub fn hashrate_phrase(ths: f64) -> String {
    if ths >= 1000.0 {
        format!("{:.1} PH/s", ths / 1000.0)
    } else if ths >= 10.0 {
        format!("{ths:.0} TH/s")
    } else {
        format!("{ths:.2} TH/s")
    }
}

/// Watts as `2.71 MW`, `812 kW`, `950 W`.
pub fn power_phrase(watts: f64) -> String {
    if watts >= 1e6 {
        format!("{:.2} MW", watts / 1e6)
    } else if watts >= 1e4 {
        format!("{:.0} kW", watts / 1e3)
    } else {
        format!("{watts:.0} W")
    }
}

/// `all primary`, `2 owner(s) on a backup pool`, `1 owner(s) without a pool`, `none yet`.
fn pools_phrase(upstreams: &[UpstreamView]) -> String {
    let mut active: BTreeMap<&str, Option<usize>> = BTreeMap::new();
    for upstream in upstreams {
        let entry = active.entry(upstream.owner.as_str()).or_insert(None);
        if upstream.active && upstream.usable {
            *entry = Some(entry.map_or(upstream.pool_index, |i| i.min(upstream.pool_index)));
        }
    }
    if active.is_empty() {
        return "none yet".to_owned();
    }
    let backup = active.values().filter(|i| i.is_some_and(|i| i > 0)).count();
    let without = active.values().filter(|i| i.is_none()).count();
    match (backup, without) {
        (0, 0) => "all primary".to_owned(),
        (b, 0) => format!("{b} owner(s) on a backup pool"),
        (0, w) => format!("{w} owner(s) without a pool"),
        (b, w) => format!("{b} owner(s) on a backup pool, {w} without a pool"),
    }
}

/// The receiving end the edges hold.
pub type Snapshots = watch::Receiver<Arc<MiningSnapshot>>;

/// Read-your-writes for the edges: an action that changed the inventory asks for a fresh
/// snapshot, and may wait until one taken after its change is published (an operator who
/// releases a miner and looks at it at once sees it released).
#[derive(Debug, Default)]
pub struct Republish {
    requested: AtomicU64,
    notify: Notify,
}

impl Republish {
    /// Asks the daemon for a fresh snapshot; returns the generation that will reflect what
    /// changed before this call.
    pub fn request(&self) -> u64 {
        let generation = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        self.notify.notify_one();
        generation
    }

    /// Resolves when a request is waiting.
    pub async fn requested(&self) {
        self.notify.notified().await;
    }

    /// The generation a snapshot whose reading starts now reflects.
    pub fn generation_now(&self) -> u64 {
        self.requested.load(Ordering::SeqCst)
    }
}

/// Waits (at most `within`) until `snapshots` publishes one of at least `generation`. On
/// timeout the change has still been made; only the view of it lags.
pub async fn wait_for_generation(snapshots: &Snapshots, generation: u64, within: Duration) {
    let mut snapshots = snapshots.clone();
    let fresh = snapshots.wait_for(|s| s.generation >= generation);
    if tokio::time::timeout(within, fresh).await.is_err() {
        tracing::warn!(
            generation,
            "no fresh snapshot within {within:?}; the answer may show the state before the change"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(owner: &str, index: usize, active: bool, usable: bool) -> UpstreamView {
        UpstreamView {
            owner: owner.into(),
            pool_url: format!("stratum+tcp://pool{index}:3333"),
            pool_index: index,
            upstream_id: 1,
            miners: 1,
            difficulty: 1.0,
            active,
            usable,
            malformed_lines: 0,
        }
    }

    #[test]
    fn units_read_like_a_person_writes_them() {
        assert_eq!(hashrate_phrase(96_100.0), "96.1 PH/s");
        assert_eq!(hashrate_phrase(412.3), "412 TH/s");
        assert_eq!(hashrate_phrase(0.5), "0.50 TH/s");
        assert_eq!(power_phrase(2_710_000.0), "2.71 MW");
        assert_eq!(power_phrase(812_000.0), "812 kW");
        assert_eq!(power_phrase(950.0), "950 W");
    }

    #[test]
    fn pools_say_whether_every_owner_is_on_its_primary() {
        assert_eq!(pools_phrase(&[]), "none yet");
        assert_eq!(
            pools_phrase(&[upstream("a", 0, true, true), upstream("b", 0, true, true)]),
            "all primary"
        );
        assert_eq!(
            pools_phrase(&[upstream("a", 0, false, false), upstream("a", 1, true, true)]),
            "1 owner(s) on a backup pool"
        );
        assert_eq!(
            pools_phrase(&[upstream("a", 0, false, false)]),
            "1 owner(s) without a pool"
        );
    }

    #[test]
    fn the_status_line_counts_the_inventory() {
        let snapshot = MiningSnapshot::empty(BudgetSummary {
            from_sited: false,
            power_w: 1.0,
            headroom_c: None,
        });
        assert_eq!(
            snapshot.status_line(),
            "fleet: 0/0 miners up, 0.00 TH/s, 0 W; proxy: 0 connected; pools: none yet"
        );
    }
}
