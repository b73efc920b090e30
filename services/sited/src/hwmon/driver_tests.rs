use std::fs;
use std::path::Path;
use std::time::Duration;

use super::*;

fn write(root: &Path, path: &str, contents: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

/// A tree with one chip and one temperature, and a driver reading it.
fn one_sensor() -> (tempfile::TempDir, HwmonDriver) {
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "hwmon0/name", "coretemp\n");
    write(root.path(), "hwmon0/temp1_input", "45000\n");
    write(root.path(), "hwmon0/temp1_label", "Core 0\n");
    let driver = HwmonDriver::new(HwmonSettings {
        root: root.path().to_owned(),
        poll_ms: 1000,
        deadline_ms: 1000,
        ..HwmonSettings::for_bus("server")
    })
    .unwrap();
    (root, driver)
}

/// `(sensor, value)` for samples, `(sensor, reason)` for lost sensors.
fn summary(events: &[SensorEvent]) -> Vec<(String, Result<f64, LostReason>)> {
    events
        .iter()
        .map(|event| match event {
            SensorEvent::Sample {
                sensor,
                value: Value::Number(v),
                ..
            } => (sensor.to_string(), Ok(*v)),
            SensorEvent::Lost { sensor, reason, .. } => (sensor.to_string(), Err(reason.clone())),
            other => panic!("hwmon gives numbers only: {other:?}"),
        })
        .collect()
}

const CORE0: &str = "server.coretemp.core-0";

#[tokio::test]
async fn a_changed_value_shows_in_the_next_poll() {
    let (root, mut driver) = one_sensor();
    assert_eq!(summary(&driver.poll().await), [(CORE0.into(), Ok(45.0))]);
    write(root.path(), "hwmon0/temp1_input", "52500\n");
    assert_eq!(summary(&driver.poll().await), [(CORE0.into(), Ok(52.5))]);
    assert_eq!(driver.inputs().len(), 1);
}

#[tokio::test]
async fn a_vanished_input_is_lost_once_then_recovers() {
    let (root, mut driver) = one_sensor();
    driver.poll().await;
    fs::remove_file(root.path().join("hwmon0/temp1_input")).unwrap();
    let events = summary(&driver.poll().await);
    assert!(
        matches!(&events[..], [(name, Err(LostReason::Unreachable { detail }))]
            if name == CORE0 && detail.ends_with("is gone")),
        "{events:?}"
    );
    // Still gone: nothing new to say.
    assert_eq!(summary(&driver.poll().await), []);
    write(root.path(), "hwmon0/temp1_input", "44000\n");
    assert_eq!(summary(&driver.poll().await), [(CORE0.into(), Ok(44.0))]);
}

#[tokio::test]
async fn garbage_is_malformed_then_recovers() {
    let (root, mut driver) = one_sensor();
    driver.poll().await;
    write(root.path(), "hwmon0/temp1_input", "\u{0}\u{ff}garbage");
    let events = summary(&driver.poll().await);
    assert!(
        matches!(&events[..], [(_, Err(LostReason::Malformed { .. }))]),
        "{events:?}"
    );
    write(root.path(), "hwmon0/temp1_input", "46000\n");
    assert_eq!(summary(&driver.poll().await), [(CORE0.into(), Ok(46.0))]);
}

#[tokio::test]
async fn an_impossible_temperature_is_out_of_range() {
    let (root, mut driver) = one_sensor();
    driver.poll().await;
    write(root.path(), "hwmon0/temp1_input", "-273000\n");
    assert_eq!(
        summary(&driver.poll().await),
        [(
            CORE0.into(),
            Err(LostReason::OutOfRange {
                value: -273.0,
                min: -60.0,
                max: 200.0
            })
        )]
    );
}

#[tokio::test]
async fn chips_coming_and_going_are_discovered() {
    let (root, mut driver) = one_sensor();
    driver.poll().await;
    write(root.path(), "hwmon1/name", "psu\n");
    write(root.path(), "hwmon1/fan1_input", "3000\n");
    assert_eq!(
        summary(&driver.poll().await),
        [
            (CORE0.into(), Ok(45.0)),
            ("server.psu.fan1".into(), Ok(3000.0))
        ]
    );
    fs::remove_dir_all(root.path().join("hwmon1")).unwrap();
    assert_eq!(
        summary(&driver.poll().await),
        [
            (
                "server.psu.fan1".into(),
                Err(LostReason::Unreachable {
                    detail: "its hwmon chip is gone".into()
                })
            ),
            (CORE0.into(), Ok(45.0)),
        ]
    );
    assert_eq!(driver.inputs().len(), 1);
}

/// A FIFO stands in for a sysfs read that hangs: opening it blocks until a writer comes.
#[tokio::test]
async fn a_hung_read_is_a_timeout_and_does_not_stall_the_runtime() {
    let (root, mut driver) = one_sensor();
    driver.poll().await;
    let input = root.path().join("hwmon0/temp1_input");
    fs::remove_file(&input).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&input)
        .status()
        .unwrap();
    assert!(made.success());

    let hung = tokio::time::timeout(Duration::from_secs(10), driver.poll())
        .await
        .expect("a poll is bounded by its deadline");
    assert_eq!(summary(&hung), [(CORE0.into(), Err(LostReason::Timeout))]);
    // The read is still stuck: the next poll waits on it rather than start another.
    let again = tokio::time::timeout(Duration::from_secs(10), driver.poll())
        .await
        .expect("a poll is bounded by its deadline");
    assert_eq!(summary(&again), []);

    // Release the stuck read (the runtime waits for blocking tasks when it shuts down), then
    // put a regular file back.
    let fifo = input.clone();
    tokio::task::spawn_blocking(move || fs::write(fifo, "47000\n"))
        .await
        .unwrap()
        .unwrap();
    fs::remove_file(&input).unwrap();
    fs::write(&input, "48000\n").unwrap();
    let mut recovered = Vec::new();
    for _ in 0..3 {
        recovered.extend(summary(&driver.poll().await));
        if recovered.iter().any(|(_, reading)| reading.is_ok()) {
            break;
        }
    }
    assert!(
        recovered
            .iter()
            .any(|(name, reading)| name == CORE0 && reading.is_ok()),
        "{recovered:?}"
    );
}

#[test]
fn invalid_settings_make_no_driver() {
    let settings = HwmonSettings {
        poll_ms: 10,
        ..HwmonSettings::for_bus("server")
    };
    assert_eq!(
        HwmonDriver::new(settings).unwrap_err()[0].key,
        "hwmon.poll_ms"
    );
}
