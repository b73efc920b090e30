//! BOSminer's extra read commands: `fans`, `temps` and `tunerstatus` (power limit and the
//! autotuner's estimate of what the miner draws), shaped like the captured BOSminer+ replies.

use serde_json::json;

use super::code;
use crate::miner::render::{Record, Section};
use crate::miner::report::Report;

pub fn fans(report: &Report) -> Section {
    let records: Vec<Record> = report
        .reading
        .fan_rpm
        .iter()
        .enumerate()
        .map(|(i, rpm)| {
            vec![
                ("FANS", i.into()),
                ("ID", i.into()),
                ("RPM", (*rpm).into()),
                ("Speed", report.reading.fan_pwm.into()),
            ]
        })
        .map(Record::from)
        .collect();
    let msg = format!("{} Fan(s)", records.len());
    Section::ok(code::FANS, msg, "FANS", records)
}

pub fn temps(report: &Report) -> Section {
    let records: Vec<Record> = report
        .personality
        .hardware()
        .chains
        .iter()
        .enumerate()
        .map(|(b, chain)| {
            vec![
                ("TEMPS", b.into()),
                ("ID", (*chain).into()),
                ("Board", json!(report.reading.pcb_temp_c[b])),
                ("Chip", json!(report.reading.chip_temp_c[b])),
            ]
        })
        .map(Record::from)
        .collect();
    let msg = format!("{} Temp(s)", records.len());
    Section::ok(code::TEMPS, msg, "TEMPS", records)
}

pub fn tunerstatus(report: &Report) -> Section {
    let chains = report.personality.hardware().chains;
    let miner_w = report.reading.power_w.round() as u64;
    // The boards draw what the control board, fans and PSU losses leave of the total.
    let chain_w = (report.reading.power_w - report.personality.hardware().idle_w).max(0.0);
    let per_chain = (chain_w / chains.len() as f64).round() as u64;
    let limit = report.power_target_w.round() as u64;
    let status = if report.sleeping {
        "Paused"
    } else {
        "Tuning individual chips"
    };
    let chain_status: Vec<serde_json::Value> = chains
        .iter()
        .map(|chain| {
            json!({
                "ApproximatePowerConsumptionWatt": if report.sleeping { 0 } else { per_chain },
                "HashchainIndex": chain,
                "Iteration": 0,
                "LoadedProfile": true,
                "PowerLimitWatt": limit,
                "StageElapsed": 0,
                "Status": status,
            })
        })
        .collect();
    let record: Record = vec![
        (
            "ApproximateChainPowerConsumption",
            (chain_w.round() as u64).into(),
        ),
        ("ApproximateMinerPowerConsumption", miner_w.into()),
        ("DynamicPowerScaling", "Disabled".into()),
        ("PowerLimit", limit.into()),
        ("TunerChainStatus", chain_status.into()),
        ("TunerMode", "PowerTarget".into()),
        ("TunerRunning", (!report.sleeping).into()),
    ]
    .into();
    Section::ok(
        code::TUNER_STATUS,
        "Tuner Status",
        "TUNERSTATUS",
        vec![record],
    )
}
