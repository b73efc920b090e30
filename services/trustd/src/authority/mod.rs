//! The authority: the issuance pipeline that ties the CA, the TPM-held key, the transparency
//! log and the issued-certificate store together, with revocation, the CRL and audit signing.
//!
//! Everything trustd's edges (D-Bus, ACME, `bunkerctl` through D-Bus) ask of the CA goes
//! through one [`Authority`]; its methods take `&self` and may be called from many threads.
//!
//! Reading order: [`issue`] (the pipeline, and why a certificate is logged before anyone sees
//! it) → [`setup`] (the CA's own certificate: a site root, or an intermediate under an
//! offline root) → [`reconcile`] (what a crash at any step leaves, and how a start settles it) →
//! [`store`] and [`records`] (the SQLite store) → [`revocation`] and [`crl`] → [`status`]
//! (sealed, lockdown, and what each stops) → [`audit`] (domain-separated signatures for the
//! other services' audit logs) → [`transparency`] (tree heads, proofs, the periodic checkpoint).
//!
//! Locks, always taken in this order and never the other way: the CRL (one revocation or
//! refresh at a time) → the CA hierarchy (read for issuance, write for setting it up) → the
//! transparency log → the store's database connection.

pub mod audit;
pub mod crl;
pub mod error;
pub mod issue;
pub mod quote;
pub mod reconcile;
pub mod records;
pub mod revocation;
pub mod setup;
pub mod status;
pub mod store;
pub mod transparency;

#[cfg(test)]
mod tests;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use appliance::state::StateDir;
use time::OffsetDateTime;

pub use audit::{
    AUDIT_DOMAIN, AuditService, AuditVerifyError, audit_signed_bytes, verify_audit_signature,
};
pub use crl::{CrlStatus, DEFAULT_CRL_VALIDITY, MIN_CRL_VALIDITY};
pub use error::AuthorityError;
pub use issue::Issued;
pub use quote::MAX_QUOTE_NONCE_LEN;
pub use reconcile::Reconciliation;
pub use records::{CertificateFacts, CertificateRecord, CertificateStatus, ListFilter, Revocation};
pub use revocation::RevocationReason;
pub use setup::{CaSetup, SetUpOutcome};
pub use status::{AuthorityState, AuthorityStatus, Operation, PolicySummary};
pub use store::{CertStore, STORE_FILE, SerialState};
pub use transparency::Checkpoint;

use crate::ca::{CaKind, CertificateAuthority, IssuancePolicy, SerialLedger};
use crate::ca_key::CaKey;
use crate::tpm::TpmCaKey;
use crate::translog::LogStore;
use store::StoredCrl;

/// Longest requester label.
pub const MAX_REQUESTER_LEN: usize = 128;

/// Settings of the authority beyond the issuance policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorityConfig {
    /// How long each CRL is valid (nextUpdate − thisUpdate); at least [`MIN_CRL_VALIDITY`].
    pub crl_validity: Duration,
}

impl Default for AuthorityConfig {
    fn default() -> Self {
        Self {
            crl_validity: DEFAULT_CRL_VALIDITY,
        }
    }
}

/// The site CA at work; see the module documentation.
pub struct Authority {
    key: Arc<TpmCaKey>,
    ca: RwLock<CertificateAuthority>,
    store: Arc<CertStore>,
    log: Mutex<LogStore>,
    crl: Mutex<Option<StoredCrl>>,
    config: AuthorityConfig,
    lockdown: AtomicBool,
    /// Why the CA key is sealed, as last learnt from the TPM.
    sealed: Mutex<Option<String>>,
    /// Set after a write failure that leaves the disk state uncertain.
    stopped: Mutex<Option<String>>,
    reconciliation: Reconciliation,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Opens the authority over `key` and the state in `state`: takes the transparency log
    /// (a second trustd stops here), opens the store and the CA, reconciles store and log
    /// ([`reconcile`]), asks the TPM whether the key's policy holds, and — if it does — signs a
    /// tree head over entries recovered since the last one and a first CRL if there is none.
    ///
    /// Opens when sealed or in lockdown (status must be able to say so); refuses to open when
    /// the state is inconsistent in a way no crash explains.
    pub fn open(
        key: Arc<TpmCaKey>,
        state: StateDir,
        policy: IssuancePolicy,
        config: AuthorityConfig,
    ) -> Result<Self, AuthorityError> {
        if config.crl_validity < MIN_CRL_VALIDITY {
            return Err(AuthorityError::BadConfig(format!(
                "a CRL validity of {} seconds is too short; CRLs must be valid for at least {} \
                 seconds",
                config.crl_validity.as_secs(),
                MIN_CRL_VALIDITY.as_secs()
            )));
        }
        let log = LogStore::open(&state)?;
        let store = Arc::new(CertStore::open(state.path())?);
        let ca = CertificateAuthority::open(
            Arc::clone(&key) as Arc<dyn CaKey>,
            state,
            policy,
            Arc::clone(&store) as Arc<dyn SerialLedger>,
        )?;
        let reconciliation = reconcile::reconcile(&log, &store, key.public_key_sec1())?;
        let authority = Self {
            lockdown: AtomicBool::new(store.lockdown()?),
            crl: Mutex::new(store.crl()?),
            key,
            ca: RwLock::new(ca),
            store,
            log: Mutex::new(log),
            config,
            sealed: Mutex::new(None),
            stopped: Mutex::new(None),
            reconciliation,
        };
        if let Some(reason) = authority.probe_seal()? {
            tracing::error!(%reason, "the CA is sealed; it issues nothing until the boot is trusted again");
        } else {
            authority.catch_up();
        }
        Ok(authority)
    }

    /// What the start found and repaired.
    pub fn reconciliation(&self) -> &Reconciliation {
        &self.reconciliation
    }

    /// The CA key's public key (SEC1), with which tree heads, CRLs and audit signatures verify.
    pub fn public_key_sec1(&self) -> &[u8] {
        self.key.public_key_sec1()
    }

    /// The issued-certificate store (read access for tools and tests).
    pub fn store(&self) -> &CertStore {
        &self.store
    }

    /// The root certificate (PEM) relying parties install, once the CA has one.
    pub fn root_pem(&self) -> Option<String> {
        self.ca_read().root_pem()
    }

    /// The CA certificates a peer sends after its leaf (PEM; empty for a root CA).
    pub fn chain_pem(&self) -> String {
        self.ca_read().chain_pem()
    }

    /// The DER of the certificate that signs leaves and CRLs (the root, or the intermediate).
    pub fn ca_certificate_der(&self) -> Option<Vec<u8>> {
        let ca = self.ca_read();
        let pem = match ca.status().kind? {
            CaKind::Root => ca.root_pem()?,
            CaKind::Intermediate => ca.chain_pem(),
        };
        pem::parse_many(pem)
            .ok()?
            .into_iter()
            .next()
            .map(pem::Pem::into_contents)
    }

    /// Best-effort upkeep after a start or a change of the CA: a tree head over entries not yet
    /// covered, and a CRL if none is current. Failures are logged; the checkpoint retries.
    fn catch_up(&self) {
        let (done, refused) = self.checkpoint(OffsetDateTime::now_utc());
        if done != Checkpoint::default() {
            tracing::info!(?done, "caught up on tree heads and the CRL");
        }
        for error in refused {
            tracing::warn!(%error, "upkeep postponed");
        }
    }

    fn ca_read(&self) -> RwLockReadGuard<'_, CertificateAuthority> {
        self.ca.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn ca_write(&self) -> RwLockWriteGuard<'_, CertificateAuthority> {
        self.ca.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_log(&self) -> MutexGuard<'_, LogStore> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_crl(&self) -> MutexGuard<'_, Option<StoredCrl>> {
        self.crl.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A requester label must say who asked, in printable text that fits a log line.
fn check_requester(requester: &str) -> Result<(), AuthorityError> {
    let length = requester.chars().count();
    if length == 0 || length > MAX_REQUESTER_LEN || requester.chars().any(char::is_control) {
        return Err(AuthorityError::BadRequester(
            crate::ca::names::quote_untrusted(requester, 40),
        ));
    }
    Ok(())
}
