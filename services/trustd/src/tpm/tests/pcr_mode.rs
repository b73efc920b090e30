//! `pcr` mode: the key is bound to fixed PCR values.

use std::time::Instant;

use super::*;
use crate::tpm::{CA_KEY_STATE_FILE, CaKeyBlob, PolicyMode, PolicyStatus, SealedReason};

#[test]
fn created_key_signs_and_reloads_after_a_trustd_restart() {
    let machine = Machine::start();
    let connection = machine.connect();
    let policy = PolicyMode::from_current_pcrs(&connection, &SELECTION).unwrap();
    let key =
        TpmCaKey::create_or_load(Arc::clone(&connection), &machine.state, policy.clone()).unwrap();
    sign_and_verify(&key, b"tbsCertificate of the root");
    assert!(key.policy_satisfied().unwrap());
    let public_key = key.public_key_sec1().to_vec();
    assert_eq!(public_key.len(), 65);
    assert_eq!(public_key[0], 0x04);

    // Only wrapped material is on disk: the public part and the TPM-encrypted private part.
    let blob: CaKeyBlob = machine.state.read_json(CA_KEY_STATE_FILE).unwrap().unwrap();
    assert_eq!(blob.policy, policy);
    assert!(!blob.private.is_empty());
    let stored = machine.blob_file();

    // trustd restarts: new connection, the key comes back from the blob, nothing is rewritten.
    drop(key);
    drop(connection);
    let connection = machine.connect();
    let key = TpmCaKey::create_or_load(connection, &machine.state, policy).unwrap();
    assert_eq!(key.public_key_sec1(), &public_key[..]);
    sign_and_verify(&key, b"a CRL");
    assert_eq!(machine.blob_file(), stored);
}

#[test]
fn a_pcr_extend_seals_the_key_and_a_reboot_unseals_it() {
    let mut machine = Machine::start();
    let connection = machine.connect();
    let policy = PolicyMode::from_current_pcrs(&connection, &SELECTION).unwrap();
    let key = TpmCaKey::create_or_load(Arc::clone(&connection), &machine.state, policy).unwrap();
    sign_and_verify(&key, b"before");

    extend_pcr(&connection, 16, b"an unexpected boot component");
    let reason = sealed_reason(key.sign(b"after the extend"));
    assert!(reason.contains("PCR 16 of this boot differs"), "{reason}");
    assert_eq!(
        key.policy_status().unwrap(),
        PolicyStatus::Sealed(SealedReason::PcrMismatch { pcrs: vec![16] })
    );
    assert!(!key.policy_satisfied().unwrap());
    // Refusals leave nothing behind: the key stays sealed, and says so, every time.
    for _ in 0..5 {
        sealed_reason(key.sign(b"again"));
    }

    // Reboot: PCRs reset. The same key object reconnects and signs again.
    machine.tpm.restart().unwrap();
    sign_and_verify(&key, b"after the reboot");
    assert!(key.policy_satisfied().unwrap());
}

#[test]
fn the_key_binds_to_predicted_values_not_to_the_current_ones() {
    let machine = Machine::start();
    let connection = machine.connect();
    let current = connection.read_pcrs(&SELECTION).unwrap();
    let component = b"the unified kernel image of the next release";
    // The build predicted PCR 16 as it will be once the component is measured.
    let prediction = PolicyMode::pcr(vec![
        current[0],
        value(16, predicted_after_extend(component)),
    ])
    .unwrap();
    let key =
        TpmCaKey::create_or_load(Arc::clone(&connection), &machine.state, prediction).unwrap();
    let reason = sealed_reason(key.sign(b"too early"));
    assert!(reason.contains("PCR 16"), "{reason}");

    extend_pcr(&connection, 16, component);
    sign_and_verify(&key, b"the predicted boot happened");
}

#[test]
fn a_blob_moved_to_another_tpm_is_refused_and_never_replaced() {
    let first = Machine::start();
    let connection = first.connect();
    let policy = PolicyMode::from_current_pcrs(&connection, &SELECTION).unwrap();
    TpmCaKey::create_or_load(connection, &first.state, policy.clone()).unwrap();
    let stolen = first.blob_file();

    // The state file copied onto a second machine (a cloned disk): fresh TPM, same PCRs.
    let second = Machine::start();
    second
        .state
        .write_atomic(CA_KEY_STATE_FILE, &stolen)
        .unwrap();
    let connection = second.connect();
    let err = expect_err(TpmCaKey::load(Arc::clone(&connection), &second.state));
    assert!(matches!(err, TpmError::BlobForeign { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("created by another TPM"), "{message}");
    assert!(message.contains(CA_KEY_STATE_FILE), "{message}");

    // create_or_load must not enrol a new CA over the foreign one.
    let err = expect_err(TpmCaKey::create_or_load(connection, &second.state, policy));
    assert!(matches!(err, TpmError::BlobForeign { .. }), "{err}");
    assert_eq!(second.blob_file(), stolen);
}

#[test]
fn a_cloned_tpm_is_the_same_machine() {
    // The converse of the test above: the blob is bound to the TPM's seeds, not to the
    // process or the port. A TPM restored from the same state loads and uses it.
    let machine = Machine::start();
    let connection = machine.connect();
    let policy = PolicyMode::from_current_pcrs(&connection, &SELECTION).unwrap();
    let key = TpmCaKey::create_or_load(connection, &machine.state, policy.clone()).unwrap();
    let public_key = key.public_key_sec1().to_vec();
    drop(key);

    let clone = Swtpm::start_from_state(&machine.tpm.state_dir()).unwrap();
    let connection = Arc::new(TpmConnection::open_tcti(&clone.tcti()).unwrap());
    let key = TpmCaKey::create_or_load(connection, &machine.state, policy).unwrap();
    assert_eq!(key.public_key_sec1(), &public_key[..]);
    sign_and_verify(&key, b"restored from backup");
}

#[test]
fn a_tampered_blob_is_refused_and_never_replaced() {
    let machine = Machine::start();
    let connection = machine.connect();
    let policy = PolicyMode::from_current_pcrs(&connection, &SELECTION).unwrap();
    TpmCaKey::create_or_load(Arc::clone(&connection), &machine.state, policy.clone()).unwrap();

    // Someone rewrites the recorded policy to other PCR values.
    let mut blob: CaKeyBlob = machine.state.read_json(CA_KEY_STATE_FILE).unwrap().unwrap();
    blob.policy = PolicyMode::pcr(vec![value(11, [0; 32]), value(16, [0xAA; 32])]).unwrap();
    machine.state.write_json(CA_KEY_STATE_FILE, &blob).unwrap();
    let tampered = machine.blob_file();
    let err = expect_err(TpmCaKey::create_or_load(
        Arc::clone(&connection),
        &machine.state,
        policy.clone(),
    ));
    assert!(matches!(err, TpmError::BlobInvalid { .. }), "{err}");
    assert!(err.to_string().contains("authPolicy"), "{err}");
    assert_eq!(machine.blob_file(), tampered);

    // Garbage instead of JSON.
    machine
        .state
        .write_atomic(CA_KEY_STATE_FILE, b"{\"public\": 1}")
        .unwrap();
    let err = expect_err(TpmCaKey::create_or_load(
        Arc::clone(&connection),
        &machine.state,
        policy.clone(),
    ));
    assert!(matches!(err, TpmError::State(_)), "{err}");
    assert_eq!(machine.blob_file(), b"{\"public\": 1}");

    // And `create` refuses to enrol over any existing file.
    let err = expect_err(TpmCaKey::create(connection, &machine.state, policy));
    assert!(matches!(err, TpmError::AlreadyEnrolled { .. }), "{err}");
}

#[test]
fn two_hundred_signatures_each_in_its_own_session() {
    // Also a leak check: swtpm holds only a few sessions and objects, so a session or handle
    // left behind per signature would fail within the first few dozen.
    let machine = Machine::start();
    let connection = machine.connect();
    let policy = PolicyMode::from_current_pcrs(&connection, &SELECTION).unwrap();
    let key = TpmCaKey::create_or_load(connection, &machine.state, policy).unwrap();
    sign_and_verify(&key, b"warm-up");
    let started = Instant::now();
    for i in 0..200u32 {
        sign_and_verify(&key, &i.to_be_bytes());
    }
    let elapsed = started.elapsed();
    // A figure for the report, not an assertion (benchmarks live in `make bench`).
    println!(
        "200 signatures (policy session each, p256-verified) in {elapsed:?}: {:.0}/s",
        200.0 / elapsed.as_secs_f64()
    );
}
