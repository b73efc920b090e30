//! Certificate lifetimes as operators write them (`30d`, `12h`, `90m`) and as issuance clamps them.
//!
//! Short lifetimes are the CA's main revocation mechanism (step-ca's stance, and the lesson of
//! Vault's CRL troubles): a certificate that expires in hours needs no CRL entry to stop being
//! useful. Every profile therefore has a maximum, a requested lifetime longer than that is cut to
//! it, and no certificate outlives the CA certificate that signs it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

/// Shortest lifetime a certificate may be issued for: shorter ones expire before clock skew
/// between hosts and a client's renewal loop settle.
pub const MIN_LIFETIME: Lifetime = Lifetime(Duration::from_secs(5 * 60));

/// Longest maximum a profile may be configured with. A site that needs longer-lived leaves is
/// better served by renewing them: revocation of a 90-day certificate already relies on CRLs.
pub const MAX_CONFIGURABLE_LIFETIME: Lifetime = Lifetime(Duration::from_secs(90 * 86_400));

/// How far `notBefore` is set into the past, so a relying party whose clock lags a little
/// accepts a fresh certificate at once. It does not count towards the lifetime.
pub const BACKDATE: Duration = Duration::from_secs(60);

/// A duration in whole seconds, written `<n>d`, `<n>h`, `<n>m` or `<n>s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lifetime(Duration);

/// Why a lifetime could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a lifetime; write a whole number with a unit: 30d, 12h, 90m or 3600s")]
pub struct LifetimeSyntaxError(String);

impl Lifetime {
    /// A lifetime of `seconds`.
    pub const fn from_secs(seconds: u64) -> Self {
        Self(Duration::from_secs(seconds))
    }

    /// A lifetime of `hours`.
    pub const fn hours(hours: u64) -> Self {
        Self::from_secs(hours * 3_600)
    }

    /// A lifetime of `days`.
    pub const fn days(days: u64) -> Self {
        Self::from_secs(days * 86_400)
    }

    /// The duration.
    pub fn as_duration(&self) -> Duration {
        self.0
    }

    /// Whole seconds.
    pub fn as_secs(&self) -> u64 {
        self.0.as_secs()
    }

    /// `at + self`, saturating at the largest time X.509 can express.
    pub fn after(&self, at: OffsetDateTime) -> OffsetDateTime {
        let seconds = i64::try_from(self.as_secs()).unwrap_or(i64::MAX);
        at.checked_add(time::Duration::seconds(seconds))
            .unwrap_or(OffsetDateTime::new_utc(
                time::Date::from_calendar_date(9999, time::Month::December, 31)
                    .unwrap_or(time::Date::MAX),
                time::Time::MIDNIGHT,
            ))
    }
}

impl From<Duration> for Lifetime {
    /// Sub-second parts are dropped: certificates carry whole seconds.
    fn from(duration: Duration) -> Self {
        Self(Duration::from_secs(duration.as_secs()))
    }
}

impl fmt::Display for Lifetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.as_secs();
        if seconds != 0 && seconds.is_multiple_of(86_400) {
            write!(f, "{}d", seconds / 86_400)
        } else if seconds != 0 && seconds.is_multiple_of(3_600) {
            write!(f, "{}h", seconds / 3_600)
        } else if seconds != 0 && seconds.is_multiple_of(60) {
            write!(f, "{}m", seconds / 60)
        } else {
            write!(f, "{seconds}s")
        }
    }
}

impl FromStr for Lifetime {
    type Err = LifetimeSyntaxError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || LifetimeSyntaxError(text.to_owned());
        let unit_at = text.len().checked_sub(1).ok_or_else(error)?;
        let (number, unit) = text.split_at(unit_at);
        let scale = match unit {
            "d" => 86_400,
            "h" => 3_600,
            "m" => 60,
            "s" => 1,
            _ => return Err(error()),
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error());
        }
        let number: u64 = number.parse().map_err(|_| error())?;
        number
            .checked_mul(scale)
            .map(Self::from_secs)
            .ok_or_else(error)
    }
}

impl Serialize for Lifetime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Lifetime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
