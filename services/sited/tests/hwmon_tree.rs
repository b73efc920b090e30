//! The hwmon driver against trees shaped like `/sys/class/hwmon`, through its `run` loop, and
//! against this machine's own sysfs.

use std::fs;
use std::path::Path;
use std::time::Duration;

use sited::hwmon::{HwmonDriver, HwmonSettings, Quantity, tree};
use sited::sensor::{LostReason, SensorEvent, Value};
use tokio::sync::mpsc;

fn write(root: &Path, path: &str, contents: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

/// Two chips as a typical Intel server shows them: coretemp with labels, a Super I/O with fans.
fn two_chips() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    write(r, "hwmon0/name", "acpitz\n");
    write(r, "hwmon0/temp1_input", "27800\n");
    write(r, "hwmon0/temp1_crit", "105000\n");
    write(r, "hwmon1/name", "coretemp\n");
    write(r, "hwmon1/temp1_input", "52000\n");
    write(r, "hwmon1/temp1_label", "Package id 0\n");
    write(r, "hwmon1/temp1_max", "84000\n");
    write(r, "hwmon1/temp1_crit", "100000\n");
    write(r, "hwmon1/temp2_input", "49000\n");
    write(r, "hwmon1/temp2_label", "Core 0\n");
    write(r, "hwmon2/name", "nct6798\n");
    write(r, "hwmon2/fan1_input", "1450\n");
    write(r, "hwmon2/fan1_label", "SYSFAN\n");
    write(r, "hwmon2/fan2_input", "0\n");
    root
}

fn settings(root: &Path) -> HwmonSettings {
    toml::from_str(&format!(
        "bus = \"server\"\nroot = \"{}\"\npoll_ms = 1000\ndeadline_ms = 1000",
        root.display()
    ))
    .unwrap()
}

/// The next poll's events from `run`: as many as the tree has sensors.
async fn next(events: &mut mpsc::Receiver<SensorEvent>, count: usize) -> Vec<(String, Value)> {
    let mut samples = Vec::new();
    while samples.len() < count {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("the driver polls")
            .expect("the driver runs");
        match event {
            SensorEvent::Sample { sensor, value, .. } => samples.push((sensor.to_string(), value)),
            SensorEvent::Lost { sensor, reason, .. } => panic!("{sensor} lost: {reason}"),
        }
    }
    samples
}

#[tokio::test]
async fn two_chips_give_named_temperatures_and_fans_until_a_value_changes() {
    let root = two_chips();
    let driver = HwmonDriver::new(settings(root.path())).unwrap();
    let (tx, mut rx) = mpsc::channel(64);
    let running = tokio::spawn(driver.run(tx));
    let expected = [
        ("server.acpitz.temp1", 27.8),
        ("server.coretemp.package-id-0", 52.0),
        ("server.coretemp.core-0", 49.0),
        ("server.nct6798.sysfan", 1450.0),
        ("server.nct6798.fan2", 0.0),
    ];
    let want = |expected: &[(&str, f64)]| -> Vec<(String, Value)> {
        expected
            .iter()
            .map(|(name, v)| (name.to_string(), Value::Number(*v)))
            .collect()
    };
    assert_eq!(next(&mut rx, 5).await, want(&expected));
    write(root.path(), "hwmon2/fan1_input", "2100\n");
    // A poll may have read before the write; the one after it must show the new speed.
    let mut changed = expected;
    changed[3].1 = 2100.0;
    let first = next(&mut rx, 5).await;
    if first != want(&changed) {
        assert_eq!(first, want(&expected));
        assert_eq!(next(&mut rx, 5).await, want(&changed));
    }
    drop(rx);
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("run ends when nobody listens")
        .unwrap();
}

#[tokio::test]
async fn a_broken_input_is_lost_with_its_reason_and_comes_back() {
    let root = two_chips();
    let mut driver = HwmonDriver::new(settings(root.path())).unwrap();
    assert_eq!(driver.poll().await.len(), 5);
    write(root.path(), "hwmon1/temp2_input", "ERR\n");
    write(root.path(), "hwmon0/temp1_input", "255000\n");
    fs::remove_file(root.path().join("hwmon2/fan2_input")).unwrap();
    let lost: Vec<(String, LostReason)> = driver
        .poll()
        .await
        .into_iter()
        .filter_map(|event| match event {
            SensorEvent::Lost { sensor, reason, .. } => Some((sensor.to_string(), reason)),
            SensorEvent::Sample { .. } => None,
        })
        .collect();
    assert_eq!(lost.len(), 3, "{lost:?}");
    assert!(matches!(&lost[0], (s, LostReason::OutOfRange { value, .. })
        if s == "server.acpitz.temp1" && *value == 255.0));
    assert!(matches!(&lost[1], (s, LostReason::Malformed { .. }) if s == "server.coretemp.core-0"));
    assert!(matches!(&lost[2], (s, LostReason::Unreachable { .. }) if s == "server.nct6798.fan2"));

    write(root.path(), "hwmon1/temp2_input", "50000\n");
    write(root.path(), "hwmon0/temp1_input", "28000\n");
    write(root.path(), "hwmon2/fan2_input", "800\n");
    let back = driver.poll().await;
    assert_eq!(back.len(), 5);
    assert!(
        back.iter()
            .all(|event| matches!(event, SensorEvent::Sample { .. }))
    );
}

#[tokio::test]
async fn two_coretemps_are_told_apart_by_hwmon_index() {
    let root = tempfile::tempdir().unwrap();
    for (entry, milli) in [("hwmon3", "40000\n"), ("hwmon4", "42000\n")] {
        write(root.path(), &format!("{entry}/name"), "coretemp\n");
        write(root.path(), &format!("{entry}/temp1_input"), milli);
        write(
            root.path(),
            &format!("{entry}/temp1_label"),
            "Package id 0\n",
        );
    }
    let mut driver = HwmonDriver::new(settings(root.path())).unwrap();
    let names: Vec<String> = driver
        .poll()
        .await
        .iter()
        .map(|event| event.sensor().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "server.coretemp-3.package-id-0",
            "server.coretemp-4.package-id-0"
        ]
    );
}

/// This machine's own hwmon: read for real where it has a readable temperature; where it has
/// none (containers, most VMs), discovery finds nothing that reads and is no error.
#[tokio::test]
async fn this_machines_sysfs() {
    let root = Path::new("/sys/class/hwmon");
    let readable_temperature = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|chip| fs::read_dir(chip.path()).into_iter().flatten().flatten())
        .filter(|file| {
            let name = file.file_name().to_string_lossy().into_owned();
            name.starts_with("temp") && name.ends_with("_input")
        })
        .any(|file| {
            fs::read_to_string(file.path()).is_ok_and(|raw| raw.trim().parse::<i64>().is_ok())
        });
    let inputs = tree::discover(root, "server").expect("discovery is no error");
    if readable_temperature {
        assert!(
            inputs
                .iter()
                .any(|input| input.quantity == Quantity::Temperature)
        );
        let mut driver = HwmonDriver::new(HwmonSettings {
            deadline_ms: 1000,
            ..HwmonSettings::for_bus("server")
        })
        .unwrap();
        let events = driver.poll().await;
        assert!(
            events.iter().any(|event| matches!(
                event,
                SensorEvent::Sample { value: Value::Number(c), .. } if (-60.0..=200.0).contains(c)
            )),
            "{events:?}"
        );
    } else if !root.exists() {
        assert!(inputs.is_empty(), "{inputs:?}");
    } else {
        assert!(
            inputs
                .iter()
                .filter(|input| input.quantity == Quantity::Temperature)
                .all(|input| tree::read(input).is_err())
        );
    }
}
