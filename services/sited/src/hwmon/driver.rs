//! Reads the server's hwmon inputs every poll period and says what they read.
//!
//! Discovery runs on the first poll and again whenever the set of `hwmonN` entries changes (a
//! driver module loaded or unloaded, a hot-plugged PSU). Each input gives a sample, or the
//! sensor lost: `Unreachable` when the file errors (ENXIO, EIO, ENODATA from a faulting sensor)
//! or is gone, `Malformed` when it holds no number, `OutOfRange` when the value cannot be
//! physical. A lost sensor is said once per kind of reason, then sampled again when it reads.
//! Sensors of a chip that disappears are lost as `Unreachable`.
//!
//! sysfs reads block (an I2C sensor behind a wedged SMBus controller can hang a read for
//! seconds), so each poll runs on tokio's blocking pool and is bounded by the deadline. A poll
//! that overruns makes every sensor lost as `Timeout`; until that read returns, later polls wait
//! on it rather than pile more stuck threads onto the pool.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::mem::discriminant;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use appliance::config::Invalid;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::settings::HwmonSettings;
use super::tree::{self, Input};
use crate::sensor::{LostReason, SensorEvent, SensorId, Value};

/// What one blocking poll found.
#[derive(Debug)]
struct Scan {
    entries: BTreeSet<String>,
    /// The inputs found again, when the entries changed since the last discovery.
    rediscovered: Option<Vec<Input>>,
    readings: Vec<(SensorId, Result<f64, LostReason>)>,
}

/// The driver of the server's own hwmon sensors.
#[derive(Debug)]
pub struct HwmonDriver {
    settings: HwmonSettings,
    /// The `hwmonN` entries at the last discovery; `None` before the first.
    entries: Option<BTreeSet<String>>,
    inputs: Arc<Vec<Input>>,
    /// Why each lost sensor is lost, while it is.
    lost: BTreeMap<SensorId, LostReason>,
    /// A poll's blocking read that overran its deadline and has not returned yet.
    overrun: Option<JoinHandle<io::Result<Scan>>>,
}

impl HwmonDriver {
    /// A driver for valid settings (see [`HwmonSettings::validate`]).
    pub fn new(settings: HwmonSettings) -> Result<HwmonDriver, Vec<Invalid>> {
        settings.validate("hwmon")?;
        Ok(HwmonDriver {
            settings,
            entries: None,
            inputs: Arc::new(Vec::new()),
            lost: BTreeMap::new(),
            overrun: None,
        })
    }

    /// The inputs found at the last discovery, with the limits their chips state.
    pub fn inputs(&self) -> &[Input] {
        &self.inputs
    }

    /// Polls every period and sends what it reads, until the receiver is gone.
    pub async fn run(mut self, events: mpsc::Sender<SensorEvent>) {
        let mut ticks = tokio::time::interval(self.settings.poll_period());
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            for event in self.poll().await {
                if events.send(event).await.is_err() {
                    return;
                }
            }
        }
    }

    /// One poll: a sample for every input that reads, the lost sensors that are news.
    pub async fn poll(&mut self) -> Vec<SensorEvent> {
        let mut read = match self.overrun.take() {
            Some(stuck) if !stuck.is_finished() => stuck,
            _ => self.spawn_scan(),
        };
        let outcome = tokio::time::timeout(self.settings.deadline(), &mut read).await;
        let at = SystemTime::now();
        match outcome {
            Ok(Ok(Ok(scan))) => self.apply(scan, at),
            Ok(Ok(Err(error))) => self.lose_all(
                LostReason::Unreachable {
                    detail: format!("listing {}: {error}", self.settings.root.display()),
                },
                at,
            ),
            Ok(Err(join_error)) => self.lose_all(
                LostReason::Unreachable {
                    detail: format!("the hwmon read failed: {join_error}"),
                },
                at,
            ),
            Err(_elapsed) => {
                self.overrun = Some(read);
                self.lose_all(LostReason::Timeout, at)
            }
        }
    }

    fn spawn_scan(&self) -> JoinHandle<io::Result<Scan>> {
        let root: PathBuf = self.settings.root.clone();
        let bus = self.settings.bus.clone();
        let known = self.entries.clone();
        let inputs = Arc::clone(&self.inputs);
        tokio::task::spawn_blocking(move || {
            let entries = tree::chip_entries(&root)?;
            let rediscovered =
                (known.as_ref() != Some(&entries)).then(|| tree::inputs_of(&root, &bus, &entries));
            let readings = rediscovered
                .as_deref()
                .unwrap_or(&inputs)
                .iter()
                .map(|input| (input.sensor.clone(), tree::read(input)))
                .collect();
            Ok(Scan {
                entries,
                rediscovered,
                readings,
            })
        })
    }

    fn apply(&mut self, scan: Scan, at: SystemTime) -> Vec<SensorEvent> {
        let mut events = Vec::new();
        if let Some(found) = scan.rediscovered {
            self.replace_inputs(found, at, &mut events);
            tracing::info!(
                root = %self.settings.root.display(),
                chips = scan.entries.len(),
                inputs = self.inputs.len(),
                "hwmon discovery"
            );
            self.entries = Some(scan.entries);
        }
        for (sensor, reading) in scan.readings {
            match reading {
                Ok(value) => {
                    if self.lost.remove(&sensor).is_some() {
                        tracing::info!(%sensor, "hwmon sensor readable again");
                    }
                    events.push(SensorEvent::Sample {
                        sensor,
                        value: Value::Number(value),
                        at,
                    });
                }
                Err(reason) => events.extend(self.lose(sensor, reason, at)),
            }
        }
        events
    }

    /// Takes the newly discovered inputs; the sensors no longer among them are lost.
    fn replace_inputs(&mut self, found: Vec<Input>, at: SystemTime, events: &mut Vec<SensorEvent>) {
        let kept: BTreeSet<&SensorId> = found.iter().map(|input| &input.sensor).collect();
        let gone: Vec<SensorId> = self
            .inputs
            .iter()
            .map(|input| input.sensor.clone())
            .filter(|sensor| !kept.contains(sensor))
            .collect();
        for sensor in gone {
            let reason = LostReason::Unreachable {
                detail: "its hwmon chip is gone".into(),
            };
            events.extend(self.lose(sensor.clone(), reason, at));
            self.lost.remove(&sensor);
        }
        self.inputs = Arc::new(found);
    }

    fn lose_all(&mut self, reason: LostReason, at: SystemTime) -> Vec<SensorEvent> {
        let sensors: Vec<SensorId> = self.inputs.iter().map(|i| i.sensor.clone()).collect();
        sensors
            .into_iter()
            .filter_map(|sensor| self.lose(sensor, reason.clone(), at))
            .collect()
    }

    /// The `Lost` event for `sensor`, unless it is already lost for the same kind of reason.
    fn lose(
        &mut self,
        sensor: SensorId,
        reason: LostReason,
        at: SystemTime,
    ) -> Option<SensorEvent> {
        if self
            .lost
            .get(&sensor)
            .is_some_and(|lost| discriminant(lost) == discriminant(&reason))
        {
            return None;
        }
        tracing::warn!(%sensor, %reason, "hwmon sensor lost");
        self.lost.insert(sensor.clone(), reason.clone());
        Some(SensorEvent::Lost { sensor, reason, at })
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
