//! Fleet and per-owner sums of the latest telemetry: hashrate, power, efficiency (J/TH), miners
//! up, down and sleeping, and the hottest chip. A miner down counts as down and adds nothing:
//! its last snapshot is history, not the present.

use std::collections::BTreeMap;

use super::MinerStatus;
use crate::cgminer::MinerSnapshot;
use crate::inventory::MinerState;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Aggregate {
    pub hashrate_ths: f64,
    /// Over the miners that report power.
    pub power_w: f64,
    /// Joules per terahash over the miners that report both power and hashrate.
    pub efficiency_j_per_th: Option<f64>,
    /// Polled successfully and not asleep.
    pub up: usize,
    /// Poll failed and not asleep.
    pub down: usize,
    /// Put to sleep (curtailment, operator).
    pub sleeping: usize,
    pub hottest_chip_c: Option<f64>,
    // Accumulators of the efficiency quotient.
    metered_power_w: f64,
    metered_ths: f64,
}

impl Aggregate {
    fn add(&mut self, status: &MinerStatus) {
        if status.state == MinerState::Sleeping {
            self.sleeping += 1;
        } else if status.is_up() {
            self.up += 1;
        } else {
            self.down += 1;
        }
        let Some(snapshot) = status.snapshot.as_deref().filter(|_| status.is_up()) else {
            return;
        };
        let ths = hashrate_ths(snapshot);
        self.hashrate_ths += ths;
        if let Some(watts) = snapshot.power_watts {
            self.power_w += watts;
            if ths > 0.0 {
                self.metered_power_w += watts;
                self.metered_ths += ths;
            }
        }
        if let Some(hottest) = hottest_chip(snapshot) {
            self.hottest_chip_c = Some(self.hottest_chip_c.map_or(hottest, |h| h.max(hottest)));
        }
    }

    fn finish(&mut self) {
        self.efficiency_j_per_th =
            (self.metered_ths > 0.0).then(|| self.metered_power_w / self.metered_ths);
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct FleetAggregates {
    pub fleet: Aggregate,
    pub owners: BTreeMap<String, Aggregate>,
}

impl FleetAggregates {
    pub fn from_statuses<'a>(statuses: impl IntoIterator<Item = &'a MinerStatus>) -> Self {
        let mut all = FleetAggregates::default();
        for status in statuses {
            all.fleet.add(status);
            match all.owners.get_mut(&*status.owner) {
                Some(owner) => owner.add(status),
                None => {
                    let mut owner = Aggregate::default();
                    owner.add(status);
                    all.owners.insert(status.owner.to_string(), owner);
                }
            }
        }
        all.fleet.finish();
        all.owners.values_mut().for_each(Aggregate::finish);
        all
    }
}

/// The miner's current hashrate in TH/s: the 5 s figure, else the average, else 0.
pub fn hashrate_ths(snapshot: &MinerSnapshot) -> f64 {
    snapshot
        .hashrate_5s
        .or(snapshot.hashrate_average)
        .map_or(0.0, |h| h.terahashes())
}

/// The hottest chip sensor over all boards.
pub fn hottest_chip(snapshot: &MinerSnapshot) -> Option<f64> {
    snapshot
        .boards
        .iter()
        .flat_map(|b| b.chip_temps_c.iter().copied())
        .reduce(f64::max)
}
