//! What the test pool counts: every share by outcome, in total and per worker name, and every
//! line it refused. Tests and `poolsim` read these to see which miner really mined where.

use std::collections::BTreeMap;

use minerd::stratum::ShareReject;
use serde::Serialize;

/// Why the pool refused a share, by the Stratum error the miner was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// 21: the job was cleaned by a new block.
    Stale,
    /// 21: no such job was ever sent on this connection.
    UnknownJob,
    /// 22
    Duplicate,
    /// 23: the hash does not meet the share target.
    LowDifficulty,
    /// 24 (and 25, not subscribed): the worker was not authorized on this connection.
    Unauthorized,
    /// 20: wrong extranonce2 size, ntime out of range, version bits outside the mask.
    Other,
}

impl RejectReason {
    pub fn of(reject: &ShareReject) -> RejectReason {
        match reject {
            ShareReject::StaleJob(_) => Self::Stale,
            ShareReject::JobNotFound(_) => Self::UnknownJob,
            ShareReject::Duplicate => Self::Duplicate,
            ShareReject::LowDifficulty { .. } => Self::LowDifficulty,
            ShareReject::Unauthorized(_) | ShareReject::NotSubscribed => Self::Unauthorized,
            ShareReject::Extranonce2Size { .. }
            | ShareReject::NtimeOutOfRange { .. }
            | ShareReject::VersionBitsOutsideMask { .. } => Self::Other,
        }
    }
}

/// Rejected shares by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RejectCounts {
    pub stale: u64,
    pub unknown_job: u64,
    pub duplicate: u64,
    pub low_difficulty: u64,
    pub unauthorized: u64,
    pub other: u64,
}

impl RejectCounts {
    pub fn total(&self) -> u64 {
        self.stale
            + self.unknown_job
            + self.duplicate
            + self.low_difficulty
            + self.unauthorized
            + self.other
    }

    fn count(&mut self, reason: RejectReason) {
        let counter = match reason {
            RejectReason::Stale => &mut self.stale,
            RejectReason::UnknownJob => &mut self.unknown_job,
            RejectReason::Duplicate => &mut self.duplicate,
            RejectReason::LowDifficulty => &mut self.low_difficulty,
            RejectReason::Unauthorized => &mut self.unauthorized,
            RejectReason::Other => &mut self.other,
        };
        *counter += 1;
    }
}

/// Shares of one worker name (or of the whole pool).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ShareCounts {
    pub accepted: u64,
    /// The sum of the share difficulty in force for each accepted share (what pools pay by).
    pub accepted_difficulty: f64,
    /// Accepted shares whose header version carried rolled bits (BIP 310).
    pub accepted_version_rolled: u64,
    pub rejected: RejectCounts,
}

impl ShareCounts {
    fn accept(&mut self, difficulty: f64, version_rolled: bool) {
        self.accepted += 1;
        self.accepted_difficulty += difficulty;
        self.accepted_version_rolled += u64::from(version_rolled);
    }
}

/// A snapshot of everything the pool counted since it started.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PoolStats {
    pub total: ShareCounts,
    pub workers: BTreeMap<String, ShareCounts>,
    /// Connections open now.
    pub connections: u64,
    /// Connections accepted since the start (including those closed at once during an outage).
    pub connections_total: u64,
    /// Lines that were not a request we understand (answered with error 20, connection kept).
    pub malformed_lines: u64,
    /// Requests for a method the pool does not serve (answered with error 20).
    pub unknown_methods: u64,
    /// Lines over the length limit (the connection was closed).
    pub oversized_lines: u64,
    /// Shares that also met the network target.
    pub blocks_found: u64,
    /// The current block height and share difficulty.
    pub height: u32,
    pub difficulty: f64,
}

impl PoolStats {
    pub fn worker(&self, name: &str) -> ShareCounts {
        self.workers.get(name).cloned().unwrap_or_default()
    }

    pub(super) fn authorized(&mut self, worker: &str) {
        self.workers.entry(worker.to_string()).or_default();
    }

    pub(super) fn accepted(&mut self, worker: &str, difficulty: f64, rolled: bool, block: bool) {
        self.total.accept(difficulty, rolled);
        self.workers
            .entry(worker.to_string())
            .or_default()
            .accept(difficulty, rolled);
        self.blocks_found += u64::from(block);
    }

    /// `worker` is `None` for a name that was never authorized on the connection: counted in
    /// the total only, so a hostile client cannot grow the per-worker map.
    pub(super) fn rejected(&mut self, worker: Option<&str>, reason: RejectReason) {
        self.total.rejected.count(reason);
        if let Some(worker) = worker {
            self.workers
                .entry(worker.to_string())
                .or_default()
                .rejected
                .count(reason);
        }
    }
}
