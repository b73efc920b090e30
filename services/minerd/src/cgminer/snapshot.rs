//! One normalised view of a miner, whatever its firmware: the sections of a [`Reply`] (from
//! `version`, `summary`, `pools`, `stats`, `devs`, `devdetails` and BOSminer's `temps`, `fans`,
//! `tunerstatus`) folded into a [`MinerSnapshot`]. A field the firmware does not report is
//! `None` or empty, never a guess; odd values are skipped, never a panic.

use std::time::Duration;

use serde_json::{Map, Value};

use super::reply::Reply;

/// A hashrate in hashes per second, whatever unit the firmware reported.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Hashrate {
    pub hashes_per_second: f64,
}

impl Hashrate {
    /// `unit` is cgminer's prefix (`MH`, `GH`, `TH`, or the `MHS`/`GHS`/`THS` of key names).
    pub fn from_unit(value: f64, unit: &str) -> Option<Hashrate> {
        let scale = match unit
            .trim()
            .to_ascii_uppercase()
            .trim_end_matches(['S', '/'])
        {
            "H" => 1.0,
            "KH" => 1e3,
            "MH" => 1e6,
            "GH" => 1e9,
            "TH" => 1e12,
            "PH" => 1e15,
            _ => return None,
        };
        (value.is_finite() && value >= 0.0).then_some(Hashrate {
            hashes_per_second: value * scale,
        })
    }

    pub fn terahashes(self) -> f64 {
        self.hashes_per_second / 1e12
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirmwareKind {
    Cgminer,
    /// Stock Antminer firmware.
    Bmminer,
    /// Braiins OS (BOSminer, BOSminer+).
    Bosminer,
    /// LuxOS (LUXminer): bmminer-like replies, with sleep and power profiles behind a session.
    Luxos,
    Unknown,
}

/// One hash board (chain).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hashboard {
    /// The firmware's chain number (Antminer `chain_acnN`'s N, BOSminer's `ID`).
    pub index: u32,
    pub chips: Option<u32>,
    pub hashrate: Option<Hashrate>,
    /// Chip temperatures in °C, one per sensor.
    pub chip_temps_c: Vec<f64>,
    /// Board (PCB) temperatures in °C, one per sensor.
    pub pcb_temps_c: Vec<f64>,
    pub hardware_errors: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fan {
    pub index: u32,
    pub rpm: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolState {
    Alive,
    Dead,
    Disabled,
    Other(String),
}

/// When the pool last accepted a share, in either form firmware use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastShare {
    /// cgminer and BOSminer: seconds since the Unix epoch.
    At(u64),
    /// Old bmminer: time since the share, `H:MM:SS`.
    Ago(Duration),
}

/// A pool as the miner reports it: what the crypto-jacking check compares with the sanctioned ones.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolStatus {
    pub index: u32,
    pub url: String,
    pub user: String,
    pub state: PoolState,
    pub priority: Option<u32>,
    pub stratum_active: bool,
    pub accepted: u64,
    pub rejected: u64,
    pub stale: u64,
    pub last_share: Option<LastShare>,
}

/// What one poll learned about one miner.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MinerSnapshot {
    pub firmware: Option<FirmwareKind>,
    /// The firmware's own description, e.g. `cgminer 4.11.1`, `BOSminer+ 0.2.0-…`.
    pub firmware_description: Option<String>,
    pub firmware_version: Option<String>,
    /// e.g. `Antminer S19 Pro`, from `version` / `devdetails` / `stats` `Type`.
    pub model: Option<String>,
    pub uptime: Option<Duration>,
    pub hashrate_5s: Option<Hashrate>,
    pub hashrate_average: Option<Hashrate>,
    /// What the boards should do at their frequency (Antminer `total_rateideal`).
    pub hashrate_ideal: Option<Hashrate>,
    pub hardware_errors: Option<u64>,
    pub boards: Vec<Hashboard>,
    /// Fans turning; a water-cooled miner reports none.
    pub fans: Vec<Fan>,
    pub power_watts: Option<f64>,
    pub power_target_watts: Option<f64>,
    /// The power profile the miner runs (LuxOS `config` `Profile`), named as in `profiles`.
    pub power_profile: Option<String>,
    pub pools: Vec<PoolStatus>,
}

fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite())
}

fn count(v: Option<&Value>) -> Option<u64> {
    number(v)
        .filter(|f| *f >= 0.0 && *f <= u64::MAX as f64)
        .map(|f| f as u64)
}

fn small(v: Option<&Value>) -> Option<u32> {
    count(v).and_then(|c| u32::try_from(c).ok())
}

fn text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `"63-59-56-61"` (Antminer per-sensor temperatures); zeros mean no sensor.
fn temperature_list(v: Option<&Value>) -> Vec<f64> {
    match v {
        Some(Value::String(s)) => s
            .split('-')
            .filter_map(|t| t.trim().parse::<f64>().ok())
            .filter(|t| t.is_finite() && *t != 0.0)
            .collect(),
        other => number(other).filter(|t| *t != 0.0).into_iter().collect(),
    }
}

/// Reads `<prefix> 5s` / `<prefix> av` hashrates in whichever unit the keys carry.
fn hashrate_field(obj: &Map<String, Value>, suffix: &str) -> Option<Hashrate> {
    ["THS", "GHS", "MHS", "KHS"].iter().find_map(|unit| {
        number(obj.get(&format!("{unit} {suffix}"))).and_then(|v| Hashrate::from_unit(v, unit))
    })
}

fn first_record<'a>(reply: &'a Reply, command: &str, key: &str) -> Option<&'a Map<String, Value>> {
    reply
        .usable(command)?
        .records(key)
        .first()
        .and_then(Value::as_object)
}

impl MinerSnapshot {
    /// Builds the snapshot from whatever sections the reply holds.
    pub fn from_reply(reply: &Reply) -> MinerSnapshot {
        let mut snap = MinerSnapshot::default();
        snap.read_identity(reply);
        snap.read_summary(reply);
        snap.read_antminer_stats(reply);
        snap.read_bosminer_boards(reply);
        snap.read_bosminer_fans_and_tuner(reply);
        snap.read_luxos_power(reply);
        snap.read_pools(reply);
        snap
    }

    fn read_identity(&mut self, reply: &Reply) {
        let description = reply
            .commands()
            .filter_map(|c| reply.usable(c))
            .map(|s| s.status.description.trim())
            .find(|d| !d.is_empty());
        self.firmware_description = description.map(str::to_string);
        let version = first_record(reply, "version", "VERSION");
        let stats_head = first_record(reply, "stats", "STATS");
        let devdetails = first_record(reply, "devdetails", "DEVDETAILS");
        // The version record names the program in a key (`BMMiner`, `BOSminer+`, `CGMiner`);
        // it is more reliable than Description, which bmminer sets to "cgminer 1.0.0".
        let keyed = [version, stats_head].into_iter().flatten().find_map(|rec| {
            rec.iter().find_map(|(k, v)| {
                let kind = match k.to_ascii_lowercase().as_str() {
                    "bmminer" => FirmwareKind::Bmminer,
                    "bosminer" | "bosminer+" => FirmwareKind::Bosminer,
                    "luxminer" => FirmwareKind::Luxos,
                    "cgminer" => FirmwareKind::Cgminer,
                    _ => return None,
                };
                Some((kind, v.as_str().map(str::to_string)))
            })
        });
        let (kind, version_text) = match keyed {
            Some((k, v)) => (Some(k), v),
            None => (description.map(firmware_from_description), None),
        };
        self.firmware = kind;
        self.firmware_version = version_text
            .or_else(|| description.and_then(|d| d.split_whitespace().nth(1).map(str::to_string)));
        self.model = [version, stats_head]
            .into_iter()
            .flatten()
            .find_map(|r| text(r, "Type"))
            .or_else(|| devdetails.and_then(|r| text(r, "Model")));
    }

    fn read_summary(&mut self, reply: &Reply) {
        let Some(summary) = first_record(reply, "summary", "SUMMARY") else {
            return;
        };
        self.hashrate_5s = hashrate_field(summary, "5s");
        self.hashrate_average = hashrate_field(summary, "av");
        self.uptime = count(summary.get("Elapsed")).map(Duration::from_secs);
        self.hardware_errors = count(summary.get("Hardware Errors"));
    }

    /// Antminer `stats`: the second record carries `chain_acnN`, `chain_rateN`, `temp_chipN`…
    fn read_antminer_stats(&mut self, reply: &Reply) {
        let Some(stats) = reply.usable("stats") else {
            return;
        };
        let Some(rec) = stats
            .records("STATS")
            .iter()
            .filter_map(Value::as_object)
            .find(|r| {
                r.keys()
                    .any(|k| k.starts_with("chain_acn") || k == "Elapsed")
            })
        else {
            return;
        };
        let unit = text(rec, "rate_unit").unwrap_or_else(|| "GH".to_string());
        if self.hashrate_5s.is_none() {
            self.hashrate_5s = hashrate_field(rec, "5s");
        }
        if self.hashrate_average.is_none() {
            self.hashrate_average = hashrate_field(rec, "av");
        }
        self.hashrate_ideal =
            number(rec.get("total_rateideal")).and_then(|v| Hashrate::from_unit(v, &unit));
        if self.uptime.is_none() {
            self.uptime = count(rec.get("Elapsed")).map(Duration::from_secs);
        }
        for n in 1..=16u32 {
            let chips = small(rec.get(&format!("chain_acn{n}")));
            let acs_present = rec
                .get(&format!("chain_acs{n}"))
                .and_then(Value::as_str)
                .is_some_and(|s| !s.trim().is_empty());
            if chips.unwrap_or(0) == 0 && !acs_present {
                continue;
            }
            let chip_temps = if rec.contains_key(&format!("temp_chip{n}")) {
                temperature_list(rec.get(&format!("temp_chip{n}")))
            } else {
                temperature_list(rec.get(&format!("temp2_{n}")))
            };
            let pcb_temps = if rec.contains_key(&format!("temp_pcb{n}")) {
                temperature_list(rec.get(&format!("temp_pcb{n}")))
            } else {
                temperature_list(rec.get(&format!("temp{n}")))
            };
            self.boards.push(Hashboard {
                index: n,
                chips,
                hashrate: number(rec.get(&format!("chain_rate{n}")))
                    .and_then(|v| Hashrate::from_unit(v, &unit)),
                chip_temps_c: chip_temps,
                pcb_temps_c: pcb_temps,
                hardware_errors: count(rec.get(&format!("chain_hw{n}"))),
            });
        }
        for n in 1..=16u32 {
            if let Some(rpm) = small(rec.get(&format!("fan{n}"))).filter(|r| *r > 0) {
                self.fans.push(Fan { index: n, rpm });
            }
        }
        // Hiveon reports `chain_power: "1280 W"`.
        if let Some(p) = rec.get("chain_power").and_then(Value::as_str) {
            self.power_watts = p
                .trim()
                .trim_end_matches(['W', 'w'])
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|w| w.is_finite());
        }
    }

    /// BOSminer: boards from `devs` (hashrate, errors), `devdetails` (chips), `temps`.
    fn read_bosminer_boards(&mut self, reply: &Reply) {
        if !self.boards.is_empty() {
            return;
        }
        let records = |cmd: &str, key: &str| -> Vec<Map<String, Value>> {
            reply
                .usable(cmd)
                .map(|s| {
                    s.records(key)
                        .iter()
                        .filter_map(Value::as_object)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        };
        let devs = records("devs", "DEVS");
        let details = records("devdetails", "DEVDETAILS");
        let temps = records("temps", "TEMPS");
        let by_id = |list: &[Map<String, Value>], id: u32| {
            list.iter()
                .find(|r| small(r.get("ID")) == Some(id))
                .cloned()
        };
        let mut ids: Vec<u32> = devs
            .iter()
            .chain(&details)
            .chain(&temps)
            .filter_map(|r| small(r.get("ID")))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let dev = by_id(&devs, id);
            let detail = by_id(&details, id);
            let temp = by_id(&temps, id);
            self.boards.push(Hashboard {
                index: id,
                chips: detail.as_ref().and_then(|d| small(d.get("Chips"))),
                hashrate: dev
                    .as_ref()
                    .and_then(|d| hashrate_field(d, "5s").or_else(|| hashrate_field(d, "av"))),
                chip_temps_c: temp
                    .as_ref()
                    .map(|t| temperature_list(t.get("Chip")))
                    .unwrap_or_default(),
                pcb_temps_c: temp
                    .as_ref()
                    .map(|t| temperature_list(t.get("Board")))
                    .unwrap_or_default(),
                hardware_errors: dev.as_ref().and_then(|d| count(d.get("Hardware Errors"))),
            });
        }
    }

    fn read_bosminer_fans_and_tuner(&mut self, reply: &Reply) {
        if self.fans.is_empty()
            && let Some(fans) = reply.usable("fans")
        {
            for (i, f) in fans.records("FANS").iter().enumerate() {
                let Some(f) = f.as_object() else { continue };
                let index = small(f.get("ID")).unwrap_or(i as u32);
                if let Some(rpm) = small(f.get("RPM")).filter(|r| *r > 0) {
                    self.fans.push(Fan { index, rpm });
                }
            }
        }
        if let Some(tuner) = first_record(reply, "tunerstatus", "TUNERSTATUS") {
            self.power_target_watts = number(tuner.get("PowerLimit")).filter(|w| *w > 0.0);
            self.power_watts = number(tuner.get("ApproximateMinerPowerConsumption"))
                .filter(|w| *w > 0.0)
                .or(self.power_watts);
        }
    }

    /// LuxOS: the PSU's wall power (`power`) and the running power profile (`config`).
    fn read_luxos_power(&mut self, reply: &Reply) {
        if let Some(power) = first_record(reply, "power", "POWER") {
            self.power_watts = number(power.get("Watts"))
                .filter(|w| *w > 0.0)
                .or(self.power_watts);
        }
        if let Some(config) = first_record(reply, "config", "CONFIG") {
            self.power_profile = text(config, "Profile");
        }
    }

    fn read_pools(&mut self, reply: &Reply) {
        let Some(pools) = reply.usable("pools") else {
            return;
        };
        for (i, p) in pools.records("POOLS").iter().enumerate() {
            let Some(p) = p.as_object() else { continue };
            let Some(url) = text(p, "URL") else { continue };
            let state = match text(p, "Status").as_deref() {
                Some("Alive") => PoolState::Alive,
                Some("Dead") => PoolState::Dead,
                Some("Disabled") => PoolState::Disabled,
                other => PoolState::Other(other.unwrap_or_default().to_string()),
            };
            self.pools.push(PoolStatus {
                index: small(p.get("POOL")).unwrap_or(i as u32),
                url,
                user: text(p, "User").unwrap_or_default(),
                state,
                priority: small(p.get("Priority")),
                stratum_active: p
                    .get("Stratum Active")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                accepted: count(p.get("Accepted")).unwrap_or(0),
                rejected: count(p.get("Rejected")).unwrap_or(0),
                stale: count(p.get("Stale")).unwrap_or(0),
                last_share: last_share(p.get("Last Share Time")),
            });
        }
    }
}

fn firmware_from_description(description: &str) -> FirmwareKind {
    let d = description.to_ascii_lowercase();
    if d.starts_with("bosminer") || d.starts_with("boser") {
        FirmwareKind::Bosminer
    } else if d.starts_with("bmminer") {
        FirmwareKind::Bmminer
    } else if d.starts_with("luxminer") {
        FirmwareKind::Luxos
    } else if d.starts_with("cgminer") {
        FirmwareKind::Cgminer
    } else {
        FirmwareKind::Unknown
    }
}

/// 0 means "never"; a `H:MM:SS` string is old bmminer's time since the share.
fn last_share(v: Option<&Value>) -> Option<LastShare> {
    if let Some(Value::String(s)) = v
        && s.contains(':')
    {
        let parts: Vec<u64> = s.split(':').filter_map(|p| p.trim().parse().ok()).collect();
        return match parts.as_slice() {
            [h, m, sec] => h
                .checked_mul(3600)
                .and_then(|h| h.checked_add(m.checked_mul(60)?))
                .and_then(|t| t.checked_add(*sec))
                .map(|t| LastShare::Ago(Duration::from_secs(t))),
            _ => None,
        };
    }
    count(v).filter(|t| *t > 0).map(LastShare::At)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_normalise() {
        let ghs = Hashrate::from_unit(13500.0, "GHS").unwrap();
        let mhs = Hashrate::from_unit(13_500_000.0, "MH").unwrap();
        assert_eq!(ghs, mhs);
        assert!((ghs.terahashes() - 13.5).abs() < 1e-9);
        assert_eq!(Hashrate::from_unit(1.0, "XH"), None);
        assert_eq!(Hashrate::from_unit(f64::NAN, "GH"), None);
    }

    #[test]
    fn last_share_forms() {
        assert_eq!(
            last_share(Some(&Value::from(1730228000u64))),
            Some(LastShare::At(1730228000))
        );
        assert_eq!(last_share(Some(&Value::from(0))), None);
        assert_eq!(
            last_share(Some(&Value::from("0:01:05"))),
            Some(LastShare::Ago(Duration::from_secs(65)))
        );
    }

    #[test]
    fn temperature_lists_drop_absent_sensors() {
        assert_eq!(
            temperature_list(Some(&Value::from("63-59-0-61"))),
            vec![63.0, 59.0, 61.0]
        );
        assert_eq!(temperature_list(Some(&Value::from(57.5))), vec![57.5]);
    }
}
