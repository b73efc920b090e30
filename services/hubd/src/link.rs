//! What identifies one link between two hubs, and what is measured on it.
//!
//! Two hubs may be joined by several links (several cables, several carriers). Each is named by
//! a [`LinkId`] the two sites agree on in their peering files, so that both ends' advertisements
//! speak of the same cable, and carries the [`Latency`] its ends measure.

use std::fmt;
use std::num::NonZeroU16;

use serde::{Deserialize, Serialize};

/// The number of one link between two hubs: 1 to 65535, unique between those two hubs and the
/// same in both sites' peering files.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u16")]
pub struct LinkId(NonZeroU16);

/// A link number outside 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("link id {0} is out of range, expected 1 to 65535")]
pub struct LinkIdOutOfRange(pub i64);

impl LinkId {
    /// The id, or `None` for 0.
    pub const fn new(id: u16) -> Option<Self> {
        match NonZeroU16::new(id) {
            Some(id) => Some(Self(id)),
            None => None,
        }
    }

    /// The number.
    pub const fn get(self) -> u16 {
        self.0.get()
    }
}

impl TryFrom<i64> for LinkId {
    type Error = LinkIdOutOfRange;
    fn try_from(value: i64) -> Result<Self, LinkIdOutOfRange> {
        u16::try_from(value)
            .ok()
            .and_then(Self::new)
            .ok_or(LinkIdOutOfRange(value))
    }
}

impl From<LinkId> for u16 {
    fn from(id: LinkId) -> u16 {
        id.get()
    }
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.get())
    }
}

impl fmt::Debug for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkId({})", self.get())
    }
}

/// A one-way latency in microseconds, as measured on a link (half the round-trip time) or
/// summed along a path.
///
/// A link's latency is at least 1 µs (a measurement of 0 is rounded up): every path then costs
/// more than any of its parts, so a cheapest path never goes round a loop.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Latency(u64);

impl Latency {
    /// Longest latency a link may advertise: one minute. Anything longer is not a measurement.
    pub const MAX_LINK: Latency = Latency(60_000_000);

    /// `micros` microseconds.
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis.saturating_mul(1000))
    }

    /// In microseconds.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// The sum, saturating (a path's latency never wraps).
    pub const fn saturating_add(self, other: Latency) -> Latency {
        Latency(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for Latency {
    /// Milliseconds with one decimal, e.g. `48.2 ms`; microseconds below 1 ms.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 1000 {
            write!(f, "{} µs", self.0)
        } else {
            let tenths = (self.0 + 50) / 100;
            write!(f, "{}.{} ms", tenths / 10, tenths % 10)
        }
    }
}

impl fmt::Debug for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Latency({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_ids_are_1_to_65535() {
        assert_eq!(LinkId::new(0), None);
        assert_eq!(LinkId::new(7).unwrap().get(), 7);
        assert_eq!(LinkId::try_from(65535).unwrap().get(), 65535);
        assert_eq!(
            LinkId::try_from(0).unwrap_err().to_string(),
            "link id 0 is out of range, expected 1 to 65535"
        );
        assert!(LinkId::try_from(65536).is_err());
        assert!(LinkId::try_from(-1).is_err());
        assert_eq!(LinkId::new(2).unwrap().to_string(), "#2");
    }

    #[test]
    fn latencies_print_as_an_operator_reads_them() {
        assert_eq!(Latency::from_micros(850).to_string(), "850 µs");
        assert_eq!(Latency::from_micros(48_240).to_string(), "48.2 ms");
        assert_eq!(Latency::from_micros(48_250).to_string(), "48.3 ms");
        assert_eq!(Latency::from_millis(40).to_string(), "40.0 ms");
        assert_eq!(
            Latency::from_micros(u64::MAX).saturating_add(Latency::from_micros(1)),
            Latency::from_micros(u64::MAX)
        );
    }
}
