//! The hardware profile: what one model of bunker server looks like to the image and services.
//!
//! One TOML file per platform lives in `hardware/profiles/` (`qemu-x86_64.toml` is the default).
//! The image build reads it (through `bunkerctl profile env`) to size the partitions and write
//! the kernel command line, and installs it as `/usr/share/bunkeros/profile.toml`, where `trustd`
//! finds the TPM, `sited` its sensor buses and `hubd` its network interfaces. Every field is
//! documented here; the schema is strict (`deny_unknown_fields`), so a typo fails the image build
//! instead of silently producing an image for the wrong hardware.
//!
//! ```toml
//! [profile]
//! name = "qemu-x86_64"
//! description = "QEMU q35 virtual machine with swtpm, for development and tests"
//! arch = "x86_64"
//!
//! [boot]
//! console = "ttyS0"
//! extra_cmdline = ["quiet"]
//! root_console = false
//!
//! [disk]
//! device = "/dev/vda"
//! esp_mib = 256
//! root_mib = 1024
//! verity_mib = 16
//! data_mib = 256
//!
//! [tpm]
//! device = "/dev/tpmrm0"
//! pcrs = [7, 11]
//!
//! [[nic]]
//! name = "uplink0"
//! match_driver = "virtio_net"
//! role = "uplink"
//!
//! [[sensor_bus]]
//! name = "plant-modbus"
//! kind = "modbus-tcp"
//! address = "127.0.0.1:5020"
//! ```
//!
//! A `modbus-tcp` bus declares its register map and relays as `[[sensor_bus.register]]` and
//! `[[sensor_bus.relay]]` entries; see [`ModbusRegister`] and [`ModbusRelay`].

mod checks;
mod modbus;
#[cfg(test)]
mod modbus_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{self, Bounded, ConfigError};

pub use modbus::{
    Finite, ModbusRegister, ModbusRelay, ModbusTable, ModbusType, NotFinite, WordOrder,
    is_sensor_name,
};

/// Where the image installs the profile it was built for (under `$BUNKEROS_ROOT` if set).
pub const INSTALLED_PATH: &str = "/usr/share/bunkeros/profile.toml";

/// A hardware profile, as read from its TOML file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// `[profile]`: which platform this is.
    pub profile: Identity,
    /// `[boot]`: console and kernel command line.
    pub boot: Boot,
    /// `[disk]`: the disk the image is written to and its partition sizes.
    pub disk: Disk,
    /// `[tpm]`: the TPM 2.0 that holds the CA keys.
    pub tpm: Tpm,
    /// `[[nic]]`: the network interfaces BunkerOS uses, each matched and given a role.
    #[serde(default, rename = "nic")]
    pub nics: Vec<Nic>,
    /// `[[sensor_bus]]`: where `sited` reads environment, power and door sensors.
    #[serde(default, rename = "sensor_bus")]
    pub sensor_buses: Vec<SensorBus>,
    /// `[simulation]`: simulated hardware inside the appliance (development and test profiles).
    #[serde(default)]
    pub simulation: Simulation,
}

/// `[simulation]`: whether the simulators of `hardware/sim` run inside the appliance, where the
/// real devices cannot be (QEMU): a fleet of simulated ASIC miners (`minersim`) mining through
/// minerd's proxy to a Stratum test pool (`poolsim`), with minerd configured for them on first
/// boot. Never set for a real bunker: the simulators would answer on loopback as if they were
/// machines. Default: no simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Simulation {
    /// Simulated miners, a test pool and minerd's configuration for them. Default: `false`.
    #[serde(default)]
    pub miners: bool,
    /// The simulated site (`sitesim`: the Modbus devices of the profile's `[[sensor_bus]]`
    /// entries on loopback) and sited's configuration for it. Default: `false`.
    #[serde(default)]
    pub site: bool,
}

/// `[profile]`: the platform's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Short name, `[a-z0-9_-]` starting with a letter or digit, at most 64 characters; the
    /// file is `hardware/profiles/<name>.toml` and image file names carry it. Required.
    pub name: String,
    /// One line for an operator: which server model, what it is for. Required.
    pub description: String,
    /// CPU architecture of the image. Only `"x86_64"` for now. Required.
    pub arch: Arch,
}

/// CPU architecture of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arch {
    /// 64-bit x86 (UEFI, `systemd-bootx64.efi`).
    #[serde(rename = "x86_64")]
    X86_64,
}

impl Arch {
    /// The name as written in profiles (and by `uname -m`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[boot]`: how the image boots on this platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boot {
    /// The tty, without `/dev/`, that gets kernel messages and the status screen: `"ttyS0"` for
    /// a serial console (QEMU, IPMI serial-over-LAN), `"tty1"` for a screen. Required.
    pub console: String,
    /// Extra kernel command line parameters, one per entry, e.g. `["quiet", "intel_iommu=on"]`.
    /// No spaces or quotes inside an entry. Parameters that decide what the root file system is
    /// (`root=`, `roothash=`, `usrhash=`, `init=`, `rootfstype=`, `mount.usr*`,
    /// `systemd.verity*`, `rd.systemd.verity*`) are refused: the image sets them and they are
    /// what measured boot vouches for. Shell-granting ones (`rescue`, `emergency`, `single`,
    /// `systemd.unit=`, `rd.break`, `rd.shell`, `systemd.debug_shell`, ...) need
    /// `root_console = true`. Default: none.
    #[serde(default)]
    pub extra_cmdline: Vec<String>,
    /// Development profiles only: a root shell on the console instead of the status screen.
    /// Never set this in a profile for a real bunker. Default: `false`.
    #[serde(default)]
    pub root_console: bool,
}

/// Size of the EFI system partition in MiB (kernel images for both slots live there).
pub type EspMib = Bounded<64, MAX_MIB>;
/// Size of each root file system slot (A and B) in MiB.
pub type RootMib = Bounded<512, MAX_MIB>;
/// Size of each dm-verity hash partition in MiB.
pub type VerityMib = Bounded<8, MAX_MIB>;
/// Size of the data partition (site config, service state) in MiB; it grows on first boot.
pub type DataMib = Bounded<64, MAX_MIB>;
/// Upper bound for any partition size: 1 TiB, far above anything sane, to catch typos.
pub const MAX_MIB: u64 = 1 << 20;

/// `[disk]`: the disk the image is written to and how it is partitioned.
///
/// The layout is GPT: ESP, root-A, verity-A, root-B, verity-B, data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// The block device the image is flashed onto, as the installed system sees it, e.g.
    /// `"/dev/vda"` (virtio), `"/dev/nvme0n1"`. Must be under `/dev/`. Required.
    pub device: String,
    /// EFI system partition, MiB, at least 64. Default: 256.
    #[serde(default = "default_esp_mib")]
    pub esp_mib: EspMib,
    /// Each root slot (A and B), MiB, at least 512. Default: 1024.
    #[serde(default = "default_root_mib")]
    pub root_mib: RootMib,
    /// Each verity hash partition, MiB, at least 8. Default: 16.
    #[serde(default = "default_verity_mib")]
    pub verity_mib: VerityMib,
    /// The data partition, MiB, at least 64 (initial size). Default: 256.
    #[serde(default = "default_data_mib")]
    pub data_mib: DataMib,
}

fn default_esp_mib() -> EspMib {
    Bounded::from_const(256)
}
fn default_root_mib() -> RootMib {
    Bounded::from_const(1024)
}
fn default_verity_mib() -> VerityMib {
    Bounded::from_const(16)
}
fn default_data_mib() -> DataMib {
    Bounded::from_const(256)
}

/// A PCR index, 0 to 23 (a TPM 2.0 PC-client has 24 PCRs).
pub type PcrIndex = Bounded<0, 23>;

/// `[tpm]`: the TPM 2.0 that holds the site CA keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tpm {
    /// The resource-managed TPM device `trustd` opens. Must be under `/dev/`.
    /// Default: `"/dev/tpmrm0"`.
    #[serde(default = "default_tpm_device")]
    pub device: String,
    /// PCRs the CA key policy binds to, e.g. `[7, 11]` (Secure Boot state and the unified
    /// kernel image). Each 0 to 23, no repeats, at least one. Required: which measurements a
    /// platform can keep stable is a property of its firmware.
    pub pcrs: Vec<PcrIndex>,
}

fn default_tpm_device() -> String {
    "/dev/tpmrm0".into()
}

/// `[[nic]]`: one network interface BunkerOS uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    /// The interface name BunkerOS gives it (a systemd `.link` file renames it), e.g.
    /// `"uplink0"`. At most 15 characters of `[A-Za-z0-9_.-]`, unique. Required.
    pub name: String,
    /// Match the interface by MAC address, `"52:54:00:12:34:56"`. Exactly one of `match_mac`
    /// and `match_driver`.
    #[serde(default)]
    pub match_mac: Option<MacAddr>,
    /// Match the interface by kernel driver, e.g. `"virtio_net"`, `"ixgbe"`. Exactly one of
    /// `match_mac` and `match_driver`.
    #[serde(default)]
    pub match_driver: Option<String>,
    /// What the interface is for. Required.
    pub role: NicRole,
}

/// What a network interface is used for; decides which service owns it and its firewall zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NicRole {
    /// `"uplink"`: the way out to the internet / WAN.
    Uplink,
    /// `"hub-link"`: dedicated links to peer hubs, carried by `hubd`.
    HubLink,
    /// `"mining"`: the network of ASIC miners, managed by `minerd`.
    Mining,
    /// `"site"`: the building network: sensors, UPS, door controllers, read by `sited`.
    Site,
}

impl NicRole {
    /// The role as profiles spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            NicRole::Uplink => "uplink",
            NicRole::HubLink => "hub-link",
            NicRole::Mining => "mining",
            NicRole::Site => "site",
        }
    }
}

impl fmt::Display for NicRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for SensorBusKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[[sensor_bus]]`: one place `sited` reads sensors from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorBus {
    /// Name used in alarms and metrics, `[a-z0-9_-]` starting with a letter or digit, at most
    /// 64 characters, unique. Required.
    pub name: String,
    /// The protocol. Required.
    pub kind: SensorBusKind,
    /// `"HOST:PORT"` of the device or daemon (`"127.0.0.1:5020"`, `"[fd00::5]:502"`); a NUT UPS
    /// may be named as `"ups@HOST:PORT"`. Required for every kind except `hwmon`, which reads
    /// the local `/sys/class/hwmon` and takes no address.
    #[serde(default)]
    pub address: Option<String>,
    /// `[[sensor_bus.register]]`: a `modbus-tcp` bus's register map, one entry per sensor
    /// (see [`ModbusRegister`]). Other kinds take none. Default: none.
    #[serde(default, rename = "register", skip_serializing_if = "Vec::is_empty")]
    pub registers: Vec<ModbusRegister>,
    /// `[[sensor_bus.relay]]`: relay outputs on a `modbus-tcp` bus's coils (see
    /// [`ModbusRelay`]). Other kinds take none. Default: none.
    #[serde(default, rename = "relay", skip_serializing_if = "Vec::is_empty")]
    pub relays: Vec<ModbusRelay>,
}

/// A sensor protocol `sited` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SensorBusKind {
    /// `"modbus-tcp"`: environment sensors, relays and door controllers over Modbus/TCP.
    ModbusTcp,
    /// `"nut"`: a UPS through a Network UPS Tools server (`upsd`).
    Nut,
    /// `"snmp"`: PDUs and UPS cards over SNMP.
    Snmp,
    /// `"hwmon"`: the server's own temperature and fan sensors (Linux hwmon).
    Hwmon,
}

impl SensorBusKind {
    /// The kind as profiles spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            SensorBusKind::ModbusTcp => "modbus-tcp",
            SensorBusKind::Nut => "nut",
            SensorBusKind::Snmp => "snmp",
            SensorBusKind::Hwmon => "hwmon",
        }
    }

    /// Whether this kind talks to a device over the network and so needs an `address`.
    pub const fn needs_address(self) -> bool {
        !matches!(self, SensorBusKind::Hwmon)
    }
}

/// An Ethernet MAC address, written `"52:54:00:12:34:56"` (any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacAddr(pub [u8; 6]);

/// Why a string is not a NIC's MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadMac {
    /// Not six `:`-separated pairs of hex digits.
    #[error("`{0}` is not a MAC address like `52:54:00:12:34:56`")]
    Unparsable(String),
    /// A group address (or all zeros): no network interface has it.
    #[error("`{0}` is a multicast or all-zero address, not a network interface's")]
    NotUnicast(String),
}

impl TryFrom<String> for MacAddr {
    type Error = BadMac;
    fn try_from(text: String) -> Result<Self, BadMac> {
        let parts: Vec<&str> = text.split(':').collect();
        let mut bytes = [0u8; 6];
        if parts.len() != 6 {
            return Err(BadMac::Unparsable(text));
        }
        for (byte, part) in bytes.iter_mut().zip(&parts) {
            if part.len() != 2 {
                return Err(BadMac::Unparsable(text));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| BadMac::Unparsable(text.clone()))?;
        }
        if bytes[0] & 1 == 1 || bytes == [0; 6] {
            return Err(BadMac::NotUnicast(text));
        }
        Ok(Self(bytes))
    }
}

impl From<MacAddr> for String {
    fn from(mac: MacAddr) -> String {
        mac.to_string()
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Profile {
    /// Reads and checks the profile at `path`; problems are reported as `FILE:LINE:COLUMN: ...`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        config::load_file(path, Profile::validate)
    }

    /// Reads the profile the image was built with ([`installed_path`]).
    pub fn load_installed() -> Result<Self, ConfigError> {
        Self::load(&installed_path())
    }

    /// Every problem with values that serde alone cannot check (formats, uniqueness, pairs).
    pub fn validate(&self) -> Result<(), Vec<config::Invalid>> {
        let problems = checks::check(self);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The interfaces with `role`, in file order.
    pub fn nics_with_role(&self, role: NicRole) -> impl Iterator<Item = &Nic> {
        self.nics.iter().filter(move |nic| nic.role == role)
    }

    /// The sensor bus called `name`.
    pub fn sensor_bus(&self, name: &str) -> Option<&SensorBus> {
        self.sensor_buses.iter().find(|bus| bus.name == name)
    }

    /// `KEY='value'` lines for the image build to `eval` in bash.
    ///
    /// Values are single-quoted with `'` written as `'\''`, so whatever a value holds it is never
    /// expanded or executed by the shell. Variables: `BUNKER_PROFILE_NAME`, `BUNKER_ARCH`,
    /// `BUNKER_CONSOLE`, `BUNKER_EXTRA_CMDLINE` (space-joined), `BUNKER_ROOT_CONSOLE` (`0`/`1`),
    /// `BUNKER_DISK_DEVICE`, `BUNKER_ESP_MIB`, `BUNKER_ROOT_MIB`, `BUNKER_VERITY_MIB`,
    /// `BUNKER_DATA_MIB`, `BUNKER_TPM_DEVICE`, `BUNKER_TPM_PCRS` (`+`-joined, as
    /// `systemd-cryptenroll --tpm2-pcrs=` and `systemd-measure` take them),
    /// `BUNKER_SIMULATE_MINERS`, `BUNKER_SIMULATE_SITE` (`0`/`1`).
    pub fn shell_env(&self) -> String {
        let pcrs: Vec<String> = self.tpm.pcrs.iter().map(ToString::to_string).collect();
        let vars: [(&str, String); 14] = [
            ("BUNKER_PROFILE_NAME", self.profile.name.clone()),
            ("BUNKER_ARCH", self.profile.arch.to_string()),
            ("BUNKER_CONSOLE", self.boot.console.clone()),
            ("BUNKER_EXTRA_CMDLINE", self.boot.extra_cmdline.join(" ")),
            (
                "BUNKER_ROOT_CONSOLE",
                if self.boot.root_console { "1" } else { "0" }.into(),
            ),
            ("BUNKER_DISK_DEVICE", self.disk.device.clone()),
            ("BUNKER_ESP_MIB", self.disk.esp_mib.to_string()),
            ("BUNKER_ROOT_MIB", self.disk.root_mib.to_string()),
            ("BUNKER_VERITY_MIB", self.disk.verity_mib.to_string()),
            ("BUNKER_DATA_MIB", self.disk.data_mib.to_string()),
            ("BUNKER_TPM_DEVICE", self.tpm.device.clone()),
            ("BUNKER_TPM_PCRS", pcrs.join("+")),
            (
                "BUNKER_SIMULATE_MINERS",
                if self.simulation.miners { "1" } else { "0" }.into(),
            ),
            (
                "BUNKER_SIMULATE_SITE",
                if self.simulation.site { "1" } else { "0" }.into(),
            ),
        ];
        vars.iter()
            .map(|(key, value)| format!("{key}={}\n", shell_quote(value)))
            .collect()
    }
}

/// [`INSTALLED_PATH`], under `$BUNKEROS_ROOT` when that is set.
pub fn installed_path() -> PathBuf {
    config::rooted(
        config::root_from_env().as_deref(),
        Path::new(INSTALLED_PATH),
    )
}

/// `value` as one single-quoted bash word: nothing inside is expanded.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}
