//! The fleet's Prometheus metrics, served on 127.0.0.1:9103 by
//! [`appliance::metrics::MetricsEndpoint`] from the registry minerd builds at startup.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `minerd_fleet_hashrate_terahashes` | gauge | hashrate of every miner up, TH/s |
//! | `minerd_fleet_power_watts` | gauge | power of every miner up that reports it |
//! | `minerd_fleet_efficiency_joules_per_terahash` | gauge | J/TH over miners reporting power and hashrate (absent while none does) |
//! | `minerd_fleet_hottest_chip_celsius` | gauge | the hottest chip sensor of the fleet |
//! | `minerd_owner_hashrate_terahashes{owner}` | gauge | the same per owner |
//! | `minerd_owner_power_watts{owner}` | gauge | |
//! | `minerd_owner_efficiency_joules_per_terahash{owner}` | gauge | |
//! | `minerd_miners_polled{owner,status}` | gauge | miners `up`, `down`, `sleeping` at the last poll |
//! | `minerd_miners{state}` | gauge | inventory miners by state: `active`, `quarantined`, `sleeping`, `missing` |
//! | `minerd_poll_duration_seconds` | histogram | wall time of a full poll cycle |
//! | `minerd_poll_cycles_total` | counter | poll cycles run |
//! | `minerd_poll_failures_total{reason}` | counter | miner polls that failed: `timeout`, `refused`, `malformed`, `oversized`, ... |
//! | `minerd_discovery_scans_total` | counter | discovery scans run |
//! | `minerd_discovery_addresses_scanned_total` | counter | addresses probed |
//! | `minerd_discovery_miners_found` | gauge | miners identified by the last scan |
//! | `minerd_discovery_miners_new_total`, `_changed_total`, `_missing_total` | counter | inventory changes made by scans |
//! | `minerd_discovery_errors_total{reason}` | counter | addresses that answered but could not be identified |
//! | `minerd_discovery_duration_seconds` | gauge | wall time of the last scan |
//! | `minerd_miner_hashrate_terahashes{miner,owner}` | gauge | each miner up: hashrate |
//! | `minerd_miner_power_watts{miner,owner}` | gauge | each miner up that reports power |
//! | `minerd_miner_hottest_chip_celsius{miner,owner}` | gauge | each miner up that reports chip temperatures |
//! | `minerd_miner_up{miner,owner}` | gauge | 1 when the last poll succeeded, else 0 |
//!
//! `miner` is the API address (`10.10.0.5:4028`). Series of miners and owners that left the
//! fleet are removed, so the per-miner series stay as many as the miners.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::discovery::DiscoveryReport;
use crate::inventory::{MinerRecord, MinerState};
use crate::telemetry::{Aggregate, PollReport, Telemetry};

type FloatGauge = Gauge<f64, AtomicU64>;
/// The label set of a fleet-wide value that may be absent (so it lives in a family that can
/// remove it): no labels at all.
type NoLabels = Vec<(String, String)>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OwnerLabel {
    pub owner: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MinerLabels {
    pub miner: String,
    pub owner: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolledLabels {
    pub owner: String,
    pub status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Handles to the fleet metrics; cheap to clone.
#[derive(Debug, Clone)]
pub struct FleetMetrics {
    fleet_hashrate: FloatGauge,
    fleet_power: FloatGauge,
    fleet_efficiency: Family<NoLabels, FloatGauge>,
    fleet_hottest_chip: Family<NoLabels, FloatGauge>,
    owner_hashrate: Family<OwnerLabel, FloatGauge>,
    owner_power: Family<OwnerLabel, FloatGauge>,
    owner_efficiency: Family<OwnerLabel, FloatGauge>,
    polled: Family<PolledLabels, Gauge>,
    miners: Family<StateLabel, Gauge>,
    poll_duration: Histogram,
    poll_cycles: Counter,
    poll_failures: Family<ReasonLabel, Counter>,
    scans: Counter,
    addresses_scanned: Counter,
    miners_found: Gauge,
    discovered_new: Counter,
    discovered_changed: Counter,
    discovered_missing: Counter,
    discovery_errors: Family<ReasonLabel, Counter>,
    discovery_duration: FloatGauge,
    miner_hashrate: Family<MinerLabels, FloatGauge>,
    miner_power: Family<MinerLabels, FloatGauge>,
    miner_hottest_chip: Family<MinerLabels, FloatGauge>,
    miner_up: Family<MinerLabels, Gauge>,
    /// Label sets set at the last poll, to remove those that are gone.
    seen: Arc<Mutex<SeenLabels>>,
}

#[derive(Debug, Default)]
struct SeenLabels {
    owners: HashSet<String>,
    miners: HashSet<MinerLabels>,
}

impl FleetMetrics {
    /// Registers the fleet metrics under `minerd_` in `registry`.
    pub fn register(registry: &mut Registry) -> FleetMetrics {
        let m = FleetMetrics {
            fleet_hashrate: FloatGauge::default(),
            fleet_power: FloatGauge::default(),
            fleet_efficiency: Family::default(),
            fleet_hottest_chip: Family::default(),
            owner_hashrate: Family::default(),
            owner_power: Family::default(),
            owner_efficiency: Family::default(),
            polled: Family::default(),
            miners: Family::default(),
            // 10 ms to ~40 s: a healthy cycle of 1,000 miners takes well under a second.
            poll_duration: Histogram::new(exponential_buckets(0.01, 2.0, 13)),
            poll_cycles: Counter::default(),
            poll_failures: Family::default(),
            scans: Counter::default(),
            addresses_scanned: Counter::default(),
            miners_found: Gauge::default(),
            discovered_new: Counter::default(),
            discovered_changed: Counter::default(),
            discovered_missing: Counter::default(),
            discovery_errors: Family::default(),
            discovery_duration: FloatGauge::default(),
            miner_hashrate: Family::default(),
            miner_power: Family::default(),
            miner_hottest_chip: Family::default(),
            miner_up: Family::default(),
            seen: Arc::default(),
        };
        let r = registry.sub_registry_with_prefix("minerd");
        r.register(
            "fleet_hashrate_terahashes",
            "Hashrate of every miner up, TH/s",
            m.fleet_hashrate.clone(),
        );
        r.register(
            "fleet_power_watts",
            "Power of every miner up that reports it",
            m.fleet_power.clone(),
        );
        r.register(
            "fleet_efficiency_joules_per_terahash",
            "Joules per terahash over the miners reporting power and hashrate",
            m.fleet_efficiency.clone(),
        );
        r.register(
            "fleet_hottest_chip_celsius",
            "The hottest chip sensor of the fleet",
            m.fleet_hottest_chip.clone(),
        );
        r.register(
            "owner_hashrate_terahashes",
            "Hashrate of each owner's miners up, TH/s",
            m.owner_hashrate.clone(),
        );
        r.register(
            "owner_power_watts",
            "Power of each owner's miners up that report it",
            m.owner_power.clone(),
        );
        r.register(
            "owner_efficiency_joules_per_terahash",
            "Joules per terahash of each owner's miners",
            m.owner_efficiency.clone(),
        );
        r.register(
            "miners_polled",
            "Miners up, down and sleeping at the last poll, per owner",
            m.polled.clone(),
        );
        r.register("miners", "Inventory miners by state", m.miners.clone());
        r.register(
            "poll_duration_seconds",
            "Wall time of a full poll cycle",
            m.poll_duration.clone(),
        );
        r.register("poll_cycles", "Poll cycles run", m.poll_cycles.clone());
        r.register(
            "poll_failures",
            "Miner polls that failed, by reason",
            m.poll_failures.clone(),
        );
        r.register("discovery_scans", "Discovery scans run", m.scans.clone());
        r.register(
            "discovery_addresses_scanned",
            "Addresses probed by discovery",
            m.addresses_scanned.clone(),
        );
        r.register(
            "discovery_miners_found",
            "Miners identified by the last scan",
            m.miners_found.clone(),
        );
        r.register(
            "discovery_miners_new",
            "Miners added to the inventory by scans",
            m.discovered_new.clone(),
        );
        r.register(
            "discovery_miners_changed",
            "Known miners found with another model or firmware",
            m.discovered_changed.clone(),
        );
        r.register(
            "discovery_miners_missing",
            "Known miners marked missing by scans",
            m.discovered_missing.clone(),
        );
        r.register(
            "discovery_errors",
            "Addresses that answered but could not be identified, by reason",
            m.discovery_errors.clone(),
        );
        r.register(
            "discovery_duration_seconds",
            "Wall time of the last discovery scan",
            m.discovery_duration.clone(),
        );
        r.register(
            "miner_hashrate_terahashes",
            "Hashrate of each miner up, TH/s",
            m.miner_hashrate.clone(),
        );
        r.register(
            "miner_power_watts",
            "Power of each miner up that reports it",
            m.miner_power.clone(),
        );
        r.register(
            "miner_hottest_chip_celsius",
            "Hottest chip sensor of each miner up",
            m.miner_hottest_chip.clone(),
        );
        r.register(
            "miner_up",
            "1 when the miner's last poll succeeded",
            m.miner_up.clone(),
        );
        m
    }

    /// After each poll cycle: durations, failures, aggregates and per-miner series.
    pub fn observe_poll(&self, report: &PollReport, telemetry: &Telemetry) {
        self.poll_cycles.inc();
        self.poll_duration.observe(report.duration.as_secs_f64());
        for (failure, count) in &report.failures {
            self.poll_failures
                .get_or_create(&ReasonLabel {
                    reason: failure.as_str(),
                })
                .inc_by(*count as u64);
        }
        let aggregates = telemetry.aggregates();
        self.fleet_hashrate.set(aggregates.fleet.hashrate_ths);
        self.fleet_power.set(aggregates.fleet.power_w);
        set_optional(
            &self.fleet_efficiency,
            &NoLabels::new(),
            aggregates.fleet.efficiency_j_per_th,
        );
        set_optional(
            &self.fleet_hottest_chip,
            &NoLabels::new(),
            aggregates.fleet.hottest_chip_c,
        );
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let owners: HashSet<String> = aggregates.owners.keys().cloned().collect();
        for gone in seen.owners.difference(&owners) {
            self.remove_owner(gone);
        }
        for (owner, aggregate) in &aggregates.owners {
            self.set_owner(owner, aggregate);
        }
        seen.owners = owners;
        let mut miners = HashSet::new();
        for status in telemetry.statuses() {
            let labels = MinerLabels {
                miner: status.addr.to_string(),
                owner: status.owner.to_string(),
            };
            let snapshot = status.snapshot.as_deref().filter(|_| status.is_up());
            self.miner_up
                .get_or_create(&labels)
                .set(status.is_up() as i64);
            let hashrate = snapshot.map(crate::telemetry::aggregate::hashrate_ths);
            set_optional(&self.miner_hashrate, &labels, hashrate);
            set_optional(
                &self.miner_power,
                &labels,
                snapshot.and_then(|s| s.power_watts),
            );
            let hottest = snapshot.and_then(crate::telemetry::aggregate::hottest_chip);
            set_optional(&self.miner_hottest_chip, &labels, hottest);
            miners.insert(labels);
        }
        for gone in seen.miners.difference(&miners) {
            self.miner_up.remove(gone);
            self.miner_hashrate.remove(gone);
            self.miner_power.remove(gone);
            self.miner_hottest_chip.remove(gone);
        }
        seen.miners = miners;
    }

    fn set_owner(&self, owner: &str, aggregate: &Aggregate) {
        let label = OwnerLabel {
            owner: owner.to_string(),
        };
        self.owner_hashrate
            .get_or_create(&label)
            .set(aggregate.hashrate_ths);
        self.owner_power
            .get_or_create(&label)
            .set(aggregate.power_w);
        set_optional(
            &self.owner_efficiency,
            &label,
            aggregate.efficiency_j_per_th,
        );
        for (status, count) in [
            ("up", aggregate.up),
            ("down", aggregate.down),
            ("sleeping", aggregate.sleeping),
        ] {
            self.polled
                .get_or_create(&PolledLabels {
                    owner: owner.to_string(),
                    status,
                })
                .set(count as i64);
        }
    }

    fn remove_owner(&self, owner: &str) {
        let label = OwnerLabel {
            owner: owner.to_string(),
        };
        self.owner_hashrate.remove(&label);
        self.owner_power.remove(&label);
        self.owner_efficiency.remove(&label);
        for status in ["up", "down", "sleeping"] {
            self.polled.remove(&PolledLabels {
                owner: owner.to_string(),
                status,
            });
        }
    }

    /// The inventory's miners by state (after a scan, or when an operator changes states).
    pub fn observe_inventory(&self, miners: &[MinerRecord]) {
        for state in MinerState::ALL {
            let count = miners.iter().filter(|m| m.state == state).count();
            self.miners
                .get_or_create(&StateLabel {
                    state: state.as_str(),
                })
                .set(count as i64);
        }
    }

    /// After each discovery pass.
    pub fn observe_discovery(&self, report: &DiscoveryReport) {
        self.scans.inc();
        self.addresses_scanned
            .inc_by(report.addresses_scanned as u64);
        self.miners_found.set(report.miners_found as i64);
        self.discovered_new.inc_by(report.changes.new.len() as u64);
        self.discovered_changed
            .inc_by(report.changes.changed.len() as u64);
        self.discovered_missing
            .inc_by(report.changes.missing.len() as u64);
        for (failure, count) in &report.errors {
            self.discovery_errors
                .get_or_create(&ReasonLabel {
                    reason: failure.as_str(),
                })
                .inc_by(*count as u64);
        }
        self.discovery_duration.set(report.duration.as_secs_f64());
    }
}

/// A value that may be unknown: an unknown value removes the series rather than report 0.
fn set_optional<L>(family: &Family<L, FloatGauge>, labels: &L, value: Option<f64>)
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    match value {
        Some(v) => {
            family.get_or_create(labels).set(v);
        }
        None => {
            family.remove(labels);
        }
    }
}

#[cfg(test)]
#[path = "fleet_metrics_tests.rs"]
mod tests;
