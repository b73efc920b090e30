//! The real `bunkerctl ca` binary against trustd's real `org.bunkeros.Trust1` object, served on
//! a private `dbus-daemon` over a CA whose key is in a software TPM, with `openssl` checking
//! what comes out. (The trustd binary itself is tested in trustd's own tests and in the boot
//! test; here the subject is the operator's tool.)

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use appliance::dbus::contracts::TRUST;
use appliance::dbus::testbus::TestBus;
use appliance::state::StateDir;
use appliance::testtpm::Swtpm;
use tempfile::TempDir;
use trustd::authority::{Authority, AuthorityConfig};
use trustd::ca::{DnsName, IssuancePolicy, SiteIdentity};
use trustd::dbus::Trust1;
use trustd::metrics::TrustMetrics;
use trustd::tpm::{PolicyMode, TpmCaKey, TpmConnection};

/// A CA on a private bus, and a scratch directory for files.
struct Site {
    bus: TestBus,
    dir: TempDir,
    _tpm: Swtpm,
    _connection: zbus::Connection,
}

impl Site {
    async fn start() -> Self {
        let tpm = Swtpm::start().expect("swtpm starts (Debian package swtpm)");
        let bus = TestBus::start().expect("dbus-daemon starts (Debian package dbus-daemon)");
        let dir = TempDir::new().unwrap();
        let connection = Arc::new(TpmConnection::open_tcti(&tpm.tcti()).unwrap());
        let state = StateDir::new(dir.path().join("trustd")).unwrap();
        let policy = PolicyMode::from_current_pcrs(&connection, &[16]).unwrap();
        let key = Arc::new(TpmCaKey::create(connection, &state, policy).unwrap());
        let authority = Authority::open(
            key,
            state,
            IssuancePolicy::for_site(DnsName::parse("bunker.test").unwrap()),
            AuthorityConfig::default(),
        )
        .unwrap();
        authority
            .create_root(&SiteIdentity::new("bunker", "BunkerOS").unwrap())
            .unwrap();
        let served = appliance::dbus::serve(
            &bus.bus(),
            TRUST.bus_name,
            TRUST.object_path,
            Trust1::new(Arc::new(authority), TrustMetrics::default()),
        )
        .await
        .unwrap();
        Self {
            bus,
            dir,
            _tpm: tpm,
            _connection: served,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Runs `bunkerctl` with `args` in the scratch directory, on the private bus.
    fn bunkerctl(&self, args: &[&str]) -> Output {
        tokio::task::block_in_place(|| {
            Command::new(env!("CARGO_BIN_EXE_bunkerctl"))
                .args(args)
                .current_dir(self.dir.path())
                .env("DBUS_SYSTEM_BUS_ADDRESS", self.bus.address())
                .env_remove("NO_COLOR")
                .output()
                .expect("bunkerctl runs")
        })
    }

    /// Like [`Site::bunkerctl`], failing the test unless it succeeds; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.bunkerctl(args);
        assert!(
            output.status.success(),
            "bunkerctl {args:?} failed ({}):\n{}{}",
            output.status,
            stdout(&output),
            stderr(&output)
        );
        stdout(&output)
    }

    fn write_csr(&self, file: &str, name: &str) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let csr = params.serialize_request(&key).unwrap();
        std::fs::write(self.dir.path().join(file), csr.pem().unwrap()).unwrap();
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn openssl(dir: &Path, args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (Debian package openssl)")
}

#[tokio::test(flavor = "multi_thread")]
async fn status_issue_list_revoke_and_the_log_verified_offline() {
    let site = Site::start().await;

    let status = site.ok(&["ca", "status"]);
    assert!(
        status.starts_with("trustd: ready: issuing as bunker BunkerOS Site CA (policy pcr 16)\n"),
        "{status}"
    );
    assert!(
        status.contains("certificates 0 issued, 0 revoked"),
        "{status}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&site.ok(&["ca", "status", "--json"])).unwrap();
    assert_eq!(json["state"], "ready");
    let public_key = json["public_key"].as_str().unwrap().to_owned();

    std::fs::write(site.path("root.pem"), site.ok(&["ca", "root"])).unwrap();
    site.write_csr("web.csr", "web.bunker.test");
    let issued = site.ok(&[
        "ca",
        "issue",
        "web.csr",
        "--profile",
        "service",
        "--lifetime",
        "2h",
        "--cert",
        "web.pem",
        "--chain",
        "web-chain.pem",
    ]);
    assert!(issued.starts_with("issued "), "{issued}");
    assert!(
        issued.contains("(log index 0), service profile, valid until 20"),
        "{issued}"
    );
    let verify = openssl(
        site.dir.path(),
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-purpose",
            "sslserver",
            "web.pem",
        ],
    );
    assert!(verify.status.success(), "{}", stderr(&verify));

    let list = site.ok(&["ca", "list"]);
    assert!(list.contains("web.bunker.test"), "{list}");
    assert!(list.contains("service"), "{list}");

    // the log: proof fetched over D-Bus, verified offline with the root alone
    site.ok(&["ca", "log", "proof", "0", "--out", "proof.json"]);
    let verified = site.ok(&[
        "ca",
        "log",
        "verify",
        "proof.json",
        "--root",
        "root.pem",
        "--cert",
        "web.pem",
    ]);
    assert!(
        verified.starts_with("OK: tree head of 1 entry"),
        "{verified}"
    );
    assert!(
        verified.contains("OK: entry 0 is in that tree: certificate CN=web.bunker.test for DNS:web.bunker.test, serial "),
        "{verified}"
    );
    eprintln!("bunkerctl ca log verify:\n{verified}");
    // a bundle for another certificate is refused when --cert names this one
    site.write_csr("api.csr", "api.bunker.test");
    std::fs::write(site.path("head-1.json"), site.ok(&["ca", "log", "head"])).unwrap();
    site.ok(&[
        "ca",
        "issue",
        "api.csr",
        "--profile",
        "service",
        "--cert",
        "api.pem",
    ]);
    site.ok(&["ca", "log", "proof", "1", "--out", "proof-api.json"]);
    let wrong = site.bunkerctl(&[
        "ca",
        "log",
        "verify",
        "proof-api.json",
        "--root",
        "root.pem",
        "--cert",
        "web.pem",
    ]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        stderr(&wrong).contains("which is not the certificate in web.pem"),
        "{}",
        stderr(&wrong)
    );

    // a tampered bundle does not verify
    let bundle = std::fs::read_to_string(site.path("proof.json")).unwrap();
    let mut tampered: serde_json::Value = serde_json::from_str(&bundle).unwrap();
    let root_hex = tampered["tree_head"]["root"].as_str().unwrap().to_owned();
    let flipped = format!(
        "{}{}",
        if root_hex.starts_with('0') { "1" } else { "0" },
        &root_hex[1..]
    );
    tampered["tree_head"]["root"] = serde_json::Value::String(flipped);
    std::fs::write(site.path("tampered.json"), tampered.to_string()).unwrap();
    let refused = site.bunkerctl(&["ca", "log", "verify", "tampered.json", "--root", "root.pem"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("does NOT verify"),
        "{}",
        stderr(&refused)
    );

    // consistency from the head kept before the second issuance, checked with the bare key
    site.ok(&[
        "ca",
        "log",
        "consistency",
        "head-1.json",
        "--out",
        "consistency.json",
    ]);
    let consistent = site.ok(&[
        "ca",
        "log",
        "verify",
        "consistency.json",
        "--public-key",
        &public_key,
        "--old-head",
        "head-1.json",
    ]);
    assert!(
        consistent.contains("OK: the log of 2 entries extends the one of 1 entry"),
        "{consistent}"
    );

    // revoke, and the refusals are trustd's sentences
    let serial = openssl(
        site.dir.path(),
        &["x509", "-noout", "-serial", "-in", "web.pem"],
    );
    let serial = stdout(&serial)
        .trim()
        .trim_start_matches("serial=")
        .to_owned();
    let revoked = site.ok(&["ca", "revoke", &serial, "--reason", "keyCompromise"]);
    assert!(
        revoked.starts_with(&format!("revoked {serial} (keyCompromise)")),
        "{revoked}"
    );
    let again = site.bunkerctl(&["ca", "revoke", &serial]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("trustd refused (AlreadyRevoked): "),
        "{}",
        stderr(&again)
    );
    let list = site.ok(&["ca", "list", "--status", "revoked", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{list}");

    let bad = site.bunkerctl(&["ca", "issue", "web.csr", "--profile", "admin"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).starts_with(
            "bunkerctl: trustd refused (InvalidRequest): there is no certificate profile `admin`"
        ),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn without_trustd_the_operator_is_told_so() {
    let bus = TestBus::start().expect("dbus-daemon starts");
    let output = Command::new(env!("CARGO_BIN_EXE_bunkerctl"))
        .args(["ca", "status"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "bunkerctl: trustd is not running (org.bunkeros.Trust1 is not on the system bus)\n"
    );
}
