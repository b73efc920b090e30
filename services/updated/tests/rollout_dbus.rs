//! `org.bunkeros.Update1`'s `Rollout*` methods over a private bus: the contract's proxy against
//! the server with a rollout desk on a temporary exchange, and the D-Bus errors operators see.

use std::sync::Arc;

use appliance::dbus::contracts::{UPDATE, Update1Proxy, update_errors};
use appliance::dbus::testbus::TestBus;
use appliance::state::StateDir;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use prometheus_client::registry::Registry;
use serde_json::Value;
use updated::ImageVersion;
use updated::RunningImage;
use updated::boot_entries::Esp;
use updated::booted::Booted;
use updated::controller::Controller;
use updated::disk_layout::Slot;
use updated::rollout::{DirectoryExchange, EvidenceJudge, ExpectedEvidence, Report, RolloutDesk};
use updated::settings::UpdatedConfig;
use updated::update_metrics::UpdateMetrics;
use updated::update_state::UpdateStateStore;
use updated::update1::Update1;

/// These tests never report, so no evidence is ever judged; a judge that would be asked
/// anyway refuses, so a wrongly accepted report could not go unnoticed.
struct NoReportsExpected;

impl EvidenceJudge for NoReportsExpected {
    fn judge(&self, _: &ExpectedEvidence<'_>, _: &Report) -> Result<(), String> {
        Err("no report was expected in this test".to_owned())
    }
}

fn controller(dir: &std::path::Path) -> Arc<Controller> {
    let state = StateDir::new(dir.join("state")).unwrap();
    let booted = Booted {
        image: RunningImage {
            version: ImageVersion::new(0, 1, 0),
            profile: "generic".to_owned(),
        },
        slot: Slot::A,
        roothash: "ab".repeat(32),
    };
    let mut registry = Registry::default();
    Arc::new(Controller::new(
        UpdatedConfig::default(),
        booted,
        Esp::new(dir.join("esp")),
        dir.join("disk"),
        Vec::new(),
        state.path().to_owned(),
        UpdateStateStore::new(state),
        UpdateMetrics::register(&mut registry),
    ))
}

fn plan() -> String {
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    format!(
        "id = \"spring\"\nrelease_version = \"0.2.0\"\nexpected_pcr11 = \"{}\"\nsource = \"usb\"\n\
         [[wave]]\nname = \"canary\"\nhubs = [\"malaga\"]\n\
         [[hub]]\nid = \"malaga\"\nca_key = \"{}\"\n",
        "9f".repeat(32),
        hex::encode(key.public_key().as_ref())
    )
}

fn error_name(error: &zbus::Error) -> String {
    match error {
        zbus::Error::MethodError(name, _, _) => name.to_string(),
        other => panic!("not a D-Bus method error: {other}"),
    }
}

#[tokio::test]
async fn rollouts_are_started_steered_and_refused_over_update1() {
    let dir = tempfile::tempdir().unwrap();
    let bus = TestBus::start().unwrap();
    let exchange = DirectoryExchange::new(dir.path().join("exchange"));
    let desk = RolloutDesk::open(
        StateDir::new(dir.path().join("state")).unwrap(),
        exchange.clone(),
        Box::new(NoReportsExpected),
    )
    .unwrap();
    let server = Update1::new(controller(dir.path())).with_rollout(Arc::new(desk));
    let _served = appliance::dbus::serve(&bus.bus(), UPDATE.bus_name, UPDATE.object_path, server)
        .await
        .unwrap();
    let client = appliance::dbus::connect(&bus.bus()).await.unwrap();
    let update = Update1Proxy::new(&client).await.unwrap();

    let status: Value = serde_json::from_str(&update.rollout_status().await.unwrap()).unwrap();
    assert_eq!(status["state"], "none");

    let bad = plan().replace("hubs = [\"malaga\"]", "hubs = [\"nowhere\"]");
    let error = update.rollout_start(&bad).await.unwrap_err();
    assert_eq!(error_name(&error), update_errors::INVALID_ARGUMENT);
    assert!(error.to_string().contains("wave[0].hubs[0]"), "{error}");

    let started: Value =
        serde_json::from_str(&update.rollout_start(&plan()).await.unwrap()).unwrap();
    assert_eq!(started["state"], "running");
    assert_eq!(started["waves"][0]["hubs"][0]["state"], "instructed");
    assert!(
        exchange
            .read_instruction("spring", "malaga")
            .unwrap()
            .is_some()
    );
    let again = update.rollout_start(&plan()).await.unwrap_err();
    assert_eq!(error_name(&again), update_errors::BUSY);

    let paused: Value = serde_json::from_str(&update.rollout_pause("").await.unwrap()).unwrap();
    assert_eq!(
        (paused["state"].as_str(), paused["reason"].as_str()),
        (Some("paused"), Some("paused by the operator"))
    );
    let twice = update.rollout_pause("again").await.unwrap_err();
    assert_eq!(error_name(&twice), update_errors::REFUSED);
    let control = update.rollout_resume("line\nbreak").await.unwrap_err();
    assert_eq!(error_name(&control), update_errors::INVALID_ARGUMENT);
    let resumed: Value =
        serde_json::from_str(&update.rollout_resume("morning").await.unwrap()).unwrap();
    assert_eq!(resumed["state"], "running");

    let aborted: Value =
        serde_json::from_str(&update.rollout_abort("wrong release").await.unwrap()).unwrap();
    assert_eq!(aborted["state"], "aborted");
    assert!(
        exchange
            .read_instruction("spring", "malaga")
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn an_appliance_without_an_exchange_says_it_coordinates_no_rollouts() {
    let dir = tempfile::tempdir().unwrap();
    let bus = TestBus::start().unwrap();
    let server = Update1::new(controller(dir.path()));
    let _served = appliance::dbus::serve(&bus.bus(), UPDATE.bus_name, UPDATE.object_path, server)
        .await
        .unwrap();
    let client = appliance::dbus::connect(&bus.bus()).await.unwrap();
    let update = Update1Proxy::new(&client).await.unwrap();
    let error = update.rollout_status().await.unwrap_err();
    assert_eq!(error_name(&error), update_errors::UNAVAILABLE);
    assert!(
        error
            .to_string()
            .contains("no rollout exchange is configured"),
        "{error}"
    );
}
