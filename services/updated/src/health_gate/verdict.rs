//! What the gate concluded, in the shape updated records and `Update1` shows: every check named,
//! each with a sentence, and for a healthy slot trustd's signature over the gate's statement.

use appliance::audit_log::TrustedKey;
use serde::{Deserialize, Serialize};

/// Names of the checks that are not units (`unit:<name>` are the units').
pub mod check_names {
    /// trustd is ready and its CA key signed the gate's statement.
    pub const TRUSTD_SIGNS: &str = "trustd-signs";
    /// Every configured hub link is up (or this appliance is not a hub).
    pub const HUB_LINKS: &str = "hub-links";
    /// The site is neither critical nor in lockdown.
    pub const SITE_STATE: &str = "site-state";
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// `unit:trustd`, `trustd-signs`, `hub-links`, `site-state`.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was seen, for the operator: why it passed or failed.
    pub sentence: String,
}

impl Check {
    /// A passed check.
    pub fn pass(name: impl Into<String>, sentence: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            passed: true,
            sentence: sentence.into(),
        }
    }

    /// A failed check.
    pub fn fail(name: impl Into<String>, sentence: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            passed: false,
            sentence: sentence.into(),
        }
    }
}

/// The gate's conclusion about the booted slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Every check passed in the same round.
    Healthy {
        /// Every check, in order (units first).
        checks: Vec<Check>,
        /// trustd's signature over the gate's statement for this boot: part of the evidence a
        /// rollout sends.
        signature: GateSignature,
        /// Seconds from the gate's start to the round that passed.
        after_secs: u64,
    },
    /// The timeout ended with at least one check failing in the last round.
    Unhealthy {
        /// The checks that failed in the last round, each with its sentence.
        failed: Vec<Check>,
        /// The checks that passed in the last round.
        passed: Vec<Check>,
        /// Seconds from the gate's start to the last round.
        after_secs: u64,
    },
}

impl Verdict {
    /// Whether the slot may be blessed.
    pub fn is_healthy(&self) -> bool {
        matches!(self, Self::Healthy { .. })
    }

    /// One line for the log and the recorded reason, e.g. `unhealthy after 300 s: unit:minerd:
    /// minerd.service failed (result exit-code)`.
    pub fn summary(&self) -> String {
        match self {
            Self::Healthy {
                checks, after_secs, ..
            } => format!(
                "healthy after {after_secs} s: {} checks passed",
                checks.len()
            ),
            Self::Unhealthy {
                failed, after_secs, ..
            } => {
                let failures: Vec<String> = failed
                    .iter()
                    .map(|check| format!("{}: {}", check.name, check.sentence))
                    .collect();
                format!("unhealthy after {after_secs} s: {}", failures.join("; "))
            }
        }
    }
}

/// Domain separation of the gate's statement: no other BunkerOS statement starts so.
pub const STATEMENT_DOMAIN: &[u8] = b"bunkeros health gate v1\0";

/// The SHA-256 digest trustd signs for the gate in the boot `boot_id`: of
/// `"bunkeros health gate v1" 0x00 || boot_id`. trustd itself wraps it in its audit statement
/// (service name and its own domain), so the signature is only ever one over this digest for
/// that service.
pub fn statement_digest(boot_id: &str) -> [u8; 32] {
    let mut statement = STATEMENT_DOMAIN.to_vec();
    statement.extend_from_slice(boot_id.as_bytes());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &statement);
    digest
        .as_ref()
        .try_into()
        .expect("SHA-256 digests are 32 bytes")
}

/// trustd's signature over the gate's statement, as evidence that the CA key worked in this
/// boot of the new slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSignature {
    /// The boot the statement names (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
    /// The service name inside trustd's audit statement.
    pub service: String,
    /// [`statement_digest`] of the boot id, hex.
    pub digest: String,
    /// The CA key that signed: its SEC1 point, hex (as trustd's `Status()` shows it).
    pub public_key: String,
    /// Hex SHA-256 of the uncompressed point (appliance's audit key id).
    pub key_id: String,
    /// DER ECDSA signature over trustd's audit statement of the digest, hex.
    pub signature: String,
}

impl GateSignature {
    /// Whether this evidence holds against `key`: the digest is the statement's for the boot
    /// it names, and the signature is trustd's audit signature of it under `service`.
    pub fn verifies_with(&self, key: &TrustedKey) -> bool {
        let digest = statement_digest(&self.boot_id);
        let Ok(signature) = hex::decode(&self.signature) else {
            return false;
        };
        hex::encode(digest) == self.digest && key.verifies(&self.service, &digest, &signature)
    }
}

/// The id of the running boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootId(String);

/// Why the boot id could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BootIdError {
    #[error("cannot read the boot id from {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0:?} is not a boot id (a UUID)")]
    NotUuid(String),
}

impl BootId {
    /// The kernel's file with the boot id.
    pub const PROC_PATH: &str = "/proc/sys/kernel/random/boot_id";

    /// The running boot's id, from [`Self::PROC_PATH`].
    pub fn read() -> Result<Self, BootIdError> {
        let text =
            std::fs::read_to_string(Self::PROC_PATH).map_err(|source| BootIdError::Read {
                path: Self::PROC_PATH.to_owned(),
                source,
            })?;
        Self::parse(text.trim())
    }

    /// A boot id as the kernel writes it: a lower-case UUID with dashes.
    pub fn parse(text: &str) -> Result<Self, BootIdError> {
        let shape_ok = text.len() == 36
            && text.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
            });
        if shape_ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(BootIdError::NotUuid(text.chars().take(64).collect()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
