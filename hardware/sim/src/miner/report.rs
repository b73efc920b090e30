//! What the firmware knows about itself at one instant, gathered once per API request so that
//! every command of a joined reply tells the same story (the `summary` accepted count is the
//! sum of the `pools` counts, the boards add up to the total hashrate).

use super::model::Personality;
use super::physics::SensorReading;

/// One pool as the firmware lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolReport {
    pub url: String,
    pub user: String,
    pub status: PoolLiveness,
    /// 0 is the pool the firmware prefers.
    pub priority: usize,
    /// The pool the miner mines on now.
    pub stratum_active: bool,
    pub accepted: u64,
    pub rejected: u64,
    pub stale: u64,
    /// 0: never.
    pub last_share_unix: u64,
    pub difficulty: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolLiveness {
    Alive,
    Dead,
    Disabled,
}

impl PoolLiveness {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolLiveness::Alive => "Alive",
            PoolLiveness::Dead => "Dead",
            PoolLiveness::Disabled => "Disabled",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub personality: Personality,
    pub when_unix: u64,
    pub uptime_s: u64,
    pub reading: SensorReading,
    /// Average since boot and over the last 5 s, TH/s.
    pub hashrate_av_ths: f64,
    pub hashrate_5s_ths: f64,
    /// What the boards should do at their frequency (Antminer `total_rateideal`).
    pub hashrate_ideal_ths: f64,
    pub hw_errors_per_board: Vec<u64>,
    pub pools: Vec<PoolReport>,
    pub power_target_w: f64,
    pub sleeping: bool,
    pub frequency_mhz: u32,
    /// The unit's serial (Antminer `miner_id`), from its seed.
    pub unit_id: String,
    /// The LuxOS session open on the API, if any.
    pub session_id: Option<String>,
}

impl Report {
    pub fn accepted(&self) -> u64 {
        self.pools.iter().map(|p| p.accepted).sum()
    }

    pub fn rejected(&self) -> u64 {
        self.pools.iter().map(|p| p.rejected).sum()
    }

    pub fn stale(&self) -> u64 {
        self.pools.iter().map(|p| p.stale).sum()
    }

    pub fn hw_errors(&self) -> u64 {
        self.hw_errors_per_board.iter().sum()
    }

    pub fn difficulty_accepted(&self) -> f64 {
        self.pools
            .iter()
            .map(|p| p.accepted as f64 * p.difficulty)
            .sum()
    }

    pub fn last_share_unix(&self) -> u64 {
        self.pools
            .iter()
            .map(|p| p.last_share_unix)
            .max()
            .unwrap_or(0)
    }
}
