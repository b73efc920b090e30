//! PCR policies signed by the release key: what lets a new image keep using the CA.
//!
//! The release tool, which holds the release signing key offline, predicts the PCR values an
//! image produces and signs the policy digest they give:
//!
//! ```text
//! approvedPolicy = authorized_policy_digest(selection, values)      // TPM2_PolicyPCR digest
//! signature      = ECDSA-P256( SHA-256(approvedPolicy || policyRef) ), DER-encoded
//! ```
//!
//! That is exactly what `openssl dgst -sha256 -sign release.pem` produces over the 32 bytes of
//! `approvedPolicy` followed by `policyRef`, so a release tool needs no TPM and no BunkerOS code.
//! The image ships the result as JSON ([`SignedPcrPolicy`]); trustd hands it to the TPM, which
//! verifies the signature (TPM2_VerifySignature) and only then accepts the PCR policy in place
//! of the key's own (TPM2_PolicyAuthorize).

use std::path::Path;

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey, signature::Signer as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::pcr::{self, PcrError, PcrValue, Sha256Digest, hex_bytes};
use super::policy::PolicyError;

/// PCR values of an image with the release key's signature over their policy digest.
///
/// JSON: `{"pcr_values": [{"pcr": 11, "sha256": "…"}], "signature": "3045…"}` (the signature
/// in DER, as hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedPcrPolicy {
    /// The PCR values the image produces once booted.
    pub pcr_values: Vec<PcrValue>,
    /// DER ECDSA P-256 signature over `SHA-256(approvedPolicy || policyRef)`.
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
}

/// The `approvedPolicy` a release key signs for `expected` values of `selection`: the digest of
/// a policy session after TPM2_PolicyPCR over those values.
pub fn authorized_policy_digest(
    selection: &[u8],
    expected: &[PcrValue],
) -> Result<Sha256Digest, PcrError> {
    let values = pcr::values_for_selection(selection, expected)?;
    pcr::policy_pcr_digest(&values)
}

/// `aHash` of TPM2_PolicyAuthorize: the digest the release key signs.
pub fn policy_signing_digest(approved_policy: &Sha256Digest, policy_ref: &[u8]) -> Sha256Digest {
    Sha256::new()
        .chain_update(approved_policy)
        .chain_update(policy_ref)
        .finalize()
        .into()
}

impl SignedPcrPolicy {
    /// Signs `pcr_values` with the release key: what a release tool does for each image.
    pub fn sign(
        release_key: &SigningKey,
        pcr_values: Vec<PcrValue>,
        policy_ref: &[u8],
    ) -> Result<Self, PolicyError> {
        let selection: Vec<u8> = pcr_values.iter().map(|value| value.pcr).collect();
        let approved = authorized_policy_digest(&selection, &pcr_values)?;
        let message = [&approved[..], policy_ref].concat();
        // ECDSA with SHA-256 of the message: the same bytes `openssl dgst -sha256 -sign` makes.
        let signature: Signature = release_key.sign(&message);
        Ok(Self {
            pcr_values,
            signature: signature.to_der().as_bytes().to_vec(),
        })
    }

    /// Parses the JSON form.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Reads the JSON file an image ships (e.g. `/run/bunkeros/slot/pcr11.policy.json`).
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let file_error = |reason: String| PolicyError::File {
            path: path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| file_error(e.to_string()))?;
        let policy = Self::from_json(&bytes).map_err(|e| file_error(e.to_string()))?;
        policy.selection().map_err(|e| file_error(e.to_string()))?;
        policy
            .ecdsa_signature()
            .map_err(|e| file_error(e.to_string()))?;
        Ok(policy)
    }

    /// The PCRs covered, in ascending order.
    pub fn selection(&self) -> Result<Vec<u8>, PcrError> {
        let selection: Vec<u8> = self.pcr_values.iter().map(|value| value.pcr).collect();
        let sorted = pcr::normalise_selection(&selection)?;
        pcr::values_for_selection(&sorted, &self.pcr_values)?;
        Ok(sorted)
    }

    /// The values in ascending PCR order.
    pub fn ordered_values(&self) -> Result<Vec<PcrValue>, PcrError> {
        pcr::values_for_selection(&self.selection()?, &self.pcr_values)
    }

    /// The `approvedPolicy` this signature is over.
    pub fn approved_policy(&self) -> Result<Sha256Digest, PcrError> {
        authorized_policy_digest(&self.selection()?, &self.pcr_values)
    }

    /// The signature as a P-256 ECDSA signature.
    pub fn ecdsa_signature(&self) -> Result<Signature, PolicyError> {
        Signature::from_der(&self.signature).map_err(|_| PolicyError::BadSignatureEncoding)
    }

    /// Checks the signature in software, as a release tool does before publishing. trustd
    /// itself leaves this judgement to the TPM.
    pub fn verify(&self, release_key: &VerifyingKey, policy_ref: &[u8]) -> Result<(), PolicyError> {
        let approved = self.approved_policy()?;
        let signature = self.ecdsa_signature()?;
        let message = [&approved[..], policy_ref].concat();
        release_key
            .verify(&message, &signature)
            .map_err(|_| PolicyError::NotSignedByReleaseKey)?;
        // The same check over the digest the TPM verifies, so both definitions stay one.
        release_key
            .verify_prehash(&policy_signing_digest(&approved, policy_ref), &signature)
            .map_err(|_| PolicyError::NotSignedByReleaseKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic test key (a release key would be generated once, offline).
    fn key(seed: &str) -> SigningKey {
        SigningKey::from_slice(&Sha256::digest(seed.as_bytes())).unwrap()
    }

    fn values() -> Vec<PcrValue> {
        vec![
            PcrValue {
                pcr: 23,
                sha256: [0x23; 32],
            },
            PcrValue {
                pcr: 11,
                sha256: [0x11; 32],
            },
        ]
    }

    #[test]
    fn a_signed_policy_round_trips_and_verifies() {
        let release = key("release");
        let signed = SignedPcrPolicy::sign(&release, values(), b"trustd-ca").unwrap();
        let json = serde_json::to_vec(&signed).unwrap();
        let parsed = SignedPcrPolicy::from_json(&json).unwrap();
        assert_eq!(parsed, signed);
        assert_eq!(parsed.selection().unwrap(), vec![11, 23]);
        parsed
            .verify(release.verifying_key(), b"trustd-ca")
            .unwrap();
        assert_eq!(
            parsed.verify(release.verifying_key(), b"other-use"),
            Err(PolicyError::NotSignedByReleaseKey)
        );
        let other = key("other");
        assert_eq!(
            parsed.verify(other.verifying_key(), b"trustd-ca"),
            Err(PolicyError::NotSignedByReleaseKey)
        );
    }

    #[test]
    fn bad_files_name_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pcr-policy.json");
        std::fs::write(&path, br#"{"pcr_values": [], "signature": "00"}"#).unwrap();
        let err = SignedPcrPolicy::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("pcr-policy.json") && err.contains("empty"),
            "{err}"
        );
        std::fs::write(
            &path,
            br#"{"pcr_values": [{"pcr": 11, "sha256": "00"}], "signature": "00"}"#,
        )
        .unwrap();
        let err = SignedPcrPolicy::load(&path).unwrap_err().to_string();
        assert!(err.contains("SHA-256"), "{err}");
        let missing = SignedPcrPolicy::load(&dir.path().join("nope.json")).unwrap_err();
        assert!(missing.to_string().contains("nope.json"), "{missing}");
    }
}
