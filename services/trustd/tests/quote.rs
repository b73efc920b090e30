//! `Quote` over D-Bus from the real trustd on swtpm: the attestation of PCR 11 carries the
//! caller's nonce, names the PCR 11 value the TPM holds, and verifies with the CA key of
//! trustd's status; nonces outside 1..=64 bytes are refused.

mod common;

use appliance::dbus::contracts::trust_errors;
use common::*;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tss_esapi::structures::{Attest, AttestInfo};
use tss_esapi::traits::UnMarshall as _;

/// Extends PCR 11 of the fixture's swtpm (as systemd-stub measures a UKI) and returns its value,
/// with tpm2-tools before trustd starts (swtpm serves one client at a time).
fn measure_an_image(appliance: &Appliance) -> [u8; 32] {
    let tcti = appliance.tpm.tcti();
    let measurement = hex::encode(Sha256::digest(b"bunkeros-a.efi"));
    let extended = std::process::Command::new("tpm2_pcrextend")
        .args(["-T", &tcti, &format!("11:sha256={measurement}")])
        .output()
        .expect("tpm2_pcrextend runs (Debian package tpm2-tools)");
    assert!(extended.status.success(), "{extended:?}");
    let out = appliance.dir.path().join("pcr11.bin");
    let read = std::process::Command::new("tpm2_pcrread")
        .args(["-T", &tcti, "sha256:11", "-o"])
        .arg(&out)
        .output()
        .expect("tpm2_pcrread runs");
    assert!(read.status.success(), "{read:?}");
    std::fs::read(&out)
        .unwrap()
        .try_into()
        .expect("one SHA-256 PCR value")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quote_over_dbus_verifies_with_the_ca_key_and_names_pcr_11() {
    // PCR 16 only: the policy must not depend on the PCR 11 the test measures.
    let mut appliance =
        Appliance::new("[policy]\nmode = \"pcr\"\npcrs = [16]\npcr11_prediction = \"\"\n");
    let pcr11 = measure_an_image(&appliance);
    assert_ne!(pcr11, [0u8; 32]);
    appliance.start();
    let trust = appliance.proxy().await;
    let status: Value = serde_json::from_str(&trust.status().await.unwrap()).unwrap();
    let ca_key = hex::decode(status["public_key"].as_str().unwrap()).unwrap();

    let nonce = [7u8; 32];
    let (attest, signature) = trust.quote(&nonce).await.unwrap();
    VerifyingKey::from_sec1_bytes(&ca_key)
        .unwrap()
        .verify(&attest, &Signature::from_der(&signature).unwrap())
        .expect("the quote verifies with the CA key of trustd's status");
    let parsed = Attest::unmarshall(&attest).unwrap();
    assert_eq!(parsed.extra_data().value(), &nonce);
    let AttestInfo::Quote { info } = parsed.attested() else {
        panic!("not a quote: {:?}", parsed.attested());
    };
    assert_eq!(info.pcr_digest().value(), &Sha256::digest(pcr11)[..]);

    for bad in [Vec::new(), vec![1u8; 65]] {
        let refused = trust.quote(&bad).await.unwrap_err();
        assert_eq!(
            error_name(&refused),
            trust_errors::INVALID_REQUEST,
            "{refused}"
        );
        assert!(refused.to_string().contains("1 to 64 bytes"), "{refused}");
    }
    trust.quote(&[9u8; 64]).await.expect("64 bytes are allowed");
}
