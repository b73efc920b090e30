//! The offline policy formulas agree with what the TPM computes in trial sessions.

use super::*;
use crate::tpm::policy::{load_release_key, release_key_name};
use crate::tpm::{PolicyError, PolicyMode, authorized_policy_digest, pcr};

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
        let mode = PolicyMode::authorized(release.verifying_key(), policy_ref, &SELECTION, vec![])
            .unwrap();
        assert_eq!(
            trial_digest(&connection, &mode),
            mode.offline_digest().unwrap(),
            "policy_ref {policy_ref:?}"
        );
    }

    // With PCRs fixed at enrolment: PolicyAuthorize, then PolicyPCR over the fixed values.
    let fixed_sets: [&[u8]; 3] = [&[7], &[7, 16], &[0, 16, 23]];
    for (n, fixed) in fixed_sets.into_iter().enumerate() {
        let values: Vec<PcrValue> = fixed
            .iter()
            .map(|&pcr| value(pcr, Sha256::digest([pcr, n as u8, 0xF1]).into()))
            .collect();
        let mode = PolicyMode::authorized(
            release.verifying_key(),
            b"bunkeros-trustd-ca",
            &[11],
            values,
        )
        .unwrap();
        let offline = mode.offline_digest().unwrap();
        assert_eq!(trial_digest(&connection, &mode), offline, "fixed {fixed:?}");
        let without = PolicyMode::authorized(
            release.verifying_key(),
            b"bunkeros-trustd-ca",
            &[11],
            vec![],
        )
        .unwrap();
        assert_ne!(offline, without.offline_digest().unwrap());
        // The formula, spelled out: the authorisation digest extended by PolicyPCR.
        assert_eq!(
            offline,
            pcr::extend_with_policy_pcr(&without.offline_digest().unwrap(), mode.fixed()).unwrap()
        );
    }
    // The values as read now, in any order given.
    let mut current = connection.read_pcrs(&[7, 16]).unwrap();
    current.reverse();
    let mode = PolicyMode::authorized(
        release.verifying_key(),
        b"bunkeros-trustd-ca",
        &[11],
        current,
    )
    .unwrap();
    assert_eq!(
        trial_digest(&connection, &mode),
        mode.offline_digest().unwrap()
    );

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
    assert!(
        PolicyMode::authorized(release.verifying_key(), &too_long, &SELECTION, vec![]).is_err()
    );
    assert!(PolicyMode::authorized(release.verifying_key(), b"", &[], vec![]).is_err());
    assert!(PolicyMode::pcr(vec![]).is_err());
    assert!(PolicyMode::pcr(vec![value(24, [0; 32])]).is_err());

    let bad_key = PolicyMode::Authorized {
        release_key: vec![0x04; 65],
        policy_ref: vec![],
        selection: vec![11],
        fixed: vec![],
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
    let mode = PolicyMode::authorized(release.verifying_key(), b"ca", &[16, 11], vec![]).unwrap();
    let json = serde_json::to_value(&mode).unwrap();
    assert_eq!(json["mode"], "authorized");
    assert_eq!(json["policy_ref"], "6361");
    assert_eq!(json["selection"], serde_json::json!([11, 16]));
    assert_eq!(serde_json::from_value::<PolicyMode>(json).unwrap(), mode);
    let unknown = serde_json::json!({"mode": "pcr", "selection": [11], "expected": [], "x": 1});
    assert!(serde_json::from_value::<PolicyMode>(unknown).is_err());

    // Fixed PCRs: written when present, sorted; a state file without them has none.
    let fixed = vec![value(16, [0x16; 32]), value(7, [0x07; 32])];
    let mode = PolicyMode::authorized(release.verifying_key(), b"ca", &[11], fixed).unwrap();
    let json = serde_json::to_value(&mode).unwrap();
    assert_eq!(json["fixed"][0]["pcr"], 7);
    assert_eq!(json["fixed"][1]["pcr"], 16);
    assert_eq!(serde_json::from_value::<PolicyMode>(json).unwrap(), mode);
    let old = serde_json::json!({
        "mode": "authorized",
        "release_key": hex::encode(release.verifying_key().to_encoded_point(false).as_bytes()),
        "policy_ref": "6361",
        "selection": [11],
    });
    let old: PolicyMode = serde_json::from_value(old).unwrap();
    assert!(old.fixed().is_empty());
    assert_eq!(old.pcrs(), vec![11]);
    assert_eq!(mode.pcrs(), vec![7, 11, 16]);

    // Signed and fixed must be disjoint, and fixed values well-formed.
    let both = PolicyMode::authorized(
        release.verifying_key(),
        b"ca",
        &[7, 11],
        vec![value(7, [0; 32])],
    );
    let err = both.unwrap_err();
    assert_eq!(err, PolicyError::SignedAndFixed(vec![7]));
    assert_eq!(
        err.to_string(),
        "PCR 7 is both signed by the release key and fixed at enrolment; a PCR is one or the other"
    );
    let twice = vec![value(7, [0; 32]), value(7, [1; 32])];
    assert!(PolicyMode::authorized(release.verifying_key(), b"ca", &[11], twice).is_err());
    let tampered = PolicyMode::Authorized {
        release_key: release
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec(),
        policy_ref: vec![],
        selection: vec![11, 16],
        fixed: vec![value(16, [0; 32])],
    };
    assert_eq!(
        tampered.validate(),
        Err(PolicyError::SignedAndFixed(vec![16]))
    );
}
