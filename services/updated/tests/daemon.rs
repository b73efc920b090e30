//! The real `updated` binary on a private bus, over a GPT disk image and an ESP with slot A
//! installed: Update1's status, a check, an install followed by its Progress and
//! InstallFinished signals to the new boot entry, refusals as D-Bus errors, the result kept
//! across a kill -9, the metrics, and the health gate's command on a slot not on trial.

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
