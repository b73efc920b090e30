//! LuxOS (LUXminer) extras: its power profiles (`profiles`, the active one in `config`), the
//! wall power (`power`), `fans` with the fan controller, `tempctrl`, pool `groups`, `atm` and
//! the `session` a client opens with `logon` before privileged commands.

use serde_json::json;

use super::code;
use crate::miner::model::HardwareModel;
use crate::miner::physics::{UnitTraits, hashrate_at};
use crate::miner::render::{Record, Section};
use crate::miner::report::Report;

/// One LuxOS power profile: a frequency step with the power it draws.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerProfile {
    pub name: String,
    pub watts: f64,
    pub frequency_mhz: u32,
    pub voltage: f64,
}

/// The profiles of a model: `default` at the nominal point, and steps of 8 % power down
/// (`-1`, `-2`…) and up (`+1`, `+2`) inside the model's range.
pub fn profiles(hardware: &HardwareModel) -> Vec<PowerProfile> {
    (-6i32..=2)
        .map(|step| {
            let scale = 1.0 + 0.08 * f64::from(step);
            PowerProfile {
                name: if step == 0 {
                    "default".to_string()
                } else {
                    format!("{step:+}")
                },
                watts: (hardware.nominal_w * scale).round(),
                frequency_mhz: (f64::from(hardware.frequency_mhz) * scale.powf(0.8)).round() as u32,
                voltage: ((13.4 + 1.2 * (scale - 1.0)) * 100.0).round() / 100.0,
            }
        })
        .filter(|p| p.watts >= hardware.min_power_w && p.watts <= hardware.max_power_w)
        .collect()
}

/// The profile a power target means: the highest one at or below it (the lowest if none is).
pub fn profile_for(hardware: &HardwareModel, watts: f64) -> PowerProfile {
    let all = profiles(hardware);
    all.iter()
        .filter(|p| p.watts <= watts)
        .max_by(|a, b| a.watts.total_cmp(&b.watts))
        .or_else(|| all.first())
        .cloned()
        .expect("every model has profiles in its range")
}

fn active_profile(report: &Report) -> PowerProfile {
    profile_for(report.personality.hardware(), report.power_target_w)
}

pub fn profiles_section(report: &Report) -> Section {
    let hardware = report.personality.hardware();
    let nominal = UnitTraits::nominal(hardware.chains.len());
    let records: Vec<Record> = profiles(hardware)
        .into_iter()
        .map(|p| {
            vec![
                ("Profile Name", p.name.clone().into()),
                ("Frequency", p.frequency_mhz.into()),
                ("Voltage", json!(p.voltage)),
                ("Watts", (p.watts as u64).into()),
                (
                    "Hashrate",
                    json!((hashrate_at(hardware, &nominal, p.watts) * 100.0).round() / 100.0),
                ),
                ("IsTuned", true.into()),
                ("IsDynamic", false.into()),
                ("Step", "0".into()),
            ]
        })
        .map(Record::from)
        .collect();
    let msg = format!("{} profile(s)", records.len());
    Section::ok(code::LUXOS_PROFILES, msg, "PROFILES", records)
}

pub fn config(report: &Report) -> Section {
    let record: Record = vec![
        (
            "ASC Count",
            report.personality.hardware().chains.len().into(),
        ),
        ("PGA Count", 0.into()),
        ("Pool Count", report.pools.len().into()),
        ("Strategy", "Failover".into()),
        ("Log Interval", 5.into()),
        ("Device Code", "".into()),
        ("OS", "Linux".into()),
        ("Profile", active_profile(report).name.into()),
        ("IsAtmEnabled", false.into()),
        ("IsTuning", false.into()),
        ("IsPowerLimitEnabled", false.into()),
        (
            "CurtailMode",
            if report.sleeping { "sleep" } else { "None" }.into(),
        ),
        ("RedLed", "off".into()),
        ("GreenLed", "on".into()),
        ("MACAddr", mac(&report.unit_id).into()),
        ("Hostname", "luxos".into()),
        ("Model", report.personality.hardware().name.into()),
        ("SerialNumber", report.unit_id.to_uppercase().into()),
    ]
    .into();
    Section::ok(
        code::LUXOS_CONFIG,
        "LUXminer config",
        "CONFIG",
        vec![record],
    )
}

/// A locally administered MAC from the unit's serial.
fn mac(unit_id: &str) -> String {
    let bytes: Vec<String> = unit_id
        .as_bytes()
        .chunks(2)
        .take(5)
        .map(|pair| String::from_utf8_lossy(pair).to_string())
        .collect();
    format!("02:{}", bytes.join(":"))
}

pub fn power(report: &Report) -> Section {
    let record: Record = vec![
        ("Watts", (report.reading.power_w.round() as u64).into()),
        ("PSU", true.into()),
    ]
    .into();
    Section::ok(code::LUXOS_POWER, "Power", "POWER", vec![record])
}

pub fn fans(report: &Report) -> Section {
    let fans: Vec<Record> = report
        .reading
        .fan_rpm
        .iter()
        .enumerate()
        .map(|(i, rpm)| {
            vec![
                ("ID", i.into()),
                ("RPM", (*rpm).into()),
                ("Speed", report.reading.fan_pwm.into()),
            ]
        })
        .map(Record::from)
        .collect();
    let mut section = Section::ok(code::FANS, format!("{} Fan(s)", fans.len()), "FANS", fans);
    section.extra = Some((
        "FANCTRL",
        vec![
            vec![
                ("Mode", "Auto".into()),
                ("MinFans", report.reading.fan_rpm.len().into()),
                ("PowerOffSpeed", 100.into()),
            ]
            .into(),
        ],
    ));
    section
}

pub fn tempctrl() -> Section {
    let record: Record = vec![
        ("Mode", "Auto".into()),
        ("Target", 75.into()),
        ("Hot", 85.into()),
        ("Dangerous", 95.into()),
    ]
    .into();
    Section::ok(
        code::LUXOS_TEMPCTRL,
        "Temp control",
        "TEMPCTRL",
        vec![record],
    )
}

pub fn groups() -> Section {
    let record: Record = vec![
        ("GROUP", 0.into()),
        ("Name", "Default".into()),
        ("Quota", 1.into()),
        ("Strategy", "Failover".into()),
    ]
    .into();
    Section::ok(code::LUXOS_GROUPS, "1 Group(s)", "GROUPS", vec![record])
}

pub fn atm() -> Section {
    let record: Record = vec![
        ("Enabled", false.into()),
        ("MaxProfile", "default".into()),
        ("MinProfile", "-6".into()),
        ("PostRampMinutes", 15.into()),
        ("StartupMinutes", 15.into()),
        ("TempWindow", 5.into()),
    ]
    .into();
    Section::ok(code::LUXOS_ATM, "ATM configuration", "ATM", vec![record])
}

/// `session` / `logon`: the open session's id, empty when none is open.
pub fn session(session_id: Option<&str>) -> Section {
    let record: Record = vec![("SessionID", session_id.unwrap_or_default().into())].into();
    Section::ok(code::LUXOS_SESSION, "Session", "SESSION", vec![record])
}
