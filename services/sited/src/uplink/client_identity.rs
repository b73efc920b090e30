//! The certificate this site presents to the control centre's Alertmanager.
//!
//! `source = "trustd"` (the appliance's way, as hubd does it for its links): a fresh P-256 key
//! made in memory, a request for the configured DNS name sent to the local trustd
//! (`org.bunkeros.Trust1.Issue`, profile `service`, whose certificates carry clientAuth), and
//! the chain it returns. The key never touches the disk; a restarted sited gets a new
//! certificate, and a running one a new key and certificate two thirds into the certificate's
//! life. `source = "pem"`: files, where no trustd runs (and in tests).

use std::time::{Duration, SystemTime};

use appliance::dbus::Bus;
use appliance::dbus::contracts::Trust1Proxy;
use appliance::tls::Identity;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::settings::{ClientIdentitySource, UplinkSettings};

/// The trustd profile the uplink's client certificate is issued under.
pub const TRUSTD_PROFILE: &str = "service";

/// Why there is no client identity (yet).
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    Pem(String),
    #[error("cannot reach trustd on the system bus: {0}")]
    Bus(#[from] appliance::dbus::BusError),
    #[error("trustd did not issue the uplink certificate: {0}")]
    Trustd(String),
    #[error("cannot make the uplink key and its certificate request: {0}")]
    Request(#[from] rcgen::Error),
    #[error("trustd's answer does not make a client identity: {0}")]
    Invalid(String),
}

/// The identity and when to replace it.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub identity: Identity,
    /// For the log: `trustd (serial 1f…)` or `PEM <chain>`.
    pub source: String,
    /// Two thirds into a trustd certificate's life; `None` for PEM files.
    pub renew_at: Option<SystemTime>,
}

/// Obtains the identity `[uplink.client]` names; `bus` is where trustd is.
pub async fn obtain(settings: &UplinkSettings, bus: &Bus) -> Result<ClientIdentity, IdentityError> {
    match &settings.client {
        ClientIdentitySource::Pem { chain, .. } => Ok(ClientIdentity {
            identity: settings.pem_identity().map_err(IdentityError::Pem)?,
            source: format!("PEM {}", chain.display()),
            renew_at: None,
        }),
        ClientIdentitySource::Trustd { name } => from_trustd(name, bus).await,
    }
}

async fn from_trustd(name: &str, bus: &Bus) -> Result<ClientIdentity, IdentityError> {
    let (csr_pem, key_pem) = certificate_request(name)?;
    let connection = appliance::dbus::connect(bus).await?;
    let trust = Trust1Proxy::new(&connection)
        .await
        .map_err(|e| IdentityError::Trustd(e.to_string()))?;
    let (_certificate, chain_pem, serial, _index) = trust
        .issue(&csr_pem, TRUSTD_PROFILE, "")
        .await
        .map_err(|e| IdentityError::Trustd(dbus_sentence(&e)))?;
    let identity = Identity::from_pem(chain_pem.as_bytes(), key_pem.as_bytes())
        .map_err(|e| IdentityError::Invalid(e.to_string()))?;
    let renew_at = renewal_time(&identity)?;
    Ok(ClientIdentity {
        identity,
        source: format!("trustd (serial {serial})"),
        renew_at: Some(renew_at),
    })
}

/// A new P-256 key (PEM, in memory only) and a request for the DNS name `name`.
pub fn certificate_request(name: &str) -> Result<(String, String), IdentityError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(vec![name.to_owned()])?;
    // trustd wants the common name to repeat one of the requested names.
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, key.serialize_pem()))
}

/// Two thirds into the leaf's validity.
fn renewal_time(identity: &Identity) -> Result<SystemTime, IdentityError> {
    let (_, leaf) = X509Certificate::from_der(identity.leaf().as_ref())
        .map_err(|_| IdentityError::Invalid("the certificate does not parse".into()))?;
    let at = |time: x509_parser::time::ASN1Time| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(time.timestamp()).unwrap_or(0))
    };
    let not_before = at(leaf.validity().not_before);
    let not_after = at(leaf.validity().not_after);
    let life = not_after.duration_since(not_before).unwrap_or_default();
    Ok(not_before + life * 2 / 3)
}

/// A D-Bus refusal as the operator's sentence (trustd's error messages are sentences).
fn dbus_sentence(error: &zbus::Error) -> String {
    match error {
        zbus::Error::MethodError(name, Some(message), _) => format!("{message} ({name})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_service_by_dns_and_the_key_stays_in_memory_pem() {
        let (csr_pem, key_pem) = certificate_request("sited.bunker-7.example.net").unwrap();
        assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let der = rustls_pki_types::CertificateSigningRequestDer::from(
            rustls_pki_types::pem::PemObject::from_pem_slice(csr_pem.as_bytes())
                .map(|d: rustls_pki_types::CertificateSigningRequestDer<'_>| d.as_ref().to_vec())
                .unwrap(),
        );
        let (_, csr) =
            x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
                .unwrap();
        csr.verify_signature().unwrap();
        let subject = csr.certification_request_info.subject.to_string();
        assert_eq!(subject, "CN=sited.bunker-7.example.net");
        let names: Vec<String> = csr
            .requested_extensions()
            .into_iter()
            .flatten()
            .filter_map(|ext| match ext {
                x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) => Some(
                    san.general_names
                        .iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(names, ["DNSName(sited.bunker-7.example.net)"]);
    }
}
