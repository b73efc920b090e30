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
use trustd::authority::{Authority, AuthorityConfig, CaSetup};
use trustd::ca::{CaKind, DnsName, IssuancePolicy, SiteIdentity};
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
    /// A CA set up as a self-signed site root.
    async fn start() -> Self {
        Self::start_as(CaKind::Root).await
    }

    /// A CA set up as trustd's first start does for `kind`: a root, or an intermediate that
    /// waits for its offline root.
    async fn start_as(kind: CaKind) -> Self {
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
            .set_up(&CaSetup {
                kind,
                site: SiteIdentity::new("bunker", "BunkerOS").unwrap(),
            })
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

/// The offline root's keeper: a self-signed root, and the extensions for the site CA.
const OFFLINE_ROOT_CONFIG: &str = "\
[req]
distinguished_name = dn
x509_extensions = offline_root
prompt = no
[dn]
CN = Nordic Bunkers Offline Root
O = Nordic Bunkers AS
[offline_root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
[site_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = keyCertSign, cRLSign
";

/// Makes an offline root in `dir` (`offline-root.pem`, `offline-root.key`) with openssl.
fn make_offline_root(dir: &Path) {
    std::fs::write(dir.join("offline-root.cnf"), OFFLINE_ROOT_CONFIG).unwrap();
    let made = openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-config",
            "offline-root.cnf",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
            "offline-root.key",
            "-out",
            "offline-root.pem",
            "-days",
            "3650",
        ],
    );
    assert!(made.status.success(), "{}", stderr(&made));
}

#[tokio::test(flavor = "multi_thread")]
async fn csr_and_install_chain_put_the_ca_under_an_offline_root() {
    let site = Site::start_as(CaKind::Intermediate).await;

    // The status tells the operator what to do, and exits 3: not ready.
    let waiting = site.bunkerctl(&["ca", "status"]);
    assert_eq!(waiting.status.code(), Some(3), "{}", stderr(&waiting));
    let text = stdout(&waiting);
    assert!(
        text.starts_with(
            "trustd: initialised: waiting for the offline root to sign this CA: run \
             `bunkerctl ca csr > site-ca.csr`, have the offline root sign it as a CA"
        ),
        "{text}"
    );
    assert!(
        text.contains("`bunkerctl ca install-chain chain.pem`"),
        "{text}"
    );
    assert!(text.contains("CA           no certificate yet"), "{text}");

    // The request: PEM on stdout with the next step on stderr, or into a file.
    let printed = site.bunkerctl(&["ca", "csr"]);
    assert!(printed.status.success(), "{}", stderr(&printed));
    let request = stdout(&printed);
    assert!(
        request.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"),
        "{request}"
    );
    assert!(
        stderr(&printed).contains("then `bunkerctl ca install-chain chain.pem`"),
        "{}",
        stderr(&printed)
    );
    let wrote = site.ok(&["ca", "csr", "--out", "site-ca.csr"]);
    assert!(
        wrote.starts_with("wrote the request for the offline root to site-ca.csr; "),
        "{wrote}"
    );
    assert_eq!(
        std::fs::read_to_string(site.path("site-ca.csr")).unwrap(),
        request
    );

    // The keeper signs it with openssl.
    let dir = site.dir.path();
    make_offline_root(dir);
    let signed = openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "site-ca.csr",
            "-CA",
            "offline-root.pem",
            "-CAkey",
            "offline-root.key",
            "-extfile",
            "offline-root.cnf",
            "-extensions",
            "site_ca",
            "-days",
            "365",
            "-out",
            "intermediate.pem",
        ],
    );
    assert!(signed.status.success(), "{}", stderr(&signed));
    let intermediate = std::fs::read_to_string(site.path("intermediate.pem")).unwrap();
    let root = std::fs::read_to_string(site.path("offline-root.pem")).unwrap();

    // Wrong inputs: each refused with a sentence and exit 1, and the CA still waits.
    std::fs::write(site.path("garbage.pem"), "not a chain at all\n").unwrap();
    std::fs::write(site.path("binary.der"), [0x30, 0x82, 0xff, 0xfe, 0x00]).unwrap();
    std::fs::write(site.path("no-root.pem"), &intermediate).unwrap();
    for (file, says) in [
        (
            "garbage.pem",
            "bunkerctl: trustd refused (InvalidRequest): the certificate chain is refused: the chain holds no PEM certificate\n",
        ),
        (
            "binary.der",
            "bunkerctl: binary.der is not PEM text; give the chain as PEM certificates, the intermediate first, then the offline root\n",
        ),
        (
            "no-root.pem",
            "bunkerctl: trustd refused (InvalidRequest): the certificate chain is refused: the chain ends without a root; append the offline root's certificate\n",
        ),
    ] {
        let output = site.bunkerctl(&["ca", "install-chain", file]);
        assert_eq!(output.status.code(), Some(1), "{file}");
        assert_eq!(stderr(&output), says, "{file}");
        assert_eq!(stdout(&output), "", "{file}");
    }
    let missing = site.bunkerctl(&["ca", "install-chain", "missing.pem"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).starts_with("bunkerctl: reading missing.pem: "));
    assert_eq!(site.bunkerctl(&["ca", "status"]).status.code(), Some(3));

    // The chain, intermediate first, then the root: installed, and what was installed shown.
    std::fs::write(site.path("chain.pem"), format!("{intermediate}{root}")).unwrap();
    let installed = site.ok(&["ca", "install-chain", "chain.pem"]);
    let lines: Vec<&str> = installed.lines().collect();
    assert_eq!(
        lines[0],
        "installed the intermediate CA certificate; trustd issues under it now"
    );
    assert_eq!(
        lines[1],
        "  subject      CN=bunker BunkerOS Site CA, O=BunkerOS"
    );
    assert_eq!(
        lines[2],
        "  issuer       CN=Nordic Bunkers Offline Root, O=Nordic Bunkers AS"
    );
    assert!(lines[3].starts_with("  valid        20"), "{installed}");
    assert_eq!(
        lines[4],
        "  root         CN=Nordic Bunkers Offline Root, O=Nordic Bunkers AS"
    );
    let fingerprint = openssl(
        dir,
        &[
            "x509",
            "-in",
            "offline-root.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let fingerprint = stdout(&fingerprint)
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_lowercase();
    assert_eq!(lines[5], format!("  root SHA-256 {fingerprint}"));

    // Ready; the root relying parties install is the offline one; leaves verify under it.
    let status = site.ok(&["ca", "status"]);
    assert!(
        status.starts_with("trustd: ready: issuing as bunker BunkerOS Site CA (policy pcr 16)\n"),
        "{status}"
    );
    assert!(
        status.contains("CA           intermediate CN=bunker BunkerOS Site CA, O=BunkerOS"),
        "{status}"
    );
    assert_eq!(site.ok(&["ca", "root"]).trim(), root.trim());
    site.write_csr("web.csr", "web.bunker.test");
    site.ok(&[
        "ca",
        "issue",
        "web.csr",
        "--profile",
        "service",
        "--cert",
        "web.pem",
    ]);
    let verify = openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            "offline-root.pem",
            "-untrusted",
            "intermediate.pem",
            "-purpose",
            "sslserver",
            "web.pem",
        ],
    );
    assert!(
        verify.status.success(),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );

    // The same chain again is a renewal of itself: accepted, and said so.
    let again = site.ok(&["ca", "install-chain", "chain.pem"]);
    assert!(
        again.starts_with("renewed the intermediate CA certificate"),
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_root_ca_refuses_csr_and_install_chain() {
    let site = Site::start().await;
    let csr = site.bunkerctl(&["ca", "csr"]);
    assert_eq!(csr.status.code(), Some(1));
    assert_eq!(
        stderr(&csr),
        "bunkerctl: trustd refused (InvalidRequest): there is no request for an offline root: \
         this CA is a self-signed site root; it answers to no offline root\n"
    );
    make_offline_root(site.dir.path());
    let chain = site.bunkerctl(&["ca", "install-chain", "offline-root.pem"]);
    assert_eq!(chain.status.code(), Some(1));
    assert!(
        stderr(&chain).contains("a chain from an offline root would replace that anchor"),
        "{}",
        stderr(&chain)
    );
    let status = site.ok(&["ca", "status"]);
    assert!(
        status.contains("CA           root CN=bunker BunkerOS Site CA"),
        "{status}"
    );
}
