//! What the proxy shows the operator and the crypto-jacking detector: per miner (by source
//! address) whether it is connected, as whom, on which pool, at which difficulty, when it last
//! shared, and its committed counts; per owner totals; per upstream state. Sessions keep their
//! live part here; counts come from the accounting store when the view is read.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::accounting::ShareCounts;

/// One miner as the proxy sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MinerView {
    pub ip: Option<IpAddr>,
    pub miner_id: String,
    pub owner: String,
    pub connected: bool,
    /// Open connections from this address (a miner keeps one; a second during its own
    /// reconnects).
    pub sessions: u32,
    /// The worker name the miner authorized as (the last one, if several).
    pub authorized_user: Option<String>,
    /// The pool its shares go to now.
    pub upstream_pool: Option<String>,
    /// The share difficulty the miner was last given.
    pub difficulty: f64,
    pub last_share_unix: Option<u64>,
    /// Quarantined by the operator or the inventory: flagged for attention.
    pub quarantined: bool,
    /// User names the miner tried and was refused (a changed identity is a hijack sign).
    pub refused_users: Vec<String>,
    /// Malformed lines, unknown methods and out-of-order requests.
    pub protocol_errors: u64,
    /// Committed share counts.
    pub counts: ShareCounts,
}

/// Refused user names kept per miner; enough to see a pattern, bounded against a flood.
const MAX_REFUSED_USERS: usize = 8;

/// The live half of the view, written by sessions.
#[derive(Default)]
pub struct LiveMiners {
    miners: Mutex<HashMap<IpAddr, MinerView>>,
    quarantined: Mutex<HashSet<IpAddr>>,
    /// Miners the proxy gives no work (curtailment of firmware that cannot sleep).
    withheld: Mutex<HashSet<IpAddr>>,
    refused_sources: AtomicU64,
}

impl LiveMiners {
    pub fn update(&self, ip: IpAddr, change: impl FnOnce(&mut MinerView)) {
        let mut miners = self.miners.lock().expect("live miners lock");
        let entry = miners.entry(ip).or_insert_with(|| MinerView {
            ip: Some(ip),
            ..MinerView::default()
        });
        change(entry);
    }

    /// Counts a new connection from `ip` unless it already has `max`; `false`: refuse it.
    pub fn open_session(&self, ip: IpAddr, max: u32) -> bool {
        let mut admitted = false;
        self.update(ip, |m| {
            if m.sessions < max {
                m.sessions += 1;
                m.connected = true;
                admitted = true;
            }
        });
        admitted
    }

    /// A connection from `ip` ended.
    pub fn close_session(&self, ip: IpAddr) {
        self.update(ip, |m| {
            m.sessions = m.sessions.saturating_sub(1);
            m.connected = m.sessions > 0;
            if !m.connected {
                m.upstream_pool = None;
            }
        });
    }

    pub fn refuse_user(&self, ip: IpAddr, user: &str) {
        self.update(ip, |m| {
            if !m.refused_users.iter().any(|u| u == user) {
                if m.refused_users.len() == MAX_REFUSED_USERS {
                    m.refused_users.remove(0);
                }
                m.refused_users.push(user.chars().take(128).collect());
            }
        });
    }

    pub fn snapshot(&self) -> Vec<MinerView> {
        let quarantined = self.quarantined.lock().expect("quarantine lock");
        let miners = self.miners.lock().expect("live miners lock");
        miners
            .values()
            .map(|m| {
                let mut m = m.clone();
                m.quarantined |= m.ip.is_some_and(|ip| quarantined.contains(&ip));
                m
            })
            .collect()
    }

    pub fn set_quarantine(&self, ip: IpAddr, on: bool) {
        let mut quarantined = self.quarantined.lock().expect("quarantine lock");
        if on {
            quarantined.insert(ip);
        } else {
            quarantined.remove(&ip);
        }
    }

    pub fn is_quarantined(&self, ip: IpAddr) -> bool {
        self.quarantined
            .lock()
            .expect("quarantine lock")
            .contains(&ip)
    }

    pub fn set_withheld(&self, ip: IpAddr, on: bool) {
        let mut withheld = self.withheld.lock().expect("withheld lock");
        if on {
            withheld.insert(ip);
        } else {
            withheld.remove(&ip);
        }
    }

    pub fn is_withheld(&self, ip: IpAddr) -> bool {
        self.withheld.lock().expect("withheld lock").contains(&ip)
    }

    pub fn count_refused_source(&self) {
        self.refused_sources.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused_sources(&self) -> u64 {
        self.refused_sources.load(Ordering::Relaxed)
    }
}
