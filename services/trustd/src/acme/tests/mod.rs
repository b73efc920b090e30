//! Tests of the ACME server: pure parsing ([`parsing`]), refusals that must change nothing
//! ([`refusals`]), whole flows through the engine with an in-test client and a CA key in a
//! software TPM ([`flows`]), and the real clients certbot and lego over HTTPS ([`clients`]).

mod clients;
mod flows;
mod parsing;
mod refusals;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use appliance::state::StateDir;
use appliance::testtpm::Swtpm;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use hyper::Method;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::encoding::b64url;
use super::*;
use crate::ca::name_rules;
use crate::ca::{
    CertificateAuthority, DnsName, IssuancePolicy, IssueError, MemorySerialLedger, Profile,
    SerialLedger, SiteIdentity, SubjectName, parse_csr,
};
use crate::tpm::{PolicyMode, TpmCaKey, TpmConnection};

/// The site every test issues for.
pub(super) const SITE: &str = "oslo.bunker.example";
/// The origin the in-process tests pretend to serve at.
pub(super) const BASE: &str = "https://acme.oslo.bunker.example";

pub(super) fn site() -> DnsName {
    DnsName::parse(SITE).unwrap()
}

/// A device name of the site.
pub(super) fn device(label: &str) -> String {
    format!("{label}.devices.{SITE}")
}

/// An account or certificate key of a test client.
pub(super) enum TestKey {
    /// ECDSA with the given JWK curve name.
    Ec(EcdsaKeyPair, &'static str),
    /// RSA.
    Rsa(RsaKeyPair),
}

impl TestKey {
    pub fn p256() -> Self {
        Self::Ec(
            EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
            "P-256",
        )
    }

    pub fn p384() -> Self {
        Self::Ec(
            EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap(),
            "P-384",
        )
    }

    /// The same key as an rcgen P-256 key pair (for CSRs signed by a key that also signs
    /// requests).
    pub fn from_rcgen(key: &rcgen::KeyPair) -> Self {
        Self::Ec(
            EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &key.serialize_der(),
            )
            .unwrap(),
            "P-256",
        )
    }

    pub fn rsa(size: KeySize) -> Self {
        Self::Rsa(RsaKeyPair::generate(size).unwrap())
    }

    pub fn alg(&self) -> &'static str {
        match self {
            Self::Ec(_, "P-256") => "ES256",
            Self::Ec(..) => "ES384",
            Self::Rsa(_) => "RS256",
        }
    }

    pub fn jwk(&self) -> Value {
        match self {
            Self::Ec(pair, curve) => {
                let point = pair.public_key().as_ref();
                let half = (point.len() - 1) / 2;
                json!({
                    "kty": "EC", "crv": curve,
                    "x": b64url(&point[1..1 + half]), "y": b64url(&point[1 + half..]),
                })
            }
            Self::Rsa(pair) => {
                let public = pair.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64url(public.modulus().big_endian_without_leading_zero()),
                    "e": b64url(public.exponent().big_endian_without_leading_zero()),
                })
            }
        }
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Self::Ec(pair, _) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
            Self::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .unwrap();
                signature
            }
        }
    }

    pub fn thumbprint(&self) -> String {
        AccountKey::from_json(&self.jwk()).unwrap().thumbprint()
    }
}

/// A flattened JWS with `protected` as header and `payload` (None: POST-as-GET), signed by
/// `key`.
pub(super) fn jws_bytes(key: &TestKey, protected: &Value, payload: Option<&Value>) -> Vec<u8> {
    let protected = b64url(protected.to_string().as_bytes());
    let payload = payload.map_or_else(String::new, |p| b64url(p.to_string().as_bytes()));
    let signature = key.sign(format!("{protected}.{payload}").as_bytes());
    json!({"protected": protected, "payload": payload, "signature": b64url(&signature)})
        .to_string()
        .into_bytes()
}

/// A backend that must never be reached (refusal tests), and counts if it is.
#[derive(Default)]
pub(super) struct UnreachableBackend {
    calls: AtomicUsize,
}

impl UnreachableBackend {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl AcmeBackend for UnreachableBackend {
    fn issue(&self, _: &[u8], _: Profile, _: &str) -> Result<IssuedCert, BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(BackendError::Internal(
            "the test backend issues nothing".into(),
        ))
    }

    fn revoke(&self, _: &[u8], _: u8, _: &str) -> Result<(), BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(BackendError::Internal(
            "the test backend revokes nothing".into(),
        ))
    }
}

/// The test adapter over the real CA with its key in a software TPM. Revocations are recorded
/// in memory (trustd's issuance pipeline keeps them durably and publishes the CRL).
pub(super) struct CaBackend {
    ca: Mutex<CertificateAuthority>,
    pub revoked: Mutex<Vec<(Vec<u8>, u8, String)>>,
    pub issued: Mutex<Vec<(Profile, String)>>,
    _tpm: Swtpm,
    _dir: TempDir,
}

impl CaBackend {
    /// A software TPM, a CA key in it, and a self-signed site root whose service profile also
    /// allows 127.0.0.1 (the ACME server's own certificate, which clients reach by address).
    pub fn start() -> Arc<Self> {
        let tpm = Swtpm::start().expect("swtpm starts (Debian package swtpm; `make deps`)");
        let connection = Arc::new(
            TpmConnection::open_tcti(&tpm.tcti())
                .unwrap_or_else(|e| panic!("{e}\nswtpm log:\n{}", tpm.log())),
        );
        let dir = TempDir::new().unwrap();
        let state = StateDir::new(dir.path().join("trustd")).unwrap();
        let policy_mode = PolicyMode::from_current_pcrs(&connection, &[11, 16]).unwrap();
        let key = Arc::new(TpmCaKey::create(connection, &state, policy_mode).unwrap());
        let mut policy = IssuancePolicy::for_site(site());
        policy.service.ip_ranges = vec!["127.0.0.1/32".parse().unwrap()];
        let serials: Arc<dyn SerialLedger> = Arc::new(MemorySerialLedger::new());
        let mut ca = CertificateAuthority::open(key, state, policy, serials).unwrap();
        ca.create_root(&SiteIdentity::new("Oslo-1", "Nordic Bunkers AS").unwrap())
            .unwrap();
        Arc::new(Self {
            ca: Mutex::new(ca),
            revoked: Mutex::new(Vec::new()),
            issued: Mutex::new(Vec::new()),
            _tpm: tpm,
            _dir: dir,
        })
    }

    pub fn root_pem(&self) -> String {
        self.ca.lock().unwrap().root_pem().unwrap()
    }

    /// A server identity for the ACME listener: `acme.<site>` and 127.0.0.1, profile service.
    pub fn server_identity(&self) -> appliance::tls::Identity {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.subject_alt_names = vec![
            rcgen::SanType::DnsName(format!("acme.{SITE}").try_into().unwrap()),
            rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()),
        ];
        let csr = params.serialize_request(&key).unwrap();
        let issued = self
            .issue(csr.der(), Profile::Service, "test: server identity")
            .unwrap();
        appliance::tls::Identity::from_pem(
            issued.chain_pem.as_bytes(),
            key.serialize_pem().as_bytes(),
        )
        .unwrap()
    }

    /// Whether `cert_der` was revoked through the backend.
    pub fn was_revoked(&self, cert_der: &[u8]) -> bool {
        self.revoked
            .lock()
            .unwrap()
            .iter()
            .any(|(der, ..)| der == cert_der)
    }
}

impl AcmeBackend for CaBackend {
    fn issue(
        &self,
        csr_der: &[u8],
        profile: Profile,
        requester: &str,
    ) -> Result<IssuedCert, BackendError> {
        let csr = parse_csr(csr_der).map_err(|e| BackendError::BadCsr(e.to_string()))?;
        let issued = self
            .ca
            .lock()
            .unwrap()
            .issue(&csr, profile, None)
            .map_err(|e| match e {
                IssueError::Names(_) | IssueError::OutsideCaConstraints(_) => {
                    BackendError::NamesRefused(e.to_string())
                }
                IssueError::NotReady(_) | IssueError::Sealed(_) => {
                    BackendError::Unavailable(e.to_string())
                }
                other => BackendError::Internal(other.to_string()),
            })?;
        self.issued
            .lock()
            .unwrap()
            .push((profile, requester.to_owned()));
        let root = self.ca.lock().unwrap().root_pem().unwrap_or_default();
        Ok(IssuedCert {
            cert_pem: issued.pem,
            chain_pem: format!("{}{root}", issued.chain_pem),
            serial: issued.serial.to_hex(),
        })
    }

    fn revoke(&self, cert_der: &[u8], reason: u8, requester: &str) -> Result<(), BackendError> {
        let mut revoked = self.revoked.lock().unwrap();
        if revoked.iter().any(|(der, ..)| der == cert_der) {
            return Err(BackendError::AlreadyRevoked(
                "the certificate is already revoked".into(),
            ));
        }
        revoked.push((cert_der.to_vec(), reason, requester.to_owned()));
        Ok(())
    }

    fn check_names(&self, profile: Profile, names: &[SubjectName]) -> Result<(), BackendError> {
        let ca = self.ca.lock().unwrap();
        name_rules::authorise(ca.policy(), profile, None, names)
            .map(|_| ())
            .map_err(|e| BackendError::NamesRefused(e.to_string()))
    }
}

/// An engine at [`BASE`] over `backend`, with accounts in `dir`.
pub(super) fn engine(
    backend: Arc<dyn AcmeBackend>,
    config: AcmeConfig,
    dir: &std::path::Path,
) -> Arc<AcmeService> {
    let store = AcmeStore::open(
        StateDir::new(dir.join("acme")).unwrap(),
        config.limits.max_nonces,
    )
    .unwrap();
    AcmeService::new(config, BASE.to_owned(), &site(), store, backend).unwrap()
}

/// A configuration for in-process tests: validation against 127.0.0.1 only, quickly.
pub(super) fn test_config(http_port: u16) -> AcmeConfig {
    let mut config = AcmeConfig::new("127.0.0.1:0".parse().unwrap());
    config.validation.http_port = http_port;
    config.validation.system_resolver = false;
    config.validation.attempts = 1;
    config.validation.timeout_secs = 5;
    config
}

/// A client speaking to an engine in-process: signs requests, tracks the nonce and its `kid`.
pub(super) struct TestClient {
    pub service: Arc<AcmeService>,
    pub key: TestKey,
    pub kid: Option<String>,
}

impl TestClient {
    pub fn new(service: &Arc<AcmeService>, key: TestKey) -> Self {
        Self {
            service: Arc::clone(service),
            key,
            kid: None,
        }
    }

    pub async fn nonce(&self) -> String {
        let response = self
            .service
            .handle(&Method::HEAD, "/new-nonce", None, &[])
            .await;
        response.header("Replay-Nonce").unwrap().to_owned()
    }

    /// The protected header this client would send to `path` with `nonce`.
    pub fn header(&self, path: &str, nonce: &str) -> Value {
        let mut header =
            json!({"alg": self.key.alg(), "nonce": nonce, "url": format!("{BASE}{path}")});
        match &self.kid {
            Some(kid) => header["kid"] = json!(kid),
            None => header["jwk"] = self.key.jwk(),
        }
        header
    }

    /// POSTs raw bytes as `application/jose+json`.
    pub async fn post_raw(&self, path: &str, body: &[u8]) -> AcmeResponse {
        self.service
            .handle(&Method::POST, path, Some("application/jose+json"), body)
            .await
    }

    /// POSTs `payload` (None: POST-as-GET) to `path`, signed with a fresh nonce.
    pub async fn post(&self, path: &str, payload: Option<&Value>) -> AcmeResponse {
        let header = self.header(path, &self.nonce().await);
        self.post_raw(path, &jws_bytes(&self.key, &header, payload))
            .await
    }

    /// Registers an account and remembers its `kid`.
    pub async fn register(&mut self) -> AcmeResponse {
        let response = self
            .post("/new-account", Some(&json!({"termsOfServiceAgreed": true, "contact": ["mailto:ops@oslo.bunker.example"]})))
            .await;
        assert!(matches!(response.status, 200 | 201), "{response:?}");
        self.kid = Some(response.header("Location").unwrap().to_owned());
        response
    }
}

/// The path part of one of the server's URLs.
pub(super) fn path_of(url: &str) -> &str {
    url.strip_prefix(BASE).unwrap_or(url)
}

/// The problem type of a response, e.g. `badNonce`.
pub(super) fn problem_type(response: &AcmeResponse) -> String {
    response.json()["type"]
        .as_str()
        .and_then(|t| t.strip_prefix("urn:ietf:params:acme:error:"))
        .unwrap_or_else(|| panic!("not a problem document: {response:?}"))
        .to_owned()
}

/// Serves `body` at every path over plain HTTP on 127.0.0.1 (an http-01 responder); returns
/// the port. The task ends with the test's runtime.
pub(super) async fn http01_responder(bodies: Arc<Mutex<HashSet<String>>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let bodies = Arc::clone(&bodies);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let token = request
                            .uri()
                            .path()
                            .rsplit('/')
                            .next()
                            .unwrap_or_default()
                            .to_owned();
                        let body = bodies
                            .lock()
                            .unwrap()
                            .iter()
                            .find(|b| b.starts_with(&format!("{token}.")))
                            .cloned();
                        async move {
                            let (status, body) = match body {
                                Some(body) => (200, body),
                                None => (404, String::new()),
                            };
                            let mut response = hyper::Response::new(http_body_util::Full::new(
                                hyper::body::Bytes::from(body),
                            ));
                            *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

/// A TCP port free right now on 127.0.0.1.
pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Loopback, for validation address tables.
pub(super) fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}
