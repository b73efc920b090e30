//! The rollout plan the operator writes: which release goes to which hubs, in which waves.
//!
//! ```toml
//! id = "2026-11-spring"           # names the rollout (and its directory in the exchange)
//! release_version = "0.2.0"       # the image version every hub must boot
//! expected_pcr11 = "9f…"          # the release's pcr11.expected (SHA-256, hex)
//! source = "usb"                  # where the hubs read the release: usb, a directory, https://
//! soak_secs = 3600                # a healthy wave waits this long before the next one starts
//! wave_timeout_secs = 7200        # a wave not healthy this long after its instructions halts
//! canary_hubs = 1                 # the first wave holds at most this many hubs
//!
//! [[wave]]
//! name = "canary"
//! hubs = ["malaga"]
//! [[wave]]
//! name = "south"
//! hubs = ["sevilla", "sao-paulo"]
//!
//! [[hub]]
//! id = "malaga"
//! ca_key = "04…"                  # the hub's CA public key (SEC1 hex), pinned by the operator
//! ```
//!
//! Ordering by hub rather than by fleet percentage (Bottlerocket's waves are time-based only)
//! keeps the routing mesh and CA quorum alive: a bad release stops at the canary.

use std::collections::{BTreeMap, BTreeSet};

use appliance::config::{DurationSecs, Invalid};
use serde::{Deserialize, Serialize};

use crate::ImageVersion;

/// Longest plan accepted over D-Bus or from the exchange: a plan for a few hundred hubs.
pub const MAX_PLAN_BYTES: usize = 256 * 1024;

/// A rollout plan, as parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPlan {
    pub id: String,
    pub release_version: String,
    pub expected_pcr11: String,
    pub source: String,
    #[serde(default = "default_soak")]
    pub soak_secs: DurationSecs<0, 604_800>,
    #[serde(default = "default_wave_timeout")]
    pub wave_timeout_secs: DurationSecs<60, 604_800>,
    #[serde(default = "default_canary_hubs")]
    pub canary_hubs: usize,
    #[serde(rename = "wave")]
    pub waves: Vec<WaveSpec>,
    #[serde(rename = "hub")]
    pub hubs: Vec<HubSpec>,
}

/// `[[wave]]`: hubs instructed together; the next wave waits for all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaveSpec {
    pub name: String,
    pub hubs: Vec<String>,
}

/// `[[hub]]`: a hub and the CA key its evidence must be signed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSpec {
    pub id: String,
    /// SEC1-encoded P-256 public key in hex (33 bytes compressed or 65 uncompressed).
    pub ca_key: String,
}

fn default_soak() -> DurationSecs<0, 604_800> {
    DurationSecs::from_const(3600)
}

fn default_wave_timeout() -> DurationSecs<60, 604_800> {
    DurationSecs::from_const(7200)
}

fn default_canary_hubs() -> usize {
    1
}

/// Why a plan was refused: every problem, each a sentence an operator can act on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("the plan is larger than {MAX_PLAN_BYTES} bytes")]
    TooLarge,
    #[error("the plan is not valid TOML for a rollout plan: {0}")]
    Syntax(String),
    #[error("{}", invalid_lines(.0))]
    Invalid(Vec<Invalid>),
}

fn invalid_lines(problems: &[Invalid]) -> String {
    problems
        .iter()
        .map(|p| format!("`{}`: {}", p.key, p.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

impl RolloutPlan {
    /// Parses and validates a plan's TOML text.
    pub fn parse(text: &str) -> Result<RolloutPlan, PlanError> {
        if text.len() > MAX_PLAN_BYTES {
            return Err(PlanError::TooLarge);
        }
        let plan: RolloutPlan =
            toml::from_str(text).map_err(|e| PlanError::Syntax(syntax(text, &e)))?;
        plan.validate().map_err(PlanError::Invalid)?;
        Ok(plan)
    }

    /// The hub named `id`.
    pub fn hub(&self, id: &str) -> Option<&HubSpec> {
        self.hubs.iter().find(|hub| hub.id == id)
    }

    /// Every check across values; all problems at once.
    pub fn validate(&self) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        if !is_name(&self.id) {
            problems.push(Invalid::new("id", NAME_RULE));
        }
        if self.release_version.parse::<ImageVersion>().is_err() {
            problems.push(Invalid::new(
                "release_version",
                "must be the release's image version, MAJOR.MINOR.PATCH",
            ));
        }
        if !is_sha256_hex(&self.expected_pcr11) {
            problems.push(Invalid::new(
                "expected_pcr11",
                "must be the release's pcr11.expected: 64 hexadecimal digits (SHA-256)",
            ));
        }
        if !is_source(&self.source) {
            problems.push(Invalid::new(
                "source",
                "must be `usb`, an absolute directory (or `dir:PATH`), or an https:// mirror",
            ));
        }
        self.validate_hubs(&mut problems);
        self.validate_waves(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    fn validate_hubs(&self, problems: &mut Vec<Invalid>) {
        if self.hubs.is_empty() {
            problems.push(Invalid::new("hub", "must list at least one hub"));
        }
        let mut seen = BTreeSet::new();
        for (i, hub) in self.hubs.iter().enumerate() {
            if !is_name(&hub.id) {
                problems.push(Invalid::new(format!("hub[{i}].id"), NAME_RULE));
            } else if !seen.insert(hub.id.as_str()) {
                problems.push(Invalid::new(
                    format!("hub[{i}].id"),
                    format!("hub {:?} is listed twice", hub.id),
                ));
            }
            if !is_sec1_p256(&hub.ca_key) {
                problems.push(Invalid::new(
                    format!("hub[{i}].ca_key"),
                    "must be the hub's CA public key, SEC1 P-256 in hex (02/03 + 32 bytes, or 04 + 64 bytes)",
                ));
            }
        }
    }

    fn validate_waves(&self, problems: &mut Vec<Invalid>) {
        if self.waves.is_empty() {
            problems.push(Invalid::new("wave", "must list at least one wave"));
            return;
        }
        let known: BTreeSet<&str> = self.hubs.iter().map(|h| h.id.as_str()).collect();
        let mut wave_of: BTreeMap<&str, &str> = BTreeMap::new();
        let mut names = BTreeSet::new();
        for (i, wave) in self.waves.iter().enumerate() {
            if !is_name(&wave.name) {
                problems.push(Invalid::new(format!("wave[{i}].name"), NAME_RULE));
            } else if !names.insert(wave.name.as_str()) {
                problems.push(Invalid::new(
                    format!("wave[{i}].name"),
                    format!("wave {:?} is named twice", wave.name),
                ));
            }
            if wave.hubs.is_empty() {
                problems.push(Invalid::new(
                    format!("wave[{i}].hubs"),
                    "must name at least one hub",
                ));
            }
            for (j, hub) in wave.hubs.iter().enumerate() {
                let key = format!("wave[{i}].hubs[{j}]");
                if !known.contains(hub.as_str()) {
                    problems.push(Invalid::new(
                        key,
                        format!("hub {hub:?} has no [[hub]] entry"),
                    ));
                } else if let Some(other) = wave_of.insert(hub, &wave.name) {
                    problems.push(Invalid::new(
                        key,
                        format!("hub {hub:?} is already in wave {other:?}: a hub belongs to exactly one wave"),
                    ));
                }
            }
        }
        for (i, hub) in self.hubs.iter().enumerate() {
            if is_name(&hub.id) && !wave_of.contains_key(hub.id.as_str()) {
                problems.push(Invalid::new(
                    format!("hub[{i}].id"),
                    format!("hub {:?} is in no wave", hub.id),
                ));
            }
        }
        if self.canary_hubs == 0 {
            problems.push(Invalid::new("canary_hubs", "must be at least 1"));
        } else if self.waves[0].hubs.len() > self.canary_hubs {
            problems.push(Invalid::new(
                "wave[0].hubs",
                format!(
                    "the first wave is the canary: at most {} hub(s) (set `canary_hubs` to allow more)",
                    self.canary_hubs
                ),
            ));
        }
    }
}

const NAME_RULE: &str =
    "must be 1 to 63 characters of a-z, 0-9, `-`, `_`, `.`, starting with a letter or digit";

/// Names become file names in the exchange, so they are kept to a safe alphabet.
pub fn is_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|&b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_sec1_p256(text: &str) -> bool {
    hex::decode(text).is_ok_and(|bytes| {
        matches!(
            (bytes.first(), bytes.len()),
            (Some(0x02 | 0x03), 33) | (Some(0x04), 65)
        )
    })
}

fn is_source(source: &str) -> bool {
    let path = source.strip_prefix("dir:").unwrap_or(source);
    let https = source.starts_with("https://") && source.len() > "https://".len();
    let printable = source.len() <= 4096 && !source.chars().any(char::is_control);
    printable && (source == "usb" || https || path.starts_with('/'))
}

/// The TOML error with the line and column it points at.
fn syntax(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end().to_owned();
    match error.span() {
        Some(span) => {
            let mut end = span.start.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let before = &text[..end];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
