//! Quotes of PCR 11 signed by the CA key: what a rollout's verifier checks, checked here with
//! tss-esapi's own parser of `TPMS_ATTEST`.

use tss_esapi::constants::tss::TPM2_GENERATED_VALUE;
use tss_esapi::interface_types::structure_tags::AttestationType;
use tss_esapi::structures::{AttestInfo, PcrSlot};
use tss_esapi::traits::UnMarshall as _;

use super::*;
use crate::tpm::PolicyMode;

/// A fresh TPM with a CA key bound to PCRs 11 and 16 as they are now, and PCR 11 extended
/// beforehand so the quoted value is not the all-zero reset value.
fn machine_with_key() -> (Machine, Arc<TpmConnection>, TpmCaKey) {
    let machine = Machine::start();
    let connection = machine.connect();
    extend_pcr(&connection, 11, b"the unified kernel image");
    let policy = PolicyMode::from_current_pcrs(&connection, &SELECTION).unwrap();
    let key = TpmCaKey::create_or_load(Arc::clone(&connection), &machine.state, policy).unwrap();
    (machine, connection, key)
}

#[test]
fn a_quote_of_pcr_11_carries_the_nonce_and_verifies_with_the_ca_key() {
    let (_machine, connection, key) = machine_with_key();
    let nonce = [0x5au8; 32];
    let quote = key.quote_pcr11(&nonce).unwrap();

    let verifying = VerifyingKey::from_sec1_bytes(key.public_key_sec1()).unwrap();
    let signature = Signature::from_der(&quote.signature_der).unwrap();
    verifying
        .verify(&quote.attest, &signature)
        .expect("the quote verifies with the CA key over the attestation bytes");

    assert_eq!(quote.attest[..4], TPM2_GENERATED_VALUE.to_be_bytes());
    let attest = tss_esapi::structures::Attest::unmarshall(&quote.attest).unwrap();
    assert_eq!(attest.attestation_type(), AttestationType::Quote);
    assert_eq!(attest.extra_data().value(), &nonce);
    let AttestInfo::Quote { info } = attest.attested() else {
        panic!("not quote info: {:?}", attest.attested());
    };
    let selections = info.pcr_selection().get_selections();
    assert_eq!(selections.len(), 1);
    assert_eq!(selections[0].hashing_algorithm(), HashingAlgorithm::Sha256);
    assert_eq!(selections[0].selected(), vec![PcrSlot::Slot11]);
    let pcr11 = connection.read_pcrs(&[11]).unwrap()[0].sha256;
    assert_eq!(pcr11, predicted_after_extend(b"the unified kernel image"));
    assert_eq!(info.pcr_digest().value(), &Sha256::digest(pcr11)[..]);

    // Another nonce, another attestation: nothing is replayed.
    let other = key.quote_pcr11(b"another verifier").unwrap();
    assert_ne!(other.attest, quote.attest);
}

#[test]
fn a_sealed_key_does_not_quote() {
    let (_machine, connection, key) = machine_with_key();
    key.quote_pcr11(b"nonce").unwrap();
    extend_pcr(&connection, 16, b"an unexpected boot component");
    let refused = key.quote_pcr11(b"nonce").unwrap_err();
    assert!(
        matches!(&refused, SignError::Sealed(reason) if reason.contains("PCR 16")),
        "{refused}"
    );
}

#[test]
fn a_nonce_longer_than_tpm2b_data_is_refused_before_the_tpm() {
    let (_machine, _connection, key) = machine_with_key();
    let refused = key.quote_pcr11(&[1u8; 65]).unwrap_err();
    assert!(matches!(refused, SignError::Tpm(_)), "{refused}");
    key.quote_pcr11(&[1u8; 64]).expect("64 bytes fit");
}
