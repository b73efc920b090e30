//! Setting up the CA's own certificate as the site configured it (`[site] ca` in trustd.toml):
//! a self-signed site root, or an intermediate whose request an offline root signs.
//!
//! The first start does what needs no person ([`Authority::set_up`]): it makes the root, or it
//! writes the request and leaves the CA `initialised`, its status reason the operator's
//! procedure. The rest of an intermediate's life is the operator's, through D-Bus:
//! [`Authority::intermediate_request`] shows the request (the outstanding one, or a fresh one
//! for a renewal) and [`Authority::install_chain`] takes the signed chain back, checked before
//! it counts (see [`crate::ca::chain`] and [`crate::ca::intermediate`]). Once set up, the
//! hierarchy never follows a changed configuration: the certificate is what relying parties
//! pinned.
//!
//! Every step is refused in lockdown and while sealed, and a refused step changes nothing.

use time::OffsetDateTime;

use super::Authority;
use super::error::AuthorityError;
use super::status::Operation;
use crate::ca::{CaError, CaKind, InstalledChain, SiteIdentity};

/// What the site configured the CA to be: its names, and which kind of CA certificate it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSetup {
    /// A self-signed site root, or an intermediate under an offline root.
    pub kind: CaKind,
    /// The names the CA certificate (or the request) carries.
    pub site: SiteIdentity,
}

/// What [`Authority::set_up`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetUpOutcome {
    /// The CA was set up before (a root, a chain, or a request waiting for one): nothing
    /// changed.
    AlreadySetUp,
    /// Made the self-signed site root.
    CreatedRoot,
    /// Wrote the request for the offline root; the CA waits for its chain.
    WroteRequest,
}

impl Authority {
    /// On a CA that has neither a certificate nor a request: makes the root, or writes the
    /// request for the offline root, as `setup` says. A CA set up before is left as it is (a
    /// configuration that now says otherwise is logged, not obeyed).
    pub fn set_up(&self, setup: &CaSetup) -> Result<SetUpOutcome, AuthorityError> {
        let existing = {
            let ca = self.ca_read();
            match (ca.status().kind, ca.pending_request()) {
                (Some(kind), _) => Some(kind),
                (None, Some(_)) => Some(CaKind::Intermediate),
                (None, None) => None,
            }
        };
        if let Some(existing) = existing {
            if existing != setup.kind {
                tracing::warn!(
                    "the configuration asks for {} but this CA is already set up as {existing}; \
                     `[site] ca` counts only on the first start, so nothing changes",
                    setup.kind
                );
            }
            return Ok(SetUpOutcome::AlreadySetUp);
        }
        match setup.kind {
            CaKind::Root => {
                self.create_root(&setup.site)?;
                Ok(SetUpOutcome::CreatedRoot)
            }
            CaKind::Intermediate => {
                self.csr_for_offline_root(&setup.site)?;
                tracing::warn!(
                    "the CA waits for its offline root: `bunkerctl ca csr > site-ca.csr`, sign \
                     it with the offline root, then `bunkerctl ca install-chain chain.pem`"
                );
                Ok(SetUpOutcome::WroteRequest)
            }
        }
    }

    /// Makes the CA a self-signed site root (see [`crate::ca::CertificateAuthority::create_root`]),
    /// and signs its first CRL. Refused in lockdown.
    pub fn create_root(&self, site: &SiteIdentity) -> Result<(), AuthorityError> {
        self.ensure_may_sign(Operation::SetUpCa)?;
        {
            let mut ca = self.ca_write();
            let scope = self.store.reservations(None, None);
            let result = ca.create_root(site);
            let reserved = scope.finish();
            match &result {
                Ok(()) => self.store.mark_ca(&reserved)?,
                Err(CaError::Sealed(_)) => self.store.release(&reserved)?,
                Err(_) => self.store.abandon(&reserved)?,
            }
            result.map_err(|error| self.set_up_refused(error))?;
        }
        self.catch_up();
        Ok(())
    }

    /// Writes a request for an offline root to sign (see
    /// [`crate::ca::CertificateAuthority::csr_for_offline_root`]). Refused in lockdown.
    pub fn csr_for_offline_root(&self, site: &SiteIdentity) -> Result<String, AuthorityError> {
        self.ensure_may_sign(Operation::SetUpCa)?;
        self.ca_write()
            .csr_for_offline_root(site)
            .map_err(|error| self.set_up_refused(error))
    }

    /// The request `bunkerctl ca csr` prints (see
    /// [`crate::ca::CertificateAuthority::intermediate_request`]): the outstanding one, or a
    /// fresh one for renewing an installed intermediate. Changes nothing; refused in lockdown.
    pub fn intermediate_request(&self) -> Result<String, AuthorityError> {
        self.ensure_may_sign(Operation::SetUpCa)?;
        self.ca_read()
            .intermediate_request()
            .map_err(|error| self.set_up_refused(error))
    }

    /// Installs the chain the offline root returned (see
    /// [`crate::ca::CertificateAuthority::install_chain`]), and signs a CRL under it. Refused
    /// in lockdown; a refused chain changes nothing.
    pub fn install_chain(&self, chain_pem: &str) -> Result<InstalledChain, AuthorityError> {
        self.ensure_may_sign(Operation::SetUpCa)?;
        let installed = self
            .ca_write()
            .install_chain(chain_pem)
            .map_err(|error| self.set_up_refused(error))?;
        // A new CA certificate: the CRL must be signed again under it.
        if let Err(error) = self.sign_next_crl(OffsetDateTime::now_utc(), true) {
            tracing::warn!(%error, "no CRL under the new CA certificate yet; the checkpoint retries");
        }
        self.catch_up();
        Ok(installed)
    }

    /// A refusal of the CA layer as the authority reports it: a TPM that refused the key is
    /// the `Sealed` refusal every other operation gives (and is remembered as such).
    fn set_up_refused(&self, error: CaError) -> AuthorityError {
        match error {
            CaError::Sealed(reason) => {
                self.remember_seal(Some(reason.clone()));
                AuthorityError::Sealed {
                    operation: Operation::SetUpCa.phrase(),
                    reason,
                }
            }
            other => AuthorityError::Ca(other),
        }
    }
}
