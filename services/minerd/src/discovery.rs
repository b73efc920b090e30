//! Discovery: probe every address of the site layout's ranges on the cgminer API port, identify
//! what answers (model, firmware), and record the scan in the inventory (new miners, changed
//! firmware or model, miners gone missing after a number of missed scans).
//!
//! Probing is bounded twice: at most `concurrency` addresses in flight, and each address under
//! its own deadline (connect and reply), so a /22 full of holes and hung listeners takes about
//! `addresses / concurrency × deadline` at worst, and an empty address that refuses costs
//! nothing. asic-rs took 9 minutes for a /22 at 64 with a 10 s timeout (asic-rs#319).

mod identify;
mod settings;

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::inventory::{Inventory, InventoryError, ScanChanges, Sighting, unix_now};
use crate::site_layout::SiteLayout;
use crate::telemetry::PollFailure;
use crate::telemetry::fan_out::fan_out;

pub use identify::{Probe, probe};
pub use settings::DiscoverySettings;

/// One address to probe, with what its range says about it.
#[derive(Debug, Clone)]
struct Target {
    addr: SocketAddrV4,
    owner: Arc<str>,
    location: Arc<str>,
}

/// What one scan found on the network, before it is recorded.
#[derive(Debug, Clone, Default)]
pub struct ScanResult {
    pub addresses_scanned: usize,
    pub sightings: Vec<Sighting>,
    /// Addresses where something accepted the connection but did not identify as a miner.
    pub answered: Vec<SocketAddrV4>,
    pub errors: BTreeMap<PollFailure, usize>,
    pub duration: Duration,
}

/// What a discovery pass did, for the log, the metrics and `bunkerctl`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiscoveryReport {
    pub addresses_scanned: usize,
    pub miners_found: usize,
    pub changes: ScanChanges,
    /// Addresses that answered but could not be identified, by why.
    pub errors: BTreeMap<PollFailure, usize>,
    pub duration: Duration,
}

/// Probes every address of `layout` (validated) and returns what answered.
pub async fn scan(layout: &SiteLayout, settings: &DiscoverySettings) -> ScanResult {
    let started = Instant::now();
    let mut targets = Vec::new();
    for range in &layout.ranges {
        let owner: Arc<str> = range.owner.as_str().into();
        let location: Arc<str> = range.location.as_str().into();
        targets.extend(range.api_addresses().map(|addr| Target {
            addr,
            owner: Arc::clone(&owner),
            location: Arc::clone(&location),
        }));
    }
    let targets: Arc<[Target]> = targets.into();
    let client = settings.client_config();
    let probes = fan_out(
        Arc::clone(&targets),
        settings.concurrency,
        move |t, i| async move { probe(t[i].addr, &client).await },
    )
    .await;
    let mut result = ScanResult {
        addresses_scanned: targets.len(),
        ..ScanResult::default()
    };
    for (target, outcome) in targets.iter().zip(probes) {
        match outcome {
            Probe::Nothing => {}
            Probe::Failed(failure) => {
                *result.errors.entry(failure).or_default() += 1;
                result.answered.push(target.addr);
            }
            Probe::Identified(found) => result.sightings.push(Sighting {
                addr: target.addr,
                model: found.model,
                firmware: found.firmware,
                firmware_version: found.firmware_version,
                mac: found.mac,
                serial: found.serial,
                owner: target.owner.to_string(),
                location: target.location.to_string(),
            }),
        }
    }
    result.duration = started.elapsed();
    result
}

/// One discovery pass: scan, then record it in the inventory.
pub async fn discover(
    layout: &SiteLayout,
    settings: &DiscoverySettings,
    inventory: Arc<Inventory>,
) -> Result<DiscoveryReport, InventoryError> {
    let started = Instant::now();
    let scan = scan(layout, settings).await;
    let ranges: Vec<_> = layout.ranges.iter().map(|r| r.cidr).collect();
    let missing_after = settings.missing_after_scans;
    let ScanResult {
        addresses_scanned,
        sightings,
        answered,
        errors,
        ..
    } = scan;
    let miners_found = sightings.len();
    let changes = tokio::task::spawn_blocking(move || {
        inventory.apply_scan(&sightings, &answered, &ranges, missing_after, unix_now())
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    let report = DiscoveryReport {
        addresses_scanned,
        miners_found,
        changes,
        errors,
        duration: started.elapsed(),
    };
    tracing::info!(
        scanned = report.addresses_scanned,
        found = report.miners_found,
        new = report.changes.new.len(),
        changed = report.changes.changed.len(),
        missing = report.changes.missing.len(),
        unidentified = report.errors.values().sum::<usize>(),
        took_ms = report.duration.as_millis() as u64,
        "discovery scan done"
    );
    Ok(report)
}
