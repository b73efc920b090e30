//! Share accounting: accepted, stale and rejected shares (by reason) and their difficulty per
//! miner and per owner, and what the pools answered for the shares forwarded to them. Counts
//! live in SQLite (one row per miner, owner and outcome) so they survive a kill -9.
//!
//! Group commit: rows go to one writer thread, which collects them for a few milliseconds,
//! writes the batch in one transaction (WAL, `synchronous=FULL`, so the commit is on disk when
//! it returns) and only then releases the waiters. A miner is told "accepted" after that, so
//! no acknowledged share is missing from the accounting after a crash, while thousands of
//! shares a second cost one fsync per batch rather than one each.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

/// Rows per transaction at most, so one batch's commit stays short under a flood.
const MAX_BATCH: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum AccountingError {
    #[error("accounting database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("accounting writer thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// What became of one share.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Valid against the miner's target; acknowledged to the miner.
    Accepted,
    /// Submitted to a job that a newer block made stale.
    Stale,
    /// Refused by the proxy's validation, by reason (`duplicate`, `low_difficulty`, …).
    Rejected(&'static str),
    /// Forwarded and accepted by the pool.
    UpstreamAccepted,
    /// Forwarded and refused by the pool, by reason.
    UpstreamRejected(&'static str),
    /// Forwarded, and the upstream died before it answered.
    UpstreamUnanswered,
}

impl Outcome {
    fn key(&self) -> String {
        match self {
            Outcome::Accepted => "accepted".into(),
            Outcome::Stale => "stale".into(),
            Outcome::Rejected(r) => format!("rejected:{r}"),
            Outcome::UpstreamAccepted => "upstream_accepted".into(),
            Outcome::UpstreamRejected(r) => format!("upstream_rejected:{r}"),
            Outcome::UpstreamUnanswered => "upstream_unanswered".into(),
        }
    }
}

/// One share's accounting row.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareRecord {
    pub miner_id: String,
    pub owner: String,
    pub outcome: Outcome,
    /// The share difficulty it counts for.
    pub difficulty: f64,
}

/// Counts for a miner, an owner, or everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShareCounts {
    pub accepted: u64,
    pub accepted_difficulty: f64,
    pub stale: u64,
    pub rejected: BTreeMap<String, u64>,
    pub upstream_accepted: u64,
    pub upstream_accepted_difficulty: f64,
    pub upstream_rejected: BTreeMap<String, u64>,
    pub upstream_unanswered: u64,
}

impl ShareCounts {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub fn upstream_rejected_total(&self) -> u64 {
        self.upstream_rejected.values().sum()
    }

    fn add(&mut self, outcome_key: &str, shares: u64, difficulty: f64) {
        match outcome_key {
            "accepted" => {
                self.accepted += shares;
                self.accepted_difficulty += difficulty;
            }
            "stale" => self.stale += shares,
            "upstream_accepted" => {
                self.upstream_accepted += shares;
                self.upstream_accepted_difficulty += difficulty;
            }
            "upstream_unanswered" => self.upstream_unanswered += shares,
            other => {
                if let Some(reason) = other.strip_prefix("rejected:") {
                    *self.rejected.entry(reason.to_string()).or_default() += shares;
                } else if let Some(reason) = other.strip_prefix("upstream_rejected:") {
                    *self
                        .upstream_rejected
                        .entry(reason.to_string())
                        .or_default() += shares;
                }
            }
        }
    }

    /// Adds another set of counts to these.
    pub fn merge(&mut self, other: &ShareCounts) {
        self.accepted += other.accepted;
        self.accepted_difficulty += other.accepted_difficulty;
        self.stale += other.stale;
        self.upstream_accepted += other.upstream_accepted;
        self.upstream_accepted_difficulty += other.upstream_accepted_difficulty;
        self.upstream_unanswered += other.upstream_unanswered;
        for (k, v) in &other.rejected {
            *self.rejected.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.upstream_rejected {
            *self.upstream_rejected.entry(k.clone()).or_default() += v;
        }
    }
}

type Totals = HashMap<(String, String), ShareCounts>;

enum Entry {
    Record(ShareRecord, Option<oneshot::Sender<bool>>),
    Flush(oneshot::Sender<bool>),
}

/// The accounting store and its writer thread. Cheap to share behind an `Arc`.
pub struct Accounting {
    sender: Mutex<Option<mpsc::Sender<Entry>>>,
    totals: Arc<Mutex<Totals>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Accounting {
    /// Opens a database file (created if missing) for accounting.
    pub fn open_path(path: &Path, batch_window: Duration) -> Result<Accounting, AccountingError> {
        Accounting::open(Connection::open(path)?, batch_window)
    }

    /// Takes over `conn`: switches it to WAL with `synchronous=FULL`, creates the table if it
    /// is not there, loads the counts, and starts the writer.
    pub fn open(conn: Connection, batch_window: Duration) -> Result<Accounting, AccountingError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS proxy_share_accounting (
                miner_id TEXT NOT NULL,
                owner TEXT NOT NULL,
                outcome TEXT NOT NULL,
                shares INTEGER NOT NULL,
                difficulty REAL NOT NULL,
                PRIMARY KEY (miner_id, owner, outcome)
            )",
        )?;
        let totals = Arc::new(Mutex::new(load(&conn)?));
        let (sender, receiver) = mpsc::channel();
        let writer_totals = totals.clone();
        let writer = std::thread::Builder::new()
            .name("proxy-accounting".into())
            .spawn(move || write_batches(conn, receiver, batch_window, writer_totals))?;
        Ok(Accounting {
            sender: Mutex::new(Some(sender)),
            totals,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Records a share and returns once its row is committed: `true` then, `false` if the
    /// database refused the batch (the share must not be acknowledged).
    pub async fn record(&self, record: ShareRecord) -> bool {
        let (done, committed) = oneshot::channel();
        if !self.send(Entry::Record(record, Some(done))) {
            return false;
        }
        committed.await.unwrap_or(false)
    }

    /// Records a share nobody waits for (a pool's answer to a forwarded share).
    pub fn record_detached(&self, record: ShareRecord) {
        self.send(Entry::Record(record, None));
    }

    /// Waits until everything recorded before this call is committed.
    pub async fn flush(&self) -> bool {
        let (done, committed) = oneshot::channel();
        if !self.send(Entry::Flush(done)) {
            return false;
        }
        committed.await.unwrap_or(false)
    }

    fn send(&self, entry: Entry) -> bool {
        let sender = self.sender.lock().expect("accounting sender lock");
        sender.as_ref().is_some_and(|s| s.send(entry).is_ok())
    }

    /// Committed counts of one miner (under the owner it was counted for).
    pub fn miner(&self, miner_id: &str) -> ShareCounts {
        self.sum(|(m, _)| m == miner_id)
    }

    /// Committed counts of all of one owner's miners.
    pub fn owner(&self, owner: &str) -> ShareCounts {
        self.sum(|(_, o)| o == owner)
    }

    /// Committed counts of every miner.
    pub fn total(&self) -> ShareCounts {
        self.sum(|_| true)
    }

    /// Committed counts per (miner id, owner).
    pub fn per_miner(&self) -> Vec<((String, String), ShareCounts)> {
        let totals = self.totals.lock().expect("accounting totals lock");
        totals.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn sum(&self, keep: impl Fn(&(String, String)) -> bool) -> ShareCounts {
        let totals = self.totals.lock().expect("accounting totals lock");
        let mut sum = ShareCounts::default();
        for (_, counts) in totals.iter().filter(|(k, _)| keep(k)) {
            sum.merge(counts);
        }
        sum
    }
}

impl Drop for Accounting {
    /// Ends the writer after it commits what it holds, so a reopened store sees every row.
    fn drop(&mut self) {
        self.sender.lock().map(|mut s| s.take()).ok();
        if let Ok(mut writer) = self.writer.lock()
            && let Some(writer) = writer.take()
        {
            writer.join().ok();
        }
    }
}

fn load(conn: &Connection) -> rusqlite::Result<Totals> {
    let mut totals = Totals::new();
    let mut statement = conn.prepare(
        "SELECT miner_id, owner, outcome, shares, difficulty FROM proxy_share_accounting",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, f64>(4)?,
        ))
    })?;
    for row in rows {
        let (miner, owner, outcome, shares, difficulty) = row?;
        totals
            .entry((miner, owner))
            .or_default()
            .add(&outcome, shares.max(0) as u64, difficulty);
    }
    Ok(totals)
}

/// Per (miner, owner, outcome key): shares and difficulty added by one batch.
type Deltas = HashMap<(String, String, String), (u64, f64)>;

fn write_batches(
    mut conn: Connection,
    receiver: mpsc::Receiver<Entry>,
    window: Duration,
    totals: Arc<Mutex<Totals>>,
) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + window;
        while batch.len() < MAX_BATCH {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            match receiver.recv_timeout(left) {
                Ok(entry) => batch.push(entry),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let mut deltas = Deltas::new();
        for entry in &batch {
            if let Entry::Record(r, _) = entry {
                let d = deltas
                    .entry((r.miner_id.clone(), r.owner.clone(), r.outcome.key()))
                    .or_default();
                d.0 += 1;
                d.1 += r.difficulty;
            }
        }
        let committed = match commit(&mut conn, &deltas) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, rows = deltas.len(), "accounting batch not committed; its shares are not acknowledged");
                false
            }
        };
        if committed {
            let mut totals = totals.lock().expect("accounting totals lock");
            for ((miner, owner, outcome), (shares, difficulty)) in deltas {
                totals
                    .entry((miner, owner))
                    .or_default()
                    .add(&outcome, shares, difficulty);
            }
        }
        for entry in batch {
            match entry {
                Entry::Record(_, Some(done)) | Entry::Flush(done) => {
                    done.send(committed).ok();
                }
                Entry::Record(_, None) => {}
            }
        }
    }
}

fn commit(conn: &mut Connection, deltas: &Deltas) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO proxy_share_accounting (miner_id, owner, outcome, shares, difficulty)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (miner_id, owner, outcome) DO UPDATE SET
                shares = shares + excluded.shares,
                difficulty = difficulty + excluded.difficulty",
        )?;
        for ((miner, owner, outcome), (shares, difficulty)) in deltas {
            upsert.execute(params![miner, owner, outcome, *shares as i64, difficulty])?;
        }
    }
    tx.commit()
}

#[cfg(test)]
#[path = "accounting_tests.rs"]
mod tests;
