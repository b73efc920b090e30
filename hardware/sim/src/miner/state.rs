//! The firmware's own state: its configured pool list (what `pools` shows and what its Stratum
//! client is told to mine on), sleep and power target, boot time and reboot window, and the
//! faults in force. Pure data: the miner applies the changes to its Stratum client.

use std::time::{Duration, Instant};

use super::fault::Fault;
use super::report::PoolReport;
use crate::stratum_client::SimPool;

#[derive(Debug, Clone, PartialEq)]
pub struct ConfiguredPool {
    pub pool: SimPool,
    pub enabled: bool,
}

/// While hashing off the books, the firmware keeps showing the pool list it had, with
/// counters that keep climbing as if its shares still went there.
#[derive(Debug, Clone, PartialEq)]
pub struct OffBook {
    pub shown: Vec<PoolReport>,
    pub since: Instant,
}

/// How often an off-book firmware pretends a share was accepted.
pub const OFF_BOOK_SHARE_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct MinerState {
    /// The configured list, in `POOL` index order.
    pub pools: Vec<ConfiguredPool>,
    /// The pool `switchpool` chose (priority 0); the others follow in list order.
    pub preferred: usize,
    /// The list as the site configured it, kept while a pool-changing fault is in force, so
    /// that clearing the faults restores it.
    pub sanctioned: Option<(Vec<ConfiguredPool>, usize)>,
    /// A devfee window in progress: this pool sits at index 0 and is mined on.
    pub devfee: Option<SimPool>,
    pub off_book: Option<OffBook>,
    pub sleeping: bool,
    pub power_target_w: f64,
    pub booted_at: Instant,
    pub rebooting_until: Option<Instant>,
    pub faults: Vec<Fault>,
    /// LuxOS: the session `logon` opened; privileged commands must name it.
    pub session_id: Option<String>,
}

impl MinerState {
    pub fn new(pools: Vec<SimPool>, power_target_w: f64) -> MinerState {
        MinerState {
            pools: pools
                .into_iter()
                .map(|pool| ConfiguredPool {
                    pool,
                    enabled: true,
                })
                .collect(),
            preferred: 0,
            sanctioned: None,
            devfee: None,
            off_book: None,
            sleeping: false,
            power_target_w,
            booted_at: Instant::now(),
            rebooting_until: None,
            faults: Vec::new(),
            session_id: None,
        }
    }

    /// The list the firmware shows and mines from: a running devfee first, then the pools.
    pub fn effective_pools(&self) -> Vec<ConfiguredPool> {
        self.devfee
            .iter()
            .map(|pool| ConfiguredPool {
                pool: pool.clone(),
                enabled: true,
            })
            .chain(self.pools.iter().cloned())
            .collect()
    }

    /// The index, in [`Self::effective_pools`], that the firmware mines on first.
    pub fn effective_preferred(&self) -> usize {
        if self.devfee.is_some() {
            0
        } else {
            self.preferred
        }
    }

    /// cgminer's priorities: the preferred pool 0, then the others in list order.
    pub fn priority_of(&self, index: usize) -> usize {
        let preferred = self.effective_preferred();
        match index.cmp(&preferred) {
            std::cmp::Ordering::Equal => 0,
            std::cmp::Ordering::Less => index + 1,
            std::cmp::Ordering::Greater => index,
        }
    }

    /// A devfee window shifts every index by one; commands address the list as shown.
    pub fn configured_index(&self, shown: usize) -> Option<usize> {
        let index = if self.devfee.is_some() {
            shown.checked_sub(1)?
        } else {
            shown
        };
        (index < self.pools.len()).then_some(index)
    }

    pub fn rebooting(&self) -> bool {
        self.rebooting_until.is_some_and(|t| Instant::now() < t)
    }

    pub fn uptime(&self) -> Duration {
        self.booted_at.elapsed()
    }

    /// Remembers the site's list before the first fault that changes it.
    pub fn keep_sanctioned(&mut self) {
        if self.sanctioned.is_none() {
            self.sanctioned = Some((self.pools.clone(), self.preferred));
        }
    }
}
