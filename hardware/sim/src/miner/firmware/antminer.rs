//! Stock Antminer firmware (bmminer): the `version` record that names the model, and `stats`,
//! whose second record carries everything per chain (`chain_rateN`, `chain_acnN`, the
//! `chain_acsN` chip map, temperatures, `fanN`) and which bmminer writes as `{…}{…}`.

use serde_json::json;

use super::round2;
use crate::miner::model::{Firmware, Personality};
use crate::miner::render::{Record, Section};
use crate::miner::report::Report;

/// What the real firmware images report (S9: the 2017 image; S19 Pro: a 2022 image).
fn build(personality: Personality) -> (&'static str, &'static str, &'static str) {
    match personality {
        Personality::S9Bmminer => ("2.0.0", "16.8.1.3", "Fri Nov 17 17:37:49 CST 2017"),
        _ => ("1.0.0", "49.0.1.3", "Tue Feb 22 18:07:33 CST 2022"),
    }
}

pub fn version_record(report: &Report) -> Record {
    let (bmminer, miner, compiled) = build(report.personality);
    vec![
        ("BMMiner", bmminer.into()),
        ("API", "3.1".into()),
        ("Miner", miner.into()),
        ("CompileTime", compiled.into()),
        ("Type", report.personality.hardware().name.into()),
    ]
    .into()
}

/// `" oooooooo oooooooo …"`: one `o` per answering chip, in groups of eight.
fn chip_map(chips: u32) -> String {
    let mut map = String::new();
    for c in 0..chips {
        if c % 8 == 0 {
            map.push(' ');
        }
        map.push('o');
    }
    map
}

/// Four sensors per board as `a-b-c-d`, spread around the board's figure so that every
/// pairing a reader averages (all four, the outer or the inner two) gives it back.
fn sensor_list(center: f64) -> String {
    let c = center.round() as i64;
    format!("{}-{}-{}-{}", c - 2, c + 1, c - 1, c + 2)
}

pub fn stats(report: &Report) -> Section {
    let (bmminer, miner, compiled) = build(report.personality);
    let program = match report.personality.firmware() {
        Firmware::Luxos => ("LUXminer", "2024.5.1.155017-f6a1de7"),
        _ => ("BMMiner", bmminer),
    };
    let head: Record = vec![
        (program.0, program.1.into()),
        ("Miner", miner.into()),
        ("CompileTime", compiled.into()),
        ("Type", report.personality.hardware().name.into()),
    ]
    .into();
    let body = match report.personality {
        Personality::S9Bmminer => s9_record(report),
        _ => modern_record(report),
    };
    Section::ok(70, "CGMiner stats", "STATS", vec![head, body])
}

fn timing(report: &Report, id: &'static str) -> Record {
    vec![
        ("STATS", 0.into()),
        ("ID", id.into()),
        ("Elapsed", report.uptime_s.into()),
        ("Calls", 0.into()),
        ("Wait", json!(0.0)),
        ("Max", json!(0.0)),
        ("Min", json!(99999999.0)),
        (
            "GHS 5s",
            format!("{:.2}", report.hashrate_5s_ths * 1e3).into(),
        ),
        ("GHS av", round2(report.hashrate_av_ths * 1e3)),
    ]
    .into()
}

/// The S9 layout: eight chain slots of which 6, 7 and 8 carry boards, eight fan slots.
fn s9_record(report: &Report) -> Record {
    let hardware = report.personality.hardware();
    let board_of = |slot: u32| hardware.chains.iter().position(|c| *c == slot);
    let mut r = timing(report, "BC50");
    r.extend([
        ("miner_count", hardware.chains.len().into()),
        ("frequency", report.frequency_mhz.to_string().into()),
        ("fan_num", hardware.fan_slots.len().into()),
    ]);
    for slot in 1..=8u32 {
        let rpm = hardware
            .fan_slots
            .iter()
            .position(|s| *s == slot)
            .map_or(0, |f| report.reading.fan_rpm[f]);
        r.push(format!("fan{slot}"), rpm.into());
    }
    r.push("temp_num", hardware.chains.len().into());
    for slot in 1..=8u32 {
        let t = board_of(slot).map_or(0, |b| report.reading.pcb_temp_c[b].round() as i64);
        r.push(format!("temp{slot}"), t.into());
    }
    for &chain in hardware.chains {
        let b = board_of(chain).unwrap_or(0);
        let chip = report.reading.chip_temp_c[b].round() as i64;
        r.push(format!("temp2_{chain}"), chip.into());
    }
    let max_pcb = report
        .reading
        .pcb_temp_c
        .iter()
        .cloned()
        .fold(0.0, f64::max);
    r.extend([
        ("temp_max", (max_pcb.round() as i64).into()),
        ("Device Hardware%", json!(0.0)),
        ("no_matching_work", report.hw_errors().into()),
    ]);
    for slot in 1..=8u32 {
        let chips = board_of(slot).map_or(0, |_| hardware.chips_per_board);
        r.push(format!("chain_acn{slot}"), chips.into());
    }
    chain_detail(report, &mut r);
    totals(report, &mut r);
    r
}

/// The S19 layout: chains 1–3 plus an empty fourth slot, four fans, per-sensor strings.
fn modern_record(report: &Report) -> Record {
    let hardware = report.personality.hardware();
    let mut r = timing(report, "BTM_SOC0");
    r.extend([
        ("rate_30m", round2(report.hashrate_av_ths * 1e3)),
        ("Mode", 2.into()),
        ("miner_count", hardware.chains.len().into()),
        ("frequency", report.frequency_mhz.into()),
        ("fan_num", hardware.fan_slots.len().into()),
    ]);
    // modern Antminer firmware numbers its fans from 1, whatever the fan controller's ids
    for (f, rpm) in report.reading.fan_rpm.iter().enumerate() {
        r.push(format!("fan{}", f + 1), (*rpm).into());
    }
    r.push("fan_pwm", report.reading.fan_pwm.into());
    r.push("temp_num", hardware.chains.len().into());
    for (b, chain) in hardware.chains.iter().enumerate() {
        let pcb = report.reading.pcb_temp_c[b].round() as i64;
        r.push(format!("temp{chain}"), pcb.into());
    }
    for (b, chain) in hardware.chains.iter().enumerate() {
        let chip = report.reading.chip_temp_c[b].round() as i64;
        r.push(format!("temp2_{chain}"), chip.into());
    }
    let empty_slot = hardware.chains.len() as u32 + 1;
    for (b, chain) in hardware.chains.iter().enumerate() {
        let pcb = sensor_list(report.reading.pcb_temp_c[b]);
        r.push(format!("temp_pcb{chain}"), pcb.into());
    }
    r.push(format!("temp_pcb{empty_slot}"), "0-0-0-0".into());
    for (b, chain) in hardware.chains.iter().enumerate() {
        let chip = sensor_list(report.reading.chip_temp_c[b]);
        r.push(format!("temp_chip{chain}"), chip.into());
    }
    r.push(format!("temp_chip{empty_slot}"), "0-0-0-0".into());
    for (b, chain) in hardware.chains.iter().enumerate() {
        let pic = sensor_list(report.reading.pcb_temp_c[b] + 3.0);
        r.push(format!("temp_pic{chain}"), pic.into());
    }
    r.push(format!("temp_pic{empty_slot}"), "0-0-0-0".into());
    for &chain in hardware.chains {
        r.push(format!("chain_acn{chain}"), hardware.chips_per_board.into());
    }
    r.push(format!("chain_acn{empty_slot}"), 0.into());
    chain_detail(report, &mut r);
    r.push(format!("chain_acs{empty_slot}"), "".into());
    r.push(format!("chain_rate{empty_slot}"), "".into());
    let boards = hardware.chains.len() as f64;
    for (b, chain) in hardware.chains.iter().enumerate() {
        let watts = (report.reading.power_w - hardware.idle_w).max(0.0) / boards;
        r.push(
            format!("chain_consumption{chain}"),
            (watts.round() as u64).into(),
        );
        r.push(format!("chain_vol{chain}"), (1320 + 10 * b as u64).into());
        r.push(format!("chain_offside_{chain}"), "0".into());
        r.push(format!("chain_opencore_{chain}"), "1".into());
        r.push(format!("chain_xtime{chain}"), "{}".into());
    }
    let max_chip = report
        .reading
        .chip_temp_c
        .iter()
        .cloned()
        .fold(0.0, f64::max);
    r.extend([
        ("temp_max", (max_chip.round() as i64).into()),
        ("Device Hardware%", json!(0.0)),
        ("no_matching_work", report.hw_errors().into()),
    ]);
    totals(report, &mut r);
    r.extend([
        ("miner_version", build(report.personality).1.into()),
        ("miner_id", report.unit_id.clone().into()),
    ]);
    r
}

fn chain_detail(report: &Report, r: &mut Record) {
    let hardware = report.personality.hardware();
    for &chain in hardware.chains {
        r.push(
            format!("chain_acs{chain}"),
            chip_map(hardware.chips_per_board).into(),
        );
    }
    for (b, chain) in hardware.chains.iter().enumerate() {
        r.push(
            format!("chain_hw{chain}"),
            report.hw_errors_per_board[b].into(),
        );
    }
    for (b, chain) in hardware.chains.iter().enumerate() {
        let ghs = report.reading.board_ths[b] * 1e3;
        r.push(format!("chain_rate{chain}"), format!("{ghs:.2}").into());
    }
    for &chain in hardware.chains {
        r.push(format!("freq{chain}"), report.frequency_mhz.into());
    }
}

fn totals(report: &Report, r: &mut Record) {
    let hardware = report.personality.hardware();
    let chips = hardware.chips_per_board * hardware.chains.len() as u32;
    r.extend([
        ("total_rateideal", round2(report.hashrate_ideal_ths * 1e3)),
        ("rate_unit", "GH".into()),
        ("total_freqavg", json!(report.frequency_mhz as f64)),
        ("total_acn", chips.into()),
        ("total_rate", round2(report.hashrate_av_ths * 1e3)),
    ]);
}
