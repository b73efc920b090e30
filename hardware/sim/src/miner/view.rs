//! The ground truth about one simulated miner, for tests and the control socket: what it
//! really draws and hashes and where its Stratum client really mines, whatever its firmware
//! claims over the cgminer API (a hidden-hashing miner lies there; this does not).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;

use super::model::{Firmware, Personality};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolView {
    pub url: String,
    pub user: String,
    /// The pool the Stratum client mines on now.
    pub active: bool,
}

/// Shares per pool URL, as the miner's Stratum client counted them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ShareCounts {
    pub submitted: u64,
    pub accepted: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinerView {
    pub ip: Ipv4Addr,
    pub personality: Personality,
    /// As the firmware names it, e.g. `Antminer S9`.
    pub model: String,
    pub firmware: Firmware,
    pub power_w: f64,
    /// The autotuner's target (BOSminer); the nominal power for firmware without one.
    pub power_target_w: f64,
    pub hashrate_ths: f64,
    /// Per board, in chain order.
    pub board_hashrate_ths: Vec<f64>,
    pub chip_temp_c: Vec<f64>,
    pub pcb_temp_c: Vec<f64>,
    pub fan_rpm: Vec<u32>,
    pub sleeping: bool,
    pub rebooting: bool,
    pub uptime_s: u64,
    /// The firmware's configured list (as `pools` shows it, devfee included).
    pub pools: Vec<PoolView>,
    pub shares: BTreeMap<String, ShareCounts>,
}

impl MinerView {
    pub fn shares_accepted(&self, url: &str) -> u64 {
        self.shares.get(url).map_or(0, |s| s.accepted)
    }

    pub fn shares_submitted(&self, url: &str) -> u64 {
        self.shares.get(url).map_or(0, |s| s.submitted)
    }

    pub fn active_pool(&self) -> Option<&PoolView> {
        self.pools.iter().find(|p| p.active)
    }
}
