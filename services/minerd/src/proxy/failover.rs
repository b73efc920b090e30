//! Pool failover for one owner's sanctioned pools, in priority order. Pure: the connections
//! report what happened (`mark_up` once a pool has subscribed, authorized and sent a job;
//! `mark_down` when it closed, refused, or stopped answering) and the owner's supervisor asks
//! which pool miners should use (`select`) and which pools are worth a connection attempt
//! (`pools_to_try`).
//!
//! Rules: with no usable active pool, the highest-priority pool that is up is chosen at once
//! (failover); a pool above the active one replaces it only after it has been up for the hold
//! time (failback without flapping); a pool that went down is not tried again before the retry
//! interval.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolHealth {
    /// Never connected to.
    Untried,
    /// Subscribed, authorized and sending jobs since this instant.
    Up { since: Instant },
    /// Closed, refused or silent at this instant.
    Down { since: Instant },
}

#[derive(Debug, Clone)]
pub struct PoolFailover {
    health: Vec<PoolHealth>,
    active: Option<usize>,
    hold: Duration,
    retry: Duration,
}

impl PoolFailover {
    pub fn new(pools: usize, hold: Duration, retry: Duration) -> PoolFailover {
        PoolFailover {
            health: vec![PoolHealth::Untried; pools],
            active: None,
            hold,
            retry,
        }
    }

    pub fn health(&self, pool: usize) -> Option<PoolHealth> {
        self.health.get(pool).copied()
    }

    /// The pool miners are on, as last selected.
    pub fn active(&self) -> Option<usize> {
        self.active
    }

    pub fn mark_up(&mut self, pool: usize, now: Instant) {
        if let Some(h) = self.health.get_mut(pool)
            && !matches!(h, PoolHealth::Up { .. })
        {
            *h = PoolHealth::Up { since: now };
        }
    }

    pub fn mark_down(&mut self, pool: usize, now: Instant) {
        if let Some(h) = self.health.get_mut(pool) {
            *h = PoolHealth::Down { since: now };
        }
        if self.active == Some(pool) {
            self.active = None;
        }
    }

    /// The connection to a pool was closed on purpose (miners moved away): nothing is known
    /// about its health any more, and it is tried again like a new pool.
    pub fn mark_idle(&mut self, pool: usize) {
        if self.active != Some(pool)
            && let Some(h) = self.health.get_mut(pool)
        {
            *h = PoolHealth::Untried;
        }
    }

    /// Decides the active pool now and returns it (`None`: no pool is up).
    pub fn select(&mut self, now: Instant) -> Option<usize> {
        let is_up = |h: &PoolHealth| matches!(h, PoolHealth::Up { .. });
        self.active = match self.active {
            Some(active) => {
                let held = self.health[..active].iter().position(|h| match h {
                    PoolHealth::Up { since } => now.duration_since(*since) >= self.hold,
                    _ => false,
                });
                Some(held.unwrap_or(active))
            }
            None => self.health.iter().position(is_up),
        };
        self.active
    }

    /// Pools a connection should be attempted to now: with an active pool, those above it
    /// (to fail back); without one, the first pool in priority order that may be tried. Pools
    /// that are up, or went down less than the retry interval ago, are left alone.
    pub fn pools_to_try(&self, now: Instant) -> Vec<usize> {
        let may_try = |h: &PoolHealth| match h {
            PoolHealth::Untried => true,
            PoolHealth::Up { .. } => false,
            PoolHealth::Down { since } => now.duration_since(*since) >= self.retry,
        };
        match self.active {
            Some(active) => (0..active).filter(|&i| may_try(&self.health[i])).collect(),
            None => {
                if self
                    .health
                    .iter()
                    .any(|h| matches!(h, PoolHealth::Up { .. }))
                {
                    return Vec::new(); // select() will pick it
                }
                self.health.iter().position(may_try).into_iter().collect()
            }
        }
    }
}

#[cfg(test)]
#[path = "failover_tests.rs"]
mod tests;
