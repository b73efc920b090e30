//! The CA against the real CA key in a software TPM (swtpm), and its output against real
//! verifiers: `openssl verify`, `openssl x509 -text` and rustls-webpki.
//!
//! Request-only and rule-only tests need no CA key; everything that signs uses
//! [`crate::tpm::TpmCaKey`] in its own swtpm, so a PCR extend in one test seals no other.

mod chain;
mod crafted_csr;
mod csr;
mod issue;
mod profile;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use appliance::state::StateDir;
use appliance::testtpm::Swtpm;
use rcgen::{CertificateParams, KeyPair, SignatureAlgorithm};
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;
use tss_esapi::handles::PcrHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::structures::{Digest, DigestValues};

use super::*;
use crate::tpm::connection::command;
use crate::tpm::{PolicyMode, TpmCaKey, TpmConnection};

/// The site every test issues for.
const SITE: &str = "oslo.bunker.example";

fn site_domain() -> DnsName {
    DnsName::parse(SITE).unwrap()
}

/// The default policy, with a device address range so IP names can be tested.
fn policy() -> IssuancePolicy {
    let mut policy = IssuancePolicy::for_site(site_domain());
    policy.device.ip_ranges = vec!["10.20.0.0/16".parse().unwrap()];
    policy
}

fn site() -> SiteIdentity {
    SiteIdentity::new("Oslo-1", "Nordic Bunkers AS").unwrap()
}

/// A software TPM holding a CA key bound to PCRs 11 and 16, with trustd's state beside it.
struct TpmCa {
    tpm: Swtpm,
    connection: Arc<TpmConnection>,
    key: Arc<TpmCaKey>,
    _root: TempDir,
    state: StateDir,
    serials: Arc<MemorySerialLedger>,
}

impl TpmCa {
    fn start() -> Self {
        let tpm = Swtpm::start().expect("swtpm starts (Debian package swtpm)");
        let connection = Arc::new(
            TpmConnection::open_tcti(&tpm.tcti())
                .unwrap_or_else(|e| panic!("{e}\nswtpm log:\n{}", tpm.log())),
        );
        let root = TempDir::new().unwrap();
        let state = StateDir::new(root.path().join("trustd")).unwrap();
        let policy = PolicyMode::from_current_pcrs(&connection, &[11, 16]).unwrap();
        let key = Arc::new(TpmCaKey::create(Arc::clone(&connection), &state, policy).unwrap());
        Self {
            tpm,
            connection,
            key,
            _root: root,
            state,
            serials: Arc::new(MemorySerialLedger::new()),
        }
    }

    /// The CA over this TPM key and state, as trustd opens it at start.
    fn open(&self, policy: IssuancePolicy) -> Result<CertificateAuthority, CaError> {
        CertificateAuthority::open(
            Arc::clone(&self.key) as Arc<dyn crate::ca_key::CaKey>,
            self.state.clone(),
            policy,
            Arc::clone(&self.serials) as Arc<dyn SerialLedger>,
        )
    }

    /// A CA with a fresh self-signed root.
    fn root_ca(&self) -> CertificateAuthority {
        let mut ca = self.open(policy()).unwrap();
        ca.create_root(&site()).unwrap();
        ca
    }

    /// Extends PCR 16: the boot no longer matches the key's policy.
    fn tamper_boot(&self) {
        let mut values = DigestValues::new();
        values.set(
            HashingAlgorithm::Sha256,
            Digest::try_from(Sha256::digest(b"an unexpected boot component").to_vec()).unwrap(),
        );
        self.connection
            .run(|context, _| {
                context
                    .execute_with_nullauth_session(|c| {
                        c.pcr_extend(PcrHandle::Pcr16, values.clone())
                    })
                    .map_err(command("extending a PCR"))
            })
            .unwrap_or_else(|e| panic!("{e}\nswtpm log:\n{}", self.tpm.log()));
    }
}

/// A CSR for `names` (DNS, IP or `uri:`/`email:`-prefixed) with CN `cn`, signed by a new key.
fn csr_with(alg: &'static SignatureAlgorithm, cn: Option<&str>, names: &[&str]) -> Vec<u8> {
    let key = KeyPair::generate_for(alg).unwrap();
    csr_for_key(&key, cn, names)
}

fn csr_for_key(key: &KeyPair, cn: Option<&str>, names: &[&str]) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names = names.iter().map(|n| san(n)).collect();
    if let Some(cn) = cn {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    params.serialize_request(key).unwrap().der().to_vec()
}

fn san(text: &str) -> rcgen::SanType {
    if let Some(uri) = text.strip_prefix("uri:") {
        rcgen::SanType::URI(uri.try_into().unwrap())
    } else if let Some(email) = text.strip_prefix("email:") {
        rcgen::SanType::Rfc822Name(email.try_into().unwrap())
    } else if let Ok(address) = text.parse() {
        rcgen::SanType::IpAddress(address)
    } else {
        rcgen::SanType::DnsName(text.try_into().unwrap())
    }
}

/// A parsed P-256 CSR.
fn p256_csr(cn: Option<&str>, names: &[&str]) -> ParsedCsr {
    parse_csr(&csr_with(&rcgen::PKCS_ECDSA_P256_SHA256, cn, names)).unwrap()
}

/// Runs openssl in `dir`; panics with its output unless it succeeds.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let (ok, output) = openssl_status(dir, args);
    assert!(ok, "openssl {} failed:\n{output}", args.join(" "));
    output
}

/// Runs openssl in `dir`: whether it succeeded, and stdout + stderr.
fn openssl_status(dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (Debian package openssl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Writes `content` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// rustls-webpki's verdict on `leaf` under `root` (with `intermediates`) for `usage`.
fn webpki_verify(
    root_der: &[u8],
    intermediates: &[Vec<u8>],
    leaf_der: &[u8],
    usage: webpki::KeyUsage,
) -> Result<(), webpki::Error> {
    let root = CertificateDer::from(root_der);
    let anchor = webpki::anchor_from_trusted_cert(&root)?;
    let leaf = CertificateDer::from(leaf_der);
    let end_entity = webpki::EndEntityCert::try_from(&leaf)?;
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|der| CertificateDer::from(der.as_slice()))
        .collect();
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &intermediates,
            UnixTime::now(),
            usage,
            None,
            None,
        )
        .map(|_| ())
}

/// The DER of the first certificate in a PEM text.
fn pem_der(text: &str) -> Vec<u8> {
    pem::parse(text).unwrap().into_contents()
}
