//! The policy that decides when the TPM lets the CA key sign.
//!
//! Two modes (issue 3, item 1):
//! - [`PolicyMode::Pcr`]: the key's `authPolicy` is TPM2_PolicyPCR over PCR values fixed at
//!   enrolment, usually as *predicted* by the image build (`pcr11.expected`), so the CA works
//!   only on a boot of exactly that image. A new image means a new CA key.
//! - [`PolicyMode::Authorized`]: the key's `authPolicy` is TPM2_PolicyAuthorize by the release
//!   signing key (the systemd signed-PCR-policy approach). Each image ships the PCR values it
//!   produces, signed by the release key ([`super::SignedPcrPolicy`]); the TPM accepts any PCR
//!   policy the release key signed, so updates keep the CA usable without re-enrolment, while a
//!   boot nobody signed for cannot use it. PCRs nobody can predict at build time (PCR 7, the
//!   Secure Boot state) may be *fixed* beside it: the `authPolicy` is then PolicyAuthorize
//!   followed by PolicyPCR over their values at enrolment, as systemd seals to a signed PCR 11
//!   policy plus fixed PCRs. At use, the session runs PolicyPCR(signed values), PolicyAuthorize
//!   (which resets the digest to the authorisation digest), then PolicyPCR(fixed values).
//!
//! The digest a key is bound to is computed on the TPM with a trial session when the key is
//! created, and offline (in [`super::pcr`]) to check the state file and for release tools; a
//! key is only created when both agree.

use p256::ecdsa::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tss_esapi::Context;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_VERIFIED};
use tss_esapi::handles::{KeyHandle, ObjectHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::PolicySession;
use tss_esapi::structures::{
    Digest, EccParameter, EccPoint, EccScheme, HashScheme, Name, Nonce, Public, PublicBuilder,
    PublicEccParametersBuilder, SymmetricDefinition, VerifiedTicket,
};
use tss_esapi::traits::Marshall;
use tss_esapi::tss2_esys::{TPM2B_DIGEST, TPMT_TK_VERIFIED};

use super::TpmError;
use super::connection::{TpmConnection, command, read_pcrs, selection_list};
use super::pcr::{self, PcrError, PcrValue, Sha256Digest, hex_bytes};

/// Longest accepted `policyRef`: a `TPM2B_NONCE` holds at most the TPM's largest digest, and
/// 32 bytes fit every TPM that has SHA-256.
pub const MAX_POLICY_REF: usize = 32;

/// When the TPM lets the CA key sign; recorded beside the key in its state file.
///
/// Serialised with a `mode` tag and hex byte strings, e.g.
/// `{"mode": "pcr", "selection": [7, 11], "expected": [{"pcr": 7, "sha256": "…"}, …]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicyMode {
    /// TPM2_PolicyPCR with the expected values of `selection` (SHA-256 bank).
    Pcr {
        /// The PCRs the key is bound to.
        selection: Vec<u8>,
        /// Their expected values, one per selected PCR.
        expected: Vec<PcrValue>,
    },
    /// TPM2_PolicyAuthorize by `release_key`: any PolicyPCR over `selection` that the release
    /// key signed (with `policy_ref`) unlocks the key, provided the PCRs in `fixed` still hold
    /// their values from enrolment.
    Authorized {
        /// The release signing key, an uncompressed SEC1 P-256 point (`04 || X || Y`).
        #[serde(with = "hex_bytes")]
        release_key: Vec<u8>,
        /// Binds signatures to this use: a policy signed for another purpose with the same
        /// release key does not unlock the CA.
        #[serde(with = "hex_bytes")]
        policy_ref: Vec<u8>,
        /// The PCRs every signed policy must cover.
        selection: Vec<u8>,
        /// PCRs bound to their values at enrolment (TPM2_PolicyPCR after PolicyAuthorize),
        /// disjoint from `selection`. Absent in state files written before fixed PCRs existed,
        /// and left out when empty so that an older trustd (an A/B rollback) still reads them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        fixed: Vec<PcrValue>,
    },
}

/// Why a policy definition is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The PCR selection or values are invalid.
    #[error(transparent)]
    Pcr(#[from] PcrError),
    /// The release key is not a P-256 public key.
    #[error("the release key is not a P-256 public key in SEC1 form: {0}")]
    BadReleaseKey(String),
    /// The policy reference is too long for the TPM.
    #[error("the policy reference is {0} bytes; at most {MAX_POLICY_REF} are allowed")]
    PolicyRefTooLong(usize),
    /// A signed PCR policy covers other PCRs than the CA key's policy requires.
    #[error(
        "the signed PCR policy covers PCRs {signed:?}, but the CA key requires PCRs {required:?}"
    )]
    SelectionMismatch {
        /// The PCRs in the signed policy.
        signed: Vec<u8>,
        /// The PCRs of the key's policy.
        required: Vec<u8>,
    },
    /// An `authorized` policy lists a PCR both as signed and as fixed.
    #[error(
        "{} both signed by the release key and fixed at enrolment; a PCR is one or the other",
        pcr_list_is(.0)
    )]
    SignedAndFixed(Vec<u8>),
    /// A signed PCR policy covers PCRs the CA key binds to their values at enrolment.
    #[error(
        "the signed PCR policy covers {}; a release signs only PCRs {required:?} for this key",
        fixed_at_enrolment(.fixed)
    )]
    SignedCoversFixed {
        /// The PCRs in both the signed policy and the key's fixed set.
        fixed: Vec<u8>,
        /// The PCRs a signed policy must cover.
        required: Vec<u8>,
    },
    /// A signed PCR policy was given to a key in `pcr` mode.
    #[error("the CA key is bound to fixed PCR values (mode `pcr`); it takes no signed PCR policy")]
    NotAuthorizedMode,
    /// The signature of a signed PCR policy is not a DER ECDSA signature.
    #[error("the signed PCR policy's signature is not a DER-encoded ECDSA P-256 signature")]
    BadSignatureEncoding,
    /// The signature of a signed PCR policy does not verify with the release key.
    #[error(
        "the signed PCR policy is not signed by this release key (or not for this policy reference)"
    )]
    NotSignedByReleaseKey,
    /// A signed PCR policy file could not be read or parsed.
    #[error("cannot use the signed PCR policy {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// "PCR 7" or "PCRs 7, 11".
fn pcr_list(pcrs: &[u8]) -> String {
    let names: Vec<String> = pcrs.iter().map(u8::to_string).collect();
    match pcrs {
        [one] => format!("PCR {one}"),
        _ => format!("PCRs {}", names.join(", ")),
    }
}

/// "PCR 7, which the CA key binds to its value at enrolment" (or the plural).
fn fixed_at_enrolment(pcrs: &[u8]) -> String {
    let whose = if pcrs.len() == 1 {
        "its value"
    } else {
        "their values"
    };
    format!(
        "{}, which the CA key binds to {whose} at enrolment",
        pcr_list(pcrs)
    )
}

/// "PCR 7 is" or "PCRs 7, 11 are".
fn pcr_list_is(pcrs: &[u8]) -> String {
    let verb = if pcrs.len() == 1 { "is" } else { "are" };
    format!("{} {verb}", pcr_list(pcrs))
}

impl PolicyMode {
    /// A `pcr` policy over exactly the PCRs in `expected`.
    pub fn pcr(expected: Vec<PcrValue>) -> Result<Self, PolicyError> {
        let selection: Vec<u8> = expected.iter().map(|value| value.pcr).collect();
        let mode = Self::Pcr {
            selection: pcr::normalise_selection(&selection)?,
            expected: pcr::values_for_selection(&selection, &expected)?,
        };
        Ok(mode)
    }

    /// A `pcr` policy bound to the PCR values of this boot, for when the image build gave no
    /// prediction (development, or PCRs nobody predicts such as PCR 7 on unknown firmware).
    pub fn from_current_pcrs(
        connection: &TpmConnection,
        selection: &[u8],
    ) -> Result<Self, TpmError> {
        let values = connection.read_pcrs(selection)?;
        Ok(Self::pcr(values)?)
    }

    /// An `authorized` policy: release key, policy reference, the PCRs signed policies cover,
    /// and the PCRs bound to their values now (`fixed`, possibly none).
    pub fn authorized(
        release_key: &VerifyingKey,
        policy_ref: &[u8],
        selection: &[u8],
        fixed: Vec<PcrValue>,
    ) -> Result<Self, PolicyError> {
        let fixed = if fixed.is_empty() {
            fixed
        } else {
            let pcrs: Vec<u8> = fixed.iter().map(|value| value.pcr).collect();
            pcr::values_for_selection(&pcrs, &fixed)?
        };
        let mode = Self::Authorized {
            release_key: release_key.to_encoded_point(false).as_bytes().to_vec(),
            policy_ref: policy_ref.to_vec(),
            selection: pcr::normalise_selection(selection)?,
            fixed,
        };
        mode.validate()?;
        Ok(mode)
    }

    /// Checks the definition (as read from a state or configuration file).
    pub fn validate(&self) -> Result<(), PolicyError> {
        match self {
            Self::Pcr {
                selection,
                expected,
            } => {
                pcr::values_for_selection(selection, expected)?;
            }
            Self::Authorized {
                policy_ref,
                selection,
                fixed,
                ..
            } => {
                self.release_key()?;
                let selection = pcr::normalise_selection(selection)?;
                if policy_ref.len() > MAX_POLICY_REF {
                    return Err(PolicyError::PolicyRefTooLong(policy_ref.len()));
                }
                if !fixed.is_empty() {
                    let fixed_pcrs: Vec<u8> = fixed.iter().map(|value| value.pcr).collect();
                    pcr::values_for_selection(&fixed_pcrs, fixed)?;
                    let both: Vec<u8> = pcr::normalise_selection(&fixed_pcrs)?
                        .into_iter()
                        .filter(|pcr| selection.contains(pcr))
                        .collect();
                    if !both.is_empty() {
                        return Err(PolicyError::SignedAndFixed(both));
                    }
                }
            }
        }
        Ok(())
    }

    /// The PCRs the policy covers with expected values (`pcr`) or that every signed policy
    /// must cover (`authorized`), in ascending order.
    pub fn selection(&self) -> Result<Vec<u8>, PolicyError> {
        let (Self::Pcr { selection, .. } | Self::Authorized { selection, .. }) = self;
        Ok(pcr::normalise_selection(selection)?)
    }

    /// The PCRs of an `authorized` policy bound to their values at enrolment, in ascending
    /// order (none in `pcr` mode, where every PCR is).
    pub fn fixed(&self) -> &[PcrValue] {
        match self {
            Self::Authorized { fixed, .. } => fixed,
            Self::Pcr { .. } => &[],
        }
    }

    /// Every PCR the key depends on, signed or fixed, in ascending order.
    pub fn pcrs(&self) -> Vec<u8> {
        let (Self::Pcr { selection, .. } | Self::Authorized { selection, .. }) = self;
        let mut pcrs: Vec<u8> = selection.clone();
        pcrs.extend(self.fixed().iter().map(|value| value.pcr));
        pcrs.sort_unstable();
        pcrs.dedup();
        pcrs
    }

    /// The release key of an `authorized` policy.
    pub fn release_key(&self) -> Result<VerifyingKey, PolicyError> {
        match self {
            Self::Authorized { release_key, .. } => VerifyingKey::from_sec1_bytes(release_key)
                .map_err(|e| PolicyError::BadReleaseKey(e.to_string())),
            Self::Pcr { .. } => Err(PolicyError::BadReleaseKey(
                "a `pcr` policy has no release key".to_owned(),
            )),
        }
    }

    /// The `authPolicy` a key under this policy carries, computed without a TPM.
    pub fn offline_digest(&self) -> Result<Sha256Digest, PolicyError> {
        self.validate()?;
        match self {
            Self::Pcr { expected, .. } => Ok(pcr::policy_pcr_digest(expected)?),
            Self::Authorized {
                policy_ref, fixed, ..
            } => {
                let name = release_key_name(&self.release_key()?)
                    .map_err(|e| PolicyError::BadReleaseKey(e.to_string()))?;
                let authorized = pcr::policy_authorize_digest(&name, policy_ref);
                if fixed.is_empty() {
                    Ok(authorized)
                } else {
                    Ok(pcr::extend_with_policy_pcr(&authorized, fixed)?)
                }
            }
        }
    }

    /// The `authPolicy` computed by the TPM in a trial session: the reference the offline
    /// computation is checked against before a key is created.
    pub(crate) fn trial_digest(&self, context: &mut Context) -> Result<Sha256Digest, TpmError> {
        self.validate()?;
        let session = start_policy_session(context, SessionType::Trial)?;
        let result = self.trial_steps(context, session).and_then(|()| {
            context
                .policy_get_digest(session)
                .map_err(command("reading the trial policy digest"))
        });
        flush_session(context, session);
        to_sha256(&result?)
    }

    fn trial_steps(&self, context: &mut Context, session: PolicySession) -> Result<(), TpmError> {
        match self {
            Self::Pcr {
                selection,
                expected,
            } => {
                let selection = pcr::normalise_selection(selection)?;
                let pcr_digest = pcr::pcr_composite_digest(expected);
                context
                    .policy_pcr(session, digest(&pcr_digest)?, selection_list(&selection)?)
                    .map_err(command("computing the PolicyPCR digest in a trial session"))
            }
            Self::Authorized {
                policy_ref, fixed, ..
            } => {
                let release = load_release_key(context, &self.release_key()?)?;
                // A trial session checks neither the approved policy nor the ticket.
                let result = context
                    .policy_authorize(
                        session,
                        Digest::default(),
                        nonce(policy_ref)?,
                        &release.name,
                        null_verified_ticket()?,
                    )
                    .map_err(command(
                        "computing the PolicyAuthorize digest in a trial session",
                    ));
                flush_object(context, release.handle.into());
                result?;
                if fixed.is_empty() {
                    return Ok(());
                }
                let fixed_pcrs: Vec<u8> = fixed.iter().map(|value| value.pcr).collect();
                let pcr_digest = pcr::pcr_composite_digest(fixed);
                context
                    .policy_pcr(session, digest(&pcr_digest)?, selection_list(&fixed_pcrs)?)
                    .map_err(command(
                        "computing the fixed PCRs' PolicyPCR digest in a trial session",
                    ))
            }
        }
    }
}

/// Reads the current values of `selection` and returns the PCRs whose value differs from
/// `expected` (all of them if they cannot be read): the detail an operator needs.
pub(crate) fn differing_pcrs(context: &mut Context, expected: &[PcrValue]) -> Vec<u8> {
    let selection: Vec<u8> = expected.iter().map(|value| value.pcr).collect();
    match read_pcrs(context, &selection) {
        Ok(current) => current
            .iter()
            .filter(|now| !expected.contains(now))
            .map(|now| now.pcr)
            .collect(),
        Err(_) => selection,
    }
}

/// The template under which the release key is loaded into the TPM. Its Name (hash of this
/// public area) is what the CA key's policy names, so the template must never change.
pub(crate) fn release_key_public(key: &VerifyingKey) -> Result<Public, TpmError> {
    let point = key.to_encoded_point(false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err(TpmError::Faulty(
            "a release key without coordinates".to_owned(),
        ));
    };
    let ecc_point = EccPoint::new(
        EccParameter::try_from(x.to_vec()).map_err(command("encoding the release key"))?,
        EccParameter::try_from(y.to_vec()).map_err(command("encoding the release key"))?,
    );
    let attributes = ObjectAttributesBuilder::new()
        .with_user_with_auth(true)
        .with_sign_encrypt(true)
        .build()
        .map_err(command("encoding the release key"))?;
    let parameters = PublicEccParametersBuilder::new_unrestricted_signing_key(
        EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
        EccCurve::NistP256,
    )
    .build()
    .map_err(command("encoding the release key"))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(parameters)
        .with_ecc_unique_identifier(ecc_point)
        .build()
        .map_err(command("encoding the release key"))
}

/// The TPM Name of the release key: `TPM_ALG_SHA256 || SHA-256(TPMT_PUBLIC)`.
pub fn release_key_name(key: &VerifyingKey) -> Result<Vec<u8>, TpmError> {
    let public = release_key_public(key)?
        .marshall()
        .map_err(command("encoding the release key"))?;
    let mut name = vec![0x00, 0x0B];
    name.extend_from_slice(&Sha256::digest(&public));
    Ok(name)
}

/// The release key loaded (public part only) into the TPM.
pub(crate) struct LoadedReleaseKey {
    pub handle: KeyHandle,
    pub name: Name,
}

/// Loads the release key's public part in the owner hierarchy: VerifySignature tickets from a
/// key in the NULL hierarchy are not accepted by PolicyAuthorize.
pub(crate) fn load_release_key(
    context: &mut Context,
    key: &VerifyingKey,
) -> Result<LoadedReleaseKey, TpmError> {
    let handle = context
        .load_external_public(release_key_public(key)?, Hierarchy::Owner)
        .map_err(command("loading the release key"))?;
    match context.tr_get_name(handle.into()) {
        Ok(name) => Ok(LoadedReleaseKey { handle, name }),
        Err(e) => {
            flush_object(context, handle.into());
            Err(command("reading the release key's name")(e))
        }
    }
}

/// Starts a policy (or trial) session: unsalted and unbound, since a policy session here only
/// gates the key and carries no secret.
pub(crate) fn start_policy_session(
    context: &mut Context,
    kind: SessionType,
) -> Result<PolicySession, TpmError> {
    let session = context
        .start_auth_session(
            None,
            None,
            None,
            kind,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .map_err(command("starting a policy session"))?
        .ok_or_else(|| TpmError::Faulty("no session handle for a new session".to_owned()))?;
    PolicySession::try_from(session).map_err(command("starting a policy session"))
}

/// Flushes a session; a failure only leaks a session slot until the link is reopened.
pub(crate) fn flush_session(context: &mut Context, session: PolicySession) {
    let handle = SessionHandle::from(session);
    if let Err(e) = context.flush_context(handle.into()) {
        tracing::debug!(error = %e, "could not flush a policy session");
    }
}

/// Flushes a transient object; failure only leaks a slot until the link is reopened.
pub(crate) fn flush_object(context: &mut Context, handle: ObjectHandle) {
    if let Err(e) = context.flush_context(handle) {
        tracing::debug!(error = %e, "could not flush a transient object");
    }
}

/// The ticket PolicyAuthorize takes in a trial session (not checked there).
fn null_verified_ticket() -> Result<VerifiedTicket, TpmError> {
    VerifiedTicket::try_from(TPMT_TK_VERIFIED {
        tag: TPM2_ST_VERIFIED,
        hierarchy: TPM2_RH_NULL,
        digest: TPM2B_DIGEST::default(),
    })
    .map_err(command("building a null verification ticket"))
}

pub(crate) fn digest(bytes: &[u8]) -> Result<Digest, TpmError> {
    Digest::try_from(bytes.to_vec()).map_err(command("encoding a digest"))
}

pub(crate) fn nonce(bytes: &[u8]) -> Result<Nonce, TpmError> {
    Nonce::try_from(bytes.to_vec()).map_err(command("encoding the policy reference"))
}

pub(crate) fn to_sha256(digest: &Digest) -> Result<Sha256Digest, TpmError> {
    digest.value().try_into().map_err(|_| {
        TpmError::Faulty(format!(
            "a {}-byte policy digest from a SHA-256 session",
            digest.len()
        ))
    })
}
