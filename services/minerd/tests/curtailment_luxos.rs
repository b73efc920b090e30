//! LuxOS sleeps and wakes over its API inside a `logon` session (`curtail sleep|wakeup`), so
//! curtailment sleeps it like BOSminer rather than withholding its work; a power target becomes
//! one of its power profiles; its poll reads the wall power and the running profile.
//! Region 127.62.15.0/24.

use std::net::Ipv4Addr;
use std::sync::Arc;

use minerd::cgminer::{ClientConfig, FirmwareKind};
use minerd::inventory::MinerId;
use minerd::operations::{
    BulkLimits, MinerAction, MinerTarget, PowerProfiles, run_on_miners, supports,
};
use minerd::telemetry::PollTarget;
use minerd::telemetry::miner_poll::poll_miner;
use sim::fleet::{Fleet, FleetSpec, ModelMix};
use sim::miner::model::Personality;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn luxos_sleeps_and_wakes_through_a_logon_session() {
    assert!(supports(FirmwareKind::Luxos, &MinerAction::Sleep));
    assert!(!supports(FirmwareKind::Bmminer, &MinerAction::Sleep));
    let ip = Ipv4Addr::new(127, 62, 15, 1);
    let mut spec = FleetSpec::new(ip, 1);
    spec.models = ModelMix::only(Personality::S19jProLuxos);
    let fleet = Fleet::start(spec).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = appliance::audit_log::AuditLog::open(&dir.path().join("audit.log"), "minerd")
        .await
        .unwrap();
    let audit = Arc::new(tokio::sync::Mutex::new(log));
    let target = MinerTarget {
        id: ip.to_string(),
        api: fleet.api_addresses()[0],
        firmware: FirmwareKind::Luxos,
    };
    for (action, asleep) in [(MinerAction::Sleep, true), (MinerAction::Wake, false)] {
        let report = run_on_miners(
            "minerd",
            action,
            vec![target.clone()],
            BulkLimits::default(),
            ClientConfig::default(),
            &audit,
            None,
        )
        .await
        .unwrap();
        assert_eq!(report.done, 1, "{report:?}");
        assert_eq!(fleet.miner(ip).unwrap().view().sleeping, asleep);
    }
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn luxos_takes_a_power_target_as_its_nearest_profile_below() {
    assert!(supports(
        FirmwareKind::Luxos,
        &MinerAction::SetPowerTarget { watts: 2500 }
    ));
    assert!(!supports(
        FirmwareKind::Bosminer,
        &MinerAction::SetPowerTarget { watts: 2500 }
    ));
    let ip = Ipv4Addr::new(127, 62, 15, 2);
    let mut spec = FleetSpec::new(ip, 1);
    spec.models = ModelMix::only(Personality::S19jProLuxos);
    let fleet = Fleet::start(spec).await.unwrap();
    let miner = fleet.miner(ip).unwrap();
    let before = miner.view().power_target_w;
    let target = MinerTarget {
        id: ip.to_string(),
        api: fleet.api_addresses()[0],
        firmware: FirmwareKind::Luxos,
    };
    let wanted = (before * 0.8).round() as u32;
    let done = MinerAction::SetPowerTarget { watts: wanted }
        .perform(&target, &ClientConfig::default())
        .await
        .expect("LuxOS sets a power profile");
    let after = miner.view().power_target_w;
    assert!(
        after <= f64::from(wanted) && after < before,
        "{done}: target {wanted} W, miner now at {after} W (was {before} W)"
    );
    assert!(done.starts_with("power profile "), "{done}");
    // A target under every profile takes the lowest one rather than failing.
    MinerAction::SetPowerTarget { watts: 1 }
        .perform(&target, &ClientConfig::default())
        .await
        .expect("the lowest profile");
    assert!(miner.view().power_target_w < after);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poll_reads_luxos_wall_power_and_running_profile() {
    let ip = Ipv4Addr::new(127, 62, 15, 3);
    let mut spec = FleetSpec::new(ip, 1);
    spec.models = ModelMix::only(Personality::S19jProLuxos);
    let fleet = Fleet::start(spec).await.unwrap();
    let miner = fleet.miner(ip).unwrap();
    let api = fleet.api_addresses()[0];
    let client = ClientConfig::default();
    let profiles = PowerProfiles::read(api, &client).await.unwrap();
    let poll = || async {
        let target = PollTarget {
            miner: MinerId(1),
            addr: api,
            firmware: FirmwareKind::Luxos,
            joins: true,
        };
        poll_miner(&target, &client, std::time::Duration::from_secs(5))
            .await
            .outcome
            .expect("the LuxOS miner answers its poll")
    };
    let snapshot = poll().await;
    assert_eq!(snapshot.power_profile.as_deref(), Some("default"));
    let truth = miner.view();
    let watts = snapshot.power_watts.expect("LuxOS reports its wall power");
    assert!(
        (watts - truth.power_w).abs() <= 1.0,
        "{watts} W, simulator {} W",
        truth.power_w
    );

    let lower = profiles
        .for_target(truth.power_target_w - 1.0)
        .unwrap()
        .clone();
    MinerAction::SetPowerTarget {
        watts: lower.watts as u32,
    }
    .perform(
        &MinerTarget {
            id: ip.to_string(),
            api,
            firmware: FirmwareKind::Luxos,
        },
        &client,
    )
    .await
    .unwrap();
    let snapshot = poll().await;
    assert_eq!(snapshot.power_profile.as_deref(), Some(lower.name.as_str()));
    fleet.stop().await;
}
