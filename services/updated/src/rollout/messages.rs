//! The two documents that travel between the coordinating hub and the hubs it updates.
//!
//! An [`Instruction`] tells one hub to install the release and carries the nonce its TPM quote
//! must include; a [`Report`] answers it after the new slot's health gate, with the signed
//! evidence (opaque here: the coordinator's [`EvidenceJudge`](super::EvidenceJudge) reads it).
//! Both are JSON with unknown fields refused, so a document from another version is an error,
//! not a silent misreading.

use serde::{Deserialize, Serialize};

/// "Install this release": written by the coordinator for one hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instruction {
    pub plan_id: String,
    pub hub: String,
    pub wave: String,
    pub release_version: String,
    /// Where the hub reads the release (`usb`, a directory, an https:// mirror).
    pub source: String,
    /// Fresh per instruction (hex): the hub's quote must carry it, so old evidence is no answer.
    pub nonce: String,
    /// 1 for the first instruction; a resume after a halt instructs again with a new nonce.
    pub attempt: u32,
    /// Unix seconds.
    pub issued_at: u64,
}

/// What a hub says after the health gate of the slot it was told to install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub plan_id: String,
    pub hub: String,
    /// The nonce of the instruction this answers.
    pub nonce: String,
    /// The version the hub booted after the install (the old one when it fell back).
    pub booted_version: String,
    pub outcome: ReportOutcome,
    /// The hub's signed health evidence (health verdict, trustd's gate signature, TPM quote of
    /// PCR 11 over the nonce), as JSON; required for a healthy report.
    #[serde(default)]
    pub evidence: Option<serde_json::Value>,
    /// Unix seconds.
    pub reported_at: u64,
}

/// The hub's own verdict; only the evidence makes a healthy one believable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "kebab-case")]
pub enum ReportOutcome {
    Healthy,
    Failed { reason: String },
}

/// Documents for tests: an instruction and a report of plan `spring`.
#[cfg(any(test, feature = "test-support"))]
pub mod samples {
    use super::*;

    pub fn instruction(hub: &str) -> Instruction {
        Instruction {
            plan_id: "spring".to_owned(),
            hub: hub.to_owned(),
            wave: "canary".to_owned(),
            release_version: "0.2.0".to_owned(),
            source: "usb".to_owned(),
            nonce: "ab".repeat(32),
            attempt: 1,
            issued_at: 1000,
        }
    }

    /// A failed report (with a stand-in evidence object) for `plan` from `hub`.
    pub fn report(plan: &str, hub: &str) -> Report {
        Report {
            plan_id: plan.to_owned(),
            hub: hub.to_owned(),
            nonce: "ab".repeat(32),
            booted_version: "0.2.0".to_owned(),
            outcome: ReportOutcome::Failed {
                reason: "hub-links: 1 of 2 links down".to_owned(),
            },
            evidence: Some(serde_json::json!({"quote": "00"})),
            reported_at: 2000,
        }
    }
}
