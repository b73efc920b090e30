//! Profiles read from files: the shipped ones, errors with positions, and the shell output.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::*;

pub(super) const MINIMAL: &str = r#"
[profile]
name = "test-box"
description = "a test machine"
arch = "x86_64"

[boot]
console = "ttyS0"

[disk]
device = "/dev/vda"

[tpm]
pcrs = [7]
"#;

fn write(dir: &TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("profile.toml");
    fs::write(&path, text).unwrap();
    path
}

/// The error lines for `text`, with the scratch path replaced by `P`.
pub(super) fn errors(text: &str) -> Vec<String> {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, text);
    let err = Profile::load(&path).expect_err("the profile should be refused");
    err.to_string()
        .lines()
        .map(|line| line.replace(path.to_str().unwrap(), "P"))
        .collect()
}

fn profiles_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hardware/profiles")
}

#[test]
fn every_shipped_profile_loads_and_is_named_after_its_file() {
    let mut count = 0;
    for entry in fs::read_dir(profiles_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "toml") {
            continue;
        }
        let profile = Profile::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let stem = path.file_stem().unwrap().to_str().unwrap();
        assert_eq!(profile.profile.name, stem, "{}", path.display());
        assert!(
            !profile.boot.root_console || stem.contains("dev"),
            "root console in {stem}"
        );
        count += 1;
    }
    assert!(
        count >= 1,
        "no profiles found in {}",
        profiles_dir().display()
    );
}

#[test]
fn the_default_profile_describes_the_qemu_machine() {
    let p = Profile::load(&profiles_dir().join("qemu-x86_64.toml")).unwrap();
    assert_eq!(p.profile.arch, Arch::X86_64);
    assert_eq!(p.boot.console, "ttyS0");
    assert_eq!(p.disk.device, "/dev/vda");
    assert_eq!(p.tpm.device, "/dev/tpmrm0");
    let pcrs: Vec<u64> = p.tpm.pcrs.iter().map(|pcr| pcr.get()).collect();
    assert_eq!(pcrs, vec![7, 11]);
    let uplinks: Vec<_> = p.nics_with_role(NicRole::Uplink).collect();
    assert_eq!(uplinks.len(), 1);
    assert_eq!(uplinks[0].match_driver.as_deref(), Some("virtio_net"));
    let environment = p.sensor_bus("site-environment").unwrap();
    assert_eq!(environment.kind, SensorBusKind::ModbusTcp);
    assert_eq!(environment.address.as_deref(), Some("127.0.0.1:15020"));
    let safety = p.sensor_bus("site-safety").unwrap();
    let relays: Vec<&str> = safety.relays.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(relays, ["siren", "beacon"]);
    assert!(p.simulation.miners && p.simulation.site);
    assert_eq!(p.sensor_bus("board").unwrap().kind, SensorBusKind::Hwmon);
}

#[test]
fn defaults_fill_optional_fields() {
    let dir = TempDir::new().unwrap();
    let p = Profile::load(&write(&dir, MINIMAL)).unwrap();
    assert_eq!(p.disk.esp_mib.get(), 256);
    assert_eq!(p.disk.root_mib.get(), 1024);
    assert_eq!(p.disk.verity_mib.get(), 16);
    assert_eq!(p.disk.data_mib.get(), 256);
    assert_eq!(p.tpm.device, "/dev/tpmrm0");
    assert!(p.boot.extra_cmdline.is_empty());
    assert!(!p.boot.root_console);
    assert!(p.nics.is_empty() && p.sensor_buses.is_empty());
}

#[test]
fn unknown_keys_and_sections_are_refused_with_their_line() {
    let text = MINIMAL.replace("[tpm]", "[tpm]\npcr = 7");
    assert_eq!(
        errors(&text),
        vec!["P:14:1: unknown key `pcr`, expected `device` or `pcrs`".to_string()]
    );
    let text = format!("{MINIMAL}\n[gpu]\nmodel = \"none\"\n");
    assert!(
        errors(&text)[0].starts_with("P:16:2: unknown key `gpu`"),
        "{:?}",
        errors(&text)
    );
}

#[test]
fn missing_sections_are_named() {
    let text = MINIMAL.replace("[tpm]\npcrs = [7]\n", "");
    assert_eq!(errors(&text), vec!["P:1:1: missing key `tpm`".to_string()]);
}

#[test]
fn sizes_below_their_minimum_point_at_the_value() {
    let text = MINIMAL.replace(
        "device = \"/dev/vda\"",
        "device = \"/dev/vda\"\nroot_mib = 100",
    );
    assert_eq!(
        errors(&text),
        vec!["P:12:12: value 100 is out of range, expected 512 to 1048576".to_string()]
    );
}

#[test]
fn pcrs_are_checked() {
    let text = MINIMAL.replace("pcrs = [7]", "pcrs = [7, 24]");
    assert_eq!(
        errors(&text),
        vec!["P:14:8: value 24 is out of range, expected 0 to 23".to_string()]
    );
    let text = MINIMAL.replace("pcrs = [7]", "pcrs = [7, 11, 7]");
    assert_eq!(
        errors(&text),
        vec!["P:14:16: `tpm.pcrs[2]`: PCR 7 is listed twice".to_string()]
    );
    let text = MINIMAL.replace("pcrs = [7]", "pcrs = []");
    assert!(errors(&text)[0].starts_with("P:14:1: `tpm.pcrs`: must name at least one PCR"));
}

#[test]
fn the_kernel_command_line_cannot_replace_the_verified_root() {
    let text = MINIMAL.replace(
        "console = \"ttyS0\"",
        "console = \"ttyS0\"\nextra_cmdline = [\"quiet\", \"roothash=00\", \"a b\"]",
    );
    let lines = errors(&text);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("P:9:27: `boot.extra_cmdline[1]`: `roothash=00` would override"));
    assert!(lines[1].starts_with("P:9:42: `boot.extra_cmdline[2]`: `a b` contains ' '"));
}

#[test]
fn console_and_devices_are_checked() {
    let text = MINIMAL
        .replace("console = \"ttyS0\"", "console = \"/dev/ttyS0\"")
        .replace("device = \"/dev/vda\"", "device = \"vda\"");
    assert_eq!(
        errors(&text),
        vec![
            "P:8:1: `boot.console`: `/dev/ttyS0` is not a tty name like `ttyS0` or `tty1` (no `/dev/`)"
                .to_string(),
            "P:11:1: `disk.device`: `vda` is not a device path under /dev/".to_string(),
        ]
    );
}

#[test]
fn nics_need_exactly_one_match_and_unique_names() {
    let text = format!(
        "{MINIMAL}
[[nic]]
name = \"uplink0\"
match_driver = \"virtio_net\"
role = \"uplink\"

[[nic]]
name = \"uplink0\"
match_mac = \"52:54:00:12:34:56\"
match_driver = \"e1000\"
role = \"mining\"

[[nic]]
name = \"site0\"
role = \"site\"
"
    );
    assert_eq!(
        errors(&text),
        vec![
            "P:22:1: `nic[1].name`: `uplink0` is already the name of nic[0]".to_string(),
            "P:21:1: `nic[1]`: sets both `match_mac` and `match_driver`; give exactly one"
                .to_string(),
            "P:27:1: `nic[2]`: sets neither `match_mac` nor `match_driver`; give exactly one"
                .to_string(),
        ]
    );
}

#[test]
fn nic_roles_and_macs_are_parsed_where_they_are_written() {
    let nic = |body: &str| format!("{MINIMAL}\n[[nic]]\nname = \"n0\"\n{body}\n");
    assert_eq!(
        errors(&nic("match_driver = \"x\"\nrole = \"wan\"")),
        vec![
            "P:19:8: unknown value `wan`, expected one of `uplink`, `hub-link`, `mining`, `site`"
                .to_string()
        ]
    );
    assert_eq!(
        errors(&nic("match_mac = \"52:54:00:12:34\"\nrole = \"site\"")),
        vec!["P:18:13: `52:54:00:12:34` is not a MAC address like `52:54:00:12:34:56`".to_string()]
    );
    assert!(
        errors(&nic("match_mac = \"01:00:5e:00:00:01\"\nrole = \"site\""))[0].contains("multicast")
    );
}

#[test]
fn sensor_bus_addresses_depend_on_the_kind() {
    let bus = |name: &str, kind: &str, address: Option<&str>| {
        let address = address
            .map(|a| format!("address = \"{a}\"\n"))
            .unwrap_or_default();
        format!("\n[[sensor_bus]]\nname = \"{name}\"\nkind = \"{kind}\"\n{address}")
    };
    let text = [
        MINIMAL.to_string(),
        bus("env", "modbus-tcp", None),
        bus("board", "hwmon", Some("127.0.0.1:1")),
        bus("pdu", "snmp", Some("10.0.0.5")),
        bus("ups", "nut", Some("ups@127.0.0.1:3493")),
        bus("ups", "nut", Some("127.0.0.1:0")),
        bus("Bad Name", "hwmon", None),
    ]
    .concat();
    let lines = errors(&text);
    assert_eq!(
        lines,
        vec![
            "P:16:1: `sensor_bus[0]`: a `modbus-tcp` bus needs an `address` like \"127.0.0.1:502\"",
            "P:23:1: `sensor_bus[1].address`: a `hwmon` bus reads local sensors and takes no address",
            "P:28:1: `sensor_bus[2].address`: `10.0.0.5` is not HOST:PORT",
            "P:36:1: `sensor_bus[4].name`: `ups` is already the name of sensor_bus[3]",
            "P:38:1: `sensor_bus[4].address`: `127.0.0.1:0` is not HOST:PORT with a port from 1 to 65535",
            "P:41:1: `sensor_bus[5].name`: `Bad Name` must be 1 to 64 characters of a-z, 0-9, `_` and `-`, starting with a letter or digit",
        ]
    );
}

#[test]
fn macs_display_lowercase() {
    let mac = MacAddr::try_from("52:54:00:AB:cd:EF".to_string()).unwrap();
    assert_eq!(mac.to_string(), "52:54:00:ab:cd:ef");
    assert!(MacAddr::try_from("00:00:00:00:00:00".to_string()).is_err());
    assert!(MacAddr::try_from("52-54-00-ab-cd-ef".to_string()).is_err());
    assert!(MacAddr::try_from("52:54:00:ab:cd:eg".to_string()).is_err());
}

#[test]
fn shell_env_lists_every_variable() {
    let p = Profile::load(&profiles_dir().join("qemu-x86_64.toml")).unwrap();
    assert_eq!(
        p.shell_env(),
        "BUNKER_PROFILE_NAME='qemu-x86_64'\n\
         BUNKER_ARCH='x86_64'\n\
         BUNKER_CONSOLE='ttyS0'\n\
         BUNKER_EXTRA_CMDLINE='panic=10'\n\
         BUNKER_ROOT_CONSOLE='0'\n\
         BUNKER_DISK_DEVICE='/dev/vda'\n\
         BUNKER_ESP_MIB='256'\n\
         BUNKER_ROOT_MIB='1024'\n\
         BUNKER_VERITY_MIB='16'\n\
         BUNKER_DATA_MIB='256'\n\
         BUNKER_TPM_DEVICE='/dev/tpmrm0'\n\
         BUNKER_TPM_PCRS='7+11'\n\
         BUNKER_SIMULATE_MINERS='1'\n\
         BUNKER_SIMULATE_SITE='1'\n"
    );
}

#[test]
fn shell_env_survives_eval_in_bash_whatever_the_values() {
    let mut p = Profile::load(&profiles_dir().join("qemu-x86_64.toml")).unwrap();
    // Values the checks would refuse, to prove the quoting alone is safe.
    let nasty = "it's $(touch /tmp/pwned) `id` \"q\" \\ $HOME ; done\n'";
    p.profile.name = nasty.to_string();
    p.boot.extra_cmdline = vec!["a'b".into(), "c d".into()];
    p.boot.root_console = true;
    let script = format!(
        "set -eu\n{}\nprintf '%s\\0' \"$BUNKER_PROFILE_NAME\" \"$BUNKER_EXTRA_CMDLINE\" \"$BUNKER_ROOT_CONSOLE\" \"$BUNKER_TPM_PCRS\"",
        p.shell_env()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let values: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap()
        .split('\0')
        .collect();
    assert_eq!(values[..4], [nasty, "a'b c d", "1", "7+11"]);
}

#[test]
fn profile_round_trips_through_toml() {
    let p = Profile::load(&profiles_dir().join("qemu-x86_64.toml")).unwrap();
    let text = toml::to_string(&p).unwrap();
    assert_eq!(toml::from_str::<Profile>(&text).unwrap(), p);
}
