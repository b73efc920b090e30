//! The real `trustd` binary as an intermediate under an offline root, set up the way an operator
//! does it: `[site] ca = "intermediate"`, so the first start makes no root and waits with the
//! procedure as its status; the request comes over D-Bus; a root made with `openssl` signs it;
//! the chain goes back over D-Bus; leaves verify with `openssl verify` under the offline root.
//! Hostile chains are refused with a sentence and leave the CA exactly as it was.

mod common;

use std::path::Path;

use appliance::dbus::contracts::{Trust1Proxy, trust_errors};
use common::*;
use serde_json::Value;
use tempfile::TempDir;

/// What the root's keeper uses: a self-signed offline root, and the extensions it puts on
/// the site CA's certificate (and, for a hostile case, on a certificate that is no CA).
const OPENSSL_CONFIG: &str = "\
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
subjectKeyIdentifier = hash
[site_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[not_a_ca]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
[ca]
default_ca = offline
[offline]
database = index.txt
new_certs_dir = .
serial = serial.txt
certificate = offline-root.pem
private_key = offline-root.key
default_md = sha256
policy = any
preserve = yes
unique_subject = no
[any]
commonName = supplied
organizationName = optional
";

/// An offline root in its own directory, made and used only with `openssl`.
struct OfflineRoot {
    dir: TempDir,
}

impl OfflineRoot {
    fn new() -> Self {
        let dir = TempDir::new().unwrap();
        std::fs::write(dir.path().join("openssl.cnf"), OPENSSL_CONFIG).unwrap();
        std::fs::write(dir.path().join("index.txt"), "").unwrap();
        std::fs::write(dir.path().join("serial.txt"), "1000\n").unwrap();
        ok(openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-new",
                "-nodes",
                "-config",
                "openssl.cnf",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-keyout",
                "offline-root.key",
                "-out",
                "offline-root.pem",
                "-days",
                "3650",
            ],
        ));
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn pem(&self) -> String {
        self.read("offline-root.pem")
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap()
    }

    /// Signs `request` (PEM) as the keeper does: `openssl x509 -req` with `extensions`.
    fn sign(&self, request: &str, extensions: &str) -> String {
        std::fs::write(self.path().join("request.csr"), request).unwrap();
        ok(openssl(
            self.path(),
            &[
                "x509",
                "-req",
                "-in",
                "request.csr",
                "-CA",
                "offline-root.pem",
                "-CAkey",
                "offline-root.key",
                "-extfile",
                "openssl.cnf",
                "-extensions",
                extensions,
                "-days",
                "365",
                "-out",
                "signed.pem",
            ],
        ));
        self.read("signed.pem")
    }

    /// Signs `request` as a site CA that expired in 2021 (`openssl ca`, which takes dates).
    fn sign_expired(&self, request: &str) -> String {
        std::fs::write(self.path().join("request.csr"), request).unwrap();
        ok(openssl(
            self.path(),
            &[
                "ca",
                "-batch",
                "-config",
                "openssl.cnf",
                "-extensions",
                "site_ca",
                "-in",
                "request.csr",
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20210101000000Z",
                "-notext",
                "-out",
                "expired.pem",
            ],
        ));
        self.read("expired.pem")
    }

    /// SHA-256 of the root certificate as trustd prints it (lowercase hex, no colons).
    fn fingerprint(&self) -> String {
        let output = ok(openssl(
            self.path(),
            &[
                "x509",
                "-in",
                "offline-root.pem",
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
        ));
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_lowercase()
    }
}

fn ok(output: std::process::Output) -> std::process::Output {
    assert!(
        output.status.success(),
        "openssl failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A request for another key, with the site CA's names: someone else's request.
fn stranger_request(dir: &Path) -> String {
    ok(openssl(
        dir,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
            "stranger.key",
            "-subj",
            "/CN=bunker BunkerOS Site CA/O=BunkerOS",
            "-out",
            "stranger.csr",
        ],
    ));
    std::fs::read_to_string(dir.join("stranger.csr")).unwrap()
}

async fn status(trust: &Trust1Proxy<'_>) -> Value {
    serde_json::from_str(&trust.status().await.unwrap()).unwrap()
}

/// Asserts `chain` is refused as an invalid request whose sentence contains `says`.
async fn refused(trust: &Trust1Proxy<'_>, chain: &str, says: &str) {
    let error = trust.install_chain(chain).await.unwrap_err();
    assert_eq!(error_name(&error), trust_errors::INVALID_REQUEST, "{error}");
    assert!(error.to_string().contains(says), "{says:?} not in: {error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_intermediate_waits_for_its_offline_root_and_issues_under_the_chain() {
    // PCR 16 only: swtpm has no boot measurements, and the test must not depend on them.
    let mut appliance = Appliance::new(
        "[policy]\nmode = \"pcr\"\npcrs = [16]\npcr11_prediction = \"\"\n[site]\nca = \"intermediate\"\n",
    );
    let waiting = appliance.start();
    for step in [
        "initialised: waiting for the offline root to sign this CA",
        "`bunkerctl ca csr > site-ca.csr`",
        "`bunkerctl ca install-chain chain.pem`",
    ] {
        assert!(waiting.contains(step), "{step:?} not in STATUS={waiting}");
    }
    let trust = appliance.proxy().await;
    let before = status(&trust).await;
    assert_eq!(before["state"], "initialised", "{before}");
    assert_eq!(before["ca"], Value::Null, "no root was made");
    assert_eq!(before["status_line"], waiting.as_str());
    let no_root = trust.root_certificate().await.unwrap_err();
    assert_eq!(error_name(&no_root), trust_errors::NOT_READY);
    let not_yet = trust
        .issue(&csr(&["web.bunker.test"]), "service", "")
        .await
        .unwrap_err();
    assert_eq!(error_name(&not_yet), trust_errors::NOT_READY);
    assert!(not_yet.to_string().contains("waiting for the offline root"));

    // The request, made by the TPM key at the first start, and the same on every asking.
    let request = trust.intermediate_request().await.unwrap();
    assert_eq!(trust.intermediate_request().await.unwrap(), request);
    let root = OfflineRoot::new();
    std::fs::write(root.path().join("site-ca.csr"), &request).unwrap();
    let shown = ok(openssl(
        root.path(),
        &["req", "-in", "site-ca.csr", "-noout", "-verify", "-subject"],
    ));
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("subject=CN = bunker BunkerOS Site CA, O = BunkerOS"),
        "{shown}"
    );

    // Hostile chains: each refused with its sentence, and the CA still waits as before.
    let good = root.sign(&request, "site_ca");
    let foreign = root.sign(&stranger_request(root.path()), "site_ca");
    refused(
        &trust,
        &format!("{foreign}{}", root.pem()),
        "for another key, not this CA's TPM key",
    )
    .await;
    let leaf_only = root.sign(&request, "not_a_ca");
    refused(
        &trust,
        &format!("{leaf_only}{}", root.pem()),
        "is not a CA certificate",
    )
    .await;
    refused(&trust, "this is not a chain", "holds no PEM certificate").await;
    refused(
        &trust,
        "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
        "the chain is not PEM",
    )
    .await;
    refused(
        &trust,
        "-----BEGIN CERTIFICATE-----\nMIIBkzCCATmgAwIBAgIUAA==\n-----END CERTIFICATE-----\n",
        "does not parse",
    )
    .await;
    let expired = root.sign_expired(&request);
    refused(
        &trust,
        &format!("{expired}{}", root.pem()),
        "certificate 1 of the chain is not valid now",
    )
    .await;
    refused(&trust, &good, "ends without a root").await;
    let after = status(&trust).await;
    assert_eq!(after["state"], "initialised");
    assert_eq!(after["reason"], before["reason"]);
    assert_eq!(after["ca"], Value::Null);
    assert_eq!(trust.intermediate_request().await.unwrap(), request);

    // The good chain: installed, and trustd says what it took.
    let chain = format!("{good}{}", root.pem());
    let installed: Value =
        serde_json::from_str(&trust.install_chain(&chain).await.unwrap()).unwrap();
    assert_eq!(installed["kind"], "intermediate");
    assert_eq!(installed["renewal"], false);
    assert_eq!(
        installed["subject"],
        "CN=bunker BunkerOS Site CA, O=BunkerOS"
    );
    assert_eq!(
        installed["issuer"],
        "CN=Nordic Bunkers Offline Root, O=Nordic Bunkers AS"
    );
    assert_eq!(installed["root_subject"], installed["issuer"]);
    assert_eq!(installed["root_fingerprint"], root.fingerprint());
    let ready = status(&trust).await;
    assert_eq!(ready["state"], "ready", "{ready}");
    assert_eq!(ready["ca"]["kind"], "intermediate");
    assert_eq!(ready["ca"]["root_fingerprint"], root.fingerprint());
    assert_eq!(
        trust.root_certificate().await.unwrap().trim(),
        root.pem().trim()
    );
    let messages = appliance.notifications_until(|m| m.contains("STATUS=ready:"));
    assert_eq!(
        status_of(messages.last().unwrap()),
        "ready: issuing as bunker BunkerOS Site CA (policy pcr 16)"
    );

    // A leaf under the intermediate verifies with the offline root as the only trust anchor.
    let (leaf, leaf_chain, _, _) = trust
        .issue(&csr(&["web.bunker.test"]), "service", "12h")
        .await
        .unwrap();
    let work = root.path();
    std::fs::write(work.join("leaf.pem"), &leaf).unwrap();
    std::fs::write(work.join("intermediate.pem"), &good).unwrap();
    std::fs::write(work.join("leaf-chain.pem"), &leaf_chain).unwrap();
    for untrusted in ["intermediate.pem", "leaf-chain.pem"] {
        let verified = openssl(
            work,
            &[
                "verify",
                "-CAfile",
                "offline-root.pem",
                "-untrusted",
                untrusted,
                "-purpose",
                "sslserver",
                "leaf.pem",
            ],
        );
        assert!(
            verified.status.success(),
            "openssl verify with {untrusted}: {}{}",
            String::from_utf8_lossy(&verified.stdout),
            String::from_utf8_lossy(&verified.stderr)
        );
    }

    // Another offline root is another trust anchor: refused, and the installed chain stays.
    let impostor = OfflineRoot::new();
    let renewal_request = trust.intermediate_request().await.unwrap();
    let under_impostor = impostor.sign(&renewal_request, "site_ca");
    refused(
        &trust,
        &format!("{under_impostor}{}", impostor.pem()),
        "changing the trust anchor needs a new CA",
    )
    .await;
    assert_eq!(
        status(&trust).await["ca"]["root_fingerprint"],
        root.fingerprint()
    );
    // A renewal by the same offline root goes in.
    let renewed = root.sign(&renewal_request, "site_ca");
    let installed: Value = serde_json::from_str(
        &trust
            .install_chain(&format!("{renewed}{}", root.pem()))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(installed["renewal"], true);
    assert_eq!(installed["root_fingerprint"], root.fingerprint());

    // A restart keeps the chain and issues at once.
    let (stopped, _) = appliance.stop();
    assert!(stopped.success(), "{stopped}");
    let again = appliance.start();
    assert_eq!(
        again,
        "ready: issuing as bunker BunkerOS Site CA (policy pcr 16)"
    );
    let trust = appliance.proxy().await;
    assert_eq!(
        trust.root_certificate().await.unwrap().trim(),
        root.pem().trim()
    );
    trust
        .issue(&csr(&["api.bunker.test"]), "service", "")
        .await
        .unwrap();
    appliance.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_root_ca_writes_no_request_and_takes_no_chain() {
    let mut appliance =
        Appliance::new("[policy]\nmode = \"pcr\"\npcrs = [16]\npcr11_prediction = \"\"\n");
    let ready = appliance.start();
    assert!(ready.starts_with("ready: "), "{ready}");
    let trust = appliance.proxy().await;
    let root_pem = trust.root_certificate().await.unwrap();
    let no_request = trust.intermediate_request().await.unwrap_err();
    assert_eq!(error_name(&no_request), trust_errors::INVALID_REQUEST);
    assert!(
        no_request.to_string().contains("self-signed site root"),
        "{no_request}"
    );
    let offline = OfflineRoot::new();
    refused(&trust, &offline.pem(), "would replace that anchor").await;
    assert_eq!(trust.root_certificate().await.unwrap(), root_pem);
    assert_eq!(status(&trust).await["ca"]["kind"], "root");
    appliance.stop();
}
