//! Reads one UPS through upsd every poll period and says what its sensors read.
//!
//! Sensors, named `<bus>.<ups>.<sensor>` (the UPS name lowercased):
//! - contacts from `ups.status`: `online` (OL), `on_battery` (OB), `low_battery` (LB),
//!   `replace_battery` (RB), `overload` (OVER);
//! - numbers, where the UPS reports them: `charge_pct` (battery.charge), `runtime_s`
//!   (battery.runtime), `load_pct` (ups.load), `input_voltage`, `output_voltage`,
//!   `realpower_w` (ups.realpower).
//!
//! A failed poll (upsd gone, refusing, `DATA-STALE`/`DRIVER-NOT-CONNECTED`, garbage, no answer
//! within the deadline) makes every sensor of the UPS `Lost` at once; since the deadline is at
//! most the poll period, that is within two poll periods of the last good sample. The next good
//! poll samples them again. `WAIT` (upsd has no status from its driver yet, the first second
//! after it starts) is no sample at all: it says nothing about mains power. Only a UPS that
//! keeps saying `WAIT` for two polls in a row is lost, as stale.

use std::collections::BTreeSet;
use std::mem::discriminant;
use std::time::SystemTime;

use appliance::config::Invalid;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::client::NutClient;
use super::protocol::VarList;
use super::settings::NutSettings;
use super::status::{Flag, UpsStatus};
use crate::sensor::{LostReason, SensorEvent, SensorId, Value};

/// The contacts read from `ups.status`: sensor suffix and the flag that closes it.
const CONTACTS: [(&str, Flag); 5] = [
    ("online", Flag::Online),
    ("on_battery", Flag::OnBattery),
    ("low_battery", Flag::LowBattery),
    ("replace_battery", Flag::ReplaceBattery),
    ("overload", Flag::Overload),
];

/// A numeric sensor: the NUT variable, the sensor suffix, and what the quantity can physically
/// be (anything outside is a broken reading, not a value).
struct Quantity {
    var: &'static str,
    suffix: &'static str,
    min: f64,
    max: f64,
}

const QUANTITIES: [Quantity; 6] = [
    Quantity {
        var: "battery.charge",
        suffix: "charge_pct",
        min: 0.0,
        max: 100.0,
    },
    Quantity {
        var: "battery.runtime",
        suffix: "runtime_s",
        min: 0.0,
        // A week: no UPS battery lasts longer; drivers report 65535 and similar on faults.
        max: 604_800.0,
    },
    Quantity {
        var: "ups.load",
        suffix: "load_pct",
        min: 0.0,
        // Overloaded UPSes report above 100 % before they trip.
        max: 250.0,
    },
    Quantity {
        var: "input.voltage",
        suffix: "input_voltage",
        min: 0.0,
        max: 1000.0,
    },
    Quantity {
        var: "output.voltage",
        suffix: "output_voltage",
        min: 0.0,
        max: 1000.0,
    },
    Quantity {
        var: "ups.realpower",
        suffix: "realpower_w",
        min: 0.0,
        max: 1_000_000.0,
    },
];

/// Every sensor a UPS behind `settings` may report, with its unit (`None` for contacts), so
/// the rules and the console know them before the first poll.
pub fn sensors(settings: &NutSettings) -> Vec<(String, Option<&'static str>)> {
    let prefix = settings.sensor_prefix();
    let units = |suffix: &str| match suffix {
        "charge_pct" | "load_pct" => "%",
        "runtime_s" => "s",
        "realpower_w" => "W",
        _ => "V",
    };
    CONTACTS
        .iter()
        .map(|(suffix, _)| (format!("{prefix}.{suffix}"), None))
        .chain(
            QUANTITIES
                .iter()
                .map(|q| (format!("{prefix}.{}", q.suffix), Some(units(q.suffix)))),
        )
        .collect()
}

/// The driver of one UPS.
#[derive(Debug)]
pub struct NutDriver {
    settings: NutSettings,
    client: NutClient,
    /// Every sensor this UPS has (the status contacts from the start, numbers once reported):
    /// all of them go lost together.
    known: BTreeSet<SensorId>,
    /// Why the sensors are lost, while they are (so a lasting outage is said once).
    lost: Option<LostReason>,
    /// Consecutive polls that read `WAIT`.
    waits: u32,
}

impl NutDriver {
    /// A driver for valid settings (see [`NutSettings::validate`]).
    pub fn new(settings: NutSettings) -> Result<NutDriver, Vec<Invalid>> {
        settings.validate("nut")?;
        let client = NutClient::new(
            settings.address.clone(),
            settings.credentials(),
            settings.deadline(),
        );
        let mut driver = NutDriver {
            settings,
            client,
            known: BTreeSet::new(),
            lost: None,
            waits: 0,
        };
        for (suffix, _) in CONTACTS {
            let id = driver.sensor(suffix);
            driver.known.insert(id);
        }
        Ok(driver)
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

    /// One poll: the events it gives (none when nothing is to be said).
    pub async fn poll(&mut self) -> Vec<SensorEvent> {
        let ups = self.settings.ups.clone();
        match self.client.list_vars(&ups).await {
            Ok(vars) => self.read(&vars, SystemTime::now()),
            Err(error) => {
                tracing::debug!(ups = %ups, %error, "poll failed");
                self.lose(error.lost_reason(), SystemTime::now())
            }
        }
    }

    /// The events for a good `LIST VAR`.
    fn read(&mut self, vars: &VarList, at: SystemTime) -> Vec<SensorEvent> {
        let status = vars.get("ups.status").map(|value| UpsStatus::parse(value));
        if status.as_ref().is_some_and(UpsStatus::is_waiting) {
            self.waits += 1;
            return if self.waits >= 2 {
                self.lose(LostReason::Stale, at)
            } else {
                Vec::new()
            };
        }
        self.waits = 0;
        if self.lost.take().is_some() {
            tracing::info!(ups = %self.settings.ups, "UPS readable again");
        }
        let mut events = Vec::new();
        let mut read = BTreeSet::new();
        for (suffix, flag) in CONTACTS {
            let sensor = self.sensor(suffix);
            read.insert(sensor.clone());
            events.push(match &status {
                Some(status) => SensorEvent::Sample {
                    sensor,
                    value: Value::Contact(status.has(flag)),
                    at,
                },
                None => SensorEvent::Lost {
                    sensor,
                    reason: LostReason::Malformed {
                        detail: "upsd lists no ups.status".into(),
                    },
                    at,
                },
            });
        }
        for quantity in &QUANTITIES {
            let Some(raw) = vars.get(quantity.var) else {
                continue;
            };
            let sensor = self.sensor(quantity.suffix);
            self.known.insert(sensor.clone());
            read.insert(sensor.clone());
            events.push(match measure(quantity, raw) {
                Ok(value) => SensorEvent::Sample {
                    sensor,
                    value: Value::Number(value),
                    at,
                },
                Err(reason) => SensorEvent::Lost { sensor, reason, at },
            });
        }
        // A quantity the UPS stopped listing has no current value: say so rather than let its
        // last sample stand.
        for sensor in self.known.difference(&read) {
            events.push(SensorEvent::Lost {
                sensor: sensor.clone(),
                reason: LostReason::Malformed {
                    detail: "upsd no longer lists this variable".into(),
                },
                at,
            });
        }
        events
    }

    /// Every sensor lost for `reason`, unless they already are for the same kind of reason.
    fn lose(&mut self, reason: LostReason, at: SystemTime) -> Vec<SensorEvent> {
        if self
            .lost
            .as_ref()
            .is_some_and(|lost| discriminant(lost) == discriminant(&reason))
        {
            return Vec::new();
        }
        tracing::warn!(
            ups = %self.settings.ups,
            address = %self.settings.address,
            %reason,
            "UPS sensors lost"
        );
        self.lost = Some(reason.clone());
        self.known
            .iter()
            .map(|sensor| SensorEvent::Lost {
                sensor: sensor.clone(),
                reason: reason.clone(),
                at,
            })
            .collect()
    }

    fn sensor(&self, suffix: &str) -> SensorId {
        SensorId::new(format!("{}.{suffix}", self.settings.sensor_prefix()))
            .expect("validate() checked that the longest sensor name is valid")
    }
}

/// A NUT number (`"23"`, `"27.2"`) checked against what the quantity can be.
fn measure(quantity: &Quantity, raw: &str) -> Result<f64, LostReason> {
    let value: f64 = raw
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| LostReason::Malformed {
            detail: format!("{} is not a number", quantity.var),
        })?;
    if (quantity.min..=quantity.max).contains(&value) {
        Ok(value)
    } else {
        Err(LostReason::OutOfRange {
            value,
            min: quantity.min,
            max: quantity.max,
        })
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
