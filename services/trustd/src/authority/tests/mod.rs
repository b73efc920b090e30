//! The authority against a real TPM (swtpm, never a mock), real files, and real verifiers
//! (`openssl verify`, `openssl crl`).
//!
//! Each test starts its own swtpm and state directory ([`Site`]), so a PCR extend, a lockdown
//! or a crash in one test touches no other.

mod audit;
mod crash;
mod issue;
mod rate;
mod recovery;
mod revocation;
mod sealed;
mod setup;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use appliance::state::StateDir;
use appliance::testtpm::Swtpm;
use rcgen::{CertificateParams, KeyPair};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;
use tss_esapi::handles::PcrHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::structures::{Digest, DigestValues};

use super::*;
use crate::ca::{DnsName, IssuancePolicy, SiteIdentity};
use crate::tpm::connection::command;
use crate::tpm::{PolicyMode, TpmCaKey, TpmConnection};
use crate::translog::LOG_FILE;

/// The site every test issues for.
const SITE: &str = "oslo.bunker.example";

/// The PCRs test keys are bound to: 11 (what the appliance binds) and 16 (free to extend).
const SELECTION: [u8; 2] = [11, 16];

fn policy() -> IssuancePolicy {
    IssuancePolicy::for_site(DnsName::parse(SITE).unwrap())
}

fn site_identity() -> SiteIdentity {
    SiteIdentity::new("Oslo-1", "Nordic Bunkers AS").unwrap()
}

/// A software TPM holding an enrolled CA key, and trustd's state directory beside it.
struct Site {
    tpm: Swtpm,
    /// swtpm serves one client at a time: every key and authority of a test shares this link,
    /// and it is dropped before another process (a crash child) uses the TPM.
    connection: RefCell<Option<Arc<TpmConnection>>>,
    _root: TempDir,
    state: StateDir,
}

impl Site {
    /// A fresh TPM with a CA key bound to its current PCR 11 and 16.
    fn start() -> Self {
        let tpm = Swtpm::start().expect("swtpm starts (Debian package swtpm)");
        let root = TempDir::new().unwrap();
        let state = StateDir::new(root.path().join("trustd")).unwrap();
        let site = Self {
            tpm,
            connection: RefCell::new(None),
            _root: root,
            state,
        };
        let connection = site.connection();
        let mode = PolicyMode::from_current_pcrs(&connection, &SELECTION).unwrap();
        TpmCaKey::create(connection, &site.state, mode).unwrap();
        site
    }

    /// The shared link to the TPM, opened on first use.
    fn connection(&self) -> Arc<TpmConnection> {
        let mut slot = self.connection.borrow_mut();
        let connection = slot.get_or_insert_with(|| {
            Arc::new(
                TpmConnection::open_tcti(&self.tpm.tcti())
                    .unwrap_or_else(|e| panic!("{e}\nswtpm log:\n{}", self.tpm.log())),
            )
        });
        Arc::clone(connection)
    }

    /// Drops this process's link to the TPM (every authority must be dropped first).
    fn disconnect(&self) {
        self.connection.borrow_mut().take();
    }

    /// The CA key, loaded from the state directory as trustd does at start.
    fn key(&self) -> Arc<TpmCaKey> {
        Arc::new(
            TpmCaKey::load(self.connection(), &self.state)
                .unwrap()
                .expect("the key was enrolled"),
        )
    }

    /// Opens the authority as trustd does at start.
    fn try_open(&self) -> Result<Authority, AuthorityError> {
        Authority::open(
            self.key(),
            self.state.clone(),
            policy(),
            AuthorityConfig::default(),
        )
    }

    fn open(&self) -> Authority {
        self.try_open()
            .unwrap_or_else(|e| panic!("the authority opens: {e}"))
    }

    /// Opens the authority and makes it a self-signed root.
    fn open_root(&self) -> Authority {
        let authority = self.open();
        authority.create_root(&site_identity()).unwrap();
        authority
    }

    /// Extends PCR 16: this boot no longer matches the key's policy.
    fn tamper_boot(&self) {
        let mut values = DigestValues::new();
        values.set(
            HashingAlgorithm::Sha256,
            Digest::try_from(Sha256::digest(b"an unexpected boot component").to_vec()).unwrap(),
        );
        self.connection()
            .run(|context, _| {
                context
                    .execute_with_nullauth_session(|c| {
                        c.pcr_extend(PcrHandle::Pcr16, values.clone())
                    })
                    .map_err(command("extending a PCR"))
            })
            .unwrap_or_else(|e| panic!("{e}\nswtpm log:\n{}", self.tpm.log()));
    }

    fn log_path(&self) -> PathBuf {
        self.state.path().join(LOG_FILE)
    }

    fn store_path(&self) -> PathBuf {
        self.state.path().join(STORE_FILE)
    }

    /// A direct connection to the store's database, for simulating what a crash leaves.
    fn raw_store(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.store_path()).unwrap()
    }
}

/// A P-256 certificate request (DER) for DNS `names`.
fn csr(names: &[&str]) -> Vec<u8> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names = names
        .iter()
        .map(|name| rcgen::SanType::DnsName((*name).try_into().unwrap()))
        .collect();
    params.serialize_request(&key).unwrap().der().to_vec()
}

/// Issues a `service` certificate for `name` under the site.
fn issue(authority: &Authority, name: &str) -> Issued {
    authority
        .issue(
            &csr(&[&format!("{name}.{SITE}")]),
            crate::ca::Profile::Service,
            None,
            "test:issuer",
        )
        .unwrap_or_else(|e| panic!("issuance of {name}: {e}"))
}

/// Everything the state holds that issuance or revocation may change, to prove a refusal
/// changed nothing.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    log: Vec<u8>,
    serials: Vec<(Vec<u8>, String)>,
    certificates: u64,
    revocations: u64,
    crl: Option<(i64, Vec<u8>)>,
}

impl Snapshot {
    fn take(site: &Site) -> Self {
        let db = site.raw_store();
        let serials = db
            .prepare("SELECT serial, state FROM serials ORDER BY serial")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let count = |table: &str| {
            db.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
                row.get::<_, i64>(0)
            })
            .unwrap() as u64
        };
        Self {
            log: std::fs::read(site.log_path()).unwrap(),
            serials,
            certificates: count("certificates"),
            revocations: count("revocations"),
            crl: db
                .query_row("SELECT number, der FROM crl", [], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .ok(),
        }
    }
}

/// Runs openssl in `dir`: whether it succeeded, and stdout + stderr.
fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
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
