//! How discovery scans: `[discovery]` in minerd's configuration.

use std::time::Duration;

use appliance::config::Invalid;
use serde::Deserialize;

use crate::cgminer::{ClientConfig, MAX_REPLY_BYTES};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoverySettings {
    /// Addresses probed at once.
    pub concurrency: usize,
    /// Per address: connect and reply within this many milliseconds, or the address counts as
    /// empty (no connection) or unidentified (connected, no usable reply).
    pub deadline_ms: u64,
    /// A known miner not found this many scans in a row becomes `missing`.
    pub missing_after_scans: u32,
    /// Seconds between scans.
    pub interval_secs: u64,
}

impl Default for DiscoverySettings {
    /// 256 in flight and 1.5 s per address scan a /22 of holes in a few seconds; a miner on
    /// the site LAN answers `version` in milliseconds.
    fn default() -> Self {
        DiscoverySettings {
            concurrency: 256,
            deadline_ms: 1500,
            missing_after_scans: 3,
            interval_secs: 300,
        }
    }
}

impl DiscoverySettings {
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    /// The cgminer client bounds a probe runs under.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            connect_timeout: self.deadline(),
            deadline: self.deadline(),
            max_reply_bytes: MAX_REPLY_BYTES,
        }
    }

    /// `prefix` is where the table sits in the file, e.g. `discovery`.
    pub fn validate(&self, prefix: &str) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        if !(1..=4096).contains(&self.concurrency) {
            problems.push(Invalid::new(
                format!("{prefix}.concurrency"),
                "must be between 1 and 4096 addresses in flight",
            ));
        }
        if !(50..=30_000).contains(&self.deadline_ms) {
            problems.push(Invalid::new(
                format!("{prefix}.deadline_ms"),
                "must be between 50 ms and 30,000 ms",
            ));
        }
        if !(1..=1000).contains(&self.missing_after_scans) {
            problems.push(Invalid::new(
                format!("{prefix}.missing_after_scans"),
                "must be between 1 and 1000 scans",
            ));
        }
        let scan_bound_ms = self.deadline_ms.saturating_mul(3);
        if !(10..=86_400).contains(&self.interval_secs) {
            problems.push(Invalid::new(
                format!("{prefix}.interval_secs"),
                "must be between 10 s and 86,400 s (a day)",
            ));
        } else if self.interval_secs.saturating_mul(1000) < scan_bound_ms {
            problems.push(Invalid::new(
                format!("{prefix}.interval_secs"),
                "must be longer than a probe can take (three round trips of deadline_ms)",
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_nonsense_is_refused() {
        DiscoverySettings::default().validate("discovery").unwrap();
        let bad: DiscoverySettings = toml::from_str(
            "concurrency = 0\ndeadline_ms = 10\nmissing_after_scans = 0\ninterval_secs = 1",
        )
        .unwrap();
        let keys: Vec<String> = bad
            .validate("discovery")
            .unwrap_err()
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(
            keys,
            [
                "discovery.concurrency",
                "discovery.deadline_ms",
                "discovery.missing_after_scans",
                "discovery.interval_secs"
            ]
        );
        assert!(toml::from_str::<DiscoverySettings>("concurency = 3").is_err());
        let partial: DiscoverySettings = toml::from_str("concurrency = 64").unwrap();
        assert_eq!(partial.deadline_ms, 1500);
    }
}
