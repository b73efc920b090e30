//! The client's task: pick a pool, mine on it, and decide what to do when something changes.
//! Failover follows cgminer's failover-only strategy: the first enabled pool in priority order
//! that works is mined on; a pool that refuses, closes or stays silent is marked dead and
//! retried after `RETRY_INTERVAL`; while on a lower-priority pool, higher ones are probed every
//! `RETRY_INTERVAL` and the miner switches back as soon as one completes a handshake.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use minerd::stratum::StratumErrorCode;
use serde_json::Value;
use tokio::task::JoinHandle;

use super::link::{LinkError, PoolConnection, PoolEvent};
use super::share_search::Work;
use super::{ClientShared, SimPool};

/// How often the miner hashes (each time, the hashes its rate allows since the last round).
const HASH_TICK: Duration = Duration::from_millis(100);
/// A dead pool is retried, and higher-priority pools are probed, this often.
const RETRY_INTERVAL: Duration = Duration::from_secs(3);
/// A pool that says nothing for this long after a share was submitted is dead.
const SILENCE_AFTER_SUBMIT: Duration = Duration::from_secs(4);
/// A pool that says nothing at all for this long is dead (no job in two minutes).
const SILENCE: Duration = Duration::from_secs(120);
/// Hashes done between two yields to the runtime (a few milliseconds of work).
const HASH_CHUNK: u64 = 2_048;
/// At most this much hashing is caught up after a stall.
const MAX_CATCH_UP: Duration = Duration::from_secs(1);

/// The connection mined on and the work in progress.
struct ActiveLink {
    index: usize,
    pool: SimPool,
    generation: u64,
    conn: PoolConnection,
    work: Option<Work>,
    /// Submitted shares not yet answered, by request id, with when they were sent.
    pending: HashMap<u64, Instant>,
    last_heard: Instant,
    last_hash: Instant,
    carry: f64,
}

/// A handshake with a preferred pool, run beside the mining.
struct Probe {
    index: usize,
    generation: u64,
    task: JoinHandle<Result<PoolConnection, LinkError>>,
}

impl Drop for Probe {
    // A probe outliving the mining it was started for would hold a connection for nothing.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why mining on the active link stopped.
enum Interrupt {
    /// The pool failed: mark it dead and fail over.
    Failed(LinkError),
    /// The pool asked for a reconnect after a wait.
    Reconnect(Duration),
    /// A control call changed something: look again.
    Changed,
    /// A higher-priority pool answered a probe: switch to it.
    Better(usize, u64, PoolConnection),
}

pub(super) async fn run(shared: Arc<ClientShared>, bind_ip: Ipv4Addr, version_rolling: bool) {
    let mut active: Option<ActiveLink> = None;
    loop {
        let (stopped, mining, wanted, generation) = {
            let state = shared.state();
            if let Some(link) = active.as_mut() {
                link.follow_new_pool_list(&state);
            }
            (state.stopped, state.mining, state.active, state.generation)
        };
        if stopped {
            return;
        }
        // A control call cleared `active` (mining off, pool disabled or removed): let go.
        if let Some(link) = &active
            && (wanted != Some(link.index) || link.generation != generation)
        {
            tracing::debug!(pool = link.index, "leaving the pool");
            active = None;
        }
        if !mining {
            shared.changed.notified().await;
            continue;
        }
        let Some(link) = active.as_mut() else {
            active = connect_best(&shared, bind_ip, version_rolling).await;
            if active.is_none() {
                wait_for_retry(&shared).await;
            }
            continue;
        };
        match mine(&shared, link, bind_ip, version_rolling).await {
            Interrupt::Changed => {}
            Interrupt::Failed(error) => {
                tracing::info!(pool = link.index, %error, "pool failed, failing over");
                let mut state = shared.state();
                if state.generation == link.generation {
                    state.mark_dead(link.index, RETRY_INTERVAL);
                    state.active = None;
                }
                drop(state);
                active = None;
            }
            Interrupt::Reconnect(wait) => {
                tracing::info!(pool = link.index, ?wait, "pool asked for a reconnect");
                active = None;
                shared.state().active = None;
                tokio::time::sleep(wait).await;
            }
            Interrupt::Better(index, generation, conn) => {
                tracing::info!(
                    from = link.index,
                    to = index,
                    "switching back to a preferred pool"
                );
                active = Some(activate(&shared, index, generation, conn));
            }
        }
    }
}

/// Tries the candidate pools in priority order; the first that completes a handshake is
/// mined on, every one that fails is marked dead.
async fn connect_best(
    shared: &ClientShared,
    bind_ip: Ipv4Addr,
    version_rolling: bool,
) -> Option<ActiveLink> {
    let (candidates, generation) = {
        let state = shared.state();
        let pools: Vec<(usize, SimPool)> = state
            .candidates(Instant::now())
            .into_iter()
            .map(|i| (i, state.pools[i].pool.clone()))
            .collect();
        (pools, state.generation)
    };
    for (index, pool) in candidates {
        let opened = PoolConnection::open(bind_ip, &pool, version_rolling).await;
        let state = shared.state();
        if state.generation != generation || state.stopped || !state.mining {
            return None; // the list changed meanwhile: decide again
        }
        drop(state);
        match opened {
            Ok(conn) => return Some(activate(shared, index, generation, conn)),
            Err(error) => {
                tracing::info!(url = %pool.url, %error, "pool unavailable");
                shared.state().mark_dead(index, RETRY_INTERVAL);
            }
        }
    }
    None
}

fn activate(
    shared: &ClientShared,
    index: usize,
    generation: u64,
    conn: PoolConnection,
) -> ActiveLink {
    let mut state = shared.state();
    state.active = Some(index);
    let entry = &mut state.pools[index];
    let pool = entry.pool.clone();
    entry.alive = true;
    entry.retry_at = None;
    entry.difficulty = conn.difficulty;
    drop(state);
    tracing::info!(pool = index, "mining");
    let now = Instant::now();
    let mut link = ActiveLink {
        index,
        pool,
        generation,
        conn,
        work: None,
        pending: HashMap::new(),
        last_heard: now,
        last_hash: now,
        carry: 0.0,
    };
    link.rebuild_work();
    link
}

/// Sleeps until the soonest dead pool may be retried, or a control call.
async fn wait_for_retry(shared: &ClientShared) {
    let soonest = {
        let state = shared.state();
        state
            .pools
            .iter()
            .filter(|e| e.enabled)
            .filter_map(|e| e.retry_at)
            .min()
    };
    let wait = soonest
        .map(|at| at.saturating_duration_since(Instant::now()))
        .unwrap_or(RETRY_INTERVAL)
        .max(Duration::from_millis(50));
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = shared.changed.notified() => {}
    }
}

/// Mines on the active link until something needs a decision.
async fn mine(
    shared: &ClientShared,
    link: &mut ActiveLink,
    bind_ip: Ipv4Addr,
    version_rolling: bool,
) -> Interrupt {
    let mut hash_tick = tokio::time::interval(HASH_TICK);
    hash_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Probe at once (e.g. after `switch_to`), then every RETRY_INTERVAL.
    let mut probe_tick = tokio::time::interval(RETRY_INTERVAL);
    let mut probe: Option<Probe> = None;
    loop {
        tokio::select! {
            event = link.conn.next_event() => {
                match event {
                    Ok(event) => {
                        if let Some(interrupt) = link.on_event(shared, event) {
                            return interrupt;
                        }
                    }
                    Err(error) => return Interrupt::Failed(error),
                }
            }
            _ = hash_tick.tick() => {
                if let Err(error) = link.hash_and_submit(shared).await {
                    return Interrupt::Failed(error);
                }
                // Hashing can take most of a tick on a loaded machine: take in everything the
                // pool sent meanwhile before judging it silent.
                if let Some(interrupt) = link.drain(shared).await {
                    return interrupt;
                }
                if let Some(error) = link.silence() {
                    return Interrupt::Failed(error);
                }
            }
            _ = probe_tick.tick(), if probe.is_none() => {
                probe = start_probe(shared, link, bind_ip, version_rolling);
            }
            result = async { (&mut probe.as_mut().expect("guarded").task).await }, if probe.is_some() => {
                let Probe { index, generation, .. } = probe.take().expect("guarded");
                match result {
                    Ok(Ok(conn)) if shared.state().generation == generation => {
                        return Interrupt::Better(index, generation, conn);
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => {
                        tracing::debug!(pool = index, %error, "preferred pool still unavailable");
                        let mut state = shared.state();
                        if state.generation == generation {
                            state.mark_dead(index, RETRY_INTERVAL);
                        }
                    }
                    Err(_) => {} // the probe task was cancelled
                }
            }
            _ = shared.changed.notified() => {
                return Interrupt::Changed;
            }
        }
    }
}

/// Opens a connection to the best pool ranked above the active one, if one is due a retry.
fn start_probe(
    shared: &ClientShared,
    link: &ActiveLink,
    bind_ip: Ipv4Addr,
    version_rolling: bool,
) -> Option<Probe> {
    let state = shared.state();
    let active_rank = state.rank(link.index);
    let index = state
        .candidates(Instant::now())
        .into_iter()
        .find(|&i| state.rank(i) < active_rank)?;
    let pool = state.pools[index].pool.clone();
    let generation = state.generation;
    drop(state);
    let task =
        tokio::spawn(async move { PoolConnection::open(bind_ip, &pool, version_rolling).await });
    Some(Probe {
        index,
        generation,
        task,
    })
}

impl ActiveLink {
    /// After `set_pools`, the pool mined on may sit at another index: keep mining on it.
    fn follow_new_pool_list(&mut self, state: &super::ClientState) {
        if self.generation == state.generation {
            return;
        }
        if let Some(index) = state.active
            && state.pools[index].pool == self.pool
        {
            self.index = index;
            self.generation = state.generation;
        }
    }

    fn on_event(&mut self, shared: &ClientShared, event: PoolEvent) -> Option<Interrupt> {
        self.last_heard = Instant::now();
        match event {
            PoolEvent::NewWork => {
                self.rebuild_work();
                self.update_entry(shared, |entry, conn| entry.difficulty = conn.difficulty);
                None
            }
            PoolEvent::Reply { id, outcome } => {
                if self.pending.remove(&id).is_some() {
                    self.count_reply(shared, outcome);
                }
                None
            }
            PoolEvent::Reconnect { wait } => Some(Interrupt::Reconnect(wait)),
            PoolEvent::Other => None,
        }
    }

    /// Handles every event the pool already sent, without waiting for more.
    async fn drain(&mut self, shared: &ClientShared) -> Option<Interrupt> {
        loop {
            // A zero timeout polls `next_event` once (it is cancel-safe): ready events only.
            match tokio::time::timeout(Duration::ZERO, self.conn.next_event()).await {
                Err(_) => return None,
                Ok(Err(error)) => return Some(Interrupt::Failed(error)),
                Ok(Ok(event)) => {
                    if let Some(interrupt) = self.on_event(shared, event) {
                        return Some(interrupt);
                    }
                }
            }
        }
    }

    fn count_reply(
        &self,
        shared: &ClientShared,
        outcome: Result<Value, minerd::stratum::StratumError>,
    ) {
        self.update_entry(shared, |entry, _| match outcome {
            Ok(Value::Bool(true)) => {
                entry.accepted += 1;
                entry.last_share_unix = unix_now();
            }
            Err(e) if e.code == StratumErrorCode::JobNotFound => entry.stale += 1,
            _ => entry.rejected += 1,
        });
    }

    fn update_entry(
        &self,
        shared: &ClientShared,
        change: impl FnOnce(&mut super::PoolEntry, &PoolConnection),
    ) {
        let mut state = shared.state();
        if state.generation == self.generation
            && let Some(entry) = state.pools.get_mut(self.index)
        {
            change(entry, &self.conn);
        }
    }

    fn rebuild_work(&mut self) {
        let conn = &self.conn;
        self.work = conn.job.clone().and_then(|job| {
            Work::new(
                job,
                conn.extranonce1.clone(),
                conn.extranonce2_size,
                conn.difficulty,
                conn.version_mask,
            )
        });
    }

    /// Spends the hashes the rate allows since the last round and submits what they found.
    async fn hash_and_submit(&mut self, shared: &ClientShared) -> Result<(), LinkError> {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last_hash).min(MAX_CATCH_UP);
        self.last_hash = now;
        let rate = shared.state().hashes_per_second;
        let budget = rate * elapsed.as_secs_f64() + self.carry;
        let count = budget.floor();
        self.carry = budget - count;
        let mut left = count as u64;
        while left > 0 {
            let Some(work) = self.work.as_mut() else {
                return Ok(());
            };
            let chunk = left.min(HASH_CHUNK);
            left -= chunk;
            for share in work.search(&self.conn.user, chunk) {
                let id = self.conn.submit(share).await?;
                self.pending.insert(id, Instant::now());
            }
            // Hashing is CPU work on the runtime's threads: let the other miners and the
            // API listeners run between chunks.
            tokio::task::yield_now().await;
        }
        Ok(())
    }

    /// A pool that has said nothing since a share was submitted a while ago is silent.
    fn silence(&self) -> Option<LinkError> {
        let now = Instant::now();
        let oldest = self.pending.values().min();
        if let Some(&sent) = oldest
            && self.last_heard < sent
            && now.duration_since(sent) > SILENCE_AFTER_SUBMIT
        {
            return Some(LinkError::Timeout("no answer to a submitted share"));
        }
        if now.duration_since(self.last_heard) > SILENCE {
            return Some(LinkError::Timeout("no job"));
        }
        None
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
