//! `authorized` mode with fixed PCRs, as the appliance runs it: PCR 11 (the UKI) signed by the
//! release key, PCR 7 (Secure Boot state, unpredictable at build time) bound at enrolment.

use super::*;
use crate::tpm::{
    CA_KEY_STATE_FILE, CaKeyBlob, PolicyError, PolicyMode, PolicyStatus, SealedReason,
    SignedPcrPolicy,
};

use crate::enrolment::POLICY_REF;

/// The PCR the release key signs.
const SIGNED: [u8; 1] = [11];

/// The PCR bound to its value at enrolment.
const FIXED: [u8; 1] = [7];

/// The appliance's policy for a machine: release-signed PCR 11, PCR 7 as it is now.
fn appliance_policy(connection: &TpmConnection, release: &SigningKey) -> PolicyMode {
    let fixed = connection.read_pcrs(&FIXED).unwrap();
    PolicyMode::authorized(release.verifying_key(), POLICY_REF, &SIGNED, fixed).unwrap()
}

fn enrol(machine: &Machine, release: &SigningKey) -> (Arc<TpmConnection>, TpmCaKey) {
    let connection = machine.connect();
    let policy = appliance_policy(&connection, release);
    let key = TpmCaKey::create_or_load(Arc::clone(&connection), &machine.state, policy).unwrap();
    (connection, key)
}

#[test]
fn a_signed_pcr_11_with_pcr_7_as_enrolled_signs_and_survives_updates() {
    let machine = Machine::start();
    let release = software_key("release key");
    let (connection, key) = enrol(&machine, &release);
    let public_key = key.public_key_sec1().to_vec();
    let enrolled = machine.blob_file();

    let reason = sealed_reason(key.sign(b"nothing signed yet"));
    assert_eq!(reason, SealedReason::NoSignedPolicy.to_string());

    key.install_signed_policy(&release_signed(&connection, &release, &SIGNED, POLICY_REF))
        .unwrap();
    sign_and_verify(&key, b"first image");
    assert!(key.policy_satisfied().unwrap());

    // An update: a new UKI measures into PCR 11; the old signature is for the old image.
    extend_pcr(&connection, 11, b"the next release's UKI");
    let reason = sealed_reason(key.sign(b"new image, old signature"));
    assert!(reason.contains("PCR 11 of this boot differs"), "{reason}");
    assert!(reason.contains("release key signed"), "{reason}");
    assert_eq!(
        key.policy_status().unwrap(),
        PolicyStatus::Sealed(SealedReason::NotApprovedBoot { pcrs: vec![11] })
    );

    // The new image ships its own signed policy: the same key signs, nothing re-enrolled.
    key.install_signed_policy(&release_signed(&connection, &release, &SIGNED, POLICY_REF))
        .unwrap();
    sign_and_verify(&key, b"second image");
    assert!(key.policy_satisfied().unwrap());
    assert_eq!(key.public_key_sec1(), &public_key[..]);
    assert_eq!(machine.blob_file(), enrolled);
}

#[test]
fn a_changed_fixed_pcr_seals_the_key_whatever_the_release_signed() {
    let mut machine = Machine::start();
    let release = software_key("release key");
    let (connection, key) = enrol(&machine, &release);
    let booted = release_signed(&connection, &release, &SIGNED, POLICY_REF);
    key.install_signed_policy(&booted).unwrap();
    sign_and_verify(&key, b"before");

    // Secure Boot state changes: PCR 11 is still the signed image, PCR 7 is not as enrolled.
    extend_pcr(&connection, 7, b"db updated: another signer trusted");
    let reason = sealed_reason(key.sign(b"after the PCR 7 change"));
    assert!(reason.contains("PCR 7 of this boot differs"), "{reason}");
    assert!(reason.contains("enrolled on"), "{reason}");
    assert_eq!(
        key.policy_status().unwrap(),
        PolicyStatus::Sealed(SealedReason::PcrMismatch { pcrs: vec![7] })
    );
    // A release signature cannot help: the release key signs PCR 11 only.
    key.install_signed_policy(&release_signed(&connection, &release, &SIGNED, POLICY_REF))
        .unwrap();
    sealed_reason(key.sign(b"signed again"));

    // Both changed: the reason names both, each against what it should be.
    extend_pcr(&connection, 11, b"an unsigned UKI");
    let reason = sealed_reason(key.sign(b"both changed"));
    assert!(reason.contains("PCR 11 of this boot differs"), "{reason}");
    assert!(reason.contains("PCR 7 differs"), "{reason}");
    assert_eq!(
        key.policy_status().unwrap(),
        PolicyStatus::Sealed(SealedReason::NotApprovedNorEnrolled {
            signed: vec![11],
            fixed: vec![7],
        })
    );

    // A reboot restores both: the key signs again under the signature it had.
    machine.tpm.restart().unwrap();
    key.install_signed_policy(&booted).unwrap();
    sign_and_verify(&key, b"after the reboot");
}

#[test]
fn a_policy_signed_by_another_key_is_refused_by_the_tpm() {
    let machine = Machine::start();
    let release = software_key("release key");
    let (connection, key) = enrol(&machine, &release);

    let forged = release_signed(&connection, &software_key("attacker"), &SIGNED, POLICY_REF);
    key.install_signed_policy(&forged).unwrap();
    let reason = sealed_reason(key.sign(b"forged"));
    assert_eq!(reason, SealedReason::NotSignedByReleaseKey.to_string());
    assert_eq!(
        key.policy_status().unwrap(),
        PolicyStatus::Sealed(SealedReason::NotSignedByReleaseKey)
    );

    key.install_signed_policy(&release_signed(&connection, &release, &SIGNED, POLICY_REF))
        .unwrap();
    sign_and_verify(&key, b"genuine");
}

#[test]
fn a_signed_policy_may_not_cover_a_fixed_pcr() {
    let machine = Machine::start();
    let release = software_key("release key");
    let (connection, key) = enrol(&machine, &release);

    // Were this accepted, a release could re-sign PCR 7 and lift the enrolment binding; the
    // TPM would refuse it anyway, but the operator deserves the reason up front.
    let values = connection.read_pcrs(&[7, 11]).unwrap();
    let both = SignedPcrPolicy::sign(&release, values, POLICY_REF).unwrap();
    let err = key.install_signed_policy(&both).unwrap_err();
    assert_eq!(
        err,
        PolicyError::SignedCoversFixed {
            fixed: vec![7],
            required: vec![11],
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("covers PCR 7, which the CA key binds to its value at enrolment"),
        "{text}"
    );

    // A definition listing a PCR as both signed and fixed is refused before any TPM sees it.
    let fixed = connection.read_pcrs(&[7, 11]).unwrap();
    let err = PolicyMode::authorized(release.verifying_key(), POLICY_REF, &[11], fixed);
    assert_eq!(err, Err(PolicyError::SignedAndFixed(vec![11])));
}

#[test]
fn the_state_file_keeps_the_fixed_values_across_restarts() {
    let machine = Machine::start();
    let release = software_key("release key");
    let (connection, key) = enrol(&machine, &release);
    let policy = key.policy().clone();
    let booted = release_signed(&connection, &release, &SIGNED, POLICY_REF);
    key.install_signed_policy(&booted).unwrap();
    sign_and_verify(&key, b"before");
    let public_key = key.public_key_sec1().to_vec();

    let blob: CaKeyBlob = machine.state.read_json(CA_KEY_STATE_FILE).unwrap().unwrap();
    assert_eq!(blob.policy, policy);
    let json: serde_json::Value = serde_json::from_slice(&machine.blob_file()).unwrap();
    let pcr_7 = connection.read_pcrs(&FIXED).unwrap()[0];
    assert_eq!(
        json["policy"]["fixed"],
        serde_json::json!([{"pcr": 7, "sha256": hex::encode(pcr_7.sha256)}])
    );
    assert_eq!(json["policy"]["selection"], serde_json::json!([11]));

    drop(key);
    drop(connection);
    let connection = machine.connect();
    let key = TpmCaKey::load(Arc::clone(&connection), &machine.state)
        .unwrap()
        .expect("the enrolled key");
    assert_eq!(key.policy(), &policy);
    assert_eq!(key.public_key_sec1(), &public_key[..]);
    key.install_signed_policy(&booted).unwrap();
    sign_and_verify(&key, b"after the restart");

    // The fixed value is part of the key: rewriting it in the file is caught at load.
    let mut blob: CaKeyBlob = machine.state.read_json(CA_KEY_STATE_FILE).unwrap().unwrap();
    let PolicyMode::Authorized { fixed, .. } = &mut blob.policy else {
        panic!("{:?}", blob.policy)
    };
    fixed[0].sha256 = [0xAA; 32];
    machine.state.write_json(CA_KEY_STATE_FILE, &blob).unwrap();
    let err = expect_err(TpmCaKey::load(connection, &machine.state));
    assert!(matches!(err, TpmError::BlobInvalid { .. }), "{err}");
    assert!(err.to_string().contains("authPolicy"), "{err}");
}

#[test]
fn state_files_from_before_fixed_pcrs_still_load() {
    let machine = Machine::start();
    let release = software_key("release key");
    let connection = machine.connect();
    let policy =
        PolicyMode::authorized(release.verifying_key(), POLICY_REF, &[11], vec![]).unwrap();
    TpmCaKey::create(Arc::clone(&connection), &machine.state, policy.clone()).unwrap();

    // Exactly the keys an older trustd wrote (and reads: it refuses unknown ones).
    let json: serde_json::Value = serde_json::from_slice(&machine.blob_file()).unwrap();
    let mut keys: Vec<&str> = json["policy"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["mode", "policy_ref", "release_key", "selection"]);

    let key = TpmCaKey::load(Arc::clone(&connection), &machine.state)
        .unwrap()
        .expect("the enrolled key");
    assert_eq!(key.policy(), &policy);
    assert!(key.policy().fixed().is_empty());
    key.install_signed_policy(&release_signed(&connection, &release, &SIGNED, POLICY_REF))
        .unwrap();
    sign_and_verify(&key, b"an old key, as before");
    // Without fixed PCRs nothing binds PCR 7: a change there does not seal such a key.
    extend_pcr(&connection, 7, b"Secure Boot change");
    sign_and_verify(&key, b"still usable");
}
