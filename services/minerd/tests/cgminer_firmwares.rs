//! End to end per firmware: captured reply bytes (with the trailing NUL the firmware sends)
//! → parsed reply → normalised snapshot.

use std::time::Duration;

use minerd::cgminer::{FirmwareKind, LastShare, MinerSnapshot, PoolState, ReplyError, parse_reply};

fn with_nul(fixture: &[u8]) -> Vec<u8> {
    let mut bytes = fixture.to_vec();
    bytes.push(0);
    bytes
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[test]
fn cgminer_summary_and_pools() {
    let bytes = with_nul(include_bytes!("fixtures/cgminer_4.11.1_summary+pools.json"));
    let reply = parse_reply("summary+pools", &bytes).unwrap();
    let snap = MinerSnapshot::from_reply(&reply);
    assert_eq!(snap.firmware, Some(FirmwareKind::Cgminer));
    assert_eq!(snap.firmware_description.as_deref(), Some("cgminer 4.11.1"));
    assert_eq!(snap.firmware_version.as_deref(), Some("4.11.1"));
    assert_eq!(snap.uptime, Some(Duration::from_secs(119134)));
    // MHS: 4885.0813 MH/s is 4.885 GH/s.
    assert!(close(
        snap.hashrate_5s.unwrap().hashes_per_second,
        4885.0813e6
    ));
    assert!(close(
        snap.hashrate_average.unwrap().hashes_per_second,
        4872.9297e6
    ));
    assert_eq!(snap.hardware_errors, Some(7977));
    assert_eq!(snap.pools.len(), 2);
    let p = &snap.pools[0];
    assert_eq!(p.url, "stratum+tcp://pool.example.org:3333");
    assert_eq!(p.user, "client7.rack3");
    assert_eq!(p.state, PoolState::Alive);
    assert_eq!(p.priority, Some(0));
    assert!(p.stratum_active);
    assert_eq!((p.accepted, p.rejected, p.stale), (156, 2, 1));
    assert_eq!(p.last_share, Some(LastShare::At(1730228011)));
    assert!(!snap.pools[1].stratum_active);
    assert_eq!(snap.pools[1].last_share, None, "0 means never");
    assert!(snap.boards.is_empty() && snap.fans.is_empty());
    assert_eq!(snap.power_watts, None);
}

#[test]
fn bmminer_s21_xp_hydro_joined_with_quirks() {
    let fixture = include_bytes!("fixtures/bmminer_s21xp_version+summary+stats+pools.json");
    assert!(
        serde_json::from_slice::<serde_json::Value>(fixture).is_err(),
        "the fixture keeps bmminer's `}}{{` join between STATS records"
    );
    let reply = parse_reply("version+summary+stats+pools", &with_nul(fixture)).unwrap();
    let snap = MinerSnapshot::from_reply(&reply);
    assert_eq!(snap.firmware, Some(FirmwareKind::Bmminer));
    assert_eq!(snap.firmware_version.as_deref(), Some("1.0.0"));
    assert_eq!(snap.model.as_deref(), Some("Antminer S21 XP Hyd."));
    assert_eq!(snap.uptime, Some(Duration::from_secs(602534)));
    assert!(close(snap.hashrate_5s.unwrap().terahashes(), 483.97925));
    assert!(close(
        snap.hashrate_average.unwrap().terahashes(),
        487.12933
    ));
    assert!(close(snap.hashrate_ideal.unwrap().terahashes(), 473.0));
    assert_eq!(snap.boards.len(), 3, "chain 4 is empty (acn 0, acs \"\")");
    let b1 = &snap.boards[0];
    assert_eq!(b1.index, 1);
    assert_eq!(b1.chips, Some(160));
    assert_eq!(b1.chip_temps_c, vec![63.0, 59.0, 56.0, 61.0]);
    assert_eq!(b1.pcb_temps_c, vec![38.0, 48.0, 47.0, 52.0]);
    assert_eq!(b1.hardware_errors, Some(21981));
    assert!(close(b1.hashrate.unwrap().terahashes(), 161.79468));
    assert_eq!(snap.boards[2].hardware_errors, Some(1714));
    assert!(snap.fans.is_empty(), "water cooled: every fan reads 0");
    let pools = &snap.pools;
    assert_eq!(pools.len(), 2, "the empty third slot has no URL");
    assert_eq!(pools[0].user, "bunker.s21xp001");
    assert_eq!(pools[0].stale, 3);
    assert_eq!(
        pools[0].last_share,
        Some(LastShare::Ago(Duration::from_secs(7)))
    );
}

#[test]
fn bmminer_s9_single_replies_merged() {
    let mut reply = parse_reply(
        "version",
        &with_nul(include_bytes!("fixtures/bmminer_s9_version.json")),
    )
    .unwrap();
    let stats = parse_reply(
        "stats",
        &with_nul(include_bytes!("fixtures/bmminer_s9_stats.json")),
    )
    .unwrap();
    reply.merge(stats);
    let snap = MinerSnapshot::from_reply(&reply);
    assert_eq!(snap.firmware, Some(FirmwareKind::Bmminer));
    assert_eq!(snap.firmware_version.as_deref(), Some("2.0.0"));
    assert_eq!(snap.model.as_deref(), Some("Antminer S9"));
    assert_eq!(snap.uptime, Some(Duration::from_secs(3600)));
    assert!(close(snap.hashrate_5s.unwrap().terahashes(), 13.502));
    let indices: Vec<u32> = snap.boards.iter().map(|b| b.index).collect();
    assert_eq!(indices, vec![6, 7, 8], "a real S9 numbers its chains 6..8");
    assert_eq!(
        snap.boards[0].chip_temps_c,
        vec![76.0],
        "temp2_N is the chip"
    );
    assert_eq!(snap.boards[0].pcb_temps_c, vec![61.0], "tempN is the board");
    assert_eq!(snap.boards[2].hardware_errors, Some(12));
    let fans: Vec<(u32, u32)> = snap.fans.iter().map(|f| (f.index, f.rpm)).collect();
    assert_eq!(fans, vec![(3, 6000), (6, 6120)]);
}

#[test]
fn bosminer_with_temps_fans_and_tuner() {
    let bytes = with_nul(include_bytes!(
        "fixtures/bosminer_version+summary+devs+devdetails+temps+fans+tunerstatus+pools.json"
    ));
    let reply = parse_reply(
        "version+summary+devs+devdetails+temps+fans+tunerstatus+pools",
        &bytes,
    )
    .unwrap();
    let snap = MinerSnapshot::from_reply(&reply);
    assert_eq!(snap.firmware, Some(FirmwareKind::Bosminer));
    assert_eq!(snap.firmware_version.as_deref(), Some("0.2.0-36c56a9363"));
    assert_eq!(
        snap.firmware_description.as_deref(),
        Some("BOSminer+ 0.2.0-36c56a9363")
    );
    assert_eq!(snap.model.as_deref(), Some("Antminer S9"));
    assert!(close(snap.hashrate_5s.unwrap().terahashes(), 14.12044735));
    assert_eq!(snap.uptime, Some(Duration::from_secs(86400)));
    assert_eq!(snap.power_watts, Some(1280.0));
    assert_eq!(snap.power_target_watts, Some(1300.0));
    assert_eq!(snap.boards.len(), 3);
    let b8 = &snap.boards[2];
    assert_eq!(b8.index, 8);
    assert_eq!(b8.chips, Some(62));
    assert_eq!(b8.chip_temps_c, vec![70.25]);
    assert_eq!(b8.pcb_temps_c, vec![53.0]);
    assert_eq!(b8.hardware_errors, Some(20));
    assert!(close(b8.hashrate.unwrap().hashes_per_second, 4701622.56e6));
    let rpms: Vec<u32> = snap.fans.iter().map(|f| f.rpm).collect();
    assert_eq!(rpms, vec![4320, 4290]);
    assert_eq!(snap.pools.len(), 2);
    assert_eq!(snap.pools[1].state, PoolState::Disabled);
}

#[test]
fn access_denied_is_typed() {
    let bytes = with_nul(include_bytes!("fixtures/access_denied_addpool.json"));
    let reply = parse_reply("addpool", &bytes).unwrap();
    assert_eq!(
        reply.section("addpool"),
        Err(ReplyError::AccessDenied {
            command: "addpool".into()
        })
    );
    let snap = MinerSnapshot::from_reply(&reply);
    assert_eq!(snap, MinerSnapshot::default(), "a refusal carries no data");
}

#[test]
fn every_truncation_of_every_fixture_is_handled() {
    // Reply parsing must never panic, whatever prefix of a real reply arrives.
    let fixtures: [(&str, &[u8]); 3] = [
        (
            "summary+pools",
            include_bytes!("fixtures/cgminer_4.11.1_summary+pools.json"),
        ),
        ("stats", include_bytes!("fixtures/bmminer_s9_stats.json")),
        (
            "version+summary+devs+devdetails+temps+fans+tunerstatus+pools",
            include_bytes!(
                "fixtures/bosminer_version+summary+devs+devdetails+temps+fans+tunerstatus+pools.json"
            ),
        ),
    ];
    for (command, bytes) in fixtures {
        for cut in (0..bytes.len()).step_by(7) {
            if let Ok(reply) = parse_reply(command, &bytes[..cut]) {
                let _ = MinerSnapshot::from_reply(&reply);
            }
        }
    }
}
