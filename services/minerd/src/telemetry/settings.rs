//! How telemetry polls: `[telemetry]` in minerd's configuration.

use std::time::Duration;

use appliance::config::Invalid;
use serde::Deserialize;

use crate::cgminer::ClientConfig;
use crate::inventory::RetentionPolicy;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// Seconds between the starts of two poll cycles.
    pub interval_secs: u64,
    /// Miners polled at once.
    pub concurrency: usize,
    /// Per miner: connect, request and the whole reply within this many milliseconds.
    pub deadline_ms: u64,
    /// Replies larger than this are refused (counted as oversized).
    pub max_reply_kib: usize,
    /// Hours of 1-minute history kept.
    pub minute_history_hours: u64,
    /// Days of 1-hour history kept.
    pub hour_history_days: u64,
}

impl Default for TelemetrySettings {
    /// A miner on the site LAN answers in milliseconds: 2 s separates slow from hung, and 512
    /// in flight polls 1,000 miners in about two round trips.
    fn default() -> Self {
        TelemetrySettings {
            interval_secs: 10,
            concurrency: 512,
            deadline_ms: 2000,
            max_reply_kib: 256,
            minute_history_hours: 48,
            hour_history_days: 400,
        }
    }
}

impl TelemetrySettings {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            connect_timeout: self.deadline(),
            deadline: self.deadline(),
            max_reply_bytes: self.max_reply_kib.saturating_mul(1024),
        }
    }

    pub fn retention(&self) -> RetentionPolicy {
        RetentionPolicy {
            minute_buckets: Duration::from_secs(self.minute_history_hours.saturating_mul(3600)),
            hour_buckets: Duration::from_secs(self.hour_history_days.saturating_mul(86_400)),
        }
    }

    /// `prefix` is where the table sits in the file, e.g. `telemetry`.
    pub fn validate(&self, prefix: &str) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, field: &str, reason: &str| {
            if !ok {
                problems.push(Invalid::new(format!("{prefix}.{field}"), reason));
            }
        };
        check(
            (1..=3600).contains(&self.interval_secs),
            "interval_secs",
            "must be between 1 s and 3,600 s",
        );
        check(
            (1..=8192).contains(&self.concurrency),
            "concurrency",
            "must be between 1 and 8192 miners in flight",
        );
        check(
            (50..=60_000).contains(&self.deadline_ms),
            "deadline_ms",
            "must be between 50 ms and 60,000 ms",
        );
        check(
            self.deadline_ms < self.interval_secs.saturating_mul(1000),
            "deadline_ms",
            "must be shorter than interval_secs, or a hung miner would overlap the next cycle",
        );
        check(
            (4..=16_384).contains(&self.max_reply_kib),
            "max_reply_kib",
            "must be between 4 KiB and 16 MiB",
        );
        check(
            (1..=24 * 90).contains(&self.minute_history_hours),
            "minute_history_hours",
            "must be between 1 hour and 90 days",
        );
        check(
            (1..=3650).contains(&self.hour_history_days),
            "hour_history_days",
            "must be between 1 and 3,650 days",
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}
