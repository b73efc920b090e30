//! The firmware personalities: how bmminer (stock Antminer), BOSminer (Braiins OS) and plain
//! cgminer answer the read commands, shaped like the captured replies in
//! services/minerd/tests/fixtures and what pyasic reads. The numbers all come from one
//! [`Report`], so the replies agree with each other and with the miner's Stratum client.

mod antminer;
mod bosminer;
pub mod luxos;

use serde_json::{Value, json};

use super::model::{Firmware, Personality};
use super::render::{Record, Section};
use super::report::{PoolReport, Report};

/// cgminer `api.c` message codes.
pub mod code {
    pub const POOL: u32 = 7;
    pub const DEVS: u32 = 9;
    pub const SUMMARY: u32 = 11;
    pub const INVALID_COMMAND: u32 = 14;
    pub const MISSING_POOL_ID: u32 = 15;
    pub const INVALID_POOL_ID: u32 = 16;
    pub const VERSION: u32 = 22;
    pub const SWITCH_POOL: u32 = 27;
    pub const ACCESS_DENIED: u32 = 45;
    pub const ENABLE_POOL: u32 = 47;
    pub const DISABLE_POOL: u32 = 48;
    pub const ALREADY_ENABLED: u32 = 49;
    pub const ALREADY_DISABLED: u32 = 50;
    pub const DISABLE_LAST_POOL: u32 = 51;
    pub const MISSING_ADDPOOL_DETAILS: u32 = 52;
    pub const INVALID_ADDPOOL_DETAILS: u32 = 53;
    pub const ADD_POOL: u32 = 55;
    pub const REMOVE_LAST_POOL: u32 = 66;
    pub const REMOVE_ACTIVE_POOL: u32 = 67;
    pub const REMOVE_POOL: u32 = 68;
    pub const DEVDETAILS: u32 = 69;
    pub const STATS: u32 = 70;
    /// BOSminer extras.
    pub const TEMPS: u32 = 201;
    pub const FANS: u32 = 202;
    pub const TUNER_STATUS: u32 = 203;
    pub const PAUSE: u32 = 204;
    pub const RESUME: u32 = 205;
    /// LuxOS extras (numbers not taken from a capture).
    pub const LUXOS_CONFIG: u32 = 33;
    pub const LUXOS_PROFILES: u32 = 301;
    pub const LUXOS_POWER: u32 = 302;
    pub const LUXOS_TEMPCTRL: u32 = 303;
    pub const LUXOS_GROUPS: u32 = 304;
    pub const LUXOS_ATM: u32 = 305;
    pub const LUXOS_SESSION: u32 = 306;
    pub const LUXOS_PROFILE_SET: u32 = 307;
    pub const LUXOS_CURTAIL: u32 = 308;
    pub const LUXOS_INVALID_SESSION: u32 = 309;
}

/// The firmware's self-description in every STATUS.
pub fn description(personality: Personality) -> &'static str {
    match personality.firmware() {
        Firmware::Bmminer => "bmminer 1.0.0",
        Firmware::Bosminer => "BOSminer+ 0.2.0-36c56a9363",
        Firmware::Luxos => "LUXminer 2024.5.1.155017-f6a1de7",
        Firmware::Cgminer => "cgminer 4.11.1",
    }
}

/// The answer to a read-only command, or `None` if this firmware does not know it.
pub fn read_command(report: &Report, command: &str) -> Option<Section> {
    let firmware = report.personality.firmware();
    let section = match command {
        "version" => version(report),
        "summary" => summary(report),
        "pools" => pools(report),
        "devs" => devs(report),
        "devdetails" => devdetails(report),
        "stats" => match firmware {
            Firmware::Bmminer => antminer::stats(report).concatenated(),
            Firmware::Luxos => antminer::stats(report),
            Firmware::Bosminer | Firmware::Cgminer => device_stats(report),
        },
        "fans" if firmware == Firmware::Luxos => luxos::fans(report),
        "config" if firmware == Firmware::Luxos => luxos::config(report),
        "profiles" if firmware == Firmware::Luxos => luxos::profiles_section(report),
        "power" if firmware == Firmware::Luxos => luxos::power(report),
        "tempctrl" if firmware == Firmware::Luxos => luxos::tempctrl(),
        "groups" if firmware == Firmware::Luxos => luxos::groups(),
        "atm" if firmware == Firmware::Luxos => luxos::atm(),
        "session" if firmware == Firmware::Luxos => luxos::session(report.session_id.as_deref()),
        "fans" if firmware == Firmware::Bosminer => bosminer::fans(report),
        "temps" if firmware == Firmware::Bosminer => bosminer::temps(report),
        "tunerstatus" if firmware == Firmware::Bosminer => bosminer::tunerstatus(report),
        _ => return None,
    };
    Some(section)
}

/// Commands that only read, which cgminer lets a `+` join combine.
pub fn is_joinable(firmware: Firmware, command: &str) -> bool {
    match command {
        "version" | "summary" | "pools" | "devs" | "devdetails" | "stats" => true,
        "fans" => matches!(firmware, Firmware::Bosminer | Firmware::Luxos),
        "temps" | "tunerstatus" => firmware == Firmware::Bosminer,
        "config" | "profiles" | "power" | "tempctrl" | "groups" | "atm" | "session" => {
            firmware == Firmware::Luxos
        }
        _ => false,
    }
}

fn version(report: &Report) -> Section {
    let (msg, record): (&str, Record) = match report.personality {
        Personality::S9Bmminer | Personality::S19ProBmminer => {
            ("BMMiner versions", antminer::version_record(report))
        }
        Personality::S9Bosminer | Personality::S19jProBosminer => (
            "BOSminer+ versions",
            vec![
                ("BOSminer+", "0.2.0-36c56a9363".into()),
                ("API", "3.7".into()),
            ]
            .into(),
        ),
        Personality::S19jProLuxos => (
            "LUXminer versions",
            vec![
                ("LUXminer", "2024.5.1.155017-f6a1de7".into()),
                ("API", "3.7".into()),
                ("Miner", "2024.5.1.155017-f6a1de7".into()),
                ("CompileTime", "Wed May 1 15:50:17 UTC 2024".into()),
                ("Type", report.personality.hardware().name.into()),
            ]
            .into(),
        ),
        Personality::Cgminer => (
            "CGMiner versions",
            vec![("CGMiner", "4.11.1".into()), ("API", "3.7".into())].into(),
        ),
    };
    Section::ok(code::VERSION, msg, "VERSION", vec![record])
}

/// Hashrate keys in the firmware's unit: bmminer GH/s (the 5 s figure as a string, as real
/// bmminer writes it), BOSminer and cgminer MH/s.
fn hashrate_keys(firmware: Firmware, five_s_ths: f64, av_ths: f64) -> Vec<(&'static str, Value)> {
    match firmware {
        Firmware::Bmminer | Firmware::Luxos => vec![
            ("GHS 5s", format!("{:.2}", five_s_ths * 1e3).into()),
            ("GHS av", round2(av_ths * 1e3)),
            ("GHS 30m", round2(av_ths * 1e3)),
        ],
        Firmware::Bosminer | Firmware::Cgminer => vec![
            ("MHS av", round2(av_ths * 1e6)),
            ("MHS 5s", round2(five_s_ths * 1e6)),
            ("MHS 1m", round2(av_ths * 1e6)),
            ("MHS 15m", round2(av_ths * 1e6)),
        ],
    }
}

pub(crate) fn round2(v: f64) -> Value {
    json!((v * 100.0).round() / 100.0)
}

fn percent(part: u64, whole: u64) -> Value {
    if whole == 0 {
        json!(0.0)
    } else {
        round2(part as f64 * 100.0 / whole as f64)
    }
}

fn summary(report: &Report) -> Section {
    let firmware = report.personality.firmware();
    let (accepted, rejected, stale) = (report.accepted(), report.rejected(), report.stale());
    let shares = accepted + rejected + stale;
    let minutes = (report.uptime_s as f64 / 60.0).max(1.0 / 60.0);
    let mut record: Record = vec![("Elapsed", report.uptime_s.into())].into();
    record.extend(hashrate_keys(
        firmware,
        report.hashrate_5s_ths,
        report.hashrate_av_ths,
    ));
    record.extend([
        ("Found Blocks", 0.into()),
        ("Getworks", shares.into()),
        ("Accepted", accepted.into()),
        ("Rejected", rejected.into()),
        ("Hardware Errors", report.hw_errors().into()),
        ("Utility", round2(accepted as f64 / minutes)),
        ("Discarded", 0.into()),
        ("Stale", stale.into()),
        ("Get Failures", 0.into()),
        ("Local Work", 0.into()),
        ("Remote Failures", 0.into()),
        ("Network Blocks", (report.uptime_s / 600).into()),
        (
            "Total MH",
            round2(report.hashrate_av_ths * 1e6 * report.uptime_s as f64),
        ),
        (
            "Work Utility",
            round2(report.difficulty_accepted() / minutes),
        ),
        ("Difficulty Accepted", json!(report.difficulty_accepted())),
        ("Difficulty Rejected", json!(0.0)),
        ("Difficulty Stale", json!(0.0)),
        ("Best Share", 0.into()),
        ("Device Hardware%", json!(0.0)),
        ("Device Rejected%", percent(rejected, shares)),
        ("Pool Rejected%", percent(rejected, shares)),
        ("Pool Stale%", percent(stale, shares)),
        ("Last getwork", report.last_share_unix().into()),
    ]);
    Section::ok(code::SUMMARY, "Summary", "SUMMARY", vec![record])
}

/// bmminer writes the time since the last share as `H:MM:SS`; BOSminer and cgminer a Unix time.
fn last_share_time(firmware: Firmware, pool: &PoolReport, now: u64) -> Value {
    match firmware {
        Firmware::Bmminer if pool.last_share_unix > 0 => {
            let ago = now.saturating_sub(pool.last_share_unix);
            format!("{}:{:02}:{:02}", ago / 3600, ago / 60 % 60, ago % 60).into()
        }
        Firmware::Bmminer => "0".into(),
        Firmware::Bosminer | Firmware::Luxos | Firmware::Cgminer => pool.last_share_unix.into(),
    }
}

fn stratum_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', ':'])
        .next()
        .unwrap_or_default()
        .to_string()
}

fn pools(report: &Report) -> Section {
    let firmware = report.personality.firmware();
    let records: Vec<Record> = report
        .pools
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let shares = p.accepted + p.rejected + p.stale;
            let mut record: Record = vec![
                ("POOL", i.into()),
                ("URL", p.url.clone().into()),
                ("Status", p.status.as_str().into()),
                ("Priority", p.priority.into()),
                ("Quota", 1.into()),
                ("Long Poll", "N".into()),
                ("Getworks", shares.into()),
                ("Accepted", p.accepted.into()),
                ("Rejected", p.rejected.into()),
                ("Discarded", 0.into()),
                ("Stale", p.stale.into()),
                ("Get Failures", 0.into()),
                ("Remote Failures", 0.into()),
                ("User", p.user.clone().into()),
                (
                    "Last Share Time",
                    last_share_time(firmware, p, report.when_unix),
                ),
                ("Diff1 Shares", 0.into()),
                ("Proxy Type", "".into()),
                ("Proxy", "".into()),
                (
                    "Difficulty Accepted",
                    json!(p.accepted as f64 * p.difficulty),
                ),
                (
                    "Difficulty Rejected",
                    json!(p.rejected as f64 * p.difficulty),
                ),
                ("Difficulty Stale", json!(0.0)),
                ("Last Share Difficulty", json!(p.difficulty)),
                ("Has Stratum", true.into()),
                ("Stratum Active", p.stratum_active.into()),
                (
                    "Stratum URL",
                    if p.stratum_active {
                        stratum_host(&p.url)
                    } else {
                        String::new()
                    }
                    .into(),
                ),
                ("Has GBT", false.into()),
                ("Best Share", 0.into()),
                ("Pool Rejected%", percent(p.rejected, shares)),
                ("Pool Stale%", percent(p.stale, shares)),
            ]
            .into();
            if firmware == Firmware::Luxos {
                // LuxOS lists pools by failover group
                record.extend([("GROUP", 0.into()), ("GROUP Name", "Default".into())]);
            }
            record
        })
        .collect();
    let msg = format!("{} Pool(s)", records.len());
    Section::ok(code::POOL, msg, "POOLS", records)
}

/// One `devs` entry per hash board.
fn devs(report: &Report) -> Section {
    let firmware = report.personality.firmware();
    let chains = report.personality.hardware().chains;
    let boards = chains.len().max(1) as f64;
    let records: Vec<Record> = chains
        .iter()
        .enumerate()
        .map(|(i, chain)| {
            let ths = report.reading.board_ths[i];
            let av_ths = report.hashrate_av_ths / boards;
            let mut record: Record = vec![
                ("ASC", i.into()),
                ("Name", device_name(firmware).into()),
                ("ID", (*chain).into()),
                ("Enabled", "Y".into()),
                (
                    "Status",
                    if report.sleeping { "Idle" } else { "Alive" }.into(),
                ),
                (
                    "Temperature",
                    match firmware {
                        Firmware::Bosminer => json!(0.0),
                        _ => round2(report.reading.chip_temp_c[i]),
                    },
                ),
                ("MHS av", round2(av_ths * 1e6)),
                ("MHS 5s", round2(ths * 1e6)),
                ("MHS 1m", round2(ths * 1e6)),
                ("MHS 15m", round2(av_ths * 1e6)),
            ]
            .into();
            record.extend([
                ("Accepted", (report.accepted() / boards as u64).into()),
                ("Rejected", (report.rejected() / boards as u64).into()),
                ("Hardware Errors", report.hw_errors_per_board[i].into()),
                ("Utility", json!(0.0)),
                ("Last Share Pool", 0.into()),
                ("Last Share Time", report.last_share_unix().into()),
                ("Total MH", round2(av_ths * 1e6 * report.uptime_s as f64)),
                ("Diff1 Work", 0.into()),
                ("Device Hardware%", json!(0.0)),
                ("Device Rejected%", json!(0.0)),
                ("Device Elapsed", report.uptime_s.into()),
            ]);
            record
        })
        .collect();
    let msg = format!("{} ASC(s)", records.len());
    Section::ok(code::DEVS, msg, "DEVS", records)
}

fn device_name(firmware: Firmware) -> &'static str {
    match firmware {
        Firmware::Bmminer => "BC5",
        Firmware::Bosminer => "",
        Firmware::Luxos => "LUX",
        Firmware::Cgminer => "GSF",
    }
}

fn devdetails(report: &Report) -> Section {
    let firmware = report.personality.firmware();
    let hardware = report.personality.hardware();
    let records: Vec<Record> = hardware
        .chains
        .iter()
        .enumerate()
        .map(|(i, chain)| {
            let (driver, model) = match firmware {
                Firmware::Bmminer => ("bitmain", ""),
                Firmware::Bosminer | Firmware::Luxos => ("", hardware.name),
                Firmware::Cgminer => ("gekko", hardware.name),
            };
            vec![
                ("DEVDETAILS", i.into()),
                ("Name", device_name(firmware).into()),
                ("ID", (*chain).into()),
                ("Driver", driver.into()),
                ("Kernel", "".into()),
                ("Model", model.into()),
                ("Chips", hardware.chips_per_board.into()),
                ("Cores", (hardware.chips_per_board * 112).into()),
                ("Frequency", json!(report.frequency_mhz as f64)),
                ("Voltage", json!(8.8)),
                ("Device Path", "".into()),
            ]
        })
        .map(Record::from)
        .collect();
    Section::ok(code::DEVDETAILS, "Device Details", "DEVDETAILS", records)
}

/// cgminer's and BOSminer's `stats`: one timing record per device, no chain keys.
fn device_stats(report: &Report) -> Section {
    let firmware = report.personality.firmware();
    let records: Vec<Record> = report
        .personality
        .hardware()
        .chains
        .iter()
        .enumerate()
        .map(|(i, chain)| {
            vec![
                ("STATS", i.into()),
                ("ID", format!("{}{}", device_name(firmware), chain).into()),
                ("Elapsed", report.uptime_s.into()),
                ("Calls", 0.into()),
                ("Wait", json!(0.0)),
                ("Max", json!(0.0)),
                ("Min", json!(99999999.0)),
            ]
        })
        .map(Record::from)
        .collect();
    Section::ok(code::STATS, "CGMiner stats", "STATS", records)
}
