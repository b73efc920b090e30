//! Satisfying the CA key's policy in a policy session, and what a refusal means.
//!
//! Every signature runs the policy afresh in its own session (start, policy commands, use,
//! flush): the TPM re-checks the PCRs each time, so a PCR extended a moment ago stops the very
//! next signature. When the TPM refuses because the platform state is not the one the key is
//! bound to, the CA is *sealed* and the reason is told in the operator's words
//! ([`SealedReason`]); any other failure is a TPM fault.

use p256::ecdsa::Signature as EcdsaSignature;
use tss_esapi::Context;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::PolicySession;
use tss_esapi::structures::{EccParameter, EccSignature, Name, Signature, VerifiedTicket};
use tss_esapi::tss2_esys::TPMT_TK_VERIFIED;

use super::TpmError;
use super::connection::{LinkFault, command, selection_list};
use super::pcr::{self, PcrValue, Sha256Digest};
use super::policy::{
    PolicyError, PolicyMode, differing_pcrs, digest, flush_object, load_release_key, nonce,
};
use super::response::{TpmAnswer, tpm_answer};
use super::signed_policy::{SignedPcrPolicy, policy_signing_digest};

/// Why the TPM will not let the CA key sign: the platform is not in a state the key's policy
/// accepts. trustd reports the CA as `sealed` with this sentence and refuses every issuance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealedReason {
    /// `pcr` mode, or the fixed PCRs of `authorized` mode: the PCRs differ from the values the
    /// key was bound to.
    #[error(
        "{} from the values the CA key is bound to: this is not the boot chain the CA was enrolled on",
        pcrs_differ(.pcrs)
    )]
    PcrMismatch {
        /// The PCRs whose current value differs.
        pcrs: Vec<u8>,
    },
    /// `authorized` mode: the PCRs differ from the values in the signed policy.
    #[error(
        "{} from the values the release key signed: this boot is not one a release approved",
        pcrs_differ(.pcrs)
    )]
    NotApprovedBoot {
        /// The PCRs whose current value differs.
        pcrs: Vec<u8>,
    },
    /// `authorized` mode with fixed PCRs: both the signed and the fixed PCRs differ.
    #[error(
        "{} from the values the release key signed, and {} from the values the CA key is bound to: this boot is neither one a release approved nor the boot chain the CA was enrolled on",
        pcrs_differ(.signed),
        pcrs_differ_briefly(.fixed)
    )]
    NotApprovedNorEnrolled {
        /// The signed PCRs whose current value differs.
        signed: Vec<u8>,
        /// The fixed PCRs whose current value differs.
        fixed: Vec<u8>,
    },
    /// `authorized` mode, but no signed PCR policy was installed.
    #[error(
        "no PCR policy signed by the release key is installed, so the TPM cannot authorise this boot"
    )]
    NoSignedPolicy,
    /// The TPM rejected the signed policy's signature.
    #[error(
        "the TPM rejected the signed PCR policy: it is not signed by the release key the CA key is bound to"
    )]
    NotSignedByReleaseKey,
    /// The TPM's final policy check failed (`TPM_RC_POLICY_FAIL`).
    #[error(
        "the TPM's policy check failed: the boot measurements do not satisfy the CA key's policy"
    )]
    PolicyCheckFailed,
    /// A PCR of the policy changed while the key was being used.
    #[error(
        "a PCR of the policy changed while the CA key was in use: the boot measurements are changing"
    )]
    PcrChanged,
}

/// "PCR 16 differs", "PCRs 7, 11 differ", or (when they could not be read) "the PCRs differ".
fn pcrs_differ(pcrs: &[u8]) -> String {
    match pcrs {
        [] => "the PCR values of this boot differ".to_owned(),
        [one] => format!("PCR {one} of this boot differs"),
        many => {
            let names: Vec<String> = many.iter().map(u8::to_string).collect();
            format!("PCRs {} of this boot differ", names.join(", "))
        }
    }
}

/// "PCR 7 differs" or "PCRs 7, 14 differ": the second half of a sentence.
fn pcrs_differ_briefly(pcrs: &[u8]) -> String {
    match pcrs {
        [one] => format!("PCR {one} differs"),
        many => {
            let names: Vec<String> = many.iter().map(u8::to_string).collect();
            format!("PCRs {} differ", names.join(", "))
        }
    }
}

/// Whether the CA key can sign now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyStatus {
    /// The TPM accepts the policy: the CA can sign.
    Satisfied,
    /// The TPM refuses: the CA is sealed.
    Sealed(SealedReason),
}

/// A use of the key failed: sealed, or a TPM fault.
#[derive(Debug)]
pub(crate) enum UseError {
    Sealed(SealedReason),
    Tpm(TpmError),
}

impl From<TpmError> for UseError {
    fn from(error: TpmError) -> Self {
        Self::Tpm(error)
    }
}

impl LinkFault for UseError {
    fn link_lost(&self) -> bool {
        matches!(self, Self::Tpm(error) if error.link_lost())
    }
}

/// A signed PCR policy checked against the key's policy and ready for the TPM; the TPM's
/// verification ticket is kept for the link's epoch, so a signature costs one command less.
pub(crate) struct Authorization {
    values: Vec<PcrValue>,
    selection: Vec<u8>,
    approved: Sha256Digest,
    signing_digest: Sha256Digest,
    signature: EcdsaSignature,
    ticket: Option<CachedTicket>,
}

struct CachedTicket {
    epoch: u64,
    ticket: TPMT_TK_VERIFIED,
    name: Name,
}

impl Authorization {
    /// Checks that `signed` fits a key under `mode`: an `authorized` policy over the same PCRs,
    /// none of which the key binds to its value at enrolment.
    pub(crate) fn prepare(
        signed: &SignedPcrPolicy,
        mode: &PolicyMode,
    ) -> Result<Self, PolicyError> {
        let PolicyMode::Authorized { policy_ref, .. } = mode else {
            return Err(PolicyError::NotAuthorizedMode);
        };
        let required = mode.selection()?;
        let selection = signed.selection()?;
        let fixed: Vec<u8> = mode
            .fixed()
            .iter()
            .map(|value| value.pcr)
            .filter(|pcr| selection.contains(pcr))
            .collect();
        if !fixed.is_empty() {
            return Err(PolicyError::SignedCoversFixed { fixed, required });
        }
        if selection != required {
            return Err(PolicyError::SelectionMismatch {
                signed: selection,
                required,
            });
        }
        let approved = signed.approved_policy()?;
        Ok(Self {
            values: signed.ordered_values()?,
            selection,
            approved,
            signing_digest: policy_signing_digest(&approved, policy_ref),
            signature: signed.ecdsa_signature()?,
            ticket: None,
        })
    }

    /// The TPM's ticket saying the release key signed `approved`, from the cache or from
    /// TPM2_VerifySignature.
    fn ticket(
        &mut self,
        context: &mut Context,
        epoch: u64,
        mode: &PolicyMode,
    ) -> Result<(VerifiedTicket, Name), UseError> {
        if let Some(cached) = self.ticket.as_ref().filter(|cached| cached.epoch == epoch) {
            let ticket = VerifiedTicket::try_from(cached.ticket)
                .map_err(command("reusing the verification ticket"))?;
            return Ok((ticket, cached.name.clone()));
        }
        let release_key = mode.release_key().map_err(TpmError::Policy)?;
        let release = load_release_key(context, &release_key)?;
        let result = self.verify_on_tpm(context, release.handle);
        flush_object(context, release.handle.into());
        let ticket = result?;
        self.ticket = Some(CachedTicket {
            epoch,
            ticket,
            name: release.name.clone(),
        });
        let ticket =
            VerifiedTicket::try_from(ticket).map_err(command("reusing the verification ticket"))?;
        Ok((ticket, release.name))
    }

    fn verify_on_tpm(
        &self,
        context: &mut Context,
        release: tss_esapi::handles::KeyHandle,
    ) -> Result<TPMT_TK_VERIFIED, UseError> {
        let encode = command("encoding the signed policy's signature");
        let r = EccParameter::try_from(self.signature.r().to_bytes().to_vec()).map_err(encode)?;
        let s = EccParameter::try_from(self.signature.s().to_bytes().to_vec())
            .map_err(command("encoding the signed policy's signature"))?;
        let signature = Signature::EcDsa(
            EccSignature::create(HashingAlgorithm::Sha256, r, s)
                .map_err(command("encoding the signed policy's signature"))?,
        );
        let ticket = context
            .verify_signature(release, digest(&self.signing_digest)?, signature)
            .map_err(|e| match tpm_answer(&e) {
                Some(TpmAnswer::Signature) => UseError::Sealed(SealedReason::NotSignedByReleaseKey),
                _ => UseError::Tpm(command("verifying the signed PCR policy")(e)),
            })?;
        TPMT_TK_VERIFIED::try_from(ticket)
            .map_err(|e| UseError::Tpm(command("keeping the verification ticket")(e)))
    }
}

/// Runs the key's policy commands in `session`. Afterwards the session's digest equals the
/// key's `authPolicy` if and only if the platform satisfies the policy.
pub(crate) fn satisfy(
    context: &mut Context,
    session: PolicySession,
    epoch: u64,
    mode: &PolicyMode,
    authorization: Option<&mut Authorization>,
) -> Result<(), UseError> {
    match mode {
        PolicyMode::Pcr {
            selection,
            expected,
        } => {
            let selection = pcr::normalise_selection(selection).map_err(TpmError::Pcr)?;
            policy_pcr(context, session, &selection, expected).map_err(|e| match e {
                PcrCheck::Differs(pcrs) => UseError::Sealed(SealedReason::PcrMismatch { pcrs }),
                PcrCheck::Failed(e) => UseError::Tpm(e),
            })
        }
        PolicyMode::Authorized {
            policy_ref, fixed, ..
        } => {
            let authorization =
                authorization.ok_or(UseError::Sealed(SealedReason::NoSignedPolicy))?;
            // The order is the TPM's: PolicyAuthorize accepts only a session whose digest is the
            // signed one, then resets it to the digest the key's authPolicy starts with.
            let (selection, values) = (
                authorization.selection.clone(),
                authorization.values.clone(),
            );
            policy_pcr(context, session, &selection, &values).map_err(|e| match e {
                PcrCheck::Differs(signed) => UseError::Sealed(not_approved(context, signed, fixed)),
                PcrCheck::Failed(e) => UseError::Tpm(e),
            })?;
            let (ticket, name) = authorization.ticket(context, epoch, mode)?;
            context
                .policy_authorize(
                    session,
                    digest(&authorization.approved)?,
                    nonce(policy_ref)?,
                    &name,
                    ticket,
                )
                .map_err(|e| UseError::Tpm(command("authorising the signed PCR policy")(e)))?;
            if fixed.is_empty() {
                return Ok(());
            }
            let fixed_pcrs: Vec<u8> = fixed.iter().map(|value| value.pcr).collect();
            policy_pcr(context, session, &fixed_pcrs, fixed).map_err(|e| match e {
                PcrCheck::Differs(pcrs) => UseError::Sealed(SealedReason::PcrMismatch { pcrs }),
                PcrCheck::Failed(e) => UseError::Tpm(e),
            })
        }
    }
}

/// Why a boot whose `signed` PCRs differ from the signed values is refused: the TPM stops at
/// the first PolicyPCR, so the fixed PCRs are read here to tell the whole story.
fn not_approved(context: &mut Context, signed: Vec<u8>, fixed: &[PcrValue]) -> SealedReason {
    let fixed = if fixed.is_empty() {
        Vec::new()
    } else {
        differing_pcrs(context, fixed)
    };
    if fixed.is_empty() {
        SealedReason::NotApprovedBoot { pcrs: signed }
    } else {
        SealedReason::NotApprovedNorEnrolled { signed, fixed }
    }
}

/// Maps a failure of the command that used the key (TPM2_Sign) after [`satisfy`].
pub(crate) fn use_failure(action: &'static str, error: tss_esapi::Error) -> UseError {
    match tpm_answer(&error) {
        Some(TpmAnswer::PolicyFail) => UseError::Sealed(SealedReason::PolicyCheckFailed),
        Some(TpmAnswer::PcrChanged | TpmAnswer::Pcr) => UseError::Sealed(SealedReason::PcrChanged),
        _ => UseError::Tpm(command(action)(error)),
    }
}

enum PcrCheck {
    Differs(Vec<u8>),
    Failed(TpmError),
}

/// TPM2_PolicyPCR with the digest of `values`: the TPM compares it with the current PCRs and
/// answers `TPM_RC_VALUE` at once when they differ.
fn policy_pcr(
    context: &mut Context,
    session: PolicySession,
    selection: &[u8],
    values: &[PcrValue],
) -> Result<(), PcrCheck> {
    let pcr_digest = pcr::pcr_composite_digest(values);
    let list = selection_list(selection).map_err(PcrCheck::Failed)?;
    let tpm_digest = digest(&pcr_digest).map_err(PcrCheck::Failed)?;
    context
        .policy_pcr(session, tpm_digest, list)
        .map_err(|e| match tpm_answer(&e) {
            Some(TpmAnswer::Value) => PcrCheck::Differs(differing_pcrs(context, values)),
            _ => PcrCheck::Failed(command("running TPM2_PolicyPCR")(e)),
        })
}
