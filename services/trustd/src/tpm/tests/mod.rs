//! The CA key against a real TPM (swtpm), never a mock.
//!
//! Each test starts its own swtpm (`appliance::testtpm::Swtpm`) on free loopback ports, so
//! tests run in parallel and a reboot, a PCR extend or a second machine in one test touches no
//! other.

mod authorized;
mod authorized_fixed;
mod digests;
mod pcr_mode;
mod quote;

use std::sync::Arc;

use appliance::state::StateDir;
use appliance::testtpm::Swtpm;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;
use tss_esapi::handles::PcrHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::structures::{Digest, DigestValues};

use super::connection::command;
use super::{PcrValue, Sha256Digest, TpmCaKey, TpmConnection, TpmError};
use crate::ca_key::{CaKey, SignError};

/// PCRs the tests bind keys to: 11 (what the appliance binds) and 16 (the debug PCR, which
/// tests may extend freely).
const SELECTION: [u8; 2] = [11, 16];

/// A software TPM with an empty trustd state directory beside it.
struct Machine {
    tpm: Swtpm,
    _state_root: TempDir,
    state: StateDir,
}

impl Machine {
    fn start() -> Self {
        let tpm = Swtpm::start().expect("swtpm starts (Debian package swtpm)");
        let state_root = TempDir::new().unwrap();
        let state = StateDir::new(state_root.path().join("trustd")).unwrap();
        Self {
            tpm,
            _state_root: state_root,
            state,
        }
    }

    fn connect(&self) -> Arc<TpmConnection> {
        Arc::new(
            TpmConnection::open_tcti(&self.tpm.tcti())
                .unwrap_or_else(|e| panic!("{e}\nswtpm log:\n{}", self.tpm.log())),
        )
    }

    /// The stored blob, byte for byte (to prove nothing rewrote it).
    fn blob_file(&self) -> Vec<u8> {
        self.state
            .read(super::CA_KEY_STATE_FILE)
            .unwrap()
            .expect("a CA key state file")
    }
}

/// Extends `pcr` with SHA-256(`data`): 16 or 23 (resettable, free for tests), or 7 and 11 (what
/// the appliance binds; each test has its own swtpm, so nothing else sees the change).
fn extend_pcr(connection: &TpmConnection, pcr: u8, data: &[u8]) {
    let handle = match pcr {
        7 => PcrHandle::Pcr7,
        11 => PcrHandle::Pcr11,
        16 => PcrHandle::Pcr16,
        23 => PcrHandle::Pcr23,
        other => panic!("tests extend only PCR 7, 11, 16 or 23, not {other}"),
    };
    let mut values = DigestValues::new();
    values.set(
        HashingAlgorithm::Sha256,
        Digest::try_from(Sha256::digest(data).to_vec()).unwrap(),
    );
    connection
        .run(|context, _| {
            context
                .execute_with_nullauth_session(|c| c.pcr_extend(handle, values.clone()))
                .map_err(command("extending a PCR"))
        })
        .unwrap();
}

/// What a PCR at zero holds after one extend with SHA-256(`data`): a value a build predicts.
fn predicted_after_extend(data: &[u8]) -> Sha256Digest {
    Sha256::new()
        .chain_update([0u8; 32])
        .chain_update(Sha256::digest(data))
        .finalize()
        .into()
}

/// A value for `pcr` as a prediction file would give it.
fn value(pcr: u8, sha256: Sha256Digest) -> PcrValue {
    PcrValue { pcr, sha256 }
}

/// A deterministic P-256 key for tests (the release key is an offline software key).
/// What the release tool publishes: the PCRs of `selection` as `connection` reads them now,
/// signed by `signer` for `policy_ref`.
fn release_signed(
    connection: &TpmConnection,
    signer: &SigningKey,
    selection: &[u8],
    policy_ref: &[u8],
) -> super::SignedPcrPolicy {
    let values = connection.read_pcrs(selection).unwrap();
    super::SignedPcrPolicy::sign(signer, values, policy_ref).unwrap()
}

fn software_key(seed: &str) -> SigningKey {
    SigningKey::from_slice(&Sha256::digest(seed.as_bytes())).unwrap()
}

/// Signs `message` with the CA key and checks the DER signature with p256 alone.
fn sign_and_verify(key: &TpmCaKey, message: &[u8]) {
    let der = key
        .sign(message)
        .unwrap_or_else(|e| panic!("the CA key should sign: {e}"));
    let signature = Signature::from_der(&der).expect("a DER ECDSA signature");
    VerifyingKey::from_sec1_bytes(key.public_key_sec1())
        .unwrap()
        .verify(message, &signature)
        .expect("the signature verifies with the CA public key");
}

/// The reason of a sealed refusal; fails the test on success or another error.
fn sealed_reason(result: Result<Vec<u8>, SignError>) -> String {
    match result {
        Err(SignError::Sealed(reason)) => {
            eprintln!("SEALED: {reason}");
            reason
        }
        Err(other) => panic!("expected a sealed refusal, got {other}"),
        Ok(_) => panic!("expected a sealed refusal, but the key signed"),
    }
}

/// Fails the test unless `result` is the given error variant.
fn expect_err<T: std::fmt::Debug>(result: Result<T, TpmError>) -> TpmError {
    result.expect_err("expected an error")
}
