//! A service's own certificate from the local trustd: a P-256 key made in memory (it never
//! touches the disk), a certificate request for one name, `Issue` over D-Bus under the
//! service's profile, and when to ask again (two thirds into the certificate's life). hubd's
//! hub certificate and sited's uplink client certificate come this way.

use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, SanType,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::dbus::contracts::Trust1Proxy;
use crate::dbus::{Bus, BusError};

/// The name a certificate is requested for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestedName {
    /// A DNS name under the site's domain, e.g. `sited.bunker-7.example.net`.
    Dns(String),
    /// A URI, e.g. `bunkeros:hub:lisbon-1`.
    Uri(String),
}

impl RequestedName {
    fn text(&self) -> &str {
        match self {
            RequestedName::Dns(name) | RequestedName::Uri(name) => name,
        }
    }
}

/// What trustd issued, with the key it certifies.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate and its chain (leaf first), PEM.
    pub chain_pem: String,
    /// The private key, PEM, in memory only.
    pub key_pem: String,
    /// The certificate's serial as trustd reports it.
    pub serial: String,
    /// The site's root certificate, PEM.
    pub root_pem: String,
}

/// Why trustd issued nothing.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("cannot reach trustd on the system bus: {0}")]
    Bus(#[from] BusError),
    /// trustd refused (sealed, lockdown, policy) or did not answer: its sentence.
    #[error("{0}")]
    Trustd(String),
    #[error("cannot make the key and its certificate request: {0}")]
    Request(#[from] rcgen::Error),
    /// trustd answered with something that is not a usable chain for the key.
    #[error("trustd's answer does not make a TLS identity: {0}")]
    Invalid(String),
}

/// A TLS identity trustd certified, and when to ask for the next one.
#[derive(Debug, Clone)]
pub struct IssuedIdentity {
    /// The chain (leaf first) and the in-memory key.
    pub identity: crate::tls::Identity,
    /// The certificate's serial as trustd reports it (for the log).
    pub serial: String,
    /// Two thirds into the certificate's life ([`renewal_time`]).
    pub renew_at: SystemTime,
    /// When the certificate expires.
    pub not_after: SystemTime,
}

/// A new P-256 key (PEM) and a request for `name`, whose common name repeats it (as trustd
/// wants).
pub fn certificate_request(name: &RequestedName) -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, name.text());
    params.subject_alt_names = vec![match name {
        RequestedName::Dns(dns) => SanType::DnsName(dns.clone().try_into()?),
        RequestedName::Uri(uri) => SanType::URI(uri.clone().try_into()?),
    }];
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, key.serialize_pem()))
}

/// A fresh key certified by trustd on `bus` for `name` under `profile`.
pub async fn issue(bus: &Bus, name: &RequestedName, profile: &str) -> Result<Issued, IssueError> {
    let (csr_pem, key_pem) = certificate_request(name)?;
    let connection = crate::dbus::connect(bus).await?;
    let trust = Trust1Proxy::new(&connection)
        .await
        .map_err(|error| IssueError::Trustd(error.to_string()))?;
    let (_certificate, chain_pem, serial, _index) = trust
        .issue(&csr_pem, profile, "")
        .await
        .map_err(|error| IssueError::Trustd(dbus_sentence(&error)))?;
    let root_pem = trust
        .root_certificate()
        .await
        .map_err(|error| IssueError::Trustd(dbus_sentence(&error)))?;
    Ok(Issued {
        chain_pem,
        key_pem,
        serial,
        root_pem,
    })
}

/// [`issue`], made into a TLS identity with its renewal time: what a service that presents its
/// own certificate on a listener or as a client needs from trustd.
pub async fn issue_identity(
    bus: &Bus,
    name: &RequestedName,
    profile: &str,
) -> Result<IssuedIdentity, IssueError> {
    let issued = issue(bus, name, profile).await?;
    let identity =
        crate::tls::Identity::from_pem(issued.chain_pem.as_bytes(), issued.key_pem.as_bytes())
            .map_err(|e| IssueError::Invalid(e.to_string()))?;
    let (not_before, not_after) = validity(identity.leaf().as_ref())
        .ok_or_else(|| IssueError::Invalid("the certificate does not parse".to_owned()))?;
    Ok(IssuedIdentity {
        identity,
        serial: issued.serial,
        renew_at: renewal_time(not_before, not_after),
        not_after,
    })
}

/// A certificate's validity (not before, not after); `None` when it does not parse.
pub fn validity(certificate_der: &[u8]) -> Option<(SystemTime, SystemTime)> {
    let (_, certificate) = X509Certificate::from_der(certificate_der).ok()?;
    let at = |time: x509_parser::time::ASN1Time| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(time.timestamp()).unwrap_or(0))
    };
    Some((
        at(certificate.validity().not_before),
        at(certificate.validity().not_after),
    ))
}

/// When to ask for a new certificate: two thirds into its life, so a trustd that is down for a
/// while still leaves a third to retry in.
pub fn renewal_time(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let life = not_after.duration_since(not_before).unwrap_or_default();
    not_before + life * 2 / 3
}

/// A D-Bus refusal as the operator's sentence (trustd's error messages are sentences).
pub fn dbus_sentence(error: &zbus::Error) -> String {
    match error {
        zbus::Error::MethodError(name, Some(message), _) => format!("{message} ({name})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requested_names(csr_pem: &str) -> (Vec<String>, String) {
        use rustls_pki_types::pem::PemObject;
        let der =
            rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
                .unwrap();
        let (_, csr) =
            x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
                .unwrap();
        csr.verify_signature().unwrap();
        let names = csr
            .requested_extensions()
            .into_iter()
            .flatten()
            .filter_map(|extension| match extension {
                x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) => Some(
                    san.general_names
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect();
        (names, csr.certification_request_info.subject.to_string())
    }

    #[test]
    fn requests_name_a_dns_name_or_a_uri_and_repeat_it_as_the_common_name() {
        let (csr, key) =
            certificate_request(&RequestedName::Dns("sited.bunker-7.example.net".into())).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
        let (names, subject) = requested_names(&csr);
        assert_eq!(names, ["DNSName(sited.bunker-7.example.net)"]);
        assert_eq!(subject, "CN=sited.bunker-7.example.net");
        let (csr, _) =
            certificate_request(&RequestedName::Uri("bunkeros:hub:lisbon-1".into())).unwrap();
        let (names, subject) = requested_names(&csr);
        assert_eq!(names, ["URI(bunkeros:hub:lisbon-1)"]);
        assert_eq!(subject, "CN=bunkeros:hub:lisbon-1");
        let again =
            certificate_request(&RequestedName::Uri("bunkeros:hub:lisbon-1".into())).unwrap();
        assert_ne!(again.1, key, "two requests, two keys");
    }

    #[test]
    fn renewal_comes_two_thirds_into_the_life() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let end = start + Duration::from_secs(24 * 3600);
        assert_eq!(
            renewal_time(start, end),
            start + Duration::from_secs(16 * 3600)
        );
        assert_eq!(
            renewal_time(end, start),
            end,
            "a nonsense validity renews at once"
        );
    }
}
