use std::time::Duration;

use super::*;
use crate::cgminer::{FirmwareKind, Hashboard, Hashrate};

fn status(owner: &str, state: MinerState, up: bool, ths: f64, watts: Option<f64>) -> MinerStatus {
    let snapshot = MinerSnapshot {
        hashrate_5s: Hashrate::from_unit(ths, "TH"),
        power_watts: watts,
        boards: vec![Hashboard {
            index: 1,
            chip_temps_c: vec![60.0, 70.0 + ths],
            ..Hashboard::default()
        }],
        ..MinerSnapshot::default()
    };
    MinerStatus {
        miner: MinerId(0),
        addr: "127.0.0.1:4028".parse().unwrap(),
        owner: owner.into(),
        state,
        snapshot: Some(Arc::new(snapshot)),
        last_poll: if up {
            Ok(())
        } else {
            Err(PollFailure::Timeout)
        },
        last_poll_at: SystemTime::UNIX_EPOCH,
        last_ok_at: None,
        consecutive_failures: 0,
        latency: Duration::ZERO,
    }
}

#[test]
fn aggregates_sum_the_fleet_and_each_owner() {
    let statuses = [
        status("acme", MinerState::Active, true, 100.0, Some(3000.0)),
        status("acme", MinerState::Active, true, 50.0, None),
        // Down: counted, but its stale snapshot adds nothing.
        status("acme", MinerState::Active, false, 90.0, Some(3000.0)),
        status("globex", MinerState::Sleeping, true, 0.0, Some(20.0)),
        status("globex", MinerState::Quarantined, true, 10.0, Some(400.0)),
    ];
    let all = FleetAggregates::from_statuses(&statuses);
    let fleet = all.fleet;
    assert_eq!((fleet.up, fleet.down, fleet.sleeping), (3, 1, 1));
    assert!((fleet.hashrate_ths - 160.0).abs() < 1e-6);
    assert!((fleet.power_w - 3420.0).abs() < 1e-6);
    // Only miners reporting both power and hashrate: (3000 + 400) / (100 + 10).
    assert!((fleet.efficiency_j_per_th.unwrap() - 3400.0 / 110.0).abs() < 1e-6);
    assert_eq!(fleet.hottest_chip_c, Some(170.0));
    let acme = all.owners["acme"];
    assert_eq!((acme.up, acme.down, acme.sleeping), (2, 1, 0));
    assert!((acme.efficiency_j_per_th.unwrap() - 30.0).abs() < 1e-6);
    let globex = all.owners["globex"];
    assert_eq!((globex.up, globex.sleeping), (1, 1));
    assert_eq!(globex.hottest_chip_c, Some(80.0));
}

#[test]
fn each_firmware_gets_its_joined_request() {
    use miner_poll::commands_for;
    assert_eq!(
        commands_for(FirmwareKind::Bmminer).command_field(),
        "summary+pools+stats"
    );
    assert_eq!(
        commands_for(FirmwareKind::Bosminer).command_field(),
        "summary+pools+devs+devdetails+fans+temps+tunerstatus"
    );
    assert!(
        commands_for(FirmwareKind::Cgminer)
            .command_field()
            .starts_with("version+summary+pools")
    );
}

#[test]
fn client_errors_map_to_failure_kinds() {
    let addr = "127.0.0.1:4028".parse().unwrap();
    let cases = [
        (
            ClientError::ReadTimeout {
                addr,
                after: Duration::ZERO,
                received: 0,
            },
            PollFailure::Timeout,
        ),
        (ClientError::Refused { addr }, PollFailure::Refused),
        (ClientError::ClosedEarly { addr }, PollFailure::Closed),
        (
            ClientError::TooLarge { addr, limit: 1 },
            PollFailure::Oversized,
        ),
        (
            ClientError::Reply {
                addr,
                source: ReplyError::Malformed("x".into()),
            },
            PollFailure::Malformed,
        ),
    ];
    for (error, kind) in cases {
        assert_eq!(PollFailure::from_client_error(&error), kind, "{error}");
    }
}

#[test]
fn settings_defaults_validate_and_nonsense_is_refused() {
    TelemetrySettings::default().validate("telemetry").unwrap();
    let bad: TelemetrySettings =
        toml::from_str("interval_secs = 2\ndeadline_ms = 5000\nconcurrency = 0").unwrap();
    let keys: Vec<String> = bad
        .validate("telemetry")
        .unwrap_err()
        .into_iter()
        .map(|p| p.key)
        .collect();
    assert_eq!(keys, ["telemetry.concurrency", "telemetry.deadline_ms"]);
    assert!(toml::from_str::<TelemetrySettings>("interval = 3").is_err());
}
