use std::net::SocketAddrV4;
use std::time::Duration;

use super::*;
use crate::cgminer::FirmwareKind;

fn sighting(addr: &str, model: &str) -> Sighting {
    Sighting {
        addr: addr.parse().unwrap(),
        model: Some(model.to_string()),
        firmware: FirmwareKind::Bmminer,
        firmware_version: Some("2.0.0".into()),
        mac: None,
        serial: None,
        owner: "acme".into(),
        location: "hall A".into(),
    }
}

fn scanned() -> Vec<ipnet::Ipv4Net> {
    vec!["10.0.0.0/24".parse().unwrap()]
}

fn open() -> (tempfile::TempDir, Inventory) {
    let dir = tempfile::tempdir().unwrap();
    let inventory = Inventory::open_in(dir.path()).unwrap();
    (dir, inventory)
}

#[test]
fn opens_in_wal_with_the_current_schema_version() {
    let (dir, inventory) = open();
    drop(inventory);
    let db = rusqlite::Connection::open(dir.path().join(INVENTORY_FILE)).unwrap();
    let mode: String = db
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema::SCHEMA_VERSION);
    // Reopening an up-to-date file migrates nothing and works.
    drop(db);
    Inventory::open_in(dir.path()).unwrap();
}

#[test]
fn a_newer_schema_is_refused() {
    let (dir, inventory) = open();
    drop(inventory);
    let db = rusqlite::Connection::open(dir.path().join(INVENTORY_FILE)).unwrap();
    db.pragma_update(None, "user_version", 99).unwrap();
    drop(db);
    match Inventory::open_in(dir.path()) {
        Err(InventoryError::NewerSchema { found: 99, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn scans_add_change_and_lose_miners() {
    let (_dir, inv) = open();
    let a = sighting("10.0.0.1:4028", "Antminer S9");
    let b = sighting("10.0.0.2:4028", "Antminer S19 Pro");
    let changes = inv
        .apply_scan(&[a.clone(), b.clone()], &[], &scanned(), 2, 100)
        .unwrap();
    assert_eq!(changes.new, vec![a.addr, b.addr]);
    assert!(changes.changed.is_empty() && changes.missing.is_empty());

    // a upgraded its firmware; b is gone once: not yet missing.
    let mut a2 = a.clone();
    a2.firmware_version = Some("2.1.0".into());
    let changes = inv
        .apply_scan(&[a2.clone()], &[], &scanned(), 2, 200)
        .unwrap();
    assert_eq!(changes.changed, vec![a.addr]);
    assert!(changes.missing.is_empty());
    let rb = inv.find(b.addr).unwrap().unwrap();
    assert_eq!((rb.state, rb.missed_scans), (MinerState::Active, 1));

    // Second miss: missing; its owner, location and first_seen stay.
    let changes = inv
        .apply_scan(&[a2.clone()], &[], &scanned(), 2, 300)
        .unwrap();
    assert_eq!(changes.missing, vec![b.addr]);
    let rb = inv.find(b.addr).unwrap().unwrap();
    assert_eq!(rb.state, MinerState::Missing);
    assert_eq!(
        (rb.owner.as_str(), rb.first_seen, rb.last_seen),
        ("acme", 100, 100)
    );
    // A third miss does not report it again.
    let changes = inv
        .apply_scan(&[a2.clone()], &[], &scanned(), 2, 400)
        .unwrap();
    assert!(changes.missing.is_empty());

    // Found again: active, no longer counted as missed.
    let changes = inv
        .apply_scan(&[a2, b.clone()], &[], &scanned(), 2, 500)
        .unwrap();
    assert!(changes.new.is_empty());
    let rb = inv.find(b.addr).unwrap().unwrap();
    assert_eq!(
        (rb.state, rb.missed_scans, rb.last_seen),
        (MinerState::Active, 0, 500)
    );
}

#[test]
fn a_miner_that_answers_without_identifying_is_not_missed() {
    let (_dir, inv) = open();
    let a = sighting("10.0.0.1:4028", "Antminer S9");
    inv.apply_scan(std::slice::from_ref(&a), &[], &scanned(), 1, 100)
        .unwrap();
    let changes = inv.apply_scan(&[], &[a.addr], &scanned(), 1, 200).unwrap();
    assert!(changes.missing.is_empty());
    assert_eq!(inv.find(a.addr).unwrap().unwrap().state, MinerState::Active);
}

#[test]
fn miners_outside_the_scanned_ranges_are_not_missed() {
    let (_dir, inv) = open();
    let a = sighting("10.0.0.1:4028", "Antminer S9");
    inv.apply_scan(std::slice::from_ref(&a), &[], &scanned(), 1, 100)
        .unwrap();
    let elsewhere = vec!["10.9.0.0/24".parse().unwrap()];
    let changes = inv.apply_scan(&[], &[], &elsewhere, 1, 200).unwrap();
    assert!(changes.missing.is_empty());
}

#[test]
fn operator_settings_persist_and_survive_scans() {
    let (dir, inv) = open();
    let a = sighting("10.0.0.1:4028", "Antminer S9");
    inv.apply_scan(std::slice::from_ref(&a), &[], &scanned(), 3, 100)
        .unwrap();
    let id = inv.find(a.addr).unwrap().unwrap().id;
    inv.set_owner(id, "globex").unwrap();
    inv.set_location(id, "hall C").unwrap();
    inv.set_state(id, MinerState::Sleeping).unwrap();
    inv.set_power_target(id, Some(1200.0)).unwrap();
    inv.apply_scan(std::slice::from_ref(&a), &[], &scanned(), 3, 200)
        .unwrap();
    drop(inv);
    let inv = Inventory::open_in(dir.path()).unwrap();
    let r = inv.get(id).unwrap().unwrap();
    assert_eq!(r.owner, "globex");
    assert_eq!(r.location, "hall C");
    assert_eq!(r.state, MinerState::Sleeping);
    assert_eq!(r.power_target_w, Some(1200.0));
    assert!(matches!(
        inv.set_owner(MinerId(999), "x"),
        Err(InventoryError::UnknownMiner(999))
    ));
}

#[test]
fn list_filters_by_owner_and_state() {
    let (_dir, inv) = open();
    let sightings: Vec<Sighting> = (1..=4)
        .map(|i| sighting(&format!("10.0.0.{i}:4028"), "Antminer S9"))
        .collect();
    inv.apply_scan(&sightings, &[], &scanned(), 3, 100).unwrap();
    let all = inv.list(&MinerFilter::default()).unwrap();
    assert_eq!(all.len(), 4);
    inv.set_owner(all[0].id, "globex").unwrap();
    inv.set_state(all[1].id, MinerState::Quarantined).unwrap();
    let acme = MinerFilter {
        owner: Some("acme".into()),
        ..MinerFilter::default()
    };
    assert_eq!(inv.list(&acme).unwrap().len(), 3);
    let quarantined = MinerFilter {
        states: Some(vec![MinerState::Quarantined]),
        ..MinerFilter::default()
    };
    let q = inv.list(&quarantined).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].addr, "10.0.0.2:4028".parse::<SocketAddrV4>().unwrap());
}

#[test]
fn history_is_downsampled_into_minutes_and_hours_and_pruned() {
    let (_dir, inv) = open();
    let a = sighting("10.0.0.1:4028", "Antminer S9");
    inv.apply_scan(std::slice::from_ref(&a), &[], &scanned(), 3, 0)
        .unwrap();
    let id = inv.find(a.addr).unwrap().unwrap().id;
    let t0 = 1_700_000_000 - 1_700_000_000 % 3600;
    // Six samples in the first minute, one in the second; power missing once.
    let mut samples = Vec::new();
    for i in 0..6 {
        samples.push(HistorySample {
            miner: id,
            at: t0 + i * 10,
            hashrate_ths: 10.0 + i as f64,
            power_w: (i != 0).then_some(1000.0 + i as f64 * 10.0),
            chip_temp_max_c: (i != 3).then_some(60.0 + i as f64),
        });
    }
    samples.push(HistorySample {
        miner: id,
        at: t0 + 61,
        hashrate_ths: 20.0,
        power_w: None,
        chip_temp_max_c: None,
    });
    // Written in two cycles: buckets accumulate in place.
    inv.record_samples(&samples[..3]).unwrap();
    inv.record_samples(&samples[3..]).unwrap();

    let minutes = inv.history(id, Resolution::Minute, t0, t0 + 3600).unwrap();
    assert_eq!(minutes.len(), 2);
    assert_eq!(minutes[0].bucket_start, t0);
    assert_eq!(minutes[0].samples, 6);
    assert!((minutes[0].avg_hashrate_ths - 12.5).abs() < 1e-9);
    assert_eq!(minutes[0].max_hashrate_ths, 15.0);
    assert!((minutes[0].avg_power_w.unwrap() - 1030.0).abs() < 1e-9);
    assert_eq!(minutes[0].max_chip_temp_c, Some(65.0));
    assert_eq!(minutes[1].avg_power_w, None);
    assert_eq!(minutes[1].max_chip_temp_c, None);

    let hours = inv.history(id, Resolution::Hour, t0, t0 + 3600).unwrap();
    assert_eq!(hours.len(), 1);
    assert_eq!(hours[0].samples, 7);
    assert_eq!(hours[0].max_hashrate_ths, 20.0);

    // Two hours later, keeping minutes for 1 h and hours for 1 day: minutes go, hours stay.
    let policy = RetentionPolicy {
        minute_buckets: Duration::from_secs(3600),
        hour_buckets: Duration::from_secs(86_400),
    };
    assert_eq!(inv.prune(&policy, t0 + 7200).unwrap(), 2);
    assert!(
        inv.history(id, Resolution::Minute, 0, i64::MAX)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        inv.history(id, Resolution::Hour, 0, i64::MAX)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn samples_of_removed_miners_are_skipped() {
    let (_dir, inv) = open();
    let sample = HistorySample {
        miner: MinerId(42),
        at: 1000,
        hashrate_ths: 1.0,
        power_w: None,
        chip_temp_max_c: None,
    };
    inv.record_samples(&[sample]).unwrap();
    assert!(
        inv.history(MinerId(42), Resolution::Minute, 0, i64::MAX)
            .unwrap()
            .is_empty()
    );
}
