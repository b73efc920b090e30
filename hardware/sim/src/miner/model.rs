//! Which miner a simulated unit is: the hardware model (nominal hashrate and power, boards,
//! chips, fans) and the firmware that answers its cgminer API. A [`Personality`] is the pair,
//! as it is found in a real hall: stock Antminer firmware (bmminer), Braiins OS (BOSminer),
//! LuxOS on an Antminer, or a plain cgminer.

use serde::{Deserialize, Serialize};

/// The firmware family, which decides the reply shapes and the extra commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// Stock Antminer firmware: bmminer, hashrates in GH/s, per-chain `stats`.
    Bmminer,
    /// Braiins OS: BOSminer, hashrates in MH/s, `fans`/`temps`/`tunerstatus`, `pause`/`resume`.
    Bosminer,
    /// LuxOS (LUXminer) on an Antminer: bmminer-like replies in GH/s plus `config`, `profiles`,
    /// `power`, `fans`, `tempctrl`, `groups`; sleep (`curtail`) and power profiles
    /// (`profileset`) over the API behind a `logon` session.
    Luxos,
    /// Plain cgminer (e.g. on a small USB/controller rig): `devs`, MH/s.
    Cgminer,
}

impl Firmware {
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bmminer => "bmminer",
            Firmware::Bosminer => "bosminer",
            Firmware::Luxos => "luxos",
            Firmware::Cgminer => "cgminer",
        }
    }
}

/// The physical miner: what it does at its nominal operating point.
#[derive(Debug, Clone, PartialEq)]
pub struct HardwareModel {
    /// As the firmware names it, e.g. `Antminer S9`.
    pub name: &'static str,
    pub nominal_ths: f64,
    pub nominal_w: f64,
    /// The power-target range the autotuner accepts (BOSminer).
    pub min_power_w: f64,
    pub max_power_w: f64,
    /// Control board, PSU losses and fans with the hash boards idle.
    pub idle_w: f64,
    /// The firmware's chain numbers of the hash boards (a real S9 reports chains 6, 7, 8).
    pub chains: &'static [u32],
    pub chips_per_board: u32,
    /// The firmware's fan slots that carry a fan (a real S9 reports fan3 and fan6).
    pub fan_slots: &'static [u32],
    pub fan_max_rpm: u32,
    /// Chip frequency at the nominal point, MHz.
    pub frequency_mhz: u32,
    /// Whether its Stratum client announces BIP 310 version rolling (AsicBoost).
    pub version_rolling: bool,
}

const ANTMINER_S9: HardwareModel = HardwareModel {
    name: "Antminer S9",
    nominal_ths: 13.5,
    nominal_w: 1323.0,
    min_power_w: 700.0,
    max_power_w: 1600.0,
    idle_w: 60.0,
    chains: &[6, 7, 8],
    chips_per_board: 63,
    fan_slots: &[3, 6],
    fan_max_rpm: 6000,
    frequency_mhz: 650,
    version_rolling: false,
};

const ANTMINER_S19_PRO: HardwareModel = HardwareModel {
    name: "Antminer S19 Pro",
    nominal_ths: 110.0,
    nominal_w: 3250.0,
    min_power_w: 1500.0,
    max_power_w: 3600.0,
    idle_w: 95.0,
    chains: &[1, 2, 3],
    chips_per_board: 114,
    fan_slots: &[1, 2, 3, 4],
    fan_max_rpm: 6600,
    frequency_mhz: 675,
    version_rolling: true,
};

const ANTMINER_S19J_PRO: HardwareModel = HardwareModel {
    name: "Antminer S19j Pro",
    nominal_ths: 104.0,
    nominal_w: 3068.0,
    min_power_w: 1300.0,
    max_power_w: 3500.0,
    idle_w: 90.0,
    chains: &[1, 2, 3],
    chips_per_board: 126,
    fan_slots: &[0, 1, 2, 3],
    fan_max_rpm: 6600,
    frequency_mhz: 525,
    version_rolling: true,
};

/// A small rig under plain cgminer: two boards on one controller.
const CGMINER_RIG: HardwareModel = HardwareModel {
    name: "cgminer SHA256 rig",
    nominal_ths: 4.9,
    nominal_w: 620.0,
    min_power_w: 300.0,
    max_power_w: 700.0,
    idle_w: 25.0,
    chains: &[0, 1],
    chips_per_board: 32,
    fan_slots: &[0],
    fan_max_rpm: 4800,
    frequency_mhz: 500,
    version_rolling: false,
};

/// A miner as found in a hall: hardware plus firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Personality {
    /// Antminer S9 on stock bmminer firmware.
    #[serde(rename = "s9-bmminer")]
    S9Bmminer,
    /// Antminer S19 Pro on stock bmminer firmware.
    #[serde(rename = "s19pro-bmminer")]
    S19ProBmminer,
    /// Antminer S9 on Braiins OS (BOSminer), as in the captured BOSminer+ replies.
    #[serde(rename = "s9-bosminer")]
    S9Bosminer,
    /// Antminer S19j Pro on Braiins OS (BOSminer).
    #[serde(rename = "s19jpro-bosminer")]
    S19jProBosminer,
    /// Antminer S19j Pro on LuxOS.
    #[serde(rename = "s19jpro-luxos")]
    S19jProLuxos,
    /// A rig under plain cgminer 4.11.1.
    #[serde(rename = "cgminer")]
    Cgminer,
}

impl Personality {
    pub const ALL: [Personality; 6] = [
        Personality::S9Bmminer,
        Personality::S19ProBmminer,
        Personality::S9Bosminer,
        Personality::S19jProBosminer,
        Personality::S19jProLuxos,
        Personality::Cgminer,
    ];

    pub fn hardware(self) -> &'static HardwareModel {
        match self {
            Personality::S9Bmminer | Personality::S9Bosminer => &ANTMINER_S9,
            Personality::S19ProBmminer => &ANTMINER_S19_PRO,
            Personality::S19jProBosminer | Personality::S19jProLuxos => &ANTMINER_S19J_PRO,
            Personality::Cgminer => &CGMINER_RIG,
        }
    }

    pub fn firmware(self) -> Firmware {
        match self {
            Personality::S9Bmminer | Personality::S19ProBmminer => Firmware::Bmminer,
            Personality::S9Bosminer | Personality::S19jProBosminer => Firmware::Bosminer,
            Personality::S19jProLuxos => Firmware::Luxos,
            Personality::Cgminer => Firmware::Cgminer,
        }
    }

    /// The name used on the command line (`--models s9-bmminer,s19jpro-bosminer`).
    pub fn cli_name(self) -> &'static str {
        match self {
            Personality::S9Bmminer => "s9-bmminer",
            Personality::S19ProBmminer => "s19pro-bmminer",
            Personality::S9Bosminer => "s9-bosminer",
            Personality::S19jProBosminer => "s19jpro-bosminer",
            Personality::S19jProLuxos => "s19jpro-luxos",
            Personality::Cgminer => "cgminer",
        }
    }

    pub fn from_cli_name(name: &str) -> Option<Personality> {
        Personality::ALL
            .into_iter()
            .find(|p| p.cli_name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether the firmware's API can put the miner to sleep (BOSminer `pause`/`resume`,
    /// LuxOS `curtail`). Stock bmminer and cgminer can only be stopped through their web UI
    /// or not at all.
    pub fn can_sleep_over_api(self) -> bool {
        matches!(self.firmware(), Firmware::Bosminer | Firmware::Luxos)
    }

    /// Whether the firmware runs to a power target (the BOSminer autotuner, set over its gRPC
    /// or REST API; LuxOS power profiles, set with `profileset` over the cgminer API). The
    /// others run at the model's nominal point.
    pub fn has_power_target(self) -> bool {
        matches!(self.firmware(), Firmware::Bosminer | Firmware::Luxos)
    }
}
