//! An intermediate under an offline root, once it has a certificate: what an installed chain
//! says, and what may later replace it.
//!
//! Relying parties pin the offline root, and a CRL covers only the certificates whose issuer
//! name is its own. So a chain that replaces an installed one must be a *renewal*: this CA's
//! key (checked by [`super::chain::verify_chain`]), this CA's subject, and the same trust anchor
//! (the root's name and key; a root certificate re-issued for the same key is the same anchor).
//! Anything else would silently move the site to another trust anchor, or orphan the
//! revocations of every certificate issued so far: that is refused, and a site that really
//! changes its offline root sets up a new CA.

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::chain::ChainError;
use super::hierarchy::ActiveCa;

/// What an installed chain took into use, for the operator who installed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledChain {
    /// This CA's certificate's subject.
    pub subject: String,
    /// Who signed it (the offline root, or an intermediate under it).
    pub issuer: String,
    /// Start of its validity.
    pub not_before: OffsetDateTime,
    /// End of its validity: no leaf outlives it.
    pub not_after: OffsetDateTime,
    /// The offline root's subject: the trust anchor relying parties pin.
    pub root_subject: String,
    /// SHA-256 of the offline root's certificate, lowercase hex.
    pub root_fingerprint: String,
    /// Whether it replaced an installed certificate of this intermediate (a renewal).
    pub renewal: bool,
}

impl InstalledChain {
    /// Describes `active`, a chain [`ActiveCa::new`] accepted.
    pub fn describe(active: &ActiveCa, renewal: bool) -> Result<Self, ChainError> {
        let names = Names::of(active)?;
        Ok(Self {
            subject: active.subject.clone(),
            issuer: names.issuer,
            not_before: active.not_before,
            not_after: active.not_after,
            root_subject: names.root_subject,
            root_fingerprint: active.root_fingerprint(),
            renewal,
        })
    }
}

/// Why a chain may not replace the installed one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenewalError {
    /// The new certificate names another CA.
    #[error(
        "its subject `{offered}` is not the installed `{installed}`; a renewal keeps the subject, or the CRL would no longer cover the certificates issued so far"
    )]
    OtherSubject {
        /// The installed certificate's subject.
        installed: String,
        /// The new certificate's subject.
        offered: String,
    },
    /// The new chain ends in another root.
    #[error(
        "it ends in the root `{offered}`, which is not the trust anchor relying parties pin (the offline root `{installed}`, with its key); changing the trust anchor needs a new CA, not a new chain"
    )]
    OtherTrustAnchor {
        /// The installed root's subject.
        installed: String,
        /// The new root's subject.
        offered: String,
    },
    /// A certificate of either chain no longer parses (both were verified before).
    #[error(transparent)]
    Unreadable(#[from] ChainError),
}

/// Checks that `offered` (verified, for this CA's key) may replace `installed`.
pub fn check_renewal(installed: &ActiveCa, offered: &ActiveCa) -> Result<(), RenewalError> {
    let (old, new) = (Names::of(installed)?, Names::of(offered)?);
    if old.subject_der != new.subject_der {
        return Err(RenewalError::OtherSubject {
            installed: installed.subject.clone(),
            offered: offered.subject.clone(),
        });
    }
    if old.anchor != new.anchor {
        return Err(RenewalError::OtherTrustAnchor {
            installed: old.root_subject,
            offered: new.root_subject,
        });
    }
    Ok(())
}

/// The names of a verified chain, read again from its DER.
struct Names {
    /// This CA's subject, encoded.
    subject_der: Vec<u8>,
    /// This CA's issuer, printed.
    issuer: String,
    /// The root's subject, printed.
    root_subject: String,
    /// The trust anchor: the root's encoded subject and subjectPublicKeyInfo.
    anchor: (Vec<u8>, Vec<u8>),
}

impl Names {
    fn of(active: &ActiveCa) -> Result<Self, ChainError> {
        let own = parse(1, &active.chain[0])?;
        let root = parse(active.chain.len(), active.root_der())?;
        Ok(Self {
            subject_der: own.subject().as_raw().to_vec(),
            issuer: own.issuer().to_string(),
            root_subject: root.subject().to_string(),
            anchor: (
                root.subject().as_raw().to_vec(),
                root.public_key().raw.to_vec(),
            ),
        })
    }
}

fn parse(position: usize, der: &[u8]) -> Result<X509Certificate<'_>, ChainError> {
    X509Certificate::from_der(der)
        .map(|(_, certificate)| certificate)
        .map_err(|e| ChainError::Malformed {
            position,
            reason: e.to_string(),
        })
}
