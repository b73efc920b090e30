//! The certificate authority: turns a checked request into a certificate signed by the TPM key.
//!
//! Reading order, following a request: [`csr`] and [`extension_request`] (hostile bytes → a
//! [`ParsedCsr`]) → [`profile`] and [`name_rules`] (may this profile hold these names, for how
//! long) → [`constraints`] (do the CA certificates allow them) → [`issue`] (serial, validity,
//! signature through [`signer`]). Beside that path: [`hierarchy`] and [`chain`] (the CA's own
//! certificate: a self-signed root, or an intermediate under an offline root), [`serial`]
//! (random serials, never reused), [`names`], [`subject`] and [`lifetime`] (the value types).
//!
//! [`CertificateAuthority`] ties them to the state directory. It never holds key material and
//! never falls back to another key: when the TPM refuses (a tampered boot), every operation
//! that signs fails with a `Sealed` error that says so.

pub mod chain;
pub mod constraints;
pub mod csr;
pub mod extension_request;
pub mod hierarchy;
pub mod intermediate;
pub mod issue;
pub mod lifetime;
pub mod name_rules;
pub mod names;
pub mod profile;
pub mod serial;
pub mod signer;
pub mod subject;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use appliance::state::{StateDir, StateError};
use time::OffsetDateTime;

pub use chain::ChainError;
pub use csr::{CsrError, ParsedCsr, parse_csr};
pub use hierarchy::{CaKind, SiteIdentity, SiteIdentityError};
pub use intermediate::{InstalledChain, RenewalError};
pub use issue::{IssueError, IssuedCertificate, NotReady};
pub use lifetime::Lifetime;
pub use name_rules::NameRuleError;
pub use names::{DnsName, IpRange};
pub use profile::{IssuancePolicy, PolicyError, Profile, ProfilePolicy};
pub use serial::{CertificateSerial, MemorySerialLedger, SerialError, SerialLedger};
pub use signer::{CaSigner, SigningFailure};
pub use subject::{KeyKind, SubjectName};

use crate::ca_key::{CaKey, SignError};
use constraints::NameScope;
use hierarchy::{ActiveCa, CA_STATE_FILE, STORED_FORMAT, StoredCa, StoredMode, certificate_pem};

/// Why the CA could not be opened or could not change its hierarchy.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The issuance policy is inconsistent.
    #[error("invalid issuance policy: {0}")]
    Policy(#[from] PolicyError),
    /// The state file could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The state file holds something unusable.
    #[error("the CA state file {CA_STATE_FILE} is not usable: {0}")]
    StoredStateInvalid(String),
    /// The state file belongs to another CA key.
    #[error(
        "the CA state file {CA_STATE_FILE} belongs to the CA key {stored}, not to this TPM's key {current}; restore the matching key or move the file away"
    )]
    KeyMismatch {
        /// Key recorded in the file.
        stored: String,
        /// Key of the TPM.
        current: String,
    },
    /// The configured policy allows names the CA certificate forbids.
    #[error(
        "the issuance policy allows names the CA certificate's name constraints forbid ({0}); change the policy, or create a new CA for the wider scope"
    )]
    PolicyOutsideCaScope(String),
    /// A root or intermediate already exists.
    #[error("the CA is already set up as {0}; a new hierarchy needs a new CA state")]
    AlreadyInitialised(CaKind),
    /// A chain was offered while no intermediate request is outstanding.
    #[error("no chain is expected: {0}")]
    NoChainExpected(&'static str),
    /// A request for an offline root was asked for where there is none to give.
    #[error("there is no request for an offline root: {0}")]
    NoRequest(&'static str),
    /// The chain is refused.
    #[error("the certificate chain is refused: {0}")]
    Chain(#[from] ChainError),
    /// The chain verifies, but may not replace the installed intermediate's.
    #[error("the certificate chain is refused as a renewal of the installed intermediate: {0}")]
    NotARenewal(#[from] RenewalError),
    /// The CA key is sealed: the boot measurements do not satisfy its policy.
    #[error("the CA is sealed: {0}")]
    Sealed(String),
    /// The TPM failed.
    #[error("the TPM failed to sign: {0}")]
    Tpm(String),
    /// The new root certificate failed its own checks; it was not stored.
    #[error("the new root certificate failed its own check and was discarded: {0}")]
    SelfCheck(String),
    /// rcgen failed to encode a CA certificate or request.
    #[error("cannot encode the CA certificate: {0}")]
    Encode(String),
    /// No random serial could be drawn.
    #[error(transparent)]
    Serial(#[from] SerialError),
}

impl From<SigningFailure> for CaError {
    fn from(failure: SigningFailure) -> Self {
        match failure {
            SigningFailure::Key(SignError::Sealed(reason)) => Self::Sealed(reason),
            SigningFailure::Key(SignError::Tpm(reason)) => Self::Tpm(reason),
            SigningFailure::Encode(error) => Self::Encode(error.to_string()),
        }
    }
}

/// Where the CA stands.
#[derive(Debug, Clone)]
enum Stage {
    /// Nothing set up yet: neither root nor request.
    Uninitialised,
    /// A request for an offline root was written; no certificate yet.
    AwaitingChain { request: String },
    /// A CA certificate is installed.
    Active(ActiveCa),
}

/// What `bunkerctl ca status` and D-Bus show about the hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HierarchyStatus {
    /// Root, intermediate, or `None` before a CA certificate exists.
    pub kind: Option<CaKind>,
    /// Whether issuance may proceed, and if not why.
    pub readiness: Result<(), NotReady>,
    /// The CA certificate's subject.
    pub subject: Option<String>,
    /// The CA certificate's end of validity.
    pub not_after: Option<OffsetDateTime>,
    /// SHA-256 of the root certificate's DER, lowercase hex: what relying parties pin.
    pub root_fingerprint: Option<String>,
}

/// The site CA: the TPM key, the hierarchy it signs under, and the issuance rules.
pub struct CertificateAuthority {
    key: Arc<dyn CaKey>,
    state: StateDir,
    policy: IssuancePolicy,
    serials: Arc<dyn SerialLedger>,
    stage: Stage,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("state", &self.state)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Opens the CA in `state` for `key`, checking the stored hierarchy: the certificates must be
    /// for this key, verify, and allow every name `policy` allows. An expired CA opens (status
    /// must be able to say it is expired) but does not issue.
    pub fn open(
        key: Arc<dyn CaKey>,
        state: StateDir,
        policy: IssuancePolicy,
        serials: Arc<dyn SerialLedger>,
    ) -> Result<Self, CaError> {
        policy.validate()?;
        let stage = match state.read_json::<StoredCa>(CA_STATE_FILE)? {
            None => Stage::Uninitialised,
            Some(stored) => load_stage(&stored, key.public_key_sec1())?,
        };
        let ca = Self {
            key,
            state,
            policy,
            serials,
            stage,
        };
        ca.check_policy_within_scope()?;
        Ok(ca)
    }

    /// The issuance policy.
    pub fn policy(&self) -> &IssuancePolicy {
        &self.policy
    }

    /// The hierarchy's state, for status displays.
    pub fn status(&self) -> HierarchyStatus {
        let active = match &self.stage {
            Stage::Active(active) => Some(active),
            _ => None,
        };
        HierarchyStatus {
            kind: active.map(|a| a.kind),
            readiness: self.readiness(OffsetDateTime::now_utc()).map(|_| ()),
            subject: active.map(|a| a.subject.clone()),
            not_after: active.map(|a| a.not_after),
            root_fingerprint: active.map(ActiveCa::root_fingerprint),
        }
    }

    /// The root certificate (PEM) relying parties install as their trust anchor.
    pub fn root_pem(&self) -> Option<String> {
        match &self.stage {
            Stage::Active(active) => Some(certificate_pem(active.root_der())),
            _ => None,
        }
    }

    /// The certificates a TLS peer sends after its leaf (PEM): this CA's certificate and any
    /// intermediates above it, without the self-signed root. Empty for a root CA.
    pub fn chain_pem(&self) -> String {
        match &self.stage {
            Stage::Active(active) if active.kind == CaKind::Intermediate => active.chain
                [..active.chain.len() - 1]
                .iter()
                .map(|der| certificate_pem(der))
                .collect(),
            _ => String::new(),
        }
    }

    /// The outstanding request for an offline root, if one was written.
    pub fn pending_request(&self) -> Option<&str> {
        match &self.stage {
            Stage::AwaitingChain { request } => Some(request),
            _ => None,
        }
    }

    /// Makes the CA a self-signed site root. Refused once a root or intermediate exists.
    pub fn create_root(&mut self, site: &SiteIdentity) -> Result<(), CaError> {
        if let Stage::Active(active) = &self.stage {
            return Err(CaError::AlreadyInitialised(active.kind));
        }
        let now = OffsetDateTime::now_utc();
        let serial = serial::assign_serial(self.serials.as_ref())?;
        let signer = CaSigner::new(Arc::clone(&self.key));
        let scope = NameScope::from_policy(&self.policy);
        let der = hierarchy::root_certificate(site, &scope, serial, &signer, now)?;
        // A root that fails the checks an installed chain gets is a fault here, not bad input.
        let self_check = |e: ChainError| CaError::SelfCheck(e.to_string());
        let verified =
            chain::verify_own_root(der, self.key.public_key_sec1(), now).map_err(self_check)?;
        let active = ActiveCa::new(CaKind::Root, verified, self.key.public_key_sec1())
            .map_err(self_check)?;
        self.store(
            site,
            StoredMode::Root {
                certificate: certificate_pem(&active.chain[0]),
            },
        )?;
        tracing::info!(subject = %active.subject, "created the self-signed site root");
        self.stage = Stage::Active(active);
        Ok(())
    }

    /// Writes a request (PEM) for an offline root to sign, and waits for its chain. Asking
    /// again writes a fresh request; any of them works, since the chain is matched by key.
    pub fn csr_for_offline_root(&mut self, site: &SiteIdentity) -> Result<String, CaError> {
        if let Stage::Active(active) = &self.stage {
            return Err(CaError::AlreadyInitialised(active.kind));
        }
        let signer = CaSigner::new(Arc::clone(&self.key));
        let scope = NameScope::from_policy(&self.policy);
        let request = hierarchy::intermediate_request(site, &scope, &signer)?;
        self.store(
            site,
            StoredMode::AwaitingChain {
                request: request.clone(),
            },
        )?;
        self.stage = Stage::AwaitingChain {
            request: request.clone(),
        };
        Ok(request)
    }

    /// The request (PEM) `bunkerctl ca csr` shows, without changing anything: the outstanding
    /// one while the CA waits for its chain, or a fresh one with the same names for an
    /// installed intermediate, for the offline root to sign a renewal (the installed
    /// certificate stays in use until the renewed chain is installed).
    pub fn intermediate_request(&self) -> Result<String, CaError> {
        match &self.stage {
            Stage::AwaitingChain { request } => Ok(request.clone()),
            Stage::Active(active) if active.kind == CaKind::Intermediate => {
                let signer = CaSigner::new(Arc::clone(&self.key));
                let scope = NameScope::from_policy(&self.policy);
                Ok(hierarchy::intermediate_request(
                    &self.stored_site()?,
                    &scope,
                    &signer,
                )?)
            }
            Stage::Active(_) => Err(CaError::NoRequest(
                "this CA is a self-signed site root; it answers to no offline root",
            )),
            Stage::Uninitialised => Err(CaError::NoRequest(
                "the CA has no certificate and no request yet; trustd writes the request when it \
                 starts with `[site] ca = \"intermediate\"` and may sign (not sealed, not in \
                 lockdown): restart trustd once it may",
            )),
        }
    }

    /// Installs the chain an offline root returned (PEM: this CA's certificate first, the root
    /// last) after checking it (see [`chain`]). Also accepted for an installed intermediate,
    /// to renew its certificate: same key, same subject, same trust anchor (see
    /// [`intermediate`]). Refused for a self-signed root: a chain would replace the trust
    /// anchor every relying party pins.
    pub fn install_chain(&mut self, chain_pem: &str) -> Result<InstalledChain, CaError> {
        let (site, installed) = match &self.stage {
            Stage::Uninitialised => {
                return Err(CaError::NoChainExpected(
                    "no request for an offline root was written (run `bunkerctl ca csr` first)",
                ));
            }
            Stage::Active(active) if active.kind == CaKind::Root => {
                return Err(CaError::NoChainExpected(
                    "this CA is a self-signed site root, the trust anchor relying parties pin; a \
                     chain from an offline root would replace that anchor, so it is refused (a CA \
                     under an offline root is set up as a new CA with `[site] ca = \"intermediate\"`)",
                ));
            }
            Stage::Active(active) => (self.stored_site()?, Some(active)),
            Stage::AwaitingChain { .. } => (self.stored_site()?, None),
        };
        let now = OffsetDateTime::now_utc();
        let certificates = chain::decode_pem_chain(chain_pem)?;
        let verified = chain::verify_chain(certificates, self.key.public_key_sec1(), now)?;
        let active = ActiveCa::new(CaKind::Intermediate, verified, self.key.public_key_sec1())?;
        if let Some(installed) = installed {
            intermediate::check_renewal(installed, &active)?;
        }
        if let Some(outside) = policy_outside(&self.policy, &active) {
            return Err(CaError::PolicyOutsideCaScope(outside));
        }
        let described = InstalledChain::describe(&active, installed.is_some())?;
        let chain = active
            .chain
            .iter()
            .map(|der| certificate_pem(der))
            .collect();
        self.store(&site, StoredMode::Intermediate { chain })?;
        tracing::info!(
            subject = %active.subject,
            root = %described.root_subject,
            renewal = described.renewal,
            "installed the intermediate CA certificate"
        );
        self.stage = Stage::Active(active);
        Ok(described)
    }

    fn check_policy_within_scope(&self) -> Result<(), CaError> {
        match &self.stage {
            Stage::Active(active) => match policy_outside(&self.policy, active) {
                Some(outside) => Err(CaError::PolicyOutsideCaScope(outside)),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn stored_site(&self) -> Result<SiteIdentity, CaError> {
        self.state
            .read_json::<StoredCa>(CA_STATE_FILE)?
            .map(|stored| stored.site)
            .ok_or_else(|| CaError::StoredStateInvalid("it disappeared".into()))
    }

    fn store(&self, site: &SiteIdentity, mode: StoredMode) -> Result<(), CaError> {
        let stored = StoredCa {
            format: STORED_FORMAT,
            public_key: hex::encode(self.key.public_key_sec1()),
            site: site.clone(),
            mode,
        };
        Ok(self.state.write_json(CA_STATE_FILE, &stored)?)
    }
}

fn policy_outside(policy: &IssuancePolicy, active: &ActiveCa) -> Option<String> {
    active
        .scopes
        .iter()
        .find_map(|scope| scope.policy_outside(policy))
}

/// Rebuilds the stage from the state file, re-verifying certificates against the key.
fn load_stage(stored: &StoredCa, key_sec1: &[u8]) -> Result<Stage, CaError> {
    if stored.format != STORED_FORMAT {
        return Err(CaError::StoredStateInvalid(format!(
            "format {} is not the supported format {STORED_FORMAT}",
            stored.format
        )));
    }
    let current = hex::encode(key_sec1);
    if stored.public_key != current {
        return Err(CaError::KeyMismatch {
            stored: stored.public_key.clone(),
            current,
        });
    }
    let invalid = |e: ChainError| CaError::StoredStateInvalid(e.to_string());
    // Checked against the certificate's own start so an expired CA still loads.
    let at_start = |der: &[u8]| -> Result<OffsetDateTime, CaError> {
        use x509_parser::prelude::FromDer;
        x509_parser::certificate::X509Certificate::from_der(der)
            .map(|(_, c)| c.validity().not_before.to_datetime())
            .map_err(|e| CaError::StoredStateInvalid(e.to_string()))
    };
    match &stored.mode {
        StoredMode::AwaitingChain { request } => Ok(Stage::AwaitingChain {
            request: request.clone(),
        }),
        StoredMode::Root { certificate } => {
            let der = chain::decode_pem_chain(certificate)
                .map_err(invalid)?
                .swap_remove(0);
            let at = at_start(&der)?;
            let verified = chain::verify_own_root(der, key_sec1, at).map_err(invalid)?;
            let active = ActiveCa::new(CaKind::Root, verified, key_sec1).map_err(invalid)?;
            Ok(Stage::Active(active))
        }
        StoredMode::Intermediate { chain: pems } => {
            let certificates = chain::decode_pem_chain(&pems.concat()).map_err(invalid)?;
            let at = at_start(&certificates[0])?;
            let verified = chain::verify_chain(certificates, key_sec1, at).map_err(invalid)?;
            let active =
                ActiveCa::new(CaKind::Intermediate, verified, key_sec1).map_err(invalid)?;
            Ok(Stage::Active(active))
        }
    }
}
