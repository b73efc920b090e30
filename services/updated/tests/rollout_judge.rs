//! The coordinator's judge of a hub's report as the daemon wires it (`QuoteJudge`): real
//! evidence (the fuzz seed made from trustd on swtpm, its CA key and nonce) is accepted for the
//! hub, plan and nonce it was made for, and refused for any other.

use serde_json::Value;
use updated::rollout::coordinator::{EvidenceJudge, ExpectedEvidence};
use updated::rollout::hub_duties::QuoteJudge;
use updated::rollout::{HubSpec, Report, ReportOutcome};

/// The seed's hub CA key and nonce (fuzz/fuzz_targets/rollout_evidence.rs); swtpm's PCR 11 is 0.
const SEED_KEY: &str = "0499720ba9b7782672668c642ffeba65ab7e101ab4e81f5ee4a99df6b5f4e5905147f2db36ed1b02e8613e53745d247614d68f71f0eec72d4d57f7fb9fa4716190";
const NONCE: &[u8] = b"coordinator nonce for zurich-1, wave 0";

fn seed() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds/rollout_evidence/zurich-1-healthy.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn report(evidence: Value) -> Report {
    Report {
        plan_id: evidence["plan"].as_str().unwrap().to_owned(),
        hub: "zurich-1".to_owned(),
        nonce: hex::encode(NONCE),
        booted_version: evidence["version"].as_str().unwrap().to_owned(),
        outcome: ReportOutcome::Healthy,
        evidence: Some(evidence),
        reported_at: 0,
    }
}

fn judge(hub: &str, key: &str, nonce: &[u8], report: &Report) -> Result<(), String> {
    let spec = HubSpec {
        id: hub.to_owned(),
        ca_key: key.to_owned(),
    };
    let pcr11 = "0".repeat(64);
    let nonce = hex::encode(nonce);
    QuoteJudge.judge(
        &ExpectedEvidence {
            hub: &spec,
            pcr11_hex: &pcr11,
            nonce: &nonce,
        },
        report,
    )
}

#[test]
fn real_evidence_is_accepted_only_for_its_hub_plan_key_and_nonce() {
    let good = report(seed());
    judge("zurich-1", SEED_KEY, NONCE, &good).expect("the seed's evidence is accepted");

    let other_hub = judge("geneva-1", SEED_KEY, NONCE, &good).unwrap_err();
    assert!(other_hub.contains("zurich-1"), "{other_hub}");
    let mut other_plan = good.clone();
    other_plan.plan_id = "another-plan".to_owned();
    assert!(judge("zurich-1", SEED_KEY, NONCE, &other_plan).is_err());
    let other_nonce = judge("zurich-1", SEED_KEY, b"another nonce", &good).unwrap_err();
    assert!(other_nonce.contains("nonce"), "{other_nonce}");
    // another hub's pinned key (a valid P-256 point that is not the seed's)
    let other_key = concat!(
        "04",
        "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
        "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
    );
    assert!(judge("zurich-1", other_key, NONCE, &good).is_err());
    let mut no_evidence = good.clone();
    no_evidence.evidence = None;
    assert!(judge("zurich-1", SEED_KEY, NONCE, &no_evidence).is_err());
}
