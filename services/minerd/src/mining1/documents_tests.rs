//! The documents carry every field the Mining1 contract lists, with the contract's names.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::*;
use crate::inventory::MinerId;
use crate::snapshot::BudgetSummary;

fn snapshot() -> MiningSnapshot {
    let mut snapshot = MiningSnapshot::empty(BudgetSummary {
        from_sited: false,
        power_w: 5000.0,
        headroom_c: None,
    });
    snapshot.miners.push(MinerRecord {
        id: MinerId(1),
        addr: SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 2), 4028),
        mac: None,
        serial: Some("S1".into()),
        model: Some("Antminer S19".into()),
        firmware: FirmwareKind::Bmminer,
        firmware_version: None,
        location: "hall A".into(),
        owner: "acme".into(),
        power_target_w: None,
        state: MinerState::Quarantined,
        missed_scans: 0,
        first_seen: 1_700_000_000,
        last_seen: 1_700_000_100,
    });
    snapshot
}

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

fn has_all(value: &Value, expected: &[&str]) {
    let present = keys(value);
    for key in expected {
        assert!(present.contains(key), "`{key}` missing from {value}");
    }
}

#[test]
fn status_has_the_contracts_fields() {
    let doc = status(&snapshot());
    has_all(
        &doc,
        &[
            "miners",
            "hashrate_ths",
            "power_w",
            "efficiency_j_per_th",
            "hottest_chip_c",
            "owners",
            "poll",
            "discovery",
            "proxy",
            "curtailment",
            "hijacks_open",
            "audit",
            "taken_at",
        ],
    );
    has_all(
        &doc["miners"],
        &["total", "up", "down", "sleeping", "quarantined", "missing"],
    );
    assert_eq!(doc["miners"]["quarantined"], 1);
    assert_eq!(doc["hijacks_open"], 0);
    has_all(
        &doc["owners"][0],
        &["owner", "miners", "up", "hashrate_ths", "power_w", "shares"],
    );
    has_all(
        &doc["owners"][0]["shares"],
        &["accepted", "rejected", "stale", "accepted_difficulty"],
    );
    has_all(&doc["proxy"], &["listen", "connected", "upstreams"]);
    has_all(
        &doc["curtailment"],
        &[
            "source",
            "budget_w",
            "headroom_c",
            "effective_budget_w",
            "draw_w",
            "asleep",
            "lowered",
            "shortfall_w",
        ],
    );
    assert_eq!(doc["curtailment"]["source"], "static");
    has_all(&doc["audit"], &["records", "last_sealed_seq"]);
}

#[test]
fn unreadable_findings_are_null_not_zero() {
    let mut broken = snapshot();
    broken.hijacks = Err("disk I/O error".into());
    assert!(status(&broken)["hijacks_open"].is_null());
}

#[test]
fn a_miner_has_the_contracts_fields() {
    let snapshot = snapshot();
    let record = &snapshot.miners[0];
    let summary = miner_summary(record, None);
    has_all(
        &summary,
        &[
            "ip",
            "owner",
            "location",
            "model",
            "firmware",
            "state",
            "up",
            "hashrate_ths",
            "power_w",
            "efficiency_j_per_th",
            "hottest_chip_c",
            "pool",
            "last_poll_at",
            "poll_failure",
        ],
    );
    assert_eq!(summary["ip"], "10.1.0.2");
    assert_eq!(summary["state"], "quarantined");
    assert_eq!(summary["up"], false);
    let detail = miner_detail(record, None, None, Value::Array(Vec::new()), &[]);
    has_all(
        &detail,
        &["boards", "fans", "pools", "proxy", "hijacks", "history"],
    );
    assert_eq!(detail["first_seen_at"], "2023-11-14T22:13:20Z");
}

#[test]
fn findings_have_the_contracts_fields_and_say_if_quarantined() {
    let snapshot = snapshot();
    let finding = StoredFinding {
        id: 1,
        ip: "10.1.0.2".into(),
        owner: "acme".into(),
        kind: "foreign_pool".into(),
        subject: "stratum+tcp://evil:3333".into(),
        severity: "critical".into(),
        sentence: "active pool stratum+tcp://evil:3333 is not sanctioned".into(),
        first_seen: 1_700_000_000,
        last_seen: 1_700_000_060,
        open: true,
        closed_at: None,
        closed_by: None,
        close_note: None,
    };
    let doc = hijacks(&snapshot, std::slice::from_ref(&finding), None);
    has_all(
        &doc[0],
        &[
            "ip",
            "owner",
            "kind",
            "severity",
            "seen",
            "first_at",
            "last_at",
            "quarantined",
            "open",
        ],
    );
    assert_eq!(doc[0]["quarantined"], true);
    let other: IpAddr = "10.1.0.3".parse().unwrap();
    assert_eq!(
        hijacks(&snapshot, &[finding], Some(other)),
        Value::Array(Vec::new())
    );
}
