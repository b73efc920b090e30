//! LuxOS sleeps and wakes over its API inside a `logon` session (`curtail sleep|wakeup`), so
//! curtailment sleeps it like BOSminer rather than withholding its work. Region 127.62.15.0/24.

use std::net::Ipv4Addr;
use std::sync::Arc;

use minerd::cgminer::{ClientConfig, FirmwareKind};
use minerd::operations::{BulkLimits, MinerAction, MinerTarget, run_on_miners, supports};
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
