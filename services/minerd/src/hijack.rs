//! Crypto-jacking detection: does a miner hash for the pools and identities the operator
//! sanctioned, through minerd's proxy? Pure logic: the poller and the proxy hand in what they
//! saw ([`Observation`]), a [`HijackWatch`] per miner keeps the little history hysteresis
//! needs and returns the current [`Finding`]s, each saying what was seen and what was expected.
//!
//! The four kinds (issue 5 §5):
//! - [`Finding::ForeignPool`]: a configured pool that is not sanctioned. Critical when it is
//!   the one the miner mines on, a warning while it only waits in the list (firmware fail over
//!   to it as soon as the sanctioned pools look dead).
//! - [`Finding::ChangedUser`]: a sanctioned endpoint with another user (the hashrate is
//!   credited to someone else), as configured in the miner or as authorised at the proxy.
//! - [`Finding::DevFeeRedirect`]: a foreign pool that was active and then gave way to the
//!   sanctioned one again, or whose accepted-share count grew while it sat in the list (both
//!   are periodic fee mining seen between polls), or a foreign entry named like a dev fee.
//! - [`Finding::HashingElsewhere`]: the miner reports hashrate, its pool list looks clean,
//!   but the proxy sees no shares from it (not connected, or silent for `silence_factor` ×
//!   the expected share interval): it mines off-book.
//!
//! Hysteresis, so that ordinary life is not an alarm: hashing-elsewhere needs the miner up
//! for `startup_grace` (a rebooting miner hashes before it reconnects), awake for
//! `wake_grace` (minerd woke it), and the condition on `confirm_polls` polls in a row. A
//! miner failing over between two sanctioned proxy URLs is clean by construction (both are
//! sanctioned, and both are minerd's proxy). A sleeping miner reports no hashrate.

mod endpoint;
mod watch;

use std::fmt;
use std::time::Duration;

use appliance::config::{DurationSecs, Invalid};
use serde::Deserialize;

use crate::cgminer::Hashrate;

pub use endpoint::{Endpoint, looks_like_devfee};
pub use watch::{HijackWatch, Observation, ProxyView};

/// A pool the miner may use: minerd's proxy URL and the user the operator assigned.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanctionedPool {
    pub url: String,
    pub user: String,
}

/// How sure a finding is that clients are being robbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Not mining elsewhere yet, but configured to.
    Warning,
    /// Hashrate is going elsewhere now or has gone.
    Critical,
}

/// What the comparison found, with what was seen and what was expected.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    ForeignPool {
        url: String,
        user: String,
        active: bool,
        sanctioned: Vec<String>,
    },
    ChangedUser {
        url: String,
        user: String,
        expected: String,
        /// The miner mines on that pool entry now.
        active: bool,
        /// True when the proxy saw it authorise (rather than only the miner's list showing it).
        at_proxy: bool,
    },
    DevFeeRedirect {
        url: String,
        user: String,
        evidence: DevFeeEvidence,
    },
    HashingElsewhere {
        reported_ths: f64,
        proxy_connected: bool,
        /// Time since the proxy's last share from this miner; `None`: none yet.
        last_share_ago: Option<Duration>,
        expected_within: Duration,
    },
}

/// Why a foreign pool looks like fee mining.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DevFeeEvidence {
    /// It was active for `lasted` (at least) and the sanctioned pool took over again;
    /// `episodes` such spells so far.
    ActiveThenBack { episodes: u32, lasted: Duration },
    /// Its accepted-share count grew by `shares` between two polls.
    SharesAccepted { shares: u64 },
    /// Only its name: `devfee`-like user or URL.
    Named,
}

impl Finding {
    pub fn severity(&self) -> Severity {
        match self {
            Finding::ForeignPool { active: false, .. }
            | Finding::ChangedUser {
                active: false,
                at_proxy: false,
                ..
            } => Severity::Warning,
            Finding::DevFeeRedirect {
                evidence: DevFeeEvidence::Named,
                ..
            } => Severity::Warning,
            _ => Severity::Critical,
        }
    }

    /// A short name for metrics and alarm ids.
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::ForeignPool { .. } => "foreign_pool",
            Finding::ChangedUser { .. } => "changed_user",
            Finding::DevFeeRedirect { .. } => "devfee_redirect",
            Finding::HashingElsewhere { .. } => "hashing_elsewhere",
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::ForeignPool {
                url,
                user,
                active,
                sanctioned,
            } => write!(
                f,
                "{} pool {url} (user {user}) is not sanctioned; expected only {}",
                if *active { "active" } else { "configured" },
                sanctioned.join(", ")
            ),
            Finding::ChangedUser {
                url,
                user,
                expected,
                at_proxy,
                ..
            } => write!(
                f,
                "{} user {user} on {url}; expected {expected}",
                if *at_proxy {
                    "authorised"
                } else {
                    "configured"
                }
            ),
            Finding::DevFeeRedirect {
                url,
                user,
                evidence,
            } => {
                write!(f, "fee-like mining on {url} (user {user}): ")?;
                match evidence {
                    DevFeeEvidence::ActiveThenBack { episodes, lasted } => write!(
                        f,
                        "it was active for {lasted:?} before the sanctioned pool came back \
                         ({episodes} time(s)); expected the sanctioned pools only"
                    ),
                    DevFeeEvidence::SharesAccepted { shares } => write!(
                        f,
                        "it accepted {shares} share(s) since the last poll; expected none"
                    ),
                    DevFeeEvidence::Named => write!(f, "a dev-fee entry; expected none"),
                }
            }
            Finding::HashingElsewhere {
                reported_ths,
                proxy_connected,
                last_share_ago,
                expected_within,
            } => {
                write!(f, "reports {reported_ths:.2} TH/s but ")?;
                match (proxy_connected, last_share_ago) {
                    (false, _) => write!(f, "is not connected to the proxy")?,
                    (true, None) => write!(f, "sent the proxy no share yet")?,
                    (true, Some(ago)) => write!(f, "sent the proxy no share for {ago:?}")?,
                }
                write!(f, "; expected a share within {expected_within:?}")
            }
        }
    }
}

/// Thresholds of the comparison (`[hijack]` in minerd's configuration).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HijackSettings {
    /// Silence at the proxy longer than this many expected share intervals is suspicious.
    pub silence_factor: f64,
    /// ... but never less than this (tiny intervals at low difficulty jitter a lot).
    pub min_silence: DurationSecs<1, 3600>,
    /// Polls in a row the hashing-elsewhere condition must hold.
    pub confirm_polls: u32,
    /// Uptime below this: the miner is still booting and connecting.
    pub startup_grace: DurationSecs<0, 3600>,
    /// Time after minerd wakes a miner before silence counts.
    pub wake_grace: DurationSecs<0, 3600>,
    /// How long a completed dev-fee episode stays among the findings.
    pub devfee_memory: DurationSecs<60, 604_800>,
}

impl Default for HijackSettings {
    /// Shares at the proxy's vardiff come every few seconds; 5 intervals (at least two
    /// minutes) of silence over 3 polls is far outside normal jitter, and a reboot (about two
    /// minutes on an Antminer) and a wake-up (fans and tuning) stay within five minutes.
    fn default() -> Self {
        HijackSettings {
            silence_factor: 5.0,
            min_silence: DurationSecs::from_const(120),
            confirm_polls: 3,
            startup_grace: DurationSecs::from_const(300),
            wake_grace: DurationSecs::from_const(300),
            devfee_memory: DurationSecs::from_const(86_400),
        }
    }
}

impl HijackSettings {
    pub fn validate(&self) -> Result<(), Invalid> {
        if !(self.silence_factor.is_finite() && self.silence_factor >= 1.0) {
            return Err(Invalid::new(
                "hijack.silence_factor",
                "must be at least 1 (a share interval of silence is normal)",
            ));
        }
        if self.confirm_polls == 0 {
            return Err(Invalid::new("hijack.confirm_polls", "must be at least 1"));
        }
        Ok(())
    }

    /// The silence that counts for a given expected share interval.
    pub fn silence_limit(&self, expected_interval: Duration) -> Duration {
        expected_interval
            .mul_f64(self.silence_factor)
            .max(self.min_silence.as_duration())
    }
}

/// The mean time between shares of a miner hashing at `hashrate` against a share difficulty
/// of `difficulty` (difficulty 1 is 2^32 hashes per share on average); `None` for a miner
/// that does not hash.
pub fn expected_share_interval(difficulty: f64, hashrate: Hashrate) -> Option<Duration> {
    let hashes_per_share = difficulty * 4_294_967_296.0;
    let seconds = hashes_per_share / hashrate.hashes_per_second;
    (seconds.is_finite() && seconds > 0.0)
        .then(|| Duration::try_from_secs_f64(seconds).ok())
        .flatten()
}

#[cfg(test)]
#[path = "hijack_tests.rs"]
mod tests;
