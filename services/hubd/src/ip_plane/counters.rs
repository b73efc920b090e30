//! [`IpCounters`]: what the IP plane has done, for the metrics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    /// Not a well-formed IPv4 or IPv6 packet.
    Malformed,
    /// Read from the TUN for a prefix of this hub: never routed into the network.
    OwnPrefix,
    /// Read from the TUN with a source address outside this hub's prefixes.
    ForeignSource,
    /// No trusted hub announces the destination (or not the hub it is pinned to).
    NoRoute,
    /// The destination's queue was full (its circuit slower than the traffic, or opening).
    QueueFull,
    /// No circuit to the destination could be opened.
    NoCircuit,
    /// Arrived for an address this hub does not announce.
    NotAnnouncedHere,
    /// Arrived for an address the grant of the peer it came through does not admit.
    NotGranted,
    /// Arrived with a source address its source hub does not announce.
    SpoofedSource,
    /// The TUN refused the write.
    TunWrite,
}

impl DropReason {
    /// Every reason, in label order of the metrics.
    pub const ALL: [Self; 10] = [
        Self::Malformed,
        Self::OwnPrefix,
        Self::ForeignSource,
        Self::NoRoute,
        Self::QueueFull,
        Self::NoCircuit,
        Self::NotAnnouncedHere,
        Self::NotGranted,
        Self::SpoofedSource,
        Self::TunWrite,
    ];

    /// A short label for the metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::OwnPrefix => "own_prefix",
            Self::ForeignSource => "foreign_source",
            Self::NoRoute => "no_route",
            Self::QueueFull => "queue_full",
            Self::NoCircuit => "no_circuit",
            Self::NotAnnouncedHere => "not_announced_here",
            Self::NotGranted => "not_granted",
            Self::SpoofedSource => "spoofed_source",
            Self::TunWrite => "tun_write",
        }
    }
}

/// What the IP plane has done since it started. Read with relaxed loads: each value is exact,
/// the set is not a snapshot of one instant.
#[derive(Debug, Default)]
pub struct IpCounters {
    /// Packets read from the TUN and sent into a circuit.
    pub packets_out: AtomicU64,
    /// Their bytes (IP packets, without framing).
    pub bytes_out: AtomicU64,
    /// Packets arriving on circuits and written to the TUN.
    pub packets_in: AtomicU64,
    /// Their bytes.
    pub bytes_in: AtomicU64,
    /// Packet circuits this hub opened.
    pub circuits_opened: AtomicU64,
    /// Attempts to open a packet circuit that found none.
    pub circuits_failed: AtomicU64,
    /// Packet circuits from other hubs taken here.
    pub circuits_accepted: AtomicU64,
    /// Packet circuits up now, both directions.
    pub circuits_live: AtomicU64,
    drops: [AtomicU64; DropReason::ALL.len()],
}

impl IpCounters {
    pub(crate) fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    pub(crate) fn sub(counter: &AtomicU64, value: u64) {
        counter.fetch_sub(value, Ordering::Relaxed);
    }

    /// Counts one packet dropped for `reason`.
    pub(crate) fn drop_packet(&self, reason: DropReason) {
        Self::add(&self.drops[reason as usize], 1);
    }

    /// Packets dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].load(Ordering::Relaxed)
    }

    /// Packets dropped, by label.
    pub fn drops(&self) -> BTreeMap<&'static str, u64> {
        DropReason::ALL
            .iter()
            .map(|reason| (reason.label(), self.dropped(*reason)))
            .collect()
    }

    /// The value of `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
