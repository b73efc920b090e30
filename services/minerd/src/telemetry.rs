//! Telemetry: the poll cycle over the whole inventory. Each miner gets one joined request
//! chosen by its firmware ([`miner_poll`]), under one deadline covering connect and read, with
//! at most `concurrency` miners in flight ([`fan_out`]); so a hung, slow or malformed miner
//! costs one worker for one deadline and never stalls the cycle or the other miners (the
//! pyasic complaints #48 and #65). The latest snapshot and the poll status of every miner stay
//! in memory ([`Telemetry`]); each cycle's samples go to the inventory's downsampled history;
//! [`aggregate`] sums the fleet and each owner.

pub mod aggregate;
pub mod fan_out;
pub mod miner_poll;
mod settings;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::cgminer::{ClientError, MinerSnapshot, ReplyError};
use crate::inventory::{
    HistorySample, Inventory, InventoryError, MinerFilter, MinerId, MinerRecord, MinerState,
    unix_now,
};

pub use aggregate::{Aggregate, FleetAggregates};
pub use miner_poll::{PollResult, PollTarget};
pub use settings::TelemetrySettings;

/// Why a miner gave no usable data (a poll, or a discovery probe that reached a listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PollFailure {
    /// No connection, or no complete reply, within the deadline (hung, or far too slow).
    Timeout,
    /// Connection refused: nothing listens (rebooting, API off).
    Refused,
    /// The network says the address cannot be reached.
    Unreachable,
    /// The connection broke before a reply.
    Closed,
    /// The reply was not a cgminer reply (invalid JSON, truncated, no usable section).
    Malformed,
    /// The reply exceeded the size bound.
    Oversized,
    /// Discovery: something answered but named no known firmware or model.
    Unidentified,
}

impl PollFailure {
    pub const ALL: [PollFailure; 7] = [
        PollFailure::Timeout,
        PollFailure::Refused,
        PollFailure::Unreachable,
        PollFailure::Closed,
        PollFailure::Malformed,
        PollFailure::Oversized,
        PollFailure::Unidentified,
    ];

    /// The metric label and log word.
    pub fn as_str(self) -> &'static str {
        match self {
            PollFailure::Timeout => "timeout",
            PollFailure::Refused => "refused",
            PollFailure::Unreachable => "unreachable",
            PollFailure::Closed => "closed",
            PollFailure::Malformed => "malformed",
            PollFailure::Oversized => "oversized",
            PollFailure::Unidentified => "unidentified",
        }
    }

    pub fn from_client_error(error: &ClientError) -> PollFailure {
        match error {
            ClientError::ConnectTimeout { .. } | ClientError::ReadTimeout { .. } => {
                PollFailure::Timeout
            }
            ClientError::Refused { .. } => PollFailure::Refused,
            ClientError::Connect { .. } => PollFailure::Unreachable,
            ClientError::Write { .. }
            | ClientError::Read { .. }
            | ClientError::ClosedEarly { .. } => PollFailure::Closed,
            ClientError::TooLarge { .. }
            | ClientError::Reply {
                source: ReplyError::TooLarge { .. },
                ..
            } => PollFailure::Oversized,
            ClientError::Reply { .. } => PollFailure::Malformed,
        }
    }
}

/// What minerd knows about one miner's telemetry now.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerStatus {
    pub miner: MinerId,
    pub addr: SocketAddr,
    pub owner: Arc<str>,
    pub state: MinerState,
    /// The latest good snapshot; kept (and growing stale) while polls fail.
    pub snapshot: Option<Arc<MinerSnapshot>>,
    /// The last poll's result.
    pub last_poll: Result<(), PollFailure>,
    pub last_poll_at: SystemTime,
    pub last_ok_at: Option<SystemTime>,
    pub consecutive_failures: u32,
    pub latency: Duration,
}

impl MinerStatus {
    pub fn is_up(&self) -> bool {
        self.last_poll.is_ok()
    }
}

/// What one poll cycle did.
#[derive(Debug, Clone, PartialEq)]
pub struct PollReport {
    pub started_at: SystemTime,
    pub duration: Duration,
    pub polled: usize,
    pub ok: usize,
    pub failures: BTreeMap<PollFailure, usize>,
    /// The cycle's history samples, one per miner polled successfully.
    pub samples: Vec<HistorySample>,
}

/// The telemetry state of the fleet, shared between the poll loop and its readers.
#[derive(Debug)]
pub struct Telemetry {
    settings: TelemetrySettings,
    statuses: RwLock<HashMap<MinerId, MinerStatus>>,
    /// Miners whose firmware refused a joined request: polled one command per connection.
    refuses_joins: Mutex<HashSet<MinerId>>,
}

impl Telemetry {
    pub fn new(settings: TelemetrySettings) -> Telemetry {
        Telemetry {
            settings,
            statuses: RwLock::new(HashMap::new()),
            refuses_joins: Mutex::new(HashSet::new()),
        }
    }

    pub fn settings(&self) -> &TelemetrySettings {
        &self.settings
    }

    /// Polls every miner of `miners` once (bounded, each under its deadline) and updates the
    /// statuses; miners not in the list are forgotten.
    pub async fn poll(&self, miners: &[MinerRecord]) -> PollReport {
        let started_at = SystemTime::now();
        let started = Instant::now();
        let targets: Arc<[PollTarget]> = {
            let no_join = self
                .refuses_joins
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            miners
                .iter()
                .map(|m| PollTarget {
                    miner: m.id,
                    addr: SocketAddr::V4(m.addr),
                    firmware: m.firmware,
                    joins: !no_join.contains(&m.id),
                })
                .collect()
        };
        let client = self.settings.client_config();
        let deadline = self.settings.deadline();
        let results = fan_out::fan_out(
            Arc::clone(&targets),
            self.settings.concurrency,
            move |targets, i| async move {
                miner_poll::poll_miner(&targets[i], &client, deadline).await
            },
        )
        .await;
        let report = self.record(miners, results, started_at);
        PollReport {
            duration: started.elapsed(),
            ..report
        }
    }

    fn record(
        &self,
        miners: &[MinerRecord],
        results: Vec<PollResult>,
        now: SystemTime,
    ) -> PollReport {
        let at = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut report = PollReport {
            started_at: now,
            duration: Duration::ZERO,
            polled: miners.len(),
            ok: 0,
            failures: BTreeMap::new(),
            samples: Vec::with_capacity(miners.len()),
        };
        let mut statuses = self
            .statuses
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut no_join = self
            .refuses_joins
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let previous = std::mem::take(&mut *statuses);
        for (m, result) in miners.iter().zip(results) {
            if result.joins_refused {
                no_join.insert(m.id);
            }
            let before = previous.get(&m.id);
            let owner: Arc<str> = match before {
                Some(b) if *b.owner == *m.owner => Arc::clone(&b.owner),
                _ => m.owner.as_str().into(),
            };
            let mut status = MinerStatus {
                miner: m.id,
                addr: SocketAddr::V4(m.addr),
                owner,
                state: m.state,
                snapshot: before.and_then(|b| b.snapshot.clone()),
                last_poll: Ok(()),
                last_poll_at: now,
                last_ok_at: before.and_then(|b| b.last_ok_at),
                consecutive_failures: 0,
                latency: result.latency,
            };
            match result.outcome {
                Ok(snapshot) => {
                    report.ok += 1;
                    report.samples.push(sample(m.id, at, &snapshot));
                    status.snapshot = Some(Arc::new(snapshot));
                    status.last_ok_at = Some(now);
                }
                Err(failure) => {
                    *report.failures.entry(failure).or_default() += 1;
                    status.last_poll = Err(failure);
                    status.consecutive_failures = before
                        .map_or(0, |b| b.consecutive_failures)
                        .saturating_add(1);
                }
            }
            statuses.insert(m.id, status);
        }
        report
    }

    pub fn status(&self, miner: MinerId) -> Option<MinerStatus> {
        self.read().get(&miner).cloned()
    }

    /// Every miner's status, in id order.
    pub fn statuses(&self) -> Vec<MinerStatus> {
        let mut all: Vec<MinerStatus> = self.read().values().cloned().collect();
        all.sort_by_key(|s| s.miner);
        all
    }

    pub fn aggregates(&self) -> FleetAggregates {
        FleetAggregates::from_statuses(self.read().values())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<MinerId, MinerStatus>> {
        self.statuses.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The poll loop: every `interval`, poll every miner the inventory does not count as
    /// missing, write the history, prune it once an hour, and hand each report to
    /// `on_cycle` (metrics, hijack checks). Runs until the task is dropped or aborted; an
    /// inventory failure is logged and the loop goes on (telemetry in memory stays useful).
    pub async fn run(
        self: Arc<Self>,
        inventory: Arc<Inventory>,
        mut on_cycle: impl FnMut(&PollReport, &Telemetry) + Send,
    ) {
        let mut ticks = tokio::time::interval(self.settings.interval());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_prune: Option<Instant> = None;
        loop {
            ticks.tick().await;
            let prune = last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600));
            match self.cycle(&inventory, prune).await {
                Ok(report) => {
                    if prune {
                        last_prune = Some(Instant::now());
                    }
                    on_cycle(&report, &self);
                }
                Err(e) => tracing::warn!(error = %e, "telemetry cycle could not use the inventory"),
            }
        }
    }

    /// One cycle of [`Telemetry::run`].
    pub async fn cycle(
        &self,
        inventory: &Arc<Inventory>,
        prune: bool,
    ) -> Result<PollReport, InventoryError> {
        let filter = MinerFilter {
            states: Some(vec![
                MinerState::Active,
                MinerState::Quarantined,
                MinerState::Sleeping,
            ]),
            ..MinerFilter::default()
        };
        let inv = Arc::clone(inventory);
        let miners = blocking(move || inv.list(&filter)).await?;
        let report = self.poll(&miners).await;
        let inv = Arc::clone(inventory);
        let samples = report.samples.clone();
        let retention = self.settings.retention();
        blocking(move || {
            inv.record_samples(&samples)?;
            if prune {
                inv.prune(&retention, unix_now())?;
            }
            Ok(())
        })
        .await?;
        tracing::debug!(
            polled = report.polled,
            ok = report.ok,
            took_ms = report.duration.as_millis() as u64,
            "poll cycle done"
        );
        Ok(report)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, InventoryError> + Send + 'static,
) -> Result<T, InventoryError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn sample(miner: MinerId, at: i64, snapshot: &MinerSnapshot) -> HistorySample {
    HistorySample {
        miner,
        at,
        hashrate_ths: aggregate::hashrate_ths(snapshot),
        power_w: snapshot.power_watts,
        chip_temp_max_c: aggregate::hottest_chip(snapshot),
    }
}

#[cfg(test)]
#[path = "telemetry_tests.rs"]
mod tests;
