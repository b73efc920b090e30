//! Whether the authority may sign, and what it tells `bunkerctl ca status` and D-Bus.
//!
//! Two things stop the CA besides its own hierarchy:
//! - **sealed**: the TPM refuses the CA key because the boot measurements do not satisfy its
//!   policy. The authority learns it from the TPM itself — at start, on every status query, and
//!   from any refused signature — and from then on refuses before touching any state, asking
//!   the TPM again each time so that an approved boot (a newly installed signed policy) is
//!   noticed at once. Nothing ever falls back to another key.
//! - **lockdown**: `sited` put the site in lockdown. Recorded durably, so a restart during
//!   lockdown stays locked down until `sited` says otherwise.
//!
//! What each stops ([`Operation`]): issuance, revocation, CRL refreshes and changes to the CA
//! hierarchy stop in both.
//! Audit-digest signatures, tree heads and quotes continue in lockdown — the other services' audit
//! logs must keep being sealed exactly when the site is under attack, and a tree head only
//! attests what the log already holds; a quote only attests the booted image — and stop only
//! when sealed, where the TPM refuses them anyway.

use time::OffsetDateTime;

use super::Authority;
use super::crl::CrlStatus;
use super::error::AuthorityError;
use crate::ca::{CaKind, NotReady};
use crate::ca_key::SignError;
use crate::tpm::{PolicyMode, PolicyStatus};

/// Something the authority signs, for deciding what lockdown and sealing stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Issuing a certificate.
    Issue,
    /// Revoking a certificate.
    Revoke,
    /// Signing a new CRL on schedule.
    RefreshCrl,
    /// Signing a tree head of the transparency log.
    SignTreeHead,
    /// Signing another service's audit digest.
    SignAudit,
    /// Creating the root, requesting or installing the intermediate chain.
    SetUpCa,
    /// Quoting PCR 11 for a verifier (writes nothing).
    Quote,
}

impl Operation {
    /// The operation as the end of "trustd does not ...".
    pub fn phrase(self) -> &'static str {
        match self {
            Self::Issue => "issue certificates",
            Self::Revoke => "revoke certificates",
            Self::RefreshCrl => "sign a new CRL",
            Self::SignTreeHead => "sign tree heads of the transparency log",
            Self::SignAudit => "sign audit digests",
            Self::SetUpCa => "change the CA hierarchy",
            Self::Quote => "quote the booted image",
        }
    }

    /// Whether lockdown stops it.
    pub fn stopped_by_lockdown(self) -> bool {
        matches!(
            self,
            Self::Issue | Self::Revoke | Self::RefreshCrl | Self::SetUpCa
        )
    }
}

/// The authority's state, most severe first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorityState {
    /// The TPM refuses the CA key: the boot is not one its policy accepts.
    Sealed {
        /// The TPM's refusal, in words.
        reason: String,
    },
    /// The site is in lockdown.
    Lockdown,
    /// The CA key exists but the CA cannot issue yet (no certificate, waiting for the offline
    /// root's chain, or its certificate is not valid now).
    Initialised {
        /// Why it cannot issue.
        reason: NotReady,
    },
    /// Issuing.
    Ready,
}

impl AuthorityState {
    /// The one-word name D-Bus and `bunkerctl` show: `sealed`, `lockdown`, `initialised`,
    /// `ready`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sealed { .. } => "sealed",
            Self::Lockdown => "lockdown",
            Self::Initialised { .. } => "initialised",
            Self::Ready => "ready",
        }
    }
}

/// The TPM policy the CA key is bound to, summarised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySummary {
    /// `pcr` or `authorized`.
    pub mode: &'static str,
    /// The PCRs the policy covers.
    pub pcr_selection: Vec<u8>,
    /// The release key of an `authorized` policy, SEC1 hex.
    pub release_key: Option<String>,
}

impl PolicySummary {
    fn of(policy: &PolicyMode) -> Self {
        match policy {
            PolicyMode::Pcr { selection, .. } => Self {
                mode: "pcr",
                pcr_selection: selection.clone(),
                release_key: None,
            },
            PolicyMode::Authorized { release_key, .. } => Self {
                mode: "authorized",
                // signed and fixed alike: the CA is sealed when any of them changes
                pcr_selection: policy.pcrs(),
                release_key: Some(hex::encode(release_key)),
            },
        }
    }
}

/// Everything `bunkerctl ca status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorityStatus {
    /// The state, most severe condition first.
    pub state: AuthorityState,
    /// Whether the site is in lockdown (also while sealed, which outranks it in `state`).
    pub lockdown: bool,
    /// The CA key's TPM policy.
    pub policy: PolicySummary,
    /// Root or intermediate, once a CA certificate exists.
    pub ca_kind: Option<CaKind>,
    /// The CA certificate's subject.
    pub ca_subject: Option<String>,
    /// The CA certificate's end of validity.
    pub ca_not_after: Option<OffsetDateTime>,
    /// SHA-256 of the root certificate, lowercase hex: what relying parties pin.
    pub root_fingerprint: Option<String>,
    /// Certificates issued (every one is in the log).
    pub issued: u64,
    /// Certificates revoked.
    pub revoked: u64,
    /// Entries in the transparency log.
    pub log_size: u64,
    /// Size of the newest signed tree head.
    pub signed_tree_head_size: Option<u64>,
    /// The current CRL.
    pub crl: Option<CrlStatus>,
    /// Why trustd stopped writing, if an earlier write failed (a restart clears it once the
    /// state checks out again).
    pub stopped: Option<String>,
}

impl Authority {
    /// The authority's status. Asks the TPM whether the policy holds (one policy session, no
    /// signature), so the answer is current.
    pub fn status(&self) -> Result<AuthorityStatus, AuthorityError> {
        let sealed = self.probe_seal()?;
        let lockdown = self.lockdown();
        let hierarchy = self.ca_read().status();
        let state = match (sealed, lockdown, &hierarchy.readiness) {
            (Some(reason), _, _) => AuthorityState::Sealed { reason },
            (None, true, _) => AuthorityState::Lockdown,
            (None, false, Err(reason)) => AuthorityState::Initialised {
                reason: reason.clone(),
            },
            (None, false, Ok(())) => AuthorityState::Ready,
        };
        let (issued, revoked) = self.store.counts()?;
        Ok(AuthorityStatus {
            state,
            lockdown,
            policy: PolicySummary::of(self.key.policy()),
            ca_kind: hierarchy.kind,
            ca_subject: hierarchy.subject,
            ca_not_after: hierarchy.not_after,
            root_fingerprint: hierarchy.root_fingerprint,
            issued,
            revoked,
            log_size: self.lock_log().size(),
            signed_tree_head_size: self.store.latest_tree_head()?.map(|head| head.head.size),
            crl: self.crl_status(),
            stopped: self
                .stopped
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        })
    }

    /// Whether the site is in lockdown.
    pub fn lockdown(&self) -> bool {
        self.lockdown.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Enters or leaves lockdown (driven by `sited`'s site state). Recorded durably first, so
    /// a crash right after cannot forget a lockdown that was acknowledged.
    pub fn set_lockdown(&self, on: bool) -> Result<(), AuthorityError> {
        self.store.set_lockdown(on)?;
        let was = self.lockdown.swap(on, std::sync::atomic::Ordering::SeqCst);
        if was != on {
            if on {
                tracing::warn!(
                    "the site entered lockdown: issuance, revocation and CRL refreshes stop"
                );
            } else {
                tracing::info!("the site left lockdown: issuance resumes");
            }
        }
        Ok(())
    }

    /// Refuses `operation` if lockdown stops it, if an earlier write failure stopped the
    /// authority, or if the CA key is sealed. Touches no state.
    pub(super) fn ensure_may_sign(&self, operation: Operation) -> Result<(), AuthorityError> {
        // Audit signatures and quotes write nothing, so an uncertain disk state does not stop
        // them.
        let stopped = self
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(failure) = stopped
            && !matches!(operation, Operation::SignAudit | Operation::Quote)
        {
            return Err(AuthorityError::Stopped(failure));
        }
        if operation.stopped_by_lockdown() && self.lockdown() {
            return Err(AuthorityError::Lockdown(operation.phrase()));
        }
        let known_sealed = self
            .sealed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if known_sealed && let Some(reason) = self.probe_seal()? {
            return Err(AuthorityError::Sealed {
                operation: operation.phrase(),
                reason,
            });
        }
        Ok(())
    }

    /// Asks the TPM whether the CA key's policy holds now, and remembers the answer. `Some`
    /// carries the reason it is sealed.
    pub(super) fn probe_seal(&self) -> Result<Option<String>, AuthorityError> {
        let reason = match self.key.policy_status()? {
            PolicyStatus::Satisfied => None,
            PolicyStatus::Sealed(reason) => Some(reason.to_string()),
        };
        self.remember_seal(reason.clone());
        Ok(reason)
    }

    /// Turns a signing refusal into the `Sealed` error (and remembers it); other errors pass.
    pub(super) fn note_sealed(
        &self,
        error: AuthorityError,
        operation: Operation,
    ) -> AuthorityError {
        match error {
            AuthorityError::Sign {
                source: SignError::Sealed(reason),
                ..
            } => {
                self.remember_seal(Some(reason.clone()));
                AuthorityError::Sealed {
                    operation: operation.phrase(),
                    reason,
                }
            }
            other => other,
        }
    }

    pub(super) fn remember_seal(&self, reason: Option<String>) {
        let mut sealed = self.sealed.lock().unwrap_or_else(|e| e.into_inner());
        match (&*sealed, &reason) {
            (None, Some(reason)) => tracing::error!(%reason, "the CA is sealed"),
            (Some(_), None) => {
                tracing::info!("the CA key's policy holds again; the CA is unsealed")
            }
            _ => {}
        }
        *sealed = reason;
    }
}
