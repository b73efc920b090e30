//! The BunkerOS systemd units, in the order an operator reads them.
//!
//! One list, so `bunkerctl status`, the console status screen and the boot test agree on what
//! "every BunkerOS unit" means. A unit that is not installed in this image shows as `not-found`.

/// A BunkerOS unit and what it is for, in the operator's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BunkerUnit {
    /// systemd unit name, e.g. `trustd.service`.
    pub name: &'static str,
    /// One line saying what the unit does.
    pub role: &'static str,
}

/// Every BunkerOS unit, services first, then the appliance's own helpers.
pub const BUNKEROS_UNITS: &[BunkerUnit] = &[
    BunkerUnit {
        name: "trustd.service",
        role: "site certificate authority (keys in the TPM)",
    },
    BunkerUnit {
        name: "hubd.service",
        role: "secure hub routing",
    },
    BunkerUnit {
        name: "minerd.service",
        role: "mining orchestration",
    },
    BunkerUnit {
        name: "sited.service",
        role: "EMP-site monitoring",
    },
    BunkerUnit {
        name: "updated.service",
        role: "signed A/B image updates",
    },
    BunkerUnit {
        name: "bunkeros-slot.service",
        role: "booted slot and its signed PCR policy",
    },
    BunkerUnit {
        name: "bunkeros-console.service",
        role: "console status screen",
    },
];
