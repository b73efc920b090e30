//! What is stored of the CA key, how it is made, and how a stored copy is checked.
//!
//! The state file holds the key's public area and its TPM-wrapped private part, never key
//! material: the private part is encrypted and integrity-protected by the storage root key and
//! is readable only inside the TPM that made it. Before a stored blob is used, its public area
//! must be exactly what `ca_key_template` makes for the policy recorded beside it, so a file
//! that was edited (another policy, a key that could be used without one) is refused with a
//! sentence rather than failing later in the TPM.

use serde::{Deserialize, Serialize};
use tss_esapi::Context;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::structures::{
    EccPoint, EccScheme, HashScheme, Public, PublicBuffer, PublicBuilder,
    PublicEccParametersBuilder,
};
use tss_esapi::traits::Marshall;

use super::TpmError;
use super::connection::{command, create_srk};
use super::pcr::{Sha256Digest, hex_bytes};
use super::policy::{PolicyMode, digest, flush_object};

/// The CA key's file in trustd's state directory.
pub const CA_KEY_STATE_FILE: &str = "ca-key.json";

/// What is stored of the CA key: nothing an attacker can use without this TPM in this state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaKeyBlob {
    /// The marshalled `TPM2B_PUBLIC`: public key, attributes and `authPolicy`.
    #[serde(with = "hex_bytes")]
    pub public: Vec<u8>,
    /// The `TPM2B_PRIVATE` contents: the private key encrypted and integrity-protected by
    /// the storage root key, readable only inside this TPM.
    #[serde(with = "hex_bytes")]
    pub private: Vec<u8>,
    /// The policy the key's `authPolicy` was computed from.
    pub policy: PolicyMode,
}

/// Creates the key in the TPM and returns what is stored of it.
pub(crate) fn create_blob(
    context: &mut Context,
    policy: &PolicyMode,
    offline: &Sha256Digest,
) -> Result<CaKeyBlob, TpmError> {
    let trial = policy.trial_digest(context)?;
    if &trial != offline {
        return Err(TpmError::Faulty(format!(
            "policy digest {} from a trial session, but {} was computed offline; refusing to create a key bound to either",
            hex::encode(trial),
            hex::encode(offline)
        )));
    }
    let template = ca_key_template(&trial)?;
    let srk = create_srk(context)?;
    let created =
        context.execute_with_nullauth_session(|c| c.create(srk, template, None, None, None, None));
    flush_object(context, srk.into());
    let created = created.map_err(command("creating the CA key under the storage root key"))?;
    let public = PublicBuffer::try_from(created.out_public)
        .and_then(|buffer| buffer.marshall())
        .map_err(command("encoding the CA key's public part"))?;
    Ok(CaKeyBlob {
        public,
        private: created.out_private.value().to_vec(),
        policy: policy.clone(),
    })
}

/// ECC P-256, ECDSA with SHA-256, unrestricted signing; never leaves the TPM (`fixedTPM`,
/// `fixedParent`, generated inside: `sensitiveDataOrigin`); no password (`userWithAuth`
/// clear) and administration by policy too (`adminWithPolicy`), so `auth_policy` is the only
/// way to use it.
fn ca_key_template(auth_policy: &Sha256Digest) -> Result<Public, TpmError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(false)
        .with_admin_with_policy(true)
        .with_sign_encrypt(true)
        .build()
        .map_err(command("building the CA key template"))?;
    let parameters = PublicEccParametersBuilder::new_unrestricted_signing_key(
        EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
        EccCurve::NistP256,
    )
    .build()
    .map_err(command("building the CA key template"))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_auth_policy(digest(auth_policy)?)
        .with_ecc_parameters(parameters)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .map_err(command("building the CA key template"))
}

/// Refuses a public area that is not a CA key made by [`ca_key_template`] for `auth_policy`.
pub(crate) fn check_public(public: &Public, auth_policy: &Sha256Digest) -> Result<(), String> {
    let Public::Ecc {
        object_attributes: attributes,
        name_hashing_algorithm,
        auth_policy: stored_policy,
        parameters,
        ..
    } = public
    else {
        return Err("it is not an ECC key".to_owned());
    };
    if parameters.ecc_curve() != EccCurve::NistP256
        || parameters.ecc_scheme() != EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256))
        || *name_hashing_algorithm != HashingAlgorithm::Sha256
    {
        return Err("it is not a P-256 ECDSA-SHA256 key".to_owned());
    }
    let bound = attributes.fixed_tpm()
        && attributes.fixed_parent()
        && attributes.sensitive_data_origin()
        && !attributes.user_with_auth()
        && attributes.admin_with_policy()
        && attributes.sign_encrypt()
        && !attributes.restricted()
        && !attributes.decrypt();
    if !bound {
        return Err(
            "its attributes would let it leave the TPM or be used without the policy".to_owned(),
        );
    }
    if stored_policy.value() != &auth_policy[..] {
        return Err("its authPolicy is not the digest of the policy recorded with it".to_owned());
    }
    Ok(())
}

/// The uncompressed SEC1 point (`04 || X || Y`) of an ECC public area.
pub(crate) fn sec1_point(public: &Public) -> Result<Vec<u8>, String> {
    let Public::Ecc { unique, .. } = public else {
        return Err("it is not an ECC key".to_owned());
    };
    let x = left_pad(unique.x().value()).map_err(|e| e.to_string())?;
    let y = left_pad(unique.y().value()).map_err(|e| e.to_string())?;
    Ok([&[0x04][..], &x, &y].concat())
}

/// A P-256 scalar or coordinate as 32 bytes: the TPM drops leading zero bytes.
pub(crate) fn left_pad(value: &[u8]) -> Result<[u8; 32], TpmError> {
    if value.len() > 32 {
        return Err(TpmError::Faulty(format!(
            "a {}-byte value where a P-256 scalar (32 bytes) was expected",
            value.len()
        )));
    }
    let mut out = [0u8; 32];
    out[32 - value.len()..].copy_from_slice(value);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_scalars_are_left_padded() {
        let padded = left_pad(&[1, 2]).unwrap();
        assert_eq!(padded[..30], [0; 30]);
        assert_eq!(padded[30..], [1, 2]);
        assert_eq!(left_pad(&[7; 32]).unwrap(), [7; 32]);
        assert!(left_pad(&[0; 33]).is_err());
    }
}
