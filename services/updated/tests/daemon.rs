//! The real `updated` binary on a private bus, over a GPT disk image and an ESP with slot A
//! installed: Update1's status, a check, an install followed by its Progress and
//! InstallFinished signals to the new boot entry, refusals as D-Bus errors, the result kept
//! across a kill -9, the metrics, the health gate's command on a slot not on trial, and two
//! daemons of two sites (each with its own trustd on swtpm) in one rollout over the exchange
//! between hubs.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use appliance::dbus::contracts::{Update1Proxy, update_errors};
use appliance::dbus::testbus::TestBus;
use appliance::testdaemon::{CONVERGE, ServiceProcess, free_port};
use serde_json::Value;
use support::{Fixture, fixture, roothash_of, slot_a_appliance, spec, target_file};
use zbus::export::futures_core::Stream;

/// The running image's os-release, as image/scripts/customize.sh writes it.
const OS_RELEASE: &str =
    "NAME=\"BunkerOS\"\nID=bunkeros\nIMAGE_ID=bunkeros-qemu-x86_64\nIMAGE_VERSION=0.1.0\n";

/// An appliance directory (`$BUNKEROS_ROOT`) running slot A with image 0.1.0.
fn updated_process(bus: &TestBus, fx: &Fixture) -> ServiceProcess {
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = format!("[install]\ndisk = \"/disk.img\"\n[metrics]\nlisten = \"{metrics}\"\n");
    let updated = ServiceProcess::new(
        env!("CARGO_BIN_EXE_updated"),
        "updated",
        &config,
        bus.address(),
        metrics,
    );
    let root = updated.dir.path();
    let (disk, esp) = slot_a_appliance(root);
    assert_eq!(disk, root.join("disk.img"));
    std::fs::rename(esp, root.join("efi")).unwrap();
    write(root, "usr/lib/os-release", OS_RELEASE.as_bytes());
    write(root, "run/bunkeros/slot/name", b"a\n");
    write(
        root,
        "run/bunkeros/slot/roothash",
        roothash_of("0.1.0").as_bytes(),
    );
    write(
        root,
        "usr/share/bunkeros/update/root.json",
        &fx.trusted_root(),
    );
    updated
}

fn write(root: &Path, path: &str, bytes: &[u8]) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

async fn update1(bus: &TestBus) -> Update1Proxy<'static> {
    let connection = zbus::connection::Builder::address(bus.address())
        .unwrap()
        .build()
        .await
        .unwrap();
    Update1Proxy::new(&connection).await.unwrap()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn error_name(error: &zbus::Error) -> &str {
    match error {
        zbus::Error::MethodError(name, _, _) => name.as_str(),
        other => panic!("not a D-Bus error: {other}"),
    }
}

async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    tokio::time::timeout(
        CONVERGE,
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut *stream).poll_next(cx)),
    )
    .await
    .expect("a signal within the convergence bound")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_over_update1_writes_slot_b_and_makes_it_the_next_boot() {
    let fx = fixture().await;
    let good = fx.release("good", spec("0.1.1", 1)).await;
    let bus = TestBus::start().unwrap();
    let mut updated = updated_process(&bus, &fx);
    updated.start();
    updated.wait_notify("READY=1");
    let update = update1(&bus).await;

    assert_eq!(update.booted_slot().await.unwrap(), "a");
    assert_eq!(update.booted_version().await.unwrap(), "0.1.0");
    assert_eq!(update.next_slot().await.unwrap(), "a");
    let status = json(&update.status().await.unwrap());
    assert_eq!(status["slots"][0]["entry"], "blessed", "{status}");
    assert_eq!(status["slots"][1]["entry"], "none", "{status}");

    // A check verifies and changes nothing on the disk or the ESP.
    let checked = json(&update.check(good.to_str().unwrap()).await.unwrap());
    assert_eq!(checked["installable"], true, "{checked}");
    assert_eq!(checked["version"], "0.1.1");
    assert_eq!(checked["slot"], "b");
    assert_eq!(update.next_slot().await.unwrap(), "a");

    let mut progress = update.receive_progress().await.unwrap();
    let mut finished = update.receive_install_finished().await.unwrap();
    let started = json(&update.install(good.to_str().unwrap(), false).await.unwrap());
    assert_eq!(started["version"], "0.1.1", "{started}");
    let first = next(&mut progress).await.unwrap();
    let phase = first.args().unwrap().phase.to_owned();
    assert!(
        ["write-root", "write-verity", "verify", "boot-entry"].contains(&phase.as_str()),
        "{phase}"
    );
    let end = next(&mut finished).await.unwrap();
    let args = end.args().unwrap();
    assert!(args.installed, "{}", args.result);
    let result = json(args.result);
    assert_eq!(result["kind"], "installed", "{result}");

    let status = json(&update.status().await.unwrap());
    assert_eq!(status["next"]["slot"], "b", "{status}");
    assert_eq!(status["slots"][1]["entry"], "trying", "{status}");
    assert_eq!(status["slots"][1]["tries_left"], 3, "{status}");
    assert_eq!(status["slots"][1]["version"], "0.1.1", "{status}");
    assert_eq!(status["activity"], "idle", "{status}");
    assert_eq!(status["last_result"]["kind"], "installed", "{status}");
    assert_eq!(status["pending"]["slot"], "b", "{status}");
    let entry = updated.dir.path().join("efi/EFI/Linux/bunkeros-b+3.efi");
    assert!(entry.exists(), "the boot-counted entry is on the ESP");
    assert_eq!(
        updated.metric("updated_slot_info{slot=\"b\",version=\"0.1.1\",entry=\"trying\"}"),
        Some(1.0)
    );
    assert_eq!(
        updated.metric("updated_results_total{kind=\"installed\"}"),
        Some(1.0)
    );

    // Power cut: the recorded result and the next boot survive it.
    updated.kill();
    updated.start();
    updated.wait_notify("READY=1");
    let update = update1(&bus).await;
    assert_eq!(update.next_slot().await.unwrap(), "b");
    assert_eq!(update.next_version().await.unwrap(), "0.1.1");
    let last = json(&update.last_result().await.unwrap());
    assert_eq!(last["kind"], "installed", "{last}");
    updated.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_update1_errors_and_are_recorded() {
    let fx = fixture().await;
    let older = fx.release("older", spec("0.0.9", 1)).await;
    let tampered = fx.release("tampered", spec("0.1.1", 2)).await;
    let squashfs = target_file(&tampered, "root.squashfs");
    let mut bytes = std::fs::read(&squashfs).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&squashfs, bytes).unwrap();
    let bus = TestBus::start().unwrap();
    let mut updated = updated_process(&bus, &fx);
    updated.start();
    updated.wait_notify("READY=1");
    let update = update1(&bus).await;

    let refused = update
        .install(older.to_str().unwrap(), false)
        .await
        .unwrap_err();
    assert_eq!(error_name(&refused), update_errors::REFUSED, "{refused}");
    assert!(refused.to_string().contains("downgrade"), "{refused}");
    let last = json(&update.last_result().await.unwrap());
    assert_eq!(last["kind"], "refused", "{last}");

    let checked = json(&update.check(older.to_str().unwrap()).await.unwrap());
    assert_eq!(checked["installable"], false, "{checked}");
    assert!(
        checked["reason"].as_str().unwrap().contains("downgrade"),
        "{checked}"
    );

    // A tampered root is found while it is written: the install fails, slot B gets no entry.
    let mut finished = update.receive_install_finished().await.unwrap();
    update
        .install(tampered.to_str().unwrap(), false)
        .await
        .unwrap();
    let end = next(&mut finished).await.unwrap();
    let args = end.args().unwrap();
    assert!(!args.installed, "{}", args.result);
    let result = json(args.result);
    assert_eq!(result["kind"], "failed", "{result}");
    assert!(
        result["reason"].as_str().unwrap().contains("root.squashfs"),
        "{result}"
    );
    assert_eq!(update.next_slot().await.unwrap(), "a");

    for (source, name) in [
        ("relative/path", update_errors::INVALID_ARGUMENT),
        ("http://mirror.example/", update_errors::INVALID_ARGUMENT),
        ("/nonexistent/release", update_errors::UNAVAILABLE),
    ] {
        let refused = update.check(source).await.unwrap_err();
        assert_eq!(error_name(&refused), name, "{source}: {refused}");
    }
    updated.stop();
}

#[test]
fn the_health_gate_passes_at_once_when_the_booted_slot_is_not_on_trial() {
    let fx = tokio::runtime::Runtime::new().unwrap().block_on(fixture());
    let bus = TestBus::start().unwrap();
    let updated = updated_process(&bus, &fx);
    let started = std::time::Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_updated"))
        .arg("health-gate")
        .arg("--config")
        .arg(updated.config_path())
        .env("BUNKEROS_ROOT", updated.dir.path())
        .env("STATE_DIRECTORY", updated.state())
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("not on trial"), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it does not wait out the gate's timeout"
    );
}

/// Adds `text` to the daemon's configuration file (before it starts).
fn append_config(updated: &ServiceProcess, text: &str) {
    let path = updated.config_path();
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(path, format!("{config}{text}")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_following_a_coordinator_over_the_exchange_reports_and_halts_its_rollout() {
    let fx = fixture().await;
    let serve = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let name = format!("rollout.{}", appliance::testtrustd::SITE_DOMAIN);

    // Lisbon's site first: Geneva pins its root before it starts serving.
    let lisbon_bus = TestBus::start().unwrap();
    let (_lisbon_trustd, lisbon_root) =
        appliance::testtrustd::Trustd::start(lisbon_bus.address(), "").await;
    let geneva_bus = TestBus::start().unwrap();
    let (_geneva_trustd, geneva_root) =
        appliance::testtrustd::Trustd::start(geneva_bus.address(), "").await;

    let mut geneva = updated_process(&geneva_bus, &fx);
    write(
        geneva.dir.path(),
        "hub-roots/lisbon-1.pem",
        lisbon_root.as_bytes(),
    );
    append_config(
        &geneva,
        &format!(
            "[rollout]\nhub = \"geneva-1\"\nexchange = \"/rollout\"\n\
         [rollout.serve]\nlisten = \"{serve}\"\nname = \"{name}\"\nhub_roots = \"/hub-roots\"\n"
        ),
    );
    geneva.start();
    geneva.wait_notify("READY=1");

    let mut lisbon = updated_process(&lisbon_bus, &fx);
    write(lisbon.dir.path(), "geneva-root.pem", geneva_root.as_bytes());
    append_config(
        &lisbon,
        &format!(
            "[rollout]\nhub = \"lisbon-1\"\n[rollout.coordinator]\nhub = \"geneva-1\"\n\
         address = \"{serve}\"\nname = \"{name}\"\nroot = \"/geneva-root.pem\"\n"
        ),
    );
    lisbon.start();
    lisbon.wait_notify("READY=1");

    // The release is not where the plan says: Lisbon cannot install it, and says so.
    let plan = format!(
        "id = \"spring\"\nrelease_version = \"0.1.1\"\nexpected_pcr11 = \"{}\"\n\
         source = \"/no-such-release\"\nsoak_secs = 60\nwave_timeout_secs = 3600\n\
         [[wave]]\nname = \"canary\"\nhubs = [\"lisbon-1\"]\n\
         [[hub]]\nid = \"lisbon-1\"\nca_key = \"04{}\"\n",
        "ab".repeat(32),
        "11".repeat(64)
    );
    let coordinator = update1(&geneva_bus).await;
    let started = json(&coordinator.rollout_start(&plan).await.unwrap());
    assert_eq!(started["state"], "running", "{started}");

    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let status = loop {
        let status = json(&coordinator.rollout_status().await.unwrap());
        if status["state"] == "halted" {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rollout did not halt on lisbon-1's report within 90 s: {status}\n\
             geneva:\n{}\nlisbon:\n{}",
            geneva.log(),
            lisbon.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.contains("lisbon-1") && reason.contains("the install did not happen"),
        "the coordinator halts with the reason lisbon-1 sent over the exchange: {reason}"
    );
    assert!(
        geneva
            .dir
            .path()
            .join("rollout/spring/reports/lisbon-1.json")
            .exists(),
        "the report is in the coordinator's exchange"
    );
    assert!(
        !lisbon.dir.path().join("rollout").exists(),
        "the hub keeps no exchange of its own"
    );

    assert!(
        lisbon
            .metric("updated_rollout_turns_total{outcome=\"ok\"}")
            .is_some_and(|turns| turns >= 1.0),
        "the hub's turns over the exchange are counted"
    );
    assert!(
        lisbon
            .metric("updated_rollout_last_ok_timestamp_seconds")
            .is_some_and(|at| at > 1.7e9)
    );

    // The hub starts nothing itself: it names its coordinator.
    let follower = update1(&lisbon_bus).await;
    let status = json(&follower.status().await.unwrap());
    assert_eq!(status["rollout"]["role"], "follower", "{status}");
    assert_eq!(status["rollout"]["coordinator"], "geneva-1", "{status}");
    let status = json(&coordinator.status().await.unwrap());
    assert_eq!(status["rollout"]["role"], "coordinator", "{status}");
    let refused = follower.rollout_status().await.unwrap_err();
    assert_eq!(error_name(&refused), update_errors::UNAVAILABLE);
    assert!(
        refused
            .to_string()
            .contains("follows the rollouts of geneva-1"),
        "{refused}"
    );
}
