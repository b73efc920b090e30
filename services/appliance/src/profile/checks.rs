//! The checks of a profile that serde cannot do: formats of names and paths, uniqueness, and
//! fields that only make sense together. Each complaint names the key (`nic[1].name`) so the
//! loader can point at the line.

use std::collections::HashMap;

use super::{Profile, SensorBus};
use crate::config::Invalid;

/// Every problem with `profile`, in file order.
pub(super) fn check(profile: &Profile) -> Vec<Invalid> {
    let mut problems = Vec::new();
    check_identity(profile, &mut problems);
    check_boot(profile, &mut problems);
    check_device("disk.device", &profile.disk.device, &mut problems);
    check_device("tpm.device", &profile.tpm.device, &mut problems);
    check_pcrs(profile, &mut problems);
    check_nics(profile, &mut problems);
    check_sensor_buses(profile, &mut problems);
    super::modbus::check(profile, &mut problems);
    problems
}

fn check_identity(profile: &Profile, problems: &mut Vec<Invalid>) {
    let name = &profile.profile.name;
    if !is_slug(name) {
        problems.push(Invalid::new(
            "profile.name",
            format!("`{name}` {SLUG_RULE}"),
        ));
    }
    let description = &profile.profile.description;
    if description.trim().is_empty() {
        problems.push(Invalid::new(
            "profile.description",
            "must say what this platform is",
        ));
    } else if description.chars().any(char::is_control) {
        problems.push(Invalid::new("profile.description", "must be a single line"));
    }
}

fn check_boot(profile: &Profile, problems: &mut Vec<Invalid>) {
    let boot = &profile.boot;
    let console = &boot.console;
    let console_ok = console.len() <= 32
        && console.starts_with(|c: char| c.is_ascii_alphabetic())
        && console.chars().all(|c| c.is_ascii_alphanumeric());
    if !console_ok {
        problems.push(Invalid::new(
            "boot.console",
            format!("`{console}` is not a tty name like `ttyS0` or `tty1` (no `/dev/`)"),
        ));
    }
    for (i, parameter) in boot.extra_cmdline.iter().enumerate() {
        if let Some(reason) = cmdline_problem(parameter, boot.root_console) {
            problems.push(Invalid::new(format!("boot.extra_cmdline[{i}]"), reason));
        }
    }
}

/// Parameters that define the root file system; the image build sets them, and they are what
/// the measured unified kernel image vouches for.
const RESERVED_PARAMETERS: &[&str] = &["root", "roothash", "usrhash", "init", "rootfstype"];
/// Prefixes of reserved parameter families.
const RESERVED_PREFIXES: &[&str] = &["systemd.verity", "rd.systemd.verity", "mount.usr"];
/// Parameters that end in a root shell; only development profiles may have them.
const SHELL_PARAMETERS: &[&str] = &[
    "rescue",
    "emergency",
    "single",
    "s",
    "1",
    "systemd.unit",
    "rd.systemd.unit",
    "rd.break",
    "rd.shell",
    "rd.emergency",
    "systemd.debug_shell",
];

/// Why `parameter` may not go on the kernel command line, if it may not.
fn cmdline_problem(parameter: &str, root_console: bool) -> Option<String> {
    if parameter.is_empty() {
        return Some("is empty".into());
    }
    if let Some(c) = parameter
        .chars()
        .find(|c| c.is_whitespace() || c.is_control())
    {
        return Some(format!(
            "`{parameter}` contains {c:?}; give one parameter per entry"
        ));
    }
    if parameter.contains(['"', '\'', '\\']) {
        return Some(format!(
            "`{parameter}` contains a quote or backslash, which is not allowed"
        ));
    }
    // The kernel and systemd treat `-` and `_` in parameter names alike.
    let key = parameter
        .split('=')
        .next()
        .unwrap_or_default()
        .replace('-', "_")
        .to_lowercase();
    if RESERVED_PARAMETERS.contains(&key.as_str())
        || RESERVED_PREFIXES
            .iter()
            .any(|prefix| key.starts_with(prefix))
    {
        return Some(format!(
            "`{parameter}` would override what the image sets for the verified root file system"
        ));
    }
    if !root_console && SHELL_PARAMETERS.contains(&key.as_str()) {
        return Some(format!(
            "`{parameter}` can give a shell on the console; only allowed with `boot.root_console = true`"
        ));
    }
    None
}

fn check_device(key: &str, device: &str, problems: &mut Vec<Invalid>) {
    let name = device.strip_prefix("/dev/").unwrap_or_default();
    let ok = !name.is_empty()
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.:-".contains(c));
    if !ok {
        problems.push(Invalid::new(
            key,
            format!("`{device}` is not a device path under /dev/"),
        ));
    }
}

fn check_pcrs(profile: &Profile, problems: &mut Vec<Invalid>) {
    let pcrs = &profile.tpm.pcrs;
    if pcrs.is_empty() {
        problems.push(Invalid::new(
            "tpm.pcrs",
            "must name at least one PCR; a CA key bound to no measurement signs on a tampered boot",
        ));
    }
    for (i, pcr) in pcrs.iter().enumerate() {
        if pcrs[..i].contains(pcr) {
            problems.push(Invalid::new(
                format!("tpm.pcrs[{i}]"),
                format!("PCR {pcr} is listed twice"),
            ));
        }
    }
}

fn check_nics(profile: &Profile, problems: &mut Vec<Invalid>) {
    let mut seen = HashMap::new();
    for (i, nic) in profile.nics.iter().enumerate() {
        let key = format!("nic[{i}]");
        let name_ok = (1..=15).contains(&nic.name.len())
            && nic.name != "."
            && nic.name != ".."
            && nic
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !name_ok {
            problems.push(Invalid::new(
                format!("{key}.name"),
                format!(
                    "`{}` must be 1 to 15 characters of A-Z, a-z, 0-9, `_`, `.` and `-`",
                    nic.name
                ),
            ));
        }
        if let Some(first) = seen.insert(nic.name.as_str(), i) {
            problems.push(Invalid::new(
                format!("{key}.name"),
                format!("`{}` is already the name of nic[{first}]", nic.name),
            ));
            seen.insert(nic.name.as_str(), first);
        }
        match (&nic.match_mac, &nic.match_driver) {
            (Some(_), Some(_)) => problems.push(Invalid::new(
                key,
                "sets both `match_mac` and `match_driver`; give exactly one",
            )),
            (None, None) => problems.push(Invalid::new(
                key,
                "sets neither `match_mac` nor `match_driver`; give exactly one",
            )),
            (None, Some(driver)) => {
                let ok = !driver.is_empty()
                    && driver
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !ok {
                    problems.push(Invalid::new(
                        format!("{key}.match_driver"),
                        format!("`{driver}` is not a kernel driver name like `virtio_net`"),
                    ));
                }
            }
            (Some(_), None) => {}
        }
    }
}

fn check_sensor_buses(profile: &Profile, problems: &mut Vec<Invalid>) {
    let mut seen = HashMap::new();
    for (i, bus) in profile.sensor_buses.iter().enumerate() {
        let key = format!("sensor_bus[{i}]");
        if !is_slug(&bus.name) {
            problems.push(Invalid::new(
                format!("{key}.name"),
                format!("`{}` {SLUG_RULE}", bus.name),
            ));
        }
        if let Some(first) = seen.insert(bus.name.as_str(), i) {
            problems.push(Invalid::new(
                format!("{key}.name"),
                format!("`{}` is already the name of sensor_bus[{first}]", bus.name),
            ));
            seen.insert(bus.name.as_str(), first);
        }
        if let Some(problem) = address_problem(bus) {
            let key = if bus.address.is_some() {
                format!("{key}.address")
            } else {
                key
            };
            problems.push(Invalid::new(key, problem));
        }
    }
}

/// What is wrong with a bus's address given its kind, if anything.
fn address_problem(bus: &SensorBus) -> Option<String> {
    let kind = bus.kind.as_str();
    let Some(address) = &bus.address else {
        return bus
            .kind
            .needs_address()
            .then(|| format!("a `{kind}` bus needs an `address` like \"127.0.0.1:502\""));
    };
    if !bus.kind.needs_address() {
        return Some(format!(
            "a `{kind}` bus reads local sensors and takes no address"
        ));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Some(format!("`{address}` is not HOST:PORT"));
    };
    let host_ok = !host.is_empty() && !host.chars().any(|c| c.is_whitespace() || c.is_control());
    let port_ok = matches!(port.parse::<u16>(), Ok(p) if p != 0);
    if !host_ok || !port_ok {
        return Some(format!(
            "`{address}` is not HOST:PORT with a port from 1 to 65535"
        ));
    }
    None
}

/// What [`is_slug`] accepts, for messages.
const SLUG_RULE: &str =
    "must be 1 to 64 characters of a-z, 0-9, `_` and `-`, starting with a letter or digit";

/// 1 to 64 characters of `[a-z0-9_-]`, starting with a letter or digit (profile and bus names:
/// they end up in file names, metric labels and shell variables).
fn is_slug(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_parameters() {
        assert_eq!(cmdline_problem("quiet", false), None);
        assert_eq!(cmdline_problem("intel_iommu=on", false), None);
        assert_eq!(cmdline_problem("console=tty0", false), None);
        assert!(cmdline_problem("", false).is_some());
        assert!(
            cmdline_problem("a b", false)
                .unwrap()
                .contains("one parameter per entry")
        );
        assert!(cmdline_problem("x=\"y\"", false).unwrap().contains("quote"));
        for reserved in [
            "root=/dev/sda1",
            "roothash=abc",
            "ROOT=x",
            "systemd.verity=0",
            "systemd.verity_root_data=/dev/x",
            "systemd.verity-root-hash=x",
            "rd.systemd.verity=no",
            "init=/bin/sh",
            "mount.usr=/dev/x",
        ] {
            let problem = cmdline_problem(reserved, true).unwrap_or_default();
            assert!(problem.contains("would override"), "{reserved}: {problem}");
        }
        for shell in [
            "rescue",
            "systemd.unit=emergency.target",
            "rd.break",
            "systemd.debug-shell",
        ] {
            assert!(
                cmdline_problem(shell, false)
                    .unwrap()
                    .contains("root_console"),
                "{shell}"
            );
            assert_eq!(cmdline_problem(shell, true), None, "{shell}");
        }
    }

    #[test]
    fn slugs() {
        assert!(is_slug("qemu-x86_64"));
        assert!(is_slug("r740"));
        assert!(!is_slug(""));
        assert!(!is_slug("-x"));
        assert!(!is_slug("Qemu"));
        assert!(!is_slug("_x"));
        assert!(!is_slug("qemu.x86"));
        assert!(!is_slug(&"a".repeat(65)));
    }
}
