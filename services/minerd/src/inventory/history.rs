//! Telemetry history, downsampled as it is written: every sample lands in its 1-minute bucket
//! and its 1-hour bucket (sums and maxima, so a bucket is updated in place, never re-read), and
//! [`Inventory::prune`] drops buckets past their retention. 1,000 miners polled every 10 s
//! keep 1,000 rows per minute and 1,000 per hour, whatever the poll rate.

use std::time::Duration;

use rusqlite::params;

use super::miners::MinerId;
use super::{Inventory, InventoryError};

/// One successful poll of one miner, as history keeps it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistorySample {
    pub miner: MinerId,
    /// Unix seconds.
    pub at: i64,
    pub hashrate_ths: f64,
    pub power_w: Option<f64>,
    pub chip_temp_max_c: Option<f64>,
}

/// A bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Minute,
    Hour,
}

impl Resolution {
    fn table(self) -> &'static str {
        match self {
            Resolution::Minute => "history_minute",
            Resolution::Hour => "history_hour",
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            Resolution::Minute => 60,
            Resolution::Hour => 3600,
        }
    }
}

/// One bucket of history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryPoint {
    /// Unix seconds at the start of the bucket.
    pub bucket_start: i64,
    pub samples: u32,
    pub avg_hashrate_ths: f64,
    pub max_hashrate_ths: f64,
    /// Over the samples that reported power.
    pub avg_power_w: Option<f64>,
    pub max_chip_temp_c: Option<f64>,
}

/// How long each resolution is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub minute_buckets: Duration,
    pub hour_buckets: Duration,
}

fn upsert_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} (miner_id, bucket, samples, hashrate_sum, hashrate_max, power_sum,
            power_samples, chip_temp_max)
         VALUES (?1, ?2, 1, ?3, ?3, ?4, ?5, ?6)
         ON CONFLICT (miner_id, bucket) DO UPDATE SET
            samples = samples + 1,
            hashrate_sum = hashrate_sum + excluded.hashrate_sum,
            hashrate_max = max(hashrate_max, excluded.hashrate_max),
            power_sum = power_sum + excluded.power_sum,
            power_samples = power_samples + excluded.power_samples,
            chip_temp_max = max(COALESCE(chip_temp_max, excluded.chip_temp_max),
                                COALESCE(excluded.chip_temp_max, chip_temp_max))"
    )
}

impl Inventory {
    /// Adds one poll cycle's samples to history, in one transaction. Samples of miners the
    /// inventory no longer has are skipped (the miner was removed while the poll ran).
    pub fn record_samples(&self, samples: &[HistorySample]) -> Result<(), InventoryError> {
        let mut db = self.connection();
        let tx = db.transaction().map_err(self.sqlite("begin history"))?;
        for resolution in [Resolution::Minute, Resolution::Hour] {
            let mut upsert = tx
                .prepare_cached(&upsert_sql(resolution.table()))
                .map_err(self.sqlite("prepare history"))?;
            for s in samples {
                let bucket = s.at - s.at.rem_euclid(resolution.seconds());
                let result = upsert.execute(params![
                    s.miner.0,
                    bucket,
                    s.hashrate_ths,
                    s.power_w.unwrap_or(0.0),
                    s.power_w.is_some() as i64,
                    s.chip_temp_max_c
                ]);
                match result {
                    Ok(_) => {}
                    Err(e) if is_foreign_key_violation(&e) => {}
                    Err(e) => return Err(self.sqlite("write history")(e)),
                }
            }
        }
        tx.commit().map_err(self.sqlite("commit history"))
    }

    /// The buckets of `miner` starting in `[from, to)` (Unix seconds), oldest first.
    pub fn history(
        &self,
        miner: MinerId,
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<HistoryPoint>, InventoryError> {
        let db = self.connection();
        let sql = format!(
            "SELECT bucket, samples, hashrate_sum, hashrate_max, power_sum, power_samples,
                chip_temp_max FROM {} WHERE miner_id = ?1 AND bucket >= ?2 AND bucket < ?3
             ORDER BY bucket",
            resolution.table()
        );
        let mut statement = db
            .prepare_cached(&sql)
            .map_err(self.sqlite("read history"))?;
        let rows = statement
            .query_map(params![miner.0, from, to], |row| {
                let samples: i64 = row.get(1)?;
                let hashrate_sum: f64 = row.get(2)?;
                let power_sum: f64 = row.get(4)?;
                let power_samples: i64 = row.get(5)?;
                let divisor = samples.max(1) as f64;
                Ok(HistoryPoint {
                    bucket_start: row.get(0)?,
                    samples: samples.clamp(0, u32::MAX as i64) as u32,
                    avg_hashrate_ths: hashrate_sum / divisor,
                    max_hashrate_ths: row.get(3)?,
                    avg_power_w: (power_samples > 0).then(|| power_sum / power_samples as f64),
                    max_chip_temp_c: row.get(6)?,
                })
            })
            .map_err(self.sqlite("read history"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.sqlite("read history"))
    }

    /// Drops buckets older than the policy keeps them; returns how many went.
    pub fn prune(&self, policy: &RetentionPolicy, now: i64) -> Result<usize, InventoryError> {
        let mut db = self.connection();
        let tx = db.transaction().map_err(self.sqlite("begin pruning"))?;
        let mut removed = 0;
        for (resolution, keep) in [
            (Resolution::Minute, policy.minute_buckets),
            (Resolution::Hour, policy.hour_buckets),
        ] {
            let cutoff = now.saturating_sub(keep.as_secs().min(i64::MAX as u64) as i64);
            removed += tx
                .execute(
                    &format!("DELETE FROM {} WHERE bucket < ?1", resolution.table()),
                    [cutoff],
                )
                .map_err(self.sqlite("prune history"))?;
        }
        tx.commit().map_err(self.sqlite("commit pruning"))?;
        Ok(removed)
    }
}

fn is_foreign_key_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
}
