use std::fs;

use super::*;

/// Writes `files` (relative path, contents) under a fresh directory shaped like
/// `/sys/class/hwmon`.
fn fake_tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for (path, contents) in files {
        let path = root.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }
    root
}

fn names(inputs: &[Input]) -> Vec<&str> {
    inputs.iter().map(|input| input.sensor.as_str()).collect()
}

#[test]
fn labelled_and_unlabelled_inputs_are_named_by_bus_chip_and_label() {
    let root = fake_tree(&[
        ("hwmon0/name", "coretemp\n"),
        ("hwmon0/temp1_input", "45000\n"),
        ("hwmon0/temp1_label", "Package id 0\n"),
        ("hwmon0/temp1_max", "80000\n"),
        ("hwmon0/temp1_crit", "100000\n"),
        ("hwmon0/temp2_input", "43000\n"),
        ("hwmon0/temp2_label", "Core 0\n"),
        ("hwmon1/name", "nct6775\n"),
        ("hwmon1/fan1_input", "1200\n"),
        ("hwmon1/fan1_label", "CPU FAN\n"),
        ("hwmon1/fan2_input", "900\n"),
        ("hwmon1/temp7_input", "30000\n"),
    ]);
    let inputs = discover(root.path(), "server").unwrap();
    assert_eq!(
        names(&inputs),
        [
            "server.coretemp.package-id-0",
            "server.coretemp.core-0",
            "server.nct6775.temp7",
            "server.nct6775.cpu-fan",
            "server.nct6775.fan2",
        ]
    );
    assert_eq!((inputs[0].max, inputs[0].crit), (Some(80.0), Some(100.0)));
    assert_eq!((inputs[1].max, inputs[1].crit), (None, None));
    assert_eq!(inputs[3].quantity, Quantity::Fan);
    assert_eq!(inputs[3].path, root.path().join("hwmon1/fan1_input"));
    let values: Vec<f64> = inputs.iter().map(|i| read(i).unwrap()).collect();
    assert_eq!(values, [45.0, 43.0, 30.0, 1200.0, 900.0]);
}

#[test]
fn chips_sharing_a_name_get_their_hwmon_index() {
    let root = fake_tree(&[
        ("hwmon2/name", "coretemp\n"),
        ("hwmon2/temp1_input", "40000\n"),
        ("hwmon10/name", "coretemp\n"),
        ("hwmon10/temp1_input", "41000\n"),
        ("hwmon3/name", "acpitz\n"),
        ("hwmon3/temp1_input", "27800\n"),
    ]);
    let inputs = discover(root.path(), "server").unwrap();
    assert_eq!(
        names(&inputs),
        [
            "server.coretemp-2.temp1",
            "server.acpitz.temp1",
            "server.coretemp-10.temp1",
        ]
    );
}

#[test]
fn inputs_sharing_a_label_keep_their_attribute() {
    let root = fake_tree(&[
        ("hwmon0/name", "nct6779\n"),
        ("hwmon0/temp3_input", "30000\n"),
        ("hwmon0/temp3_label", "AUXTIN\n"),
        ("hwmon0/temp4_input", "31000\n"),
        ("hwmon0/temp4_label", "AUXTIN\n"),
    ]);
    let inputs = discover(root.path(), "srv").unwrap();
    assert_eq!(
        names(&inputs),
        ["srv.nct6779.auxtin", "srv.nct6779.auxtin-temp4"]
    );
}

#[test]
fn odd_names_become_sensor_names() {
    assert_eq!(name_part("Package id 0").as_deref(), Some("package-id-0"));
    assert_eq!(name_part("  CPU.Fan/1 ").as_deref(), Some("cpu-fan-1"));
    assert_eq!(name_part("température").as_deref(), Some("temp-rature"));
    assert_eq!(name_part("???"), None);
    assert_eq!(
        name_part("a very long label indeed").as_deref(),
        Some("a-very-long-labe")
    );
    // A chip without a usable name is named by its entry.
    let root = fake_tree(&[("hwmon4/name", "!!\n"), ("hwmon4/temp1_input", "1000\n")]);
    assert_eq!(
        names(&discover(root.path(), "s").unwrap()),
        ["s.hwmon4.temp1"]
    );
}

#[test]
fn only_hwmon_entries_and_input_files_count() {
    let root = fake_tree(&[
        ("hwmon0/name", "acpitz\n"),
        ("hwmon0/temp1_input", "27000\n"),
        ("hwmon0/temp1_crit", "105000\n"),
        ("hwmon0/temp_input", "1\n"),
        ("hwmon0/tempx_input", "1\n"),
        ("hwmon0/in0_input", "1200\n"),
        ("hwmonX/temp1_input", "1\n"),
        ("thermal0/temp1_input", "1\n"),
    ]);
    assert_eq!(
        chip_entries(root.path()).unwrap(),
        BTreeSet::from(["hwmon0".to_owned()])
    );
    assert_eq!(
        names(&discover(root.path(), "s").unwrap()),
        ["s.acpitz.temp1"]
    );
}

#[test]
fn an_absent_root_has_no_chips() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("hwmon");
    assert!(chip_entries(&absent).unwrap().is_empty());
    assert!(discover(&absent, "s").unwrap().is_empty());
}

#[test]
fn bad_readings_say_why() {
    let root = fake_tree(&[
        ("hwmon0/name", "chip\n"),
        ("hwmon0/temp1_input", "n/a\n"),
        ("hwmon0/temp2_input", "250000\n"),
        ("hwmon0/temp3_input", "-61000\n"),
        ("hwmon0/temp4_input", "-40000\n"),
        ("hwmon0/fan1_input", "-5\n"),
        ("hwmon0/fan2_input", "0\n"),
    ]);
    let inputs = discover(root.path(), "s").unwrap();
    let readings: Vec<_> = inputs.iter().map(read).collect();
    assert!(
        matches!(&readings[0], Err(LostReason::Malformed { detail }) if detail.contains("\"n/a\"")),
        "{:?}",
        readings[0]
    );
    assert_eq!(
        readings[1],
        Err(LostReason::OutOfRange {
            value: 250.0,
            min: -60.0,
            max: 200.0
        })
    );
    assert!(matches!(readings[2], Err(LostReason::OutOfRange { .. })));
    assert_eq!(readings[3], Ok(-40.0));
    assert!(matches!(readings[4], Err(LostReason::OutOfRange { value, .. }) if value == -5.0));
    assert_eq!(readings[5], Ok(0.0));
    fs::remove_file(&inputs[3].path).unwrap();
    assert!(matches!(
        read(&inputs[3]),
        Err(LostReason::Unreachable { detail }) if detail.ends_with("is gone")
    ));
}
