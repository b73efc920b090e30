//! The CA signing key: created once in the TPM, reloaded from its wrapped blob at every start.
//!
//! Enrolment happens on the first start only. Afterwards the state file is the CA's identity:
//! if it does not load (another TPM, a cleared TPM, a damaged file), trustd stops with an error
//! instead of quietly creating a new CA, because a new CA key would silently invalidate every
//! certificate the site has issued.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use appliance::state::StateDir;
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::ecdsa::{Signature as EcdsaSignature, VerifyingKey};
use sha2::{Digest as _, Sha256};
use tss_esapi::Context;
use tss_esapi::constants::SessionType;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Data, HashcheckTicket, PcrSelectionListBuilder, PcrSlot, Private, Public, PublicBuffer,
    Signature, SignatureScheme,
};
use tss_esapi::traits::{Marshall as _, UnMarshall};
use tss_esapi::tss2_esys::{TPM2B_DIGEST, TPMT_TK_HASHCHECK};

use super::blob::{CA_KEY_STATE_FILE, CaKeyBlob, check_public, create_blob, left_pad, sec1_point};
use super::connection::{TpmConnection, command, create_srk};
use super::pcr::Sha256Digest;
use super::policy::{
    PolicyError, PolicyMode, digest, flush_object, flush_session, start_policy_session, to_sha256,
};
use super::session::{Authorization, PolicyStatus, UseError, satisfy, use_failure};
use super::signed_policy::SignedPcrPolicy;
use super::{TpmError, response};
use crate::ca_key::{CaKey, SignError};

/// The CA key in the TPM.
pub struct TpmCaKey {
    connection: Arc<TpmConnection>,
    state_file: PathBuf,
    policy: PolicyMode,
    public: Public,
    private: Private,
    public_sec1: Vec<u8>,
    verifying_key: VerifyingKey,
    runtime: Mutex<Runtime>,
}

/// What changes while the key is in use; locked only while the connection is held.
#[derive(Default)]
struct Runtime {
    /// The key's handle, valid in the connection epoch it was loaded in.
    loaded: Option<(u64, KeyHandle)>,
    /// The signed PCR policy in `authorized` mode.
    authorization: Option<Authorization>,
}

impl std::fmt::Debug for TpmCaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmCaKey")
            .field("state_file", &self.state_file)
            .field("policy", &self.policy)
            .field("public_key", &hex::encode(&self.public_sec1))
            .finish_non_exhaustive()
    }
}

impl TpmCaKey {
    /// Loads the CA key from `state`, or creates it under `policy` if there is none yet.
    ///
    /// A stored key keeps the policy it was created with; if that differs from `policy` (the
    /// configuration changed), the stored one applies and a warning says so: a key's policy is
    /// part of the key and cannot be changed without enrolling a new CA.
    pub fn create_or_load(
        connection: Arc<TpmConnection>,
        state: &StateDir,
        policy: PolicyMode,
    ) -> Result<Self, TpmError> {
        match Self::load(Arc::clone(&connection), state)? {
            Some(key) => {
                if key.policy != policy {
                    tracing::warn!(
                        stored = ?key.policy,
                        configured = ?policy,
                        "the CA key was enrolled under another policy than the configured one; \
                         the stored policy applies until a new CA is enrolled"
                    );
                }
                Ok(key)
            }
            None => Self::create(connection, state, policy),
        }
    }

    /// Loads the stored CA key; `None` if none was ever created.
    pub fn load(
        connection: Arc<TpmConnection>,
        state: &StateDir,
    ) -> Result<Option<Self>, TpmError> {
        let state_file = state.path().join(CA_KEY_STATE_FILE);
        let Some(blob) = state.read_json::<CaKeyBlob>(CA_KEY_STATE_FILE)? else {
            return Ok(None);
        };
        let key = Self::from_blob(connection, state_file, blob)?;
        // Load now, so a foreign or damaged blob is reported at start, not at the first use.
        key.with_key(|_, _, _, _| Ok(())).map_err(|e| match e {
            UseError::Tpm(e) => e,
            UseError::Sealed(reason) => TpmError::Faulty(reason.to_string()),
        })?;
        Ok(Some(key))
    }

    /// Creates a new CA key under `policy` and stores it; refuses if one exists already.
    pub fn create(
        connection: Arc<TpmConnection>,
        state: &StateDir,
        policy: PolicyMode,
    ) -> Result<Self, TpmError> {
        let state_file = state.path().join(CA_KEY_STATE_FILE);
        if state.read(CA_KEY_STATE_FILE)?.is_some() {
            return Err(TpmError::AlreadyEnrolled { path: state_file });
        }
        let offline = policy.offline_digest()?;
        let blob = connection.run(|context, _| create_blob(context, &policy, &offline))?;
        state.write_json(CA_KEY_STATE_FILE, &blob)?;
        let key = Self::from_blob(connection, state_file, blob)?;
        tracing::info!(
            public_key = %hex::encode(&key.public_sec1),
            policy = ?key.policy,
            "created the CA key in the TPM"
        );
        Ok(key)
    }

    /// Checks a stored blob without the TPM: the public area must be the CA key template and
    /// carry the digest of the policy recorded beside it.
    fn from_blob(
        connection: Arc<TpmConnection>,
        state_file: PathBuf,
        blob: CaKeyBlob,
    ) -> Result<Self, TpmError> {
        let invalid = |reason: String| TpmError::BlobInvalid {
            path: state_file.clone(),
            reason,
        };
        let expected_policy = blob
            .policy
            .offline_digest()
            .map_err(|e| invalid(format!("its policy is invalid ({e})")))?;
        let public = PublicBuffer::unmarshall(&blob.public)
            .and_then(Public::try_from)
            .map_err(|e| invalid(format!("its public part does not decode ({e})")))?;
        check_public(&public, &expected_policy).map_err(invalid)?;
        let private = Private::try_from(blob.private.clone())
            .map_err(|e| invalid(format!("its private part does not decode ({e})")))?;
        let public_sec1 = sec1_point(&public).map_err(invalid)?;
        let verifying_key = VerifyingKey::from_sec1_bytes(&public_sec1)
            .map_err(|e| invalid(format!("its public key is not a P-256 point ({e})")))?;
        Ok(Self {
            connection,
            state_file,
            policy: blob.policy,
            public,
            private,
            public_sec1,
            verifying_key,
            runtime: Mutex::new(Runtime::default()),
        })
    }

    /// The policy the key is bound to.
    pub fn policy(&self) -> &PolicyMode {
        &self.policy
    }

    /// The public key, for certificates and for verifying what the CA signed.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying_key
    }

    /// Installs the release-signed PCR policy of the running image (`authorized` mode),
    /// replacing any earlier one. The TPM judges the signature when the key is next used.
    pub fn install_signed_policy(&self, signed: &SignedPcrPolicy) -> Result<(), PolicyError> {
        let authorization = Authorization::prepare(signed, &self.policy)?;
        self.runtime().authorization = Some(authorization);
        Ok(())
    }

    /// Whether the TPM would let the key sign now, and if not why: runs the policy in a
    /// session without signing anything.
    pub fn policy_status(&self) -> Result<PolicyStatus, TpmError> {
        let auth_policy = self.public.auth_policy().value().to_vec();
        let result = self.satisfying_policy(|context, session, _| {
            let reached = context
                .policy_get_digest(session)
                .map_err(command("reading the policy session digest"))?;
            Ok(to_sha256(&reached)?)
        });
        match result {
            Ok(reached) if reached[..] == auth_policy[..] => Ok(PolicyStatus::Satisfied),
            Ok(_) => Ok(PolicyStatus::Sealed(
                super::session::SealedReason::PolicyCheckFailed,
            )),
            Err(UseError::Sealed(reason)) => Ok(PolicyStatus::Sealed(reason)),
            Err(UseError::Tpm(e)) => Err(e),
        }
    }

    /// Whether the TPM would let the key sign now (see [`TpmCaKey::policy_status`]).
    pub fn policy_satisfied(&self) -> Result<bool, TpmError> {
        Ok(self.policy_status()? == PolicyStatus::Satisfied)
    }

    /// Signs a SHA-256 digest in a fresh policy session, and checks the signature with the
    /// public key before returning it (a cheap guard against TPM or encoding faults).
    pub fn sign_digest(&self, digest: &Sha256Digest) -> Result<EcdsaSignature, SignError> {
        let (r, s) = self.in_satisfied_session(|context, session, key| {
            sign_in_session(context, session, key, digest)
        })?;
        let signature = EcdsaSignature::from_scalars(r, s).map_err(|_| {
            SignError::Tpm("the TPM returned an ECDSA signature with r or s out of range".into())
        })?;
        self.verifying_key
            .verify_prehash(digest, &signature)
            .map_err(|_| {
                SignError::Tpm(
                    "the TPM returned a signature that does not verify with the CA public key"
                        .into(),
                )
            })?;
        Ok(signature)
    }

    /// TPM2_Quote of PCR 11 (SHA-256 bank) with `qualifying_data` (1 to 64 bytes, the
    /// verifier's nonce) signed by the CA key in a fresh policy session: the key is an
    /// unrestricted signing key, which the TPM accepts as the quote's signer. Returns the
    /// marshalled `TPMS_ATTEST` and the DER ECDSA signature over its SHA-256, checked with the
    /// public key before returning (so the re-marshalled attestation is the one the TPM signed).
    pub fn quote_pcr11(&self, qualifying_data: &[u8]) -> Result<PcrQuote, SignError> {
        let tpm_error = |what: String| SignError::Tpm(what);
        let qualifying = Data::try_from(qualifying_data.to_vec())
            .map_err(|e| tpm_error(format!("the qualifying data is not TPM2B_DATA: {e}")))?;
        let selection = PcrSelectionListBuilder::new()
            .with_selection(HashingAlgorithm::Sha256, &[PcrSlot::Slot11])
            .build()
            .map_err(|e| tpm_error(format!("cannot select PCR 11: {e}")))?;
        let (attest, signature) = self.in_satisfied_session(|context, session, key| {
            context
                .execute_with_session(Some(AuthSession::from(session)), |c| {
                    c.quote(
                        key,
                        qualifying.clone(),
                        SignatureScheme::Null,
                        selection.clone(),
                    )
                })
                .map_err(|e| use_failure("quoting PCR 11 with the CA key", e))
        })?;
        let attest = attest
            .marshall()
            .map_err(|e| tpm_error(format!("cannot marshal the quote's attestation: {e}")))?;
        let Signature::EcDsa(ecdsa) = signature else {
            return Err(tpm_error("a quote signature that is not ECDSA".to_owned()));
        };
        let r = left_pad(ecdsa.signature_r().value()).map_err(|e| tpm_error(e.to_string()))?;
        let s = left_pad(ecdsa.signature_s().value()).map_err(|e| tpm_error(e.to_string()))?;
        let signature = EcdsaSignature::from_scalars(r, s).map_err(|_| {
            tpm_error("the TPM returned an ECDSA signature with r or s out of range".into())
        })?;
        let digest: Sha256Digest = Sha256::digest(&attest).into();
        self.verifying_key
            .verify_prehash(&digest, &signature)
            .map_err(|_| {
                tpm_error(
                    "the quote's signature does not verify with the CA public key over the attestation"
                        .into(),
                )
            })?;
        Ok(PcrQuote {
            attest,
            signature_der: signature.to_der().as_bytes().to_vec(),
        })
    }

    /// Runs `op` with the CA key loaded and a fresh policy session that satisfies its policy:
    /// every use of the key (a signature, a quote) goes through here.
    fn in_satisfied_session<T>(
        &self,
        op: impl FnMut(&mut Context, PolicySession, KeyHandle) -> Result<T, UseError>,
    ) -> Result<T, SignError> {
        self.satisfying_policy(op).map_err(|e| match e {
            UseError::Sealed(reason) => SignError::Sealed(reason.to_string()),
            UseError::Tpm(e) => SignError::Tpm(e.to_string()),
        })
    }

    /// Runs `op` in a policy session after the key's policy was run in it (whether the TPM
    /// then lets the key be used is up to the session's digest).
    fn satisfying_policy<T>(
        &self,
        mut op: impl FnMut(&mut Context, PolicySession, KeyHandle) -> Result<T, UseError>,
    ) -> Result<T, UseError> {
        self.with_key(|context, epoch, key, runtime| {
            in_policy_session(context, |context, session| {
                satisfy(
                    context,
                    session,
                    epoch,
                    &self.policy,
                    runtime.authorization.as_mut(),
                )?;
                op(context, session, key)
            })
        })
    }

    /// Runs `op` with the key loaded in the current connection epoch (loading it first if the
    /// epoch is new: first use, or the link to the TPM was reopened).
    fn with_key<T>(
        &self,
        mut op: impl FnMut(&mut Context, u64, KeyHandle, &mut Runtime) -> Result<T, UseError>,
    ) -> Result<T, UseError> {
        self.connection.run(|context, epoch| {
            let mut runtime = self.runtime();
            let handle = match runtime.loaded {
                Some((loaded_epoch, handle)) if loaded_epoch == epoch => handle,
                _ => {
                    let handle = self.load_into(context)?;
                    runtime.loaded = Some((epoch, handle));
                    handle
                }
            };
            op(context, epoch, handle, &mut runtime)
        })
    }

    /// Recreates the storage root key, loads the blob under it, and flushes the SRK again so
    /// only the CA key occupies a transient slot (swtpm has three).
    fn load_into(&self, context: &mut Context) -> Result<KeyHandle, TpmError> {
        let srk = create_srk(context)?;
        let loaded = context.execute_with_nullauth_session(|c| {
            c.load(srk, self.private.clone(), self.public.clone())
        });
        flush_object(context, srk.into());
        loaded.map_err(|e| {
            if response::connection_lost(&e) || response::tpm_answer(&e).is_none() {
                command("loading the CA key")(e)
            } else {
                TpmError::BlobForeign {
                    path: self.state_file.clone(),
                    detail: response::describe(&e),
                }
            }
        })
    }

    fn runtime(&self) -> std::sync::MutexGuard<'_, Runtime> {
        self.runtime.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl CaKey for TpmCaKey {
    fn public_key_sec1(&self) -> &[u8] {
        &self.public_sec1
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let digest: Sha256Digest = Sha256::digest(message).into();
        Ok(self.sign_digest(&digest)?.to_der().as_bytes().to_vec())
    }
}

impl Drop for TpmCaKey {
    fn drop(&mut self) {
        let loaded = self
            .runtime
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .loaded
            .take();
        if let Some((loaded_epoch, handle)) = loaded {
            self.connection.with_open_context(|context, epoch| {
                if epoch == loaded_epoch {
                    flush_object(context, handle.into());
                }
            });
        }
    }
}

/// A TPM quote made with the CA key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrQuote {
    /// The marshalled `TPMS_ATTEST` the TPM signed.
    pub attest: Vec<u8>,
    /// DER ECDSA P-256 signature over `SHA-256(attest)`.
    pub signature_der: Vec<u8>,
}

/// Runs `op` in a new policy session and flushes the session whatever the outcome.
fn in_policy_session<T>(
    context: &mut Context,
    op: impl FnOnce(&mut Context, PolicySession) -> Result<T, UseError>,
) -> Result<T, UseError> {
    let session = start_policy_session(context, SessionType::Policy)?;
    let result = op(context, session);
    flush_session(context, session);
    result
}

/// TPM2_Sign with the policy session; the digest was hashed outside the TPM, so the
/// hash-check ticket is the NULL ticket (the key is unrestricted).
fn sign_in_session(
    context: &mut Context,
    session: PolicySession,
    key: KeyHandle,
    message_digest: &Sha256Digest,
) -> Result<([u8; 32], [u8; 32]), UseError> {
    let ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: TPM2B_DIGEST::default(),
    })
    .map_err(command("building a null hash-check ticket"))?;
    let tpm_digest = digest(message_digest)?;
    let signature = context
        .execute_with_session(Some(AuthSession::from(session)), |c| {
            c.sign(key, tpm_digest, SignatureScheme::Null, ticket)
        })
        .map_err(|e| use_failure("signing with the CA key", e))?;
    let Signature::EcDsa(ecdsa) = signature else {
        return Err(TpmError::Faulty("a signature that is not ECDSA".to_owned()).into());
    };
    let r = left_pad(ecdsa.signature_r().value()).map_err(UseError::Tpm)?;
    let s = left_pad(ecdsa.signature_s().value()).map_err(UseError::Tpm)?;
    Ok((r, s))
}
