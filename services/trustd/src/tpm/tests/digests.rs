//! The offline policy formulas agree with what the TPM computes in trial sessions.

use super::*;
use crate::tpm::policy::{load_release_key, release_key_name};
use crate::tpm::{PolicyMode, authorized_policy_digest, pcr};

fn trial_digest(connection: &TpmConnection, mode: &PolicyMode) -> Sha256Digest {
    connection
        .run(|context, _| mode.trial_digest(context))
        .unwrap()
}

#[test]
fn offline_policy_pcr_digest_equals_the_trial_session() {
    let machine = Machine::start();
    let connection = machine.connect();
    let selections: [&[u8]; 5] = [&[16], &[7, 11], &[11, 16], &[0, 8, 16, 23], &[23]];
    for (n, selection) in selections.into_iter().enumerate() {
        // Expected values unlike the current ones: the TPM must use the given pcrDigest.
        let expected: Vec<PcrValue> = selection
            .iter()
            .map(|&pcr| value(pcr, Sha256::digest([pcr, n as u8]).into()))
            .collect();
        let mode = PolicyMode::pcr(expected.clone()).unwrap();
        let offline = mode.offline_digest().unwrap();
        assert_eq!(trial_digest(&connection, &mode), offline, "{selection:?}");
        // The release tool's helper is the same formula.
        assert_eq!(
            authorized_policy_digest(selection, &expected).unwrap(),
            offline
        );
    }

    // From the current values too (the TPM reads them itself when given no pcrDigest).
    let mode = PolicyMode::from_current_pcrs(&connection, &SELECTION).unwrap();
    assert_eq!(
        trial_digest(&connection, &mode),
        mode.offline_digest().unwrap()
    );
}

#[test]
fn offline_policy_authorize_digest_equals_the_trial_session() {
    let machine = Machine::start();
    let connection = machine.connect();
    let release = software_key("release key");
    for policy_ref in [&b""[..], b"bunkeros-trustd-ca", &[0xFF; 32]] {
        let mode = PolicyMode::authorized(release.verifying_key(), policy_ref, &SELECTION).unwrap();
        assert_eq!(
            trial_digest(&connection, &mode),
            mode.offline_digest().unwrap(),
            "policy_ref {policy_ref:?}"
        );
    }

    // The Name computed offline is the one the TPM gives the loaded release key.
    let offline_name = release_key_name(release.verifying_key()).unwrap();
    let tpm_name = connection
        .run(|context, _| {
            let loaded = load_release_key(context, release.verifying_key())?;
            crate::tpm::policy::flush_object(context, loaded.handle.into());
            Ok::<_, TpmError>(loaded.name.value().to_vec())
        })
        .unwrap();
    assert_eq!(tpm_name, offline_name);
}

#[test]
fn policy_definitions_are_checked() {
    let too_long = [0u8; 33];
    let release = software_key("release key");
    assert!(PolicyMode::authorized(release.verifying_key(), &too_long, &SELECTION).is_err());
    assert!(PolicyMode::authorized(release.verifying_key(), b"", &[]).is_err());
    assert!(PolicyMode::pcr(vec![]).is_err());
    assert!(PolicyMode::pcr(vec![value(24, [0; 32])]).is_err());

    let bad_key = PolicyMode::Authorized {
        release_key: vec![0x04; 65],
        policy_ref: vec![],
        selection: vec![11],
    };
    let err = bad_key.validate().unwrap_err();
    assert!(err.to_string().contains("release key"), "{err}");

    let inconsistent = PolicyMode::Pcr {
        selection: vec![11, 16],
        expected: vec![value(11, [0; 32])],
    };
    assert_eq!(
        inconsistent.validate().unwrap_err().to_string(),
        pcr::PcrError::MissingValue(16).to_string()
    );

    // The state file form: tagged, hex, readable.
    let mode = PolicyMode::authorized(release.verifying_key(), b"ca", &[16, 11]).unwrap();
    let json = serde_json::to_value(&mode).unwrap();
    assert_eq!(json["mode"], "authorized");
    assert_eq!(json["policy_ref"], "6361");
    assert_eq!(json["selection"], serde_json::json!([11, 16]));
    assert_eq!(serde_json::from_value::<PolicyMode>(json).unwrap(), mode);
    let unknown = serde_json::json!({"mode": "pcr", "selection": [11], "expected": [], "x": 1});
    assert!(serde_json::from_value::<PolicyMode>(unknown).is_err());
}
