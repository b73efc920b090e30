//! A hub's rollout evidence against the real trustd on swtpm: the gate's signature and a quote
//! of PCR 11 bound to the evidence's claims verify with the hub's CA key and the PCR 11 value
//! the swtpm holds; every kind of wrong evidence is refused with its own reason.

use std::process::Command;

use appliance::dbus::contracts::Trust1Proxy;
use appliance::dbus::testbus::TestBus;
use appliance::testtrustd::Trustd;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::Value;
use updated::booted::Booted;
use updated::disk_layout::Slot;
use updated::health_gate::{BootId, Check, GateSignature, Verdict, statement_digest};
use updated::rollout::evidence::{
    EvidenceError, EvidenceRefused, EvidenceRequest, HealthEvidence, HubCaKey, gather_evidence,
    verify_evidence,
};
use updated::{ImageVersion, RunningImage};

const NONCE: &[u8] = b"coordinator nonce for zurich-1, wave 0";
const ROOTHASH: &str = "6b1a2e0c3d4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b";

/// What one hub's trustd produced, and what the verifier knows.
struct Made {
    evidence: HealthEvidence,
    key: HubCaKey,
    /// PCR 11 as the swtpm holds it, hex (the release's `pcr11.expected` in this test).
    pcr11: String,
}

/// The gate's signature for this boot, made as the gate makes it (`SignAuditDigest` as
/// `updated` over the statement digest; the test runs as root, which may sign as any service).
async fn gate_signature(trust: &Trust1Proxy<'_>, public_key: &str) -> GateSignature {
    let boot = BootId::read().unwrap();
    let digest = statement_digest(boot.as_str());
    let signature = trust.sign_audit_digest("updated", &digest).await.unwrap();
    GateSignature {
        boot_id: boot.as_str().to_owned(),
        service: "updated".to_owned(),
        digest: hex::encode(digest),
        public_key: public_key.to_owned(),
        key_id: appliance::audit_log::TrustedKey::from_sec1_hex(public_key)
            .unwrap()
            .id()
            .to_owned(),
        signature: hex::encode(signature),
    }
}

fn healthy(signature: &GateSignature) -> Verdict {
    Verdict::Healthy {
        checks: vec![Check::pass(
            "trustd-signs",
            "trustd signed the gate's statement",
        )],
        signature: signature.clone(),
        after_secs: 4,
    }
}

fn booted() -> Booted {
    Booted {
        image: RunningImage {
            version: "1.4.0".parse::<ImageVersion>().unwrap(),
            profile: "generic".to_owned(),
        },
        slot: Slot::B,
        roothash: ROOTHASH.to_owned(),
    }
}

/// PCR 11 of the swtpm behind `tcti` (`tpm2_pcrread`, Debian package tpm2-tools), hex.
fn read_pcr11(tcti: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pcr11.bin");
    let status = Command::new("tpm2_pcrread")
        .args(["-T", tcti, "sha256:11", "-o"])
        .arg(&out)
        .output()
        .expect("tpm2_pcrread runs (Debian package tpm2-tools)");
    assert!(status.status.success(), "{status:?}");
    let value = std::fs::read(&out).unwrap();
    assert_eq!(value.len(), 32, "one SHA-256 PCR value");
    hex::encode(value)
}

/// A hub (zurich-1) on its own bus with the real trustd: the gate's signature and the evidence
/// for plan `p-1`, wave 0; then trustd stops so PCR 11 can be read from its swtpm.
async fn make_evidence() -> Made {
    let bus = TestBus::start().unwrap();
    let (mut trustd, _root) = Trustd::start(bus.address(), "").await;
    let connection = appliance::dbus::connect(&bus.bus()).await.unwrap();
    let trust = Trust1Proxy::new(&connection).await.unwrap();
    let status: Value = serde_json::from_str(&trust.status().await.unwrap()).unwrap();
    let public_key = status["public_key"].as_str().unwrap().to_owned();
    let signature = gate_signature(&trust, &public_key).await;
    let request = EvidenceRequest {
        hub: "zurich-1",
        plan: "p-1",
        wave: 0,
        nonce: NONCE,
    };
    let evidence = gather_evidence(
        &connection,
        request,
        healthy(&signature),
        signature,
        &booted(),
    )
    .await
    .unwrap();
    trustd.stop();
    let pcr11 = read_pcr11(&trustd.tpm_tcti());
    Made {
        evidence,
        key: HubCaKey::from_sec1_hex(&public_key).unwrap(),
        pcr11,
    }
}

/// The evidence after a round trip through its JSON, as the coordinator receives it.
fn received(evidence: &HealthEvidence) -> HealthEvidence {
    HealthEvidence::from_json(evidence.to_json().as_bytes()).unwrap()
}

fn refusal(made: &Made, evidence: &HealthEvidence) -> EvidenceRefused {
    verify_evidence(evidence, &made.key, &made.pcr11, NONCE).unwrap_err()
}

/// Flips one bit of the hex byte at `index` of `field`.
fn flipped(field: &str, index: usize) -> String {
    let mut bytes = hex::decode(field).unwrap();
    bytes[index] ^= 0x01;
    hex::encode(bytes)
}

#[tokio::test(flavor = "multi_thread")]
async fn evidence_from_trustd_verifies_and_every_wrong_evidence_is_refused() {
    let made = make_evidence().await;
    let evidence = received(&made.evidence);
    assert_eq!(evidence.version, "1.4.0");
    assert_eq!(evidence.slot, Slot::B);
    assert_eq!(evidence.nonce, hex::encode(NONCE));
    verify_evidence(&evidence, &made.key, &made.pcr11, NONCE)
        .expect("genuine evidence verifies against the swtpm's PCR 11");

    // Another release: the quote names the PCR 11 the hub booted, not the expected one.
    let other_pcr11 = flipped(&made.pcr11, 0);
    let refused = verify_evidence(&evidence, &made.key, &other_pcr11, NONCE).unwrap_err();
    assert_eq!(
        refused,
        EvidenceRefused::OtherImage {
            hub: "zurich-1".into()
        }
    );
    assert_eq!(
        refused.to_string(),
        "the quote's PCR 11 is not the release's: zurich-1 booted another image"
    );

    // An answer to another request (a replay).
    let refused = verify_evidence(&evidence, &made.key, &made.pcr11, b"a fresh nonce").unwrap_err();
    assert!(
        matches!(refused, EvidenceRefused::OtherNonce { .. }),
        "{refused}"
    );
    // A replay that rewrites the nonce field: the quote does not bind the new nonce.
    let mut renonced = evidence.clone();
    renonced.nonce = hex::encode(b"a fresh nonce");
    let refused = verify_evidence(&renonced, &made.key, &made.pcr11, b"a fresh nonce").unwrap_err();
    assert!(
        matches!(refused, EvidenceRefused::NotBound { .. }),
        "{refused}"
    );

    // Another hub's key: neither the quote nor the gate signature is its.
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let other = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let other_key = HubCaKey::from_sec1(other.public_key().as_ref()).unwrap();
    let refused = verify_evidence(&evidence, &other_key, &made.pcr11, NONCE).unwrap_err();
    assert!(
        matches!(refused, EvidenceRefused::QuoteSignature { .. }),
        "{refused}"
    );

    // A flipped byte in the attestation (its nonce, its PCR digest) or in the signature.
    let attest_len = hex::decode(&evidence.quote_attest).unwrap().len();
    for index in [0, 10, attest_len - 1] {
        let mut tampered = evidence.clone();
        tampered.quote_attest = flipped(&evidence.quote_attest, index);
        let refused = refusal(&made, &tampered);
        assert!(
            matches!(refused, EvidenceRefused::QuoteSignature { .. }),
            "{index}: {refused}"
        );
    }
    let signature_len = hex::decode(&evidence.quote_signature).unwrap().len();
    for index in [8, signature_len - 1] {
        let mut tampered = evidence.clone();
        tampered.quote_signature = flipped(&evidence.quote_signature, index);
        let refused = refusal(&made, &tampered);
        assert!(
            matches!(refused, EvidenceRefused::QuoteSignature { .. }),
            "{index}: {refused}"
        );
    }

    // Claims the quote does not bind: another version, slot, wave or boot.
    let mut other_version = evidence.clone();
    other_version.version = "1.5.0".into();
    let mut other_slot = evidence.clone();
    other_slot.slot = Slot::A;
    let mut other_wave = evidence.clone();
    other_wave.wave = 1;
    for tampered in [other_version, other_slot, other_wave] {
        let refused = refusal(&made, &tampered);
        assert!(
            matches!(refused, EvidenceRefused::NotBound { .. }),
            "{refused}"
        );
    }

    // The gate found the boot unhealthy: refused however genuine the quote.
    let mut unhealthy = evidence.clone();
    unhealthy.verdict = Verdict::Unhealthy {
        failed: vec![Check::fail(
            "unit:minerd",
            "minerd.service failed (result exit-code)",
        )],
        passed: Vec::new(),
        after_secs: 300,
    };
    let refused = refusal(&made, &unhealthy);
    assert!(
        matches!(refused, EvidenceRefused::Unhealthy { .. }),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("minerd.service failed"),
        "{refused}"
    );

    // A gate signature that is not the verdict's, or that does not verify.
    let mut forged = evidence.clone();
    forged.gate_signature.signature = flipped(&evidence.gate_signature.signature, 8);
    let refused = refusal(&made, &forged);
    assert!(
        matches!(refused, EvidenceRefused::GateSignatureDiffers { .. }),
        "{refused}"
    );
    forged.verdict = healthy(&forged.gate_signature);
    let refused = refusal(&made, &forged);
    assert!(
        matches!(refused, EvidenceRefused::GateSignature { .. }),
        "{refused}"
    );

    // Not hex, and an expectation that is not a PCR value.
    let mut not_hex = evidence.clone();
    not_hex.quote_attest = "zz".into();
    assert!(matches!(
        refusal(&made, &not_hex),
        EvidenceRefused::NotHex { field: "quote", .. }
    ));
    assert!(matches!(
        verify_evidence(&evidence, &made.key, "11", NONCE),
        Err(EvidenceRefused::BadExpectedPcr11(_))
    ));
}

#[tokio::test]
async fn evidence_json_is_strict_and_a_bad_nonce_is_refused_before_trustd() {
    let bus = TestBus::start().unwrap();
    let connection = appliance::dbus::connect(&bus.bus()).await.unwrap();
    let signature = GateSignature {
        boot_id: "b".into(),
        service: "updated".into(),
        digest: String::new(),
        public_key: String::new(),
        key_id: String::new(),
        signature: String::new(),
    };
    for nonce in [&[][..], &[0u8; 65][..]] {
        let request = EvidenceRequest {
            hub: "zurich-1",
            plan: "p-1",
            wave: 0,
            nonce,
        };
        let refused = gather_evidence(
            &connection,
            request,
            healthy(&signature),
            signature.clone(),
            &booted(),
        )
        .await
        .unwrap_err();
        assert!(matches!(refused, EvidenceError::BadNonce(n) if n == nonce.len()));
    }
    // No trustd on the bus: the hub says so instead of sending evidence.
    let request = EvidenceRequest {
        hub: "zurich-1",
        plan: "p-1",
        wave: 0,
        nonce: NONCE,
    };
    let refused = gather_evidence(
        &connection,
        request,
        healthy(&signature),
        signature.clone(),
        &booted(),
    )
    .await
    .unwrap_err();
    assert!(matches!(refused, EvidenceError::Quote(_)), "{refused}");

    let mut document: Value = serde_json::from_str(
        &serde_json::to_string(&serde_json::json!({
            "hub": "zurich-1", "plan": "p-1", "wave": 0, "version": "1.4.0", "slot": "b",
            "roothash": ROOTHASH, "verdict": healthy(&signature), "gate_signature": signature,
            "quote_attest": "", "quote_signature": "", "nonce": "", "made_at": "",
        }))
        .unwrap(),
    )
    .unwrap();
    HealthEvidence::from_json(document.to_string().as_bytes()).expect("the document parses");
    document["extra"] = Value::Bool(true);
    assert!(matches!(
        HealthEvidence::from_json(document.to_string().as_bytes()),
        Err(EvidenceRefused::Malformed(_))
    ));
    assert!(matches!(
        HealthEvidence::from_json(&vec![b' '; 300 * 1024]),
        Err(EvidenceRefused::Malformed(_))
    ));
}

/// The fuzz target's seeds are real evidence (trustd on swtpm, PCR 11 never extended) and its
/// constants the ones they verify with: the healthy one verifies, the unhealthy one is refused.
#[test]
fn the_fuzz_seeds_are_real_evidence_for_the_fuzz_targets_key() {
    const SEED_KEY: &str = "0499720ba9b7782672668c642ffeba65ab7e101ab4e81f5ee4a99df6b5f4e5905147f2db36ed1b02e8613e53745d247614d68f71f0eec72d4d57f7fb9fa4716190";
    let seeds =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/rollout_evidence");
    let key = HubCaKey::from_sec1_hex(SEED_KEY).unwrap();
    let pcr11 = "0".repeat(64);
    let healthy =
        HealthEvidence::from_json(&std::fs::read(seeds.join("zurich-1-healthy.json")).unwrap())
            .unwrap();
    verify_evidence(&healthy, &key, &pcr11, NONCE).expect("the healthy seed verifies");
    let unhealthy =
        HealthEvidence::from_json(&std::fs::read(seeds.join("zurich-1-unhealthy.json")).unwrap())
            .unwrap();
    let refused = verify_evidence(&unhealthy, &key, &pcr11, NONCE).unwrap_err();
    assert!(
        matches!(refused, EvidenceRefused::Unhealthy { .. }),
        "{refused}"
    );
}
