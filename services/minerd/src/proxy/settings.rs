//! The proxy's settings, as read from minerd's TOML configuration (`[proxy]`). Every timing is
//! in milliseconds so tests can run the same code with fast clocks; `validate` refuses values
//! that would make the proxy useless or unsafe, naming the key and saying why.

use std::net::SocketAddr;
use std::time::Duration;

use appliance::config::Invalid;
use serde::Deserialize;

/// How the proxy serves miners and uses pools.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxySettings {
    /// The mining-network address miners connect to. Never 0.0.0.0 on a real site: the proxy
    /// must not be reachable from anywhere but the miners' network.
    pub listen: SocketAddr,
    /// Miners carried by one upstream connection before another is opened to the same pool.
    pub miners_per_upstream: usize,
    /// Bytes of the upstream's extranonce2 given to each miner as its prefix; bounds the miners
    /// per connection to 256^size and leaves the rest of extranonce2 to the miner.
    pub extranonce_prefix_size: usize,
    pub vardiff: VardiffSettings,
    pub failover: FailoverSettings,
    /// Accounting group commit: a share is acknowledged after the batch holding it is
    /// committed; the batch collects rows for at most this long.
    pub batch_window_ms: u64,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            listen: SocketAddr::from(([10, 0, 0, 1], 3333)),
            miners_per_upstream: 512,
            extranonce_prefix_size: 2,
            vardiff: VardiffSettings::default(),
            failover: FailoverSettings::default(),
            batch_window_ms: 5,
        }
    }
}

/// Per-miner difficulty: aim at `shares_per_minute`, re-evaluated every `retarget_ms`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VardiffSettings {
    pub shares_per_minute: f64,
    pub retarget_ms: u64,
    pub initial_difficulty: f64,
    pub min_difficulty: f64,
    pub max_difficulty: f64,
}

impl Default for VardiffSettings {
    fn default() -> Self {
        VardiffSettings {
            shares_per_minute: 20.0,
            retarget_ms: 90_000,
            initial_difficulty: 1024.0,
            min_difficulty: 1.0,
            max_difficulty: 1e12,
        }
    }
}

/// When an upstream is dead and how pools are switched.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailoverSettings {
    /// Connecting and the subscribe/authorize/first-job handshake must finish within this.
    pub connect_timeout_ms: u64,
    /// A forwarded share unanswered for this long makes the upstream dead.
    pub submit_timeout_ms: u64,
    /// No job from the upstream for this long makes it dead.
    pub job_timeout_ms: u64,
    /// A higher-priority pool must stay healthy this long before miners go back to it.
    pub failback_hold_ms: u64,
    /// A dead pool is tried again after this long.
    pub retry_ms: u64,
}

impl Default for FailoverSettings {
    fn default() -> Self {
        FailoverSettings {
            connect_timeout_ms: 3_000,
            submit_timeout_ms: 3_000,
            job_timeout_ms: 120_000,
            failback_hold_ms: 60_000,
            retry_ms: 5_000,
        }
    }
}

impl FailoverSettings {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub fn submit_timeout(&self) -> Duration {
        Duration::from_millis(self.submit_timeout_ms)
    }
    pub fn job_timeout(&self) -> Duration {
        Duration::from_millis(self.job_timeout_ms)
    }
    pub fn failback_hold(&self) -> Duration {
        Duration::from_millis(self.failback_hold_ms)
    }
    pub fn retry(&self) -> Duration {
        Duration::from_millis(self.retry_ms)
    }
}

/// Failover must happen within 5 s of an outage (issue 5): detection may take at most this.
const MAX_DETECTION_MS: u64 = 5_000;

impl ProxySettings {
    /// Every problem at once, each naming its key under `proxy.`.
    pub fn validate(&self) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, key: &str, reason: &str| {
            if !ok {
                problems.push(Invalid::new(format!("proxy.{key}"), reason));
            }
        };
        check(
            self.listen.port() != 0,
            "listen",
            "must name a port miners can be configured with, not 0",
        );
        check(
            (1..=4).contains(&self.extranonce_prefix_size),
            "extranonce_prefix_size",
            "must be 1 to 4 bytes",
        );
        let capacity = 256usize.saturating_pow(self.extranonce_prefix_size.min(4) as u32);
        check(
            self.miners_per_upstream >= 1 && self.miners_per_upstream <= capacity,
            "miners_per_upstream",
            "must be at least 1 and at most 256^extranonce_prefix_size",
        );
        check(
            (1..=1_000).contains(&self.batch_window_ms),
            "batch_window_ms",
            "must be 1 to 1000 ms: longer holds every miner's acknowledgement back",
        );
        let v = &self.vardiff;
        let positive = |d: f64| d.is_finite() && d > 0.0;
        check(
            positive(v.shares_per_minute),
            "vardiff.shares_per_minute",
            "must be a positive number",
        );
        check(
            v.retarget_ms >= 100,
            "vardiff.retarget_ms",
            "must be at least 100 ms",
        );
        check(
            positive(v.min_difficulty) && positive(v.max_difficulty),
            "vardiff.min_difficulty",
            "min and max difficulty must be positive numbers",
        );
        check(
            v.min_difficulty <= v.max_difficulty,
            "vardiff.max_difficulty",
            "must not be below vardiff.min_difficulty",
        );
        check(
            v.initial_difficulty >= v.min_difficulty && v.initial_difficulty <= v.max_difficulty,
            "vardiff.initial_difficulty",
            "must lie between vardiff.min_difficulty and vardiff.max_difficulty",
        );
        let f = &self.failover;
        check(
            (100..=MAX_DETECTION_MS).contains(&f.submit_timeout_ms),
            "failover.submit_timeout_ms",
            "must be 100 to 5000 ms: failover must happen within 5 s of an outage",
        );
        check(
            (100..=MAX_DETECTION_MS).contains(&f.connect_timeout_ms),
            "failover.connect_timeout_ms",
            "must be 100 to 5000 ms: failover must happen within 5 s of an outage",
        );
        check(
            f.job_timeout_ms >= 1_000,
            "failover.job_timeout_ms",
            "must be at least 1000 ms",
        );
        check(
            f.retry_ms >= 100,
            "failover.retry_ms",
            "must be at least 100 ms",
        );
        check(
            f.failback_hold_ms >= f.retry_ms,
            "failover.failback_hold_ms",
            "must not be shorter than failover.retry_ms, or a flapping pool pulls miners back",
        );
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
    fn defaults_are_valid() {
        assert_eq!(ProxySettings::default().validate(), Ok(()));
    }

    #[test]
    fn partial_toml_takes_defaults_and_unknown_keys_are_refused() {
        let s: ProxySettings =
            toml::from_str("listen = \"127.0.0.1:3333\"\n[vardiff]\nshares_per_minute = 60.0\n")
                .unwrap();
        assert_eq!(s.vardiff.shares_per_minute, 60.0);
        assert_eq!(
            s.vardiff.retarget_ms,
            VardiffSettings::default().retarget_ms
        );
        assert!(toml::from_str::<ProxySettings>("listen_addr = \"127.0.0.1:1\"").is_err());
    }

    #[test]
    fn nonsense_is_refused_with_its_key() {
        let mut s = ProxySettings {
            extranonce_prefix_size: 0,
            ..ProxySettings::default()
        };
        s.failover.submit_timeout_ms = 30_000;
        s.vardiff.min_difficulty = 10.0;
        s.vardiff.max_difficulty = 1.0;
        let keys: Vec<String> = s
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert!(keys.contains(&"proxy.extranonce_prefix_size".to_string()));
        assert!(keys.contains(&"proxy.failover.submit_timeout_ms".to_string()));
        assert!(keys.contains(&"proxy.vardiff.max_difficulty".to_string()));
    }

    #[test]
    fn more_miners_than_prefixes_is_refused() {
        let s = ProxySettings {
            extranonce_prefix_size: 1,
            miners_per_upstream: 257,
            ..ProxySettings::default()
        };
        let problems = s.validate().unwrap_err();
        assert_eq!(problems[0].key, "proxy.miners_per_upstream");
    }
}
