//! Taking the [`MiningSnapshot`] the edges read, from the inventory, telemetry, the proxy and
//! the audit log's head, and the proxy's own metrics.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::curtailment_driver::CurtailmentDriver;
use crate::hijack_guard::{HijackGuard, StoredFinding};
use crate::inventory::{Inventory, InventoryError, MinerFilter, MinerRecord};
use crate::operations::SharedAuditLog;
use crate::proxy::Proxy;
use crate::snapshot::{
    AuditSummary, BudgetSummary, DiscoverySummary, MiningSnapshot, PollSummary, ProxySummary,
};
use crate::telemetry::Telemetry;

/// What a snapshot is taken from.
pub struct Sources {
    pub inventory: Arc<Inventory>,
    pub telemetry: Arc<Telemetry>,
    pub proxy: Arc<Proxy>,
    pub audit: SharedAuditLog,
    pub last_sealed: Arc<AtomicU64>,
    pub guard: Arc<HijackGuard>,
    pub curtailment: Arc<CurtailmentDriver>,
}

/// What the main loop remembers between snapshots.
#[derive(Debug, Clone)]
pub struct Remembered {
    pub poll: Option<PollSummary>,
    pub discovery: Option<DiscoverySummary>,
    pub budget: BudgetSummary,
}

/// Every inventory record, read off the runtime's threads.
pub async fn all_miners(inventory: &Arc<Inventory>) -> Result<Vec<MinerRecord>, InventoryError> {
    let inventory = Arc::clone(inventory);
    tokio::task::spawn_blocking(move || inventory.list(&MinerFilter::default()))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

impl Sources {
    /// The snapshot now, over `miners` (the inventory just read).
    pub async fn take(&self, miners: Vec<MinerRecord>, remembered: &Remembered) -> MiningSnapshot {
        let statuses = self.telemetry.statuses();
        let aggregates = self.telemetry.aggregates();
        let proxy_miners = self.proxy.miners();
        let mut owners: BTreeMap<String, _> = BTreeMap::new();
        for owner in miners.iter().map(|m| m.owner.as_str()) {
            if !owners.contains_key(owner) {
                owners.insert(owner.to_owned(), self.proxy.owner_totals(owner));
            }
        }
        let hijacks = self.findings().await;
        let records = self.audit.lock().await.head().map_or(0, |head| head.seq);
        let sealed = self.last_sealed.load(Ordering::Relaxed);
        MiningSnapshot {
            miners,
            telemetry: statuses.into_iter().map(|s| (s.miner, s)).collect(),
            aggregates,
            poll: remembered.poll.clone(),
            discovery: remembered.discovery.clone(),
            proxy: ProxySummary {
                listen: Some(self.proxy.local_addr()),
                miners: proxy_miners
                    .into_iter()
                    .filter_map(|m| m.ip.map(|ip: IpAddr| (ip, m)))
                    .collect(),
                upstreams: self.proxy.upstreams(),
                owners,
                refused_connections: self.proxy.refused_connections(),
            },
            budget: remembered.budget,
            curtailment: self.curtailment.status(),
            hijacks,
            audit: AuditSummary {
                records,
                last_sealed_seq: (sealed > 0).then_some(sealed),
            },
            taken_at: SystemTime::now(),
            generation: 0,
        }
    }
}

impl Sources {
    /// The guard's findings, or why they cannot be read (Mining1's `Hijacks` then says so
    /// rather than answer from nothing).
    async fn findings(&self) -> Result<Vec<StoredFinding>, String> {
        let guard = Arc::clone(&self.guard);
        let read = tokio::task::spawn_blocking(move || guard.findings())
            .await
            .map_err(|e| e.to_string())
            .and_then(|found| found.map_err(|e| e.to_string()));
        if let Err(error) = &read {
            tracing::error!(%error, "cannot read the hijack findings");
        }
        read
    }
}

type Labels = Vec<(String, String)>;

/// The proxy's and the audit log's series, beside the fleet's (`fleet_metrics`).
///
/// | metric | type | meaning |
/// |---|---|---|
/// | `minerd_proxy_miners_connected` | gauge | miners with a live Stratum connection |
/// | `minerd_proxy_refused_connections_total` | counter | connections refused (unknown source, too many sessions) |
/// | `minerd_proxy_upstreams{owner,state}` | gauge | pool connections: `active`, `standby`, `down` |
/// | `minerd_owner_shares_accepted_total{owner}` | counter | shares accepted from the owner's miners (committed) |
/// | `minerd_owner_shares_rejected_total{owner}` | counter | shares refused by validation |
/// | `minerd_owner_shares_accepted_difficulty_total{owner}` | counter | their summed difficulty |
/// | `minerd_audit_records` | gauge | records in the audit log |
#[derive(Debug, Clone, Default)]
pub struct ProxyMetrics {
    connected: Gauge,
    refused: Counter,
    upstreams: Family<Labels, Gauge>,
    accepted: Family<Labels, Counter>,
    rejected: Family<Labels, Counter>,
    accepted_difficulty: Family<Labels, Counter<f64, AtomicU64>>,
    audit_records: Gauge,
}

impl ProxyMetrics {
    pub fn register(registry: &mut Registry) -> ProxyMetrics {
        let metrics = ProxyMetrics::default();
        let prefix = "minerd";
        let r = registry.sub_registry_with_prefix(prefix);
        r.register(
            "proxy_miners_connected",
            "Miners with a live Stratum connection",
            metrics.connected.clone(),
        );
        r.register(
            "proxy_refused_connections",
            "Connections refused by the proxy",
            metrics.refused.clone(),
        );
        r.register(
            "proxy_upstreams",
            "Pool connections by owner and state",
            metrics.upstreams.clone(),
        );
        r.register(
            "owner_shares_accepted",
            "Shares accepted from the owner's miners",
            metrics.accepted.clone(),
        );
        r.register(
            "owner_shares_rejected",
            "Shares refused by validation",
            metrics.rejected.clone(),
        );
        r.register(
            "owner_shares_accepted_difficulty",
            "Summed difficulty of accepted shares",
            metrics.accepted_difficulty.clone(),
        );
        r.register(
            "audit_records",
            "Records in the audit log",
            metrics.audit_records.clone(),
        );
        metrics
    }

    /// Brings the series to what `snapshot` says. Counters only move forward to the committed
    /// totals (which survive restarts, so after one the counters start at the stored totals).
    pub fn observe(&self, snapshot: &MiningSnapshot) {
        let proxy = &snapshot.proxy;
        self.connected
            .set(i64::try_from(proxy.connected()).unwrap_or(i64::MAX));
        raise(&self.refused, proxy.refused_connections);
        self.upstreams.clear();
        for upstream in &proxy.upstreams {
            let state = if !upstream.usable {
                "down"
            } else if upstream.active {
                "active"
            } else {
                "standby"
            };
            self.upstreams
                .get_or_create(&vec![
                    ("owner".to_owned(), upstream.owner.clone()),
                    ("state".to_owned(), state.to_owned()),
                ])
                .inc();
        }
        for (owner, counts) in &proxy.owners {
            let labels = vec![("owner".to_owned(), owner.clone())];
            raise(&self.accepted.get_or_create(&labels), counts.accepted);
            raise(
                &self.rejected.get_or_create(&labels),
                counts.rejected_total(),
            );
            let difficulty = self.accepted_difficulty.get_or_create(&labels);
            let gap = counts.accepted_difficulty - difficulty.get();
            if gap > 0.0 {
                difficulty.inc_by(gap);
            }
        }
        self.audit_records
            .set(i64::try_from(snapshot.audit.records).unwrap_or(i64::MAX));
    }
}

fn raise(counter: &Counter, to: u64) {
    let now = counter.get();
    if to > now {
        counter.inc_by(to - now);
    }
}
