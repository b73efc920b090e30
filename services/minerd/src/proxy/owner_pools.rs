//! One owner's pools: the failover state machine, the upstream connections to the owner's
//! sanctioned pools, and the supervisor task that opens connections, reacts to their end,
//! and moves miners when the active pool changes. Miner sessions ask it for a place on an
//! upstream (`assign`); when their upstream stops being usable they ask again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};

use super::accounting::Accounting;
use super::directory::SanctionedPool;
use super::failover::{PoolFailover, PoolHealth};
use super::settings::ProxySettings;
use super::upstream::{Upstream, UpstreamEnd};

/// How often the supervisor re-evaluates without an event (failback hold, retries).
const SUPERVISOR_TICK: Duration = Duration::from_millis(100);

/// The state of one pool connection, for the operator's view.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamView {
    pub owner: String,
    pub pool_url: String,
    pub pool_index: usize,
    pub upstream_id: u64,
    pub miners: usize,
    pub difficulty: f64,
    pub active: bool,
    pub usable: bool,
    /// Lines from the pool skipped as malformed.
    pub malformed_lines: u64,
}

struct OwnerState {
    failover: PoolFailover,
    upstreams: Vec<Arc<Upstream>>,
    connecting: HashSet<usize>,
    want_connection: bool,
    /// A connection was added since the last decision: waiting miners may find a place.
    new_places: bool,
    /// The proxy is stopping: no new connections.
    stopped: bool,
}

pub struct OwnerPools {
    pub owner: String,
    pools: Vec<SanctionedPool>,
    settings: Arc<ProxySettings>,
    accounting: Arc<Accounting>,
    state: Mutex<OwnerState>,
    /// Wakes miners waiting for a place when upstreams or the active pool change.
    changed: Notify,
    /// Wakes the supervisor when a miner needs a place.
    wanted: Arc<Notify>,
    ended: mpsc::UnboundedSender<(u64, UpstreamEnd)>,
}

impl OwnerPools {
    /// The owner's pools with their supervisor running.
    pub fn start(
        owner: String,
        pools: Vec<SanctionedPool>,
        settings: Arc<ProxySettings>,
        accounting: Arc<Accounting>,
    ) -> Arc<OwnerPools> {
        let failover = PoolFailover::new(
            pools.len(),
            settings.failover.failback_hold(),
            settings.failover.retry(),
        );
        let (ended, ended_rx) = mpsc::unbounded_channel();
        let owner_pools = Arc::new(OwnerPools {
            owner,
            pools,
            settings,
            accounting,
            state: Mutex::new(OwnerState {
                failover,
                upstreams: Vec::new(),
                connecting: HashSet::new(),
                want_connection: false,
                new_places: false,
                stopped: false,
            }),
            changed: Notify::new(),
            wanted: Arc::new(Notify::new()),
            ended,
        });
        tokio::spawn(supervise(Arc::downgrade(&owner_pools), ended_rx));
        owner_pools
    }

    /// A place on an upstream of the active pool: the connection and the miner's prefix.
    /// Waits (until `deadline`) while no pool is up or every connection is full.
    pub async fn assign(&self, deadline: Instant) -> Option<(Arc<Upstream>, Vec<u8>)> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.lock();
                if let Some(active) = state.failover.active() {
                    for upstream in state.upstreams.iter().filter(|u| u.pool_index == active) {
                        if let Some(prefix) = upstream.attach() {
                            return Some((upstream.clone(), prefix));
                        }
                    }
                }
                state.want_connection = true;
            }
            self.wanted.notify_one();
            if tokio::time::timeout_at(deadline.into(), changed)
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    /// Opens no more connections and retires every one (each closes once drained).
    pub fn stop(&self) {
        let mut state = self.lock();
        state.stopped = true;
        for upstream in &state.upstreams {
            upstream.retire();
        }
        drop(state);
        self.wanted.notify_one();
    }

    /// The pool miners are sent to now.
    pub fn active_pool(&self) -> Option<SanctionedPool> {
        let state = self.lock();
        state.failover.active().map(|i| self.pools[i].clone())
    }

    pub fn health(&self) -> Vec<(SanctionedPool, Option<PoolHealth>)> {
        let state = self.lock();
        (0..self.pools.len())
            .map(|i| (self.pools[i].clone(), state.failover.health(i)))
            .collect()
    }

    pub fn upstreams(&self) -> Vec<UpstreamView> {
        let state = self.lock();
        let active = state.failover.active();
        state
            .upstreams
            .iter()
            .map(|u| UpstreamView {
                owner: self.owner.clone(),
                pool_url: u.pool.url.clone(),
                pool_index: u.pool_index,
                upstream_id: u.id,
                miners: u.miners(),
                difficulty: u.difficulty(),
                active: Some(u.pool_index) == active,
                usable: u.is_usable(),
                malformed_lines: u.malformed_lines(),
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OwnerState> {
        self.state.lock().expect("owner pools lock")
    }

    /// One round of decisions: connect where needed, pick the active pool, retire what miners
    /// must leave, and wake miners waiting for a place when there may be one now. Returns
    /// connection attempts to start.
    fn decide(&self, now: Instant) -> Vec<usize> {
        let mut state = self.lock();
        if state.stopped {
            return Vec::new();
        }
        let before = state.failover.active();
        let active = state.failover.select(now);
        if active != before {
            tracing::info!(owner = %self.owner, from = ?before.map(|i| &self.pools[i].url), to = ?active.map(|i| &self.pools[i].url), "pool switch");
        }
        // Only on a change: waking waiting miners for nothing would have them ask again at
        // once, and the supervisor answer again, in a loop for as long as no pool is up.
        if std::mem::take(&mut state.new_places) || active != before {
            self.changed.notify_waiters();
        }
        if let Some(active) = active {
            // Connections to lower-priority pools are left behind; those to higher-priority
            // pools are failback candidates in their hold time and stay.
            for upstream in state.upstreams.iter().filter(|u| u.pool_index > active) {
                upstream.retire();
            }
        }
        let mut attempts = state.failover.pools_to_try(now);
        if let Some(active) = active
            && std::mem::take(&mut state.want_connection)
        {
            let has_room = state
                .upstreams
                .iter()
                .any(|u| u.pool_index == active && u.has_room());
            if !has_room {
                attempts.push(active);
            }
        }
        attempts.retain(|p| !state.connecting.contains(p));
        attempts.sort_unstable();
        attempts.dedup();
        state.connecting.extend(attempts.iter().copied());
        attempts
    }

    fn connected(&self, pool: usize, result: Result<Arc<Upstream>, String>) {
        let mut state = self.lock();
        state.connecting.remove(&pool);
        match result {
            Ok(upstream) if state.stopped => upstream.retire(),
            Ok(upstream) => {
                state.failover.mark_up(pool, Instant::now());
                state.upstreams.push(upstream);
                state.new_places = true;
            }
            Err(reason) => {
                tracing::warn!(owner = %self.owner, pool = %self.pools[pool].url, %reason, "pool connection failed");
                state.failover.mark_down(pool, Instant::now());
            }
        }
    }

    fn ended(&self, upstream_id: u64, end: UpstreamEnd) {
        let mut state = self.lock();
        let Some(at) = state.upstreams.iter().position(|u| u.id == upstream_id) else {
            return;
        };
        let pool = state.upstreams.remove(at).pool_index;
        match end {
            UpstreamEnd::Dead => state.failover.mark_down(pool, Instant::now()),
            UpstreamEnd::Retired => {
                if !state.upstreams.iter().any(|u| u.pool_index == pool) {
                    state.failover.mark_idle(pool);
                }
            }
        }
    }
}

async fn supervise(
    owner: std::sync::Weak<OwnerPools>,
    mut ended: mpsc::UnboundedReceiver<(u64, UpstreamEnd)>,
) {
    let mut tick = tokio::time::interval(SUPERVISOR_TICK);
    loop {
        let Some(pools) = owner.upgrade() else {
            return;
        };
        let finished = {
            let state = pools.lock();
            state.stopped && state.upstreams.is_empty()
        };
        if finished {
            return;
        }
        for pool in pools.decide(Instant::now()) {
            let pools = pools.clone();
            tokio::spawn(async move {
                let s = &pools.settings;
                let result = Upstream::connect(
                    pool,
                    pools.pools[pool].clone(),
                    s.extranonce_prefix_size,
                    s.miners_per_upstream,
                    s.failover.clone(),
                    pools.accounting.clone(),
                    pools.ended.clone(),
                )
                .await
                .map_err(|e| e.to_string());
                pools.connected(pool, result);
                // The supervisor decides (and wakes waiting miners) with the new connection.
                pools.wanted.notify_one();
            });
        }
        // `notify_one` leaves a permit when nobody waits, so a wish made before this point
        // is not lost.
        let wanted = pools.wanted.clone();
        drop(pools);
        tokio::select! {
            Some((id, end)) = ended.recv() => {
                if let Some(pools) = owner.upgrade() {
                    pools.ended(id, end);
                }
            }
            _ = wanted.notified() => {}
            _ = tick.tick() => {}
        }
    }
}
