//! What a [`super::Relay`] counts for the metrics: circuits by role (active and total),
//! refusals by label, failed opens by label, bytes forwarded in transit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::transit::TransitMeter;

/// Circuits of one role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CircuitCount {
    /// Carried now.
    pub active: u64,
    /// Ever established.
    pub total: u64,
}

/// A snapshot of a relay's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayCounters {
    /// Circuits this hub opened as source.
    pub opened: CircuitCount,
    /// Circuits that ended at this hub.
    pub destination: CircuitCount,
    /// Circuits this hub carried in transit.
    pub transit: CircuitCount,
    /// Circuits this hub refused, by [`super::CircuitRefusal::label`] (and `handshake` for an
    /// end-to-end handshake that failed at this hub as destination).
    pub refused: BTreeMap<&'static str, u64>,
    /// Circuits this hub failed to open, by [`super::CircuitError::label`].
    pub failed_opens: BTreeMap<&'static str, u64>,
    /// Bytes forwarded in transit, both directions.
    pub transit_bytes: u64,
}

impl RelayCounters {
    /// Refusals with this label.
    pub fn refused(&self, label: &str) -> u64 {
        self.refused.get(label).copied().unwrap_or(0)
    }

    /// Failed opens with this label.
    pub fn failed_opens(&self, label: &str) -> u64 {
        self.failed_opens.get(label).copied().unwrap_or(0)
    }
}

/// The role a counted circuit has here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Opened,
    Destination,
    Transit,
}

#[derive(Debug, Default)]
struct Tally {
    active: AtomicU64,
    total: AtomicU64,
}

impl Tally {
    fn snapshot(&self) -> CircuitCount {
        CircuitCount {
            active: self.active.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
        }
    }
}

/// The live counters of one relay.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    opened: Tally,
    destination: Tally,
    transit: Tally,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    failed_opens: Mutex<BTreeMap<&'static str, u64>>,
    pub(crate) meter: TransitMeter,
}

impl Counters {
    fn tally(&self, role: Role) -> &Tally {
        match role {
            Role::Opened => &self.opened,
            Role::Destination => &self.destination,
            Role::Transit => &self.transit,
        }
    }

    /// Counts a circuit established in `role`, active until the guard is dropped.
    pub(crate) fn established(self: &Arc<Self>, role: Role) -> Active {
        let tally = self.tally(role);
        tally.total.fetch_add(1, Ordering::Relaxed);
        tally.active.fetch_add(1, Ordering::Relaxed);
        Active {
            counters: Arc::clone(self),
            role,
        }
    }

    pub(crate) fn refused(&self, label: &'static str) {
        bump(&self.refused, label);
    }

    pub(crate) fn failed_open(&self, label: &'static str) {
        bump(&self.failed_opens, label);
    }

    pub(crate) fn snapshot(&self) -> RelayCounters {
        let read = |map: &Mutex<BTreeMap<&'static str, u64>>| {
            map.lock().unwrap_or_else(PoisonError::into_inner).clone()
        };
        RelayCounters {
            opened: self.opened.snapshot(),
            destination: self.destination.snapshot(),
            transit: self.transit.snapshot(),
            refused: read(&self.refused),
            failed_opens: read(&self.failed_opens),
            transit_bytes: self.meter.bytes(),
        }
    }
}

fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, label: &'static str) {
    *map.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(label)
        .or_default() += 1;
}

/// One active circuit: counted as active until dropped.
#[derive(Debug)]
pub(crate) struct Active {
    counters: Arc<Counters>,
    role: Role,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.counters
            .tally(self.role)
            .active
            .fetch_sub(1, Ordering::Relaxed);
    }
}
