//! Challenge validation: the server connects to the identifier and checks the client's proof.
//!
//! - `http-01` (RFC 8555 §8.3): `GET http://<name>:<http_port>/.well-known/acme-challenge/<token>`
//!   must answer 200 with the key authorization (trailing whitespace ignored). Redirects are not
//!   followed: on a site network a redirect can only point somewhere the name's owner did not
//!   prove anything about.
//! - `tls-alpn-01` (RFC 8737): a TLS handshake to `<name>:<tls_port>` with SNI `<name>` and
//!   ALPN `acme-tls/1` must present a certificate with exactly that one name and a critical
//!   acmeIdentifier extension holding SHA-256 of the key authorization. The handshake
//!   signature is checked against that certificate, so the responder must hold its key.
//!   TLS 1.3 only, like every BunkerOS TLS client.
//!
//! Names are resolved through the configured address table first, because devices on the site
//! floor have no DNS; then, if allowed, through the system resolver. Each attempt has a time
//! limit, a failed attempt is retried a few times (the client's responder may be a moment
//! late), and the last failure is recorded in the challenge as the RFC 8555 error the client
//! sees: `dns`, `connection`, `tls` or `incorrectResponse`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::config::ValidationConfig;
use super::jwk::quote;
use super::model::{ChallengeType, Identifier};
use super::problem::{Problem, ProblemType};

/// The ALPN protocol of tls-alpn-01.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// OID of the acmeIdentifier extension (RFC 8737 §6.1).
const OID_ACME_IDENTIFIER: &str = "1.3.6.1.5.5.7.1.31";
/// Largest http-01 response body read (a key authorization is about 90 bytes).
const MAX_HTTP01_BODY: usize = 8 * 1024;

/// What to validate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationRequest {
    /// The identifier whose control is being proven.
    pub identifier: Identifier,
    /// The challenge type.
    pub kind: ChallengeType,
    /// The challenge token.
    pub token: String,
    /// `token.thumbprint`.
    pub key_authorization: String,
}

/// Performs validations.
pub struct Validator {
    config: ValidationConfig,
    tls: Arc<ClientConfig>,
}

impl Validator {
    /// A validator with `config`'s ports, addresses and timings.
    pub fn new(config: ValidationConfig) -> Self {
        Self {
            config,
            tls: Arc::new(tls_alpn_client_config()),
        }
    }

    /// Validates `request`, retrying as configured; the error is the last attempt's.
    pub async fn validate(&self, request: &ValidationRequest) -> Result<(), Problem> {
        let attempts = self.config.attempts.max(1);
        let mut last = Problem::internal("no validation attempt was made");
        for attempt in 1..=attempts {
            match tokio::time::timeout(self.config.timeout(), self.attempt(request)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(problem)) => last = problem,
                Err(_) => {
                    last = Problem::new(
                        ProblemType::Connection,
                        format!(
                            "{} did not complete the {} check within {} s",
                            request.identifier.text(),
                            request.kind.name(),
                            self.config.timeout_secs
                        ),
                    );
                }
            }
            tracing::debug!(identifier = %request.identifier.text(), attempt, error = %last, "ACME: validation attempt failed");
            if attempt < attempts {
                tokio::time::sleep(self.config.retry_delay()).await;
            }
        }
        Err(last)
    }

    async fn attempt(&self, request: &ValidationRequest) -> Result<(), Problem> {
        match request.kind {
            ChallengeType::Http01 => {
                let port = self.config.http_port;
                let address = self.resolve(&request.identifier, port).await?;
                http01(address, &request.identifier, port, request).await
            }
            ChallengeType::TlsAlpn01 => {
                let address = self
                    .resolve(&request.identifier, self.config.tls_port)
                    .await?;
                self.tls_alpn01(address, request).await
            }
        }
    }

    /// The address to connect to: the configured table, the IP identifier itself, or the
    /// system resolver.
    async fn resolve(&self, identifier: &Identifier, port: u16) -> Result<SocketAddr, Problem> {
        let text = identifier.text();
        if let Some(address) = self.config.addresses.get(&text) {
            return Ok(SocketAddr::new(*address, port));
        }
        if let Identifier::Ip(address) = identifier {
            return Ok(SocketAddr::new(*address, port));
        }
        if !self.config.system_resolver {
            return Err(Problem::new(
                ProblemType::Dns,
                format!(
                    "no address is configured for {text} (acme.validation.addresses) and system resolution is off"
                ),
            ));
        }
        let dns =
            |why: String| Problem::new(ProblemType::Dns, format!("{text} does not resolve: {why}"));
        tokio::net::lookup_host((text.as_str(), port))
            .await
            .map_err(|e| dns(e.to_string()))?
            .next()
            .ok_or_else(|| dns("no addresses".into()))
    }

    async fn tls_alpn01(
        &self,
        address: SocketAddr,
        request: &ValidationRequest,
    ) -> Result<(), Problem> {
        let name = request.identifier.text();
        let server_name = sni_name(&request.identifier)?;
        let stream = connect(address, &name).await?;
        let tls = TlsConnector::from(Arc::clone(&self.tls))
            .connect(server_name, stream)
            .await
            .map_err(|e| {
                Problem::new(
                    ProblemType::Tls,
                    format!("the TLS handshake with {name} at {address} failed: {e}"),
                )
            })?;
        let (_, connection) = tls.get_ref();
        if connection.alpn_protocol() != Some(ACME_TLS_ALPN) {
            return Err(Problem::new(
                ProblemType::Tls,
                format!("{name} at {address} did not negotiate ALPN acme-tls/1"),
            ));
        }
        let certificate = connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .ok_or_else(|| Problem::new(ProblemType::Tls, format!("{name} sent no certificate")))?;
        check_tls_alpn_certificate(certificate, &request.identifier, &request.key_authorization)
    }
}

async fn connect(address: SocketAddr, name: &str) -> Result<TcpStream, Problem> {
    TcpStream::connect(address).await.map_err(|e| {
        Problem::new(
            ProblemType::Connection,
            format!("cannot connect to {name} at {address}: {e}"),
        )
    })
}

async fn http01(
    address: SocketAddr,
    identifier: &Identifier,
    port: u16,
    request: &ValidationRequest,
) -> Result<(), Problem> {
    let name = identifier.text();
    let path = format!("/.well-known/acme-challenge/{}", request.token);
    let url = format!("http://{}{path}", host_header(identifier, port));
    let failed = |why: String| {
        Problem::new(
            ProblemType::Connection,
            format!("{url} at {address}: {why}"),
        )
    };
    let stream = connect(address, &name).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let driver = tokio::spawn(connection);
    let http_request = Request::get(path.as_str())
        .header(hyper::header::HOST, host_header(identifier, port))
        .header(hyper::header::USER_AGENT, "bunkeros-trustd-acme")
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed(e.to_string()))?;
    let outcome = async {
        let response = sender
            .send_request(http_request)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let incorrect =
            |why: String| Problem::new(ProblemType::IncorrectResponse, format!("{url}: {why}"));
        if response.status() != StatusCode::OK {
            return Err(incorrect(format!(
                "answered HTTP {} (redirects are not followed)",
                response.status()
            )));
        }
        let body = Limited::new(response.into_body(), MAX_HTTP01_BODY)
            .collect()
            .await
            .map_err(|e| {
                incorrect(format!(
                    "the body is unreadable or over {MAX_HTTP01_BODY} bytes: {e}"
                ))
            })?
            .to_bytes();
        let text = body.trim_ascii_end();
        if text != request.key_authorization.as_bytes() {
            return Err(incorrect(format!(
                "served \"{}\" instead of the key authorization",
                quote(&String::from_utf8_lossy(text))
            )));
        }
        Ok(())
    }
    .await;
    driver.abort();
    outcome
}

/// `Host` for the check: the name, with the port when it is not 80.
fn host_header(identifier: &Identifier, port: u16) -> String {
    let host = match identifier {
        Identifier::Ip(IpAddr::V6(address)) => format!("[{address}]"),
        other => other.text(),
    };
    if port == 80 {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// The SNI of tls-alpn-01: the DNS name, or for an IP identifier its reverse-DNS name
/// (RFC 8738 §6).
fn sni_name(identifier: &Identifier) -> Result<ServerName<'static>, Problem> {
    let text = match identifier {
        Identifier::Dns(name) => name.to_string(),
        Identifier::Ip(IpAddr::V4(address)) => {
            let o = address.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        Identifier::Ip(IpAddr::V6(address)) => {
            let mut labels: Vec<String> = address
                .octets()
                .iter()
                .flat_map(|b| [b >> 4, b & 0x0f])
                .map(|nibble| format!("{nibble:x}"))
                .collect();
            labels.reverse();
            format!("{}.ip6.arpa", labels.join("."))
        }
    };
    ServerName::try_from(text).map_err(|e| {
        Problem::internal(format!("cannot use the identifier as TLS server name: {e}"))
    })
}

/// Checks an RFC 8737 validation certificate: exactly one subjectAltName, the identifier, and
/// a critical acmeIdentifier extension with SHA-256 of `key_authorization`. Pure, for tests.
pub fn check_tls_alpn_certificate(
    der: &[u8],
    identifier: &Identifier,
    key_authorization: &str,
) -> Result<(), Problem> {
    let incorrect = |why: &str| {
        Problem::new(
            ProblemType::IncorrectResponse,
            format!(
                "the tls-alpn-01 certificate for {} {why}",
                identifier.text()
            ),
        )
    };
    let (_, certificate) =
        X509Certificate::from_der(der).map_err(|_| incorrect("does not parse"))?;
    let san = certificate
        .subject_alternative_name()
        .ok()
        .flatten()
        .ok_or_else(|| incorrect("has no (single) subjectAltName extension"))?;
    let matches = match (san.value.general_names.as_slice(), identifier) {
        ([GeneralName::DNSName(name)], Identifier::Dns(expected)) => {
            name.eq_ignore_ascii_case(expected.as_str())
        }
        ([GeneralName::IPAddress(bytes)], Identifier::Ip(expected)) => match expected {
            IpAddr::V4(v4) => *bytes == v4.octets(),
            IpAddr::V6(v6) => *bytes == v6.octets(),
        },
        _ => false,
    };
    if !matches {
        return Err(incorrect(
            "must name exactly the identifier and nothing else",
        ));
    }
    let extension = certificate
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == OID_ACME_IDENTIFIER)
        .ok_or_else(|| incorrect("has no acmeIdentifier extension"))?;
    if !extension.critical {
        return Err(incorrect(
            "has an acmeIdentifier extension that is not critical",
        ));
    }
    let digest = Sha256::digest(key_authorization.as_bytes());
    let expected: Vec<u8> = [&[0x04, 0x20][..], &digest[..]].concat();
    if extension.value != expected.as_slice() {
        return Err(incorrect("carries the digest of another key authorization"));
    }
    Ok(())
}

/// A TLS client that accepts whatever certificate the responder presents (it is self-signed
/// by design, and judged afterwards by [`check_tls_alpn_certificate`]) while still checking
/// that the handshake was signed by that certificate's key.
fn tls_alpn_client_config() -> ClientConfig {
    let mut config = ClientConfig::builder_with_provider(appliance::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("the aws-lc-rs provider supports TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ResponderCertificate))
        .with_no_client_auth();
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    config
}

/// The handshake-signature check of the tls-alpn-01 client.
///
/// rustls' own helpers go through webpki, which rightly refuses certificates with critical
/// extensions it does not know, and acmeIdentifier is exactly that. So the signature is checked
/// here against the certificate's public key with aws-lc-rs directly; nothing else about the
/// certificate is trusted until [`check_tls_alpn_certificate`] has judged it.
#[derive(Debug)]
struct ResponderCertificate;

/// The TLS 1.3 signature schemes accepted from a responder, with their aws-lc algorithms.
const RESPONDER_SCHEMES: [(
    SignatureScheme,
    &dyn aws_lc_rs::signature::VerificationAlgorithm,
); 6] = [
    (
        SignatureScheme::ECDSA_NISTP256_SHA256,
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
    ),
    (
        SignatureScheme::ECDSA_NISTP384_SHA384,
        &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1,
    ),
    (SignatureScheme::ED25519, &aws_lc_rs::signature::ED25519),
    (
        SignatureScheme::RSA_PSS_SHA256,
        &aws_lc_rs::signature::RSA_PSS_2048_8192_SHA256,
    ),
    (
        SignatureScheme::RSA_PSS_SHA384,
        &aws_lc_rs::signature::RSA_PSS_2048_8192_SHA384,
    ),
    (
        SignatureScheme::RSA_PSS_SHA512,
        &aws_lc_rs::signature::RSA_PSS_2048_8192_SHA512,
    ),
];

impl ServerCertVerifier for ResponderCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Never reached: the configuration offers TLS 1.3 only.
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let bad_signature =
            || rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature);
        let algorithm = RESPONDER_SCHEMES
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algorithm)| *algorithm)
            .ok_or_else(bad_signature)?;
        let (_, certificate) = X509Certificate::from_der(cert.as_ref()).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        let key = certificate.public_key().subject_public_key.data.as_ref();
        aws_lc_rs::signature::UnparsedPublicKey::new(algorithm, key)
            .verify(message, dss.signature())
            .map_err(|_| bad_signature())?;
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        RESPONDER_SCHEMES
            .iter()
            .map(|(scheme, _)| *scheme)
            .collect()
    }
}
