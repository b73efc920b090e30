//! The `sitesim` binary: `--print-map` prints hardware-profile TOML listing every sensor and
//! relay, and a running sitesim serves Modbus and obeys its control socket.

mod site_common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use sim::site::{RegisterMap, SiteSpec, planned_addresses};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::Command;
use tokio_modbus::client::{Reader, Writer};

const BOUND: Duration = Duration::from_secs(10);

#[test]
fn print_map_is_toml_listing_every_sensor_and_relay() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sitesim"))
        .args([
            "--listen",
            "127.70.3.1:15020",
            "--spec",
            "small",
            "--print-map",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let parsed: toml::Table = toml::from_str(&text).expect("the map parses as TOML");
    let buses = parsed["sensor_bus"].as_array().unwrap();
    let mut sensors = BTreeSet::new();
    let mut relays = BTreeSet::new();
    let mut ports = Vec::new();
    for bus in buses {
        assert_eq!(bus["kind"].as_str(), Some("modbus-tcp"));
        ports.push(bus["address"].as_str().unwrap().to_string());
        for register in bus["register"].as_array().unwrap() {
            for key in ["unit", "table", "address", "type"] {
                assert!(register.get(key).is_some(), "{key} in {register:?}");
            }
            let table = register["table"].as_str().unwrap();
            assert!(["holding", "input", "coil", "discrete"].contains(&table));
            let kind = register["type"].as_str().unwrap();
            assert!(["u16", "i16", "u32", "i32", "f32", "bool"].contains(&kind));
            assert!(sensors.insert(register["sensor"].as_str().unwrap().to_string()));
        }
        for relay in bus
            .get("relay")
            .and_then(|r| r.as_array())
            .into_iter()
            .flatten()
        {
            assert!(relay.get("unit").is_some() && relay.get("coil").is_some());
            assert!(relays.insert(relay["name"].as_str().unwrap().to_string()));
        }
    }
    assert_eq!(
        ports,
        ["15020", "15021", "15022", "15023", "15024"].map(|p| format!("127.70.3.1:{p}"))
    );
    let map = RegisterMap::new(
        &SiteSpec::small(),
        &planned_addresses("127.70.3.1:15020".parse().unwrap()),
    );
    let expected: BTreeSet<String> = map
        .buses
        .iter()
        .flat_map(|b| b.registers.iter().map(|r| r.sensor.clone()))
        .collect();
    assert_eq!(sensors, expected);
    assert_eq!(sensors.len(), 32);
    assert_eq!(relays.len(), 6);
    for name in sensors.iter().chain(&relays) {
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c)),
            "{name} is a valid sensor name"
        );
    }
}

#[test]
fn a_bad_spec_is_refused() {
    let dir = std::env::temp_dir().join(format!("sitesim-spec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("site.toml");
    std::fs::write(&file, "halls = 300\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sitesim"))
        .args(["--print-map", "--spec"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("halls"));
    std::fs::write(&file, "doors = 3\nwindows = 2\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sitesim"))
        .args(["--print-map", "--spec"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("windows"));
    std::fs::write(&file, "doors = 3\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sitesim"))
        .args(["--print-map", "--spec"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("door-3.cycles"));
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn control(socket: &Path, line: &str) -> String {
    let mut stream = UnixStream::connect(socket).await.unwrap();
    stream
        .write_all(format!("{line}\n").as_bytes())
        .await
        .unwrap();
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).await.unwrap();
    reply.trim_end().to_string()
}

#[tokio::test]
async fn sitesim_serves_modbus_and_obeys_its_control_socket() {
    let dir = std::env::temp_dir().join(format!("sitesim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("control.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sitesim"))
        .args(["--listen", "127.70.3.2:0", "--spec", "small", "--control"])
        .arg(&socket)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The log names each device's address; the doors are the fourth.
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let doors: SocketAddr = tokio::time::timeout(BOUND, async {
        let mut doors = None;
        while let Some(line) = stderr.next_line().await.unwrap() {
            if line.contains("device=site-doors") {
                let at = line.find("address=").expect("address in the line") + "address=".len();
                doors = Some(
                    line[at..]
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap(),
                );
            }
            if line.contains("sitesim running") {
                return doors.expect("the doors device was logged");
            }
        }
        panic!("sitesim exited before it was ready");
    })
    .await
    .expect("sitesim ready");

    let mut door = tokio_modbus::client::tcp::connect_slave(doors, tokio_modbus::Slave(1))
        .await
        .unwrap();
    assert_eq!(
        door.read_discrete_inputs(0, 2).await.unwrap().unwrap(),
        vec![false, true]
    );
    assert_eq!(control(&socket, "door 1 open").await, "ok");
    assert_eq!(
        door.read_discrete_inputs(0, 2).await.unwrap().unwrap(),
        vec![true, false]
    );
    assert_eq!(control(&socket, "door 1 close").await, "ok");
    assert_eq!(
        door.read_input_registers(1, 2).await.unwrap().unwrap(),
        vec![1, 0],
        "one cycle"
    );
    assert!(
        control(&socket, "door 9 open")
            .await
            .starts_with("error: there is no door 9")
    );
    assert!(
        control(&socket, "fault no-such.sensor stuck")
            .await
            .starts_with("error: no sensor")
    );

    door.write_single_coil(0, true).await.unwrap().unwrap();
    let relays: serde_json::Value =
        serde_json::from_str(&control(&socket, "relays").await).unwrap();
    let interlock = relays
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "door-1.interlock")
        .unwrap();
    assert_eq!(interlock["on"], true);
    assert!(interlock["changed_unix_ms"].as_u64().unwrap() > 0);
    assert!(control(&socket, "door 1 open").await.contains("interlock"));

    assert_eq!(
        control(&socket, "fault site-doors exception server-device-failure").await,
        "ok"
    );
    assert_eq!(
        door.read_discrete_inputs(0, 1).await.unwrap(),
        Err(tokio_modbus::ExceptionCode::ServerDeviceFailure)
    );
    assert_eq!(control(&socket, "clear all").await, "ok");
    assert_eq!(
        door.read_discrete_inputs(0, 1).await.unwrap().unwrap(),
        vec![false]
    );
    let read: serde_json::Value =
        serde_json::from_str(&control(&socket, "read door-1.cycles").await).unwrap();
    assert_eq!(read["value"], 1.0);

    child.start_kill().unwrap();
    let _ = tokio::time::timeout(BOUND, child.wait()).await;
    assert!(!socket.exists() || std::fs::remove_file(&socket).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The printed map is what a hardware profile takes, and it is exactly the QEMU profile's
/// Modbus buses: the appliance's sited reads the sitesim that runs beside it in the guest.
#[test]
fn print_map_is_the_qemu_profiles_modbus_buses() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sitesim"))
        .args([
            "--listen",
            "127.0.0.1:15020",
            "--spec",
            "small",
            "--print-map",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let profiles = concat!(env!("CARGO_MANIFEST_DIR"), "/../profiles");
    let profile = appliance::profile::Profile::load(std::path::Path::new(&format!(
        "{profiles}/qemu-x86_64.toml"
    )))
    .unwrap_or_else(|e| panic!("{e}"));
    #[derive(serde::Deserialize)]
    struct Map {
        sensor_bus: Vec<appliance::profile::SensorBus>,
    }
    let map: Map = toml::from_str(&String::from_utf8(output.stdout).unwrap()).unwrap();
    let modbus: Vec<_> = profile
        .sensor_buses
        .iter()
        .filter(|bus| bus.kind == appliance::profile::SensorBusKind::ModbusTcp)
        .cloned()
        .collect();
    assert_eq!(
        modbus, map.sensor_bus,
        "regenerate the profile's buses with sitesim --print-map"
    );
    let environment = profile
        .sensor_bus("site-environment")
        .expect("the bus is there");
    assert_eq!(environment.registers.len(), 10);
    assert_eq!(environment.relays.len(), 2);
    let doors = profile.sensor_bus("site-doors").unwrap();
    let cycles = doors
        .registers
        .iter()
        .find(|r| r.sensor == "door-1.cycles")
        .unwrap();
    assert_eq!(cycles.word_order(), appliance::profile::WordOrder::Little);
}

/// `sitesim --send` run as a separate process against a running sitesim: (exit code, stdout, stderr).
async fn send_with_binary(socket: &Path, command: &str) -> (Option<i32>, String, String) {
    let output = tokio::time::timeout(
        BOUND,
        Command::new(env!("CARGO_BIN_EXE_sitesim"))
            .arg("--control")
            .arg(socket)
            .args(["--send", command])
            .output(),
    )
    .await
    .expect("sitesim --send finished")
    .unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// The appliance has no socat: `sitesim --send` is how its self-test plays site events. It prints
/// the reply line and says by its exit status whether the command was taken.
#[tokio::test]
async fn send_mode_talks_to_a_running_sitesim() {
    let dir = std::env::temp_dir().join(format!("sitesim-send-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("control.sock");

    let (code, stdout, stderr) = send_with_binary(&socket, "door 1 open").await;
    assert_eq!(code, Some(2), "no sitesim yet: {stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("connecting to"), "{stderr}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_sitesim"))
        .args(["--listen", "127.70.3.3:0", "--spec", "small", "--control"])
        .arg(&socket)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::time::timeout(BOUND, async {
        while let Some(line) = log.next_line().await.unwrap() {
            if line.contains("sitesim running") {
                return;
            }
        }
        panic!("sitesim exited before it was ready");
    })
    .await
    .expect("sitesim ready");

    assert_eq!(
        send_with_binary(&socket, "door 1 open").await,
        (Some(0), "ok\n".to_string(), String::new())
    );
    let read: serde_json::Value =
        serde_json::from_str(&control(&socket, "read door-1.open").await).unwrap();
    assert_eq!(read["value"], 1.0, "the command reached the site: {read}");

    let (code, stdout, _) = send_with_binary(&socket, "door 9 open").await;
    assert_eq!(code, Some(1));
    assert!(stdout.starts_with("error: there is no door 9"), "{stdout}");

    let (code, stdout, _) = send_with_binary(&socket, "relays").await;
    assert_eq!(code, Some(0));
    let relays: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(relays.as_array().unwrap().len(), 6, "{relays}");

    let (code, _, stderr) = send_with_binary(&socket, "").await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("one command per line"), "{stderr}");

    child.start_kill().unwrap();
    let _ = tokio::time::timeout(BOUND, child.wait()).await;
    let _ = std::fs::remove_file(&socket);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn send_needs_the_control_socket() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sitesim"))
        .args(["--send", "relays"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--control"),
        "{output:?}"
    );
}
