//! `authorized` mode: any PCR policy the release key signed unlocks the key.

use super::*;
use crate::tpm::{PolicyError, PolicyMode, PolicyStatus, SealedReason, SignedPcrPolicy};

use crate::enrolment::POLICY_REF;

/// A machine with a CA key under an `authorized` policy by `release`.
fn enrol(machine: &Machine, release: &SigningKey) -> (Arc<TpmConnection>, TpmCaKey) {
    let connection = machine.connect();
    let policy =
        PolicyMode::authorized(release.verifying_key(), POLICY_REF, &SELECTION, vec![]).unwrap();
    let key = TpmCaKey::create_or_load(Arc::clone(&connection), &machine.state, policy).unwrap();
    (connection, key)
}

#[test]
fn release_signatures_decide_which_boots_may_use_the_key() {
    let machine = Machine::start();
    let release = software_key("release key");
    let (connection, key) = enrol(&machine, &release);
    let public_key = key.public_key_sec1().to_vec();
    let enrolled = machine.blob_file();

    // Nothing signed yet: sealed, with the reason.
    let reason = sealed_reason(key.sign(b"too early"));
    assert_eq!(reason, SealedReason::NoSignedPolicy.to_string());

    // The release key signs this image's PCR values: the CA works.
    key.install_signed_policy(&release_signed(
        &connection,
        &release,
        &SELECTION,
        POLICY_REF,
    ))
    .unwrap();
    sign_and_verify(&key, b"first image");
    assert!(key.policy_satisfied().unwrap());

    // The boot chain changes (an update, or tampering): the old signature no longer matches.
    extend_pcr(&connection, 16, b"the next image");
    let reason = sealed_reason(key.sign(b"after the change"));
    assert!(reason.contains("PCR 16 of this boot differs"), "{reason}");
    assert!(reason.contains("release key signed"), "{reason}");
    assert_eq!(
        key.policy_status().unwrap(),
        PolicyStatus::Sealed(SealedReason::NotApprovedBoot { pcrs: vec![16] })
    );

    // The release key signs the new values: usable again, same key, no re-enrolment.
    key.install_signed_policy(&release_signed(
        &connection,
        &release,
        &SELECTION,
        POLICY_REF,
    ))
    .unwrap();
    sign_and_verify(&key, b"second image");
    assert!(key.policy_satisfied().unwrap());
    assert_eq!(key.public_key_sec1(), &public_key[..]);
    assert_eq!(machine.blob_file(), enrolled);
}

#[test]
fn a_policy_signed_by_another_key_or_for_another_use_is_refused_by_the_tpm() {
    let machine = Machine::start();
    let release = software_key("release key");
    let (connection, key) = enrol(&machine, &release);

    // Signed by somebody else: the PCR values are right, the signature is not the release key's.
    let forged = release_signed(
        &connection,
        &software_key("attacker"),
        &SELECTION,
        POLICY_REF,
    );
    key.install_signed_policy(&forged).unwrap();
    let reason = sealed_reason(key.sign(b"forged"));
    assert_eq!(reason, SealedReason::NotSignedByReleaseKey.to_string());
    assert_eq!(
        key.policy_status().unwrap(),
        PolicyStatus::Sealed(SealedReason::NotSignedByReleaseKey)
    );

    // Signed by the release key, but for another purpose (another policyRef).
    let other_use = release_signed(&connection, &release, &SELECTION, b"bunkeros-disk-unlock");
    key.install_signed_policy(&other_use).unwrap();
    sealed_reason(key.sign(b"other use"));

    // A garbled signature over the right values.
    let mut garbled = release_signed(&connection, &release, &SELECTION, POLICY_REF);
    let last = garbled.signature.len() - 1;
    garbled.signature[last] ^= 0x01;
    key.install_signed_policy(&garbled).unwrap();
    sealed_reason(key.sign(b"garbled"));

    // The genuine one still works after all that.
    key.install_signed_policy(&release_signed(
        &connection,
        &release,
        &SELECTION,
        POLICY_REF,
    ))
    .unwrap();
    sign_and_verify(&key, b"genuine");
}

#[test]
fn signed_policies_must_fit_the_key() {
    let machine = Machine::start();
    let release = software_key("release key");
    let (connection, key) = enrol(&machine, &release);

    let only_pcr_11 =
        SignedPcrPolicy::sign(&release, connection.read_pcrs(&[11]).unwrap(), POLICY_REF).unwrap();
    assert_eq!(
        key.install_signed_policy(&only_pcr_11),
        Err(PolicyError::SelectionMismatch {
            signed: vec![11],
            required: SELECTION.to_vec(),
        })
    );

    let mut not_der = release_signed(&connection, &release, &SELECTION, POLICY_REF);
    not_der.signature = vec![0x30, 0x00];
    assert_eq!(
        key.install_signed_policy(&not_der),
        Err(PolicyError::BadSignatureEncoding)
    );

    // A key in `pcr` mode takes no signed policy.
    let other = Machine::start();
    let other_connection = other.connect();
    let policy = PolicyMode::from_current_pcrs(&other_connection, &SELECTION).unwrap();
    let pcr_key = TpmCaKey::create_or_load(other_connection, &other.state, policy).unwrap();
    assert_eq!(
        pcr_key.install_signed_policy(&release_signed(
            &connection,
            &release,
            &SELECTION,
            POLICY_REF
        )),
        Err(PolicyError::NotAuthorizedMode)
    );
}

#[test]
fn authorized_keys_survive_restarts_and_reboots() {
    let mut machine = Machine::start();
    let release = software_key("release key");
    let (connection, key) = enrol(&machine, &release);
    let booted = release_signed(&connection, &release, &SELECTION, POLICY_REF);
    key.install_signed_policy(&booted).unwrap();
    sign_and_verify(&key, b"before");
    let public_key = key.public_key_sec1().to_vec();

    // trustd restarts: reload the blob, install the image's signed policy again.
    drop(key);
    drop(connection);
    let connection = machine.connect();
    let key = TpmCaKey::load(Arc::clone(&connection), &machine.state)
        .unwrap()
        .expect("the enrolled key");
    assert_eq!(key.public_key_sec1(), &public_key[..]);
    key.install_signed_policy(&booted).unwrap();
    sign_and_verify(&key, b"after the restart");

    // A change, then a reboot: PCRs are back to the signed values, the key (reconnecting on
    // its own, and asking the TPM for a fresh ticket) signs again.
    extend_pcr(&connection, 16, b"something");
    sealed_reason(key.sign(b"changed"));
    machine.tpm.restart().unwrap();
    sign_and_verify(&key, b"after the reboot");
}
