//! Where this hub's identity comes from: the certificate its links, advertisements, receipts and
//! end-to-end sessions present, and the key that signs for it.
//!
//! `[certificate] source = "trustd"` (the appliance's default): hubd makes a fresh P-256 key in
//! memory at every start, asks the local trustd (`org.bunkeros.Trust1.Issue`, profile `hub`)
//! to certify it under the name `bunkeros:hub:<id>`, and appends the site root trustd serves.
//! The key never touches the disk; a restarted hub simply gets a new certificate, and a running
//! one takes a new key and certificate the same way two thirds into the certificate's life
//! ([`crate::renewal`]). trustd may refuse for a while (not started yet, sealed, site in
//! lockdown): the daemon retries and says why in its status line.
//!
//! `source = "pem"`: a chain and a key read from files, where no trustd runs (a hub of a site
//! whose CA lives elsewhere, and tests). Either way the result is checked the same way as
//! `--check-config` checks the PEM files ([`config::check_identity`]).

use std::time::SystemTime;

use appliance::dbus::Bus;
use appliance::tls::Identity;
use appliance::tls::trustd_issue::{self, RequestedName};

use crate::config::{self, CertificateSource};
use crate::hub_certificate::HUB_URI_PREFIX;
use crate::hub_id::HubId;

/// The trustd profile hub certificates are issued under.
pub const TRUSTD_PROFILE: &str = "hub";

/// Why no identity could be had.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// trustd is not reachable, refused (sealed, lockdown, policy), or the key or request
    /// could not be made.
    #[error("trustd did not issue the hub certificate: {0}")]
    Trustd(#[from] trustd_issue::IssueError),
    /// What came back does not make a hub identity.
    #[error("the hub certificate does not make an identity for this hub: {0}")]
    Invalid(String),
}

/// This hub's identity and what it says about itself.
#[derive(Debug, Clone)]
pub struct HubIdentity {
    /// The chain (hub certificate first, site root last) and the key.
    pub identity: Identity,
    /// Where it came from, for the log and the status: `trustd (serial 1f…)` or `PEM …`.
    pub source: String,
    /// When the hub certificate expires.
    pub not_after: SystemTime,
    /// When to take a new one: two thirds into the certificate's life, for a certificate from
    /// trustd (`None` for PEM files, which the site replaces itself and hubd reads again at
    /// SIGHUP).
    pub renew_at: Option<SystemTime>,
}

/// Obtains this hub's identity as `[certificate]` says.
pub async fn obtain(
    source: &CertificateSource,
    own: &HubId,
    bus: &Bus,
) -> Result<HubIdentity, IdentityError> {
    match source {
        CertificateSource::Pem { chain, key } => {
            let read = |path: &std::path::Path| {
                std::fs::read(path).map_err(|source| IdentityError::Read {
                    path: path.display().to_string(),
                    source,
                })
            };
            let identity = Identity::from_pem(&read(chain)?, &read(key)?)
                .map_err(|error| IdentityError::Invalid(error.to_string()))?;
            let source = format!("PEM {} and {}", chain.display(), key.display());
            let mut identity = checked(identity, own, source)?;
            identity.renew_at = None;
            Ok(identity)
        }
        CertificateSource::Trustd => from_trustd(own, bus).await,
    }
}

/// A fresh key certified by the local trustd.
async fn from_trustd(own: &HubId, bus: &Bus) -> Result<HubIdentity, IdentityError> {
    let name = RequestedName::Uri(format!("{HUB_URI_PREFIX}{own}"));
    let issued = trustd_issue::issue(bus, &name, TRUSTD_PROFILE).await?;
    let identity = Identity::from_pem(
        chain_with_root(&issued.chain_pem, &issued.root_pem)?.as_bytes(),
        issued.key_pem.as_bytes(),
    )
    .map_err(|error| IdentityError::Invalid(error.to_string()))?;
    checked(identity, own, format!("trustd (serial {})", issued.serial))
}

/// trustd's chain (leaf first, without the self-signed root) with the root appended, unless the
/// chain already ends with it.
pub fn chain_with_root(chain_pem: &str, root_pem: &str) -> Result<String, IdentityError> {
    let parse = |text: &str| {
        pem::parse_many(text)
            .map_err(|error| IdentityError::Invalid(format!("trustd sent malformed PEM: {error}")))
    };
    let chain = parse(chain_pem)?;
    let root = parse(root_pem)?;
    let [root] = root.as_slice() else {
        return Err(IdentityError::Invalid(format!(
            "trustd's root certificate is {} PEM blocks, not one",
            root.len()
        )));
    };
    let mut text = chain_pem.trim_end().to_owned();
    text.push('\n');
    if chain.last().map(pem::Pem::contents) != Some(root.contents()) {
        text.push_str(root_pem.trim_end());
        text.push('\n');
    }
    Ok(text)
}

fn checked(identity: Identity, own: &HubId, source: String) -> Result<HubIdentity, IdentityError> {
    config::check_identity(&identity, Some(own)).map_err(IdentityError::Invalid)?;
    let (not_before, not_after) = trustd_issue::validity(identity.leaf().as_ref())
        .ok_or_else(|| IdentityError::Invalid("the hub certificate does not parse".into()))?;
    Ok(HubIdentity {
        identity,
        source,
        not_after,
        renew_at: Some(trustd_issue::renewal_time(not_before, not_after)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub_certificate::hub_id_of;
    use crate::testing::{Site, hub};

    #[test]
    fn the_root_is_appended_once() {
        let site = Site::new("lisbon");
        let cert = site.hub("lisbon-1");
        let leaf_pem = pem::encode(&pem::Pem::new("CERTIFICATE", cert.leaf().to_vec()));
        let root_pem = site.root_pem().to_owned();
        let joined = chain_with_root(&leaf_pem, &root_pem).unwrap();
        assert_eq!(pem::parse_many(&joined).unwrap().len(), 2);
        let again = chain_with_root(&joined, &root_pem).unwrap();
        assert_eq!(pem::parse_many(&again).unwrap().len(), 2, "not twice");
        let identity = Identity::from_pem(joined.as_bytes(), cert.key_pem().as_bytes()).unwrap();
        let checked = checked(identity, &hub("lisbon-1"), "test".into()).unwrap();
        assert_eq!(hub_id_of(checked.identity.leaf()).unwrap(), hub("lisbon-1"));
        assert!(checked.not_after > SystemTime::now());
        let renew_at = checked.renew_at.unwrap();
        assert!(renew_at < checked.not_after && renew_at > SystemTime::now());
        assert!(matches!(
            chain_with_root(&leaf_pem, "not pem"),
            Err(IdentityError::Invalid(_))
        ));
    }

    #[test]
    fn a_certificate_for_another_hub_is_refused() {
        let site = Site::new("lisbon");
        let cert = site.hub("lisbon-2");
        let identity =
            Identity::from_pem(cert.chain_pem().as_bytes(), cert.key_pem().as_bytes()).unwrap();
        let error = checked(identity, &hub("lisbon-1"), "test".into()).unwrap_err();
        assert!(error.to_string().contains("lisbon-2"), "{error}");
    }
}
