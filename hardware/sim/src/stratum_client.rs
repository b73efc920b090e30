//! One simulated miner's Stratum V1 client, as cgminer-based firmware runs it: a list of pools
//! in priority order, mining on the first one that works, failing over when it refuses, closes
//! or falls silent, and going back when a higher-priority pool works again. It submits real
//! shares (see `share_search`) at the rate its hash rate allows. The miner model drives it
//! (`set_pools`, `switch_to`, `set_mining`, ...) and reports `status()` through its cgminer API.

mod link;
mod share_search;
mod supervisor;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// A pool as the miner is configured with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPool {
    pub url: String,
    pub user: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StratumClientSpec {
    /// The miner's own address; the client socket binds to it before connecting.
    pub bind_ip: Ipv4Addr,
    /// Priority order, like cgminer's pool list.
    pub pools: Vec<SimPool>,
    /// Send `mining.configure` (BIP 310) first.
    pub version_rolling: bool,
    /// Real hashes per second this miner may spend on share search.
    pub hashes_per_second: f64,
}

/// What the miner knows of one configured pool (cgminer's `pools` entry).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolLink {
    pub url: String,
    pub user: String,
    /// 0 is tried first.
    pub priority: usize,
    pub enabled: bool,
    /// Not known dead: false after a connection failed, until one succeeds again.
    pub alive: bool,
    /// The pool the miner mines on now.
    pub active: bool,
    pub accepted: u64,
    pub rejected: u64,
    pub stale: u64,
    /// Unix time of the last accepted share; 0 before the first (cgminer's convention).
    pub last_share_unix: u64,
    /// The share difficulty last in force on this pool.
    pub difficulty: f64,
}

/// A handle to the client's task. Clones control the same client.
#[derive(Clone)]
pub struct StratumClient {
    shared: Arc<ClientShared>,
}

impl StratumClient {
    /// Starts the client task (on the current tokio runtime); it mines at once.
    pub fn spawn(spec: StratumClientSpec) -> StratumClient {
        let pools = spec.pools.iter().cloned().map(PoolEntry::new).collect();
        let shared = Arc::new(ClientShared {
            state: Mutex::new(ClientState {
                priority: (0..spec.pools.len()).collect(),
                pools,
                mining: true,
                hashes_per_second: spec.hashes_per_second.max(0.0),
                stopped: false,
                active: None,
                generation: 0,
            }),
            changed: Notify::new(),
            task: Mutex::new(None),
        });
        // Every log line of this client carries the miner's address.
        let span = tracing::info_span!("miner", ip = %spec.bind_ip);
        let task = tokio::spawn(
            supervisor::run(shared.clone(), spec.bind_ip, spec.version_rolling).instrument(span),
        );
        *shared.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        StratumClient { shared }
    }

    /// The firmware's pool list changed. Counters carry over for pools (url and user) that
    /// stay; the active pool stays active if it is still in the list. The priority order
    /// becomes the list's order (the same list again changes nothing).
    pub fn set_pools(&self, pools: Vec<SimPool>) {
        {
            let state = self.shared.state();
            if state.pools.iter().map(|e| &e.pool).eq(pools.iter()) {
                return; // the same list: priorities and dead marks stay as they are
            }
        }
        self.shared.update(|state| {
            let mut old = std::mem::take(&mut state.pools);
            let active = state
                .active
                .map(|i| (old[i].pool.url.clone(), old[i].pool.user.clone()));
            state.pools = pools
                .into_iter()
                .map(|pool| {
                    match old
                        .iter()
                        .position(|e| e.pool.url == pool.url && e.pool.user == pool.user)
                    {
                        Some(i) => PoolEntry {
                            pool,
                            ..old.swap_remove(i)
                        },
                        None => PoolEntry::new(pool),
                    }
                })
                .collect();
            state.priority = (0..state.pools.len()).collect();
            state.active = active.and_then(|(url, user)| {
                state
                    .pools
                    .iter()
                    .position(|e| e.pool.url == url && e.pool.user == user)
            });
            state.generation += 1;
        });
    }

    /// cgminer's `switchpool`: this pool goes to the top of the priority list (enabled), and
    /// the miner moves to it as soon as it answers.
    pub fn switch_to(&self, index: usize) {
        self.shared.update(|state| {
            if index >= state.pools.len() {
                return;
            }
            state.priority.retain(|&i| i != index);
            state.priority.insert(0, index);
            let entry = &mut state.pools[index];
            entry.enabled = true;
            entry.retry_at = None;
        });
    }

    pub fn set_enabled(&self, index: usize, enabled: bool) {
        self.shared.update(|state| {
            let Some(entry) = state.pools.get_mut(index) else {
                return;
            };
            // A pool enabled again is tried at once; one that stays enabled keeps its retry time.
            if enabled && !entry.enabled {
                entry.retry_at = None;
            }
            entry.enabled = enabled;
            if !enabled && state.active == Some(index) {
                state.active = None;
            }
        });
    }

    /// Off (sleeping, rebooting): disconnect and stop hashing. On: connect and mine again.
    pub fn set_mining(&self, on: bool) {
        self.shared.update(|state| {
            state.mining = on;
            if !on {
                state.active = None;
            }
        });
    }

    pub fn set_hash_rate(&self, hashes_per_second: f64) {
        let rate = if hashes_per_second.is_finite() {
            hashes_per_second.max(0.0)
        } else {
            0.0
        };
        // Read by the task on every hashing round: no need to wake it.
        self.shared.state().hashes_per_second = rate;
    }

    pub fn status(&self) -> Vec<PoolLink> {
        let state = self.shared.state();
        state
            .pools
            .iter()
            .enumerate()
            .map(|(i, e)| PoolLink {
                url: e.pool.url.clone(),
                user: e.pool.user.clone(),
                priority: state.priority.iter().position(|&p| p == i).unwrap_or(i),
                enabled: e.enabled,
                alive: e.alive,
                active: state.active == Some(i),
                accepted: e.accepted,
                rejected: e.rejected,
                stale: e.stale,
                last_share_unix: e.last_share_unix,
                difficulty: e.difficulty,
            })
            .collect()
    }

    /// Ends the client: its connection is closed and it never reconnects.
    pub fn stop(&self) {
        self.shared.update(|state| {
            state.stopped = true;
            state.active = None;
        });
        if let Some(task) = self
            .shared
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

/// One configured pool with what the client learned about it.
#[derive(Debug, Clone)]
struct PoolEntry {
    pool: SimPool,
    enabled: bool,
    alive: bool,
    /// A dead pool is not tried again before this.
    retry_at: Option<Instant>,
    accepted: u64,
    rejected: u64,
    stale: u64,
    last_share_unix: u64,
    difficulty: f64,
}

impl PoolEntry {
    fn new(pool: SimPool) -> PoolEntry {
        PoolEntry {
            pool,
            enabled: true,
            alive: true,
            retry_at: None,
            accepted: 0,
            rejected: 0,
            stale: 0,
            last_share_unix: 0,
            difficulty: 0.0,
        }
    }

    fn due(&self, now: Instant) -> bool {
        self.enabled && self.retry_at.is_none_or(|at| at <= now)
    }
}

struct ClientState {
    pools: Vec<PoolEntry>,
    /// Indices into `pools`, most preferred first.
    priority: Vec<usize>,
    mining: bool,
    hashes_per_second: f64,
    stopped: bool,
    /// The pool mined on now. The control calls set it to `None` to make the task drop its
    /// connection (pool disabled or removed, mining off).
    active: Option<usize>,
    /// Bumped when `pools` is replaced, so a connection opened for an old index is discarded.
    generation: u64,
}

impl ClientState {
    /// The pools worth trying now, best first.
    fn candidates(&self, now: Instant) -> Vec<usize> {
        self.priority
            .iter()
            .copied()
            .filter(|&i| self.pools[i].due(now))
            .collect()
    }

    /// The rank of a pool in the priority list (0 = preferred).
    fn rank(&self, index: usize) -> usize {
        self.priority
            .iter()
            .position(|&i| i == index)
            .unwrap_or(usize::MAX)
    }

    fn mark_dead(&mut self, index: usize, retry_after: Duration) {
        if let Some(entry) = self.pools.get_mut(index) {
            entry.alive = false;
            entry.retry_at = Some(Instant::now() + retry_after);
        }
    }
}

struct ClientShared {
    state: Mutex<ClientState>,
    /// Woken on every control call, so the task reconsiders at once.
    changed: Notify,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl ClientShared {
    fn state(&self) -> MutexGuard<'_, ClientState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut ClientState)) {
        change(&mut self.state());
        self.changed.notify_one();
    }
}
