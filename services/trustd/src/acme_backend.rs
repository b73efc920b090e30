//! The ACME server's hand-over to the issuance pipeline: [`AcmeBackend`] over the
//! [`Authority`], so a certificate obtained with certbot is logged, stored, counted and
//! revocable exactly like one issued over D-Bus.
//!
//! Also the ACME listener's own TLS identity: a certificate the CA issues to itself for
//! `acme.<domain>` (and the host of the configured base URL), with a P-256 key made in memory
//! that never touches the disk. It is a `service` certificate like any other, in the log and
//! in `bunkerctl ca list`; [`AcmeIdentity::renew_after`] says when to make the next one.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use appliance::tls::Identity;
use time::OffsetDateTime;

use crate::acme::{AcmeBackend, BackendError, IssuedCert};
use crate::authority::{Authority, AuthorityError, CertificateFacts, RevocationReason};
use crate::ca::name_rules::authorise;
use crate::ca::{DnsName, IssuancePolicy, IssueError, Profile, SubjectName};

/// The requester recorded for the ACME listener's own certificates.
pub const SELF_REQUESTER: &str = "trustd:acme-listener";

/// [`AcmeBackend`] over the authority.
pub struct AuthorityBackend {
    authority: Arc<Authority>,
    policy: IssuancePolicy,
}

impl AuthorityBackend {
    /// The backend over `authority`, whose issuance rules are `policy` (for early name checks).
    pub fn new(authority: Arc<Authority>, policy: IssuancePolicy) -> Self {
        Self { authority, policy }
    }

    /// The chain an ACME client downloads: leaf, CA certificates, and the root (see
    /// [`IssuedCert::chain_pem`] for why the root is included).
    fn download_chain(&self, chain_pem: &str) -> String {
        match self.authority.root_pem() {
            Some(root) if !chain_pem.contains(root.trim()) => format!("{chain_pem}{root}"),
            _ => chain_pem.to_owned(),
        }
    }
}

impl AcmeBackend for AuthorityBackend {
    fn issue(
        &self,
        csr_der: &[u8],
        profile: Profile,
        requester: &str,
    ) -> Result<IssuedCert, BackendError> {
        let issued = self
            .authority
            .issue(csr_der, profile, None, requester)
            .map_err(backend_error)?;
        Ok(IssuedCert {
            chain_pem: self.download_chain(&issued.certificate.chain_pem),
            cert_pem: issued.certificate.pem,
            serial: issued.certificate.serial.to_hex(),
        })
    }

    fn revoke(&self, cert_der: &[u8], reason: u8, requester: &str) -> Result<(), BackendError> {
        let unknown = || {
            BackendError::UnknownCertificate("this CA did not issue that certificate".to_owned())
        };
        let facts = CertificateFacts::from_der(cert_der).map_err(|_| unknown())?;
        // The serial must name exactly this certificate, not another one that shares it.
        let stored = self
            .authority
            .store()
            .certificate_der(&facts.serial)
            .map_err(backend_error)?;
        if stored.as_deref() != Some(cert_der) {
            return Err(unknown());
        }
        let reason = RevocationReason::from_code(reason).map_err(backend_error)?;
        self.authority
            .revoke(&facts.serial, reason, requester)
            .map(|_| ())
            .map_err(backend_error)
    }

    fn check_names(&self, profile: Profile, names: &[SubjectName]) -> Result<(), BackendError> {
        authorise(&self.policy, profile, None, names)
            .map(|_| ())
            .map_err(|e| BackendError::NamesRefused(e.to_string()))
    }
}

/// The authority's refusal, as the ACME error it maps to.
fn backend_error(error: AuthorityError) -> BackendError {
    let message = error.to_string();
    match error {
        AuthorityError::Csr(_) | AuthorityError::BadRequester(_) => BackendError::BadCsr(message),
        AuthorityError::Issue(
            IssueError::Names(_)
            | IssueError::OutsideCaConstraints(_)
            | IssueError::LifetimeTooShort { .. },
        ) => BackendError::NamesRefused(message),
        AuthorityError::Sealed { .. }
        | AuthorityError::Lockdown(_)
        | AuthorityError::Stopped(_)
        | AuthorityError::NoCaCertificate
        | AuthorityError::Issue(
            IssueError::NotReady(_) | IssueError::Sealed(_) | IssueError::CaExpiresTooSoon(_),
        ) => BackendError::Unavailable(message),
        AuthorityError::UnknownSerial(_) => BackendError::UnknownCertificate(message),
        AuthorityError::AlreadyRevoked { .. } => BackendError::AlreadyRevoked(message),
        _ => BackendError::Internal(message),
    }
}

/// The ACME listener's TLS identity and when to replace it.
pub struct AcmeIdentity {
    /// Certificate chain and in-memory key.
    pub identity: Identity,
    /// When the certificate expires.
    pub not_after: OffsetDateTime,
    /// When it was issued.
    pub not_before: OffsetDateTime,
}

impl AcmeIdentity {
    /// Issues a `service` certificate for `names`, valid for `lifetime` (cut to the profile's
    /// maximum), with a fresh in-memory P-256 key.
    pub fn issue(
        authority: &Authority,
        names: &[ListenerName],
        lifetime: Duration,
    ) -> Result<Self, String> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| format!("cannot make a key for the ACME listener: {e}"))?;
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let first = names
            .first()
            .ok_or_else(|| "no name for the ACME listener".to_owned())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, first.text());
        params.subject_alt_names = names
            .iter()
            .map(ListenerName::to_san)
            .collect::<Result<_, _>>()?;
        let csr = params
            .serialize_request(&key)
            .map_err(|e| format!("cannot make the ACME listener's request: {e}"))?;
        let issued = authority
            .issue(csr.der(), Profile::Service, Some(lifetime), SELF_REQUESTER)
            .map_err(|e| e.to_string())?;
        let identity = Identity::from_pem(
            issued.certificate.chain_pem.as_bytes(),
            key.serialize_pem().as_bytes(),
        )
        .map_err(|e| format!("the ACME listener's certificate is unusable: {e}"))?;
        Ok(Self {
            identity,
            not_after: issued.certificate.not_after,
            not_before: issued.certificate.not_before,
        })
    }

    /// When to replace the certificate: two thirds into its life.
    pub fn renew_after(&self) -> Duration {
        let life = (self.not_after - self.not_before).unsigned_abs();
        let renew_at = self.not_before + life * 2 / 3;
        (renew_at - OffsetDateTime::now_utc())
            .try_into()
            .unwrap_or(Duration::ZERO)
    }
}

/// A name of the ACME listener's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerName {
    /// A DNS name.
    Dns(DnsName),
    /// An IP address (when clients reach the listener by address).
    Ip(IpAddr),
}

impl ListenerName {
    fn text(&self) -> String {
        match self {
            Self::Dns(name) => name.as_str().to_owned(),
            Self::Ip(address) => address.to_string(),
        }
    }

    fn to_san(&self) -> Result<rcgen::SanType, String> {
        match self {
            Self::Dns(name) => name
                .as_str()
                .to_owned()
                .try_into()
                .map(rcgen::SanType::DnsName)
                .map_err(|e| format!("`{name}` cannot be a certificate name: {e}")),
            Self::Ip(address) => Ok(rcgen::SanType::IpAddress(*address)),
        }
    }
}

/// The names of the ACME listener's certificate: `acme.<domain>`, and the host of `base_url`
/// when it is another name or an address (which the service profile must then allow).
pub fn listener_names(domain: &DnsName, base_url: Option<&str>) -> Vec<ListenerName> {
    let mut names =
        vec![ListenerName::Dns(domain.prefixed("acme").expect(
            "a fixed label below a valid domain is a valid name",
        ))];
    let host = base_url
        .and_then(|url| url.strip_prefix("https://"))
        .map(|authority| {
            authority
                .rsplit_once(':')
                .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
                .map_or(authority, |(host, _)| host)
        })
        .map(|host| host.trim_start_matches('[').trim_end_matches(']'));
    let extra = host.and_then(|host| match host.parse::<IpAddr>() {
        Ok(address) => Some(ListenerName::Ip(address)),
        Err(_) => DnsName::parse(host).ok().map(ListenerName::Dns),
    });
    if let Some(name) = extra
        && !names.contains(&name)
    {
        names.push(name);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_is_named_after_the_domain_and_the_base_url() {
        let domain = DnsName::parse("bunker.test").unwrap();
        let names = |url| {
            listener_names(&domain, url)
                .iter()
                .map(ListenerName::text)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(None), ["acme.bunker.test"]);
        assert_eq!(
            names(Some("https://ca.bunker.test:8443")),
            ["acme.bunker.test", "ca.bunker.test"]
        );
        assert_eq!(
            names(Some("https://acme.bunker.test:8443")),
            ["acme.bunker.test"]
        );
        assert_eq!(
            names(Some("https://10.0.0.1:8443")),
            ["acme.bunker.test", "10.0.0.1"]
        );
        assert_eq!(
            names(Some("https://[::1]:8443")),
            ["acme.bunker.test", "::1"]
        );
    }
}
