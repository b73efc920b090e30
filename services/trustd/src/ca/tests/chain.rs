//! Intermediate mode: the TPM key's request signed by an offline root made with openssl.

use super::*;
use crate::ca::chain::ChainError;
use crate::ca::constraints::ConstraintError;
use crate::ca::issue::{IssueError, NotReady};

const ROOT_CONFIG: &str = "\
[req]
distinguished_name = dn
x509_extensions = root
prompt = no
[dn]
CN = Nordic Bunkers Offline Root
O = Nordic Bunkers AS
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[root_pathlen0]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[intermediate]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[intermediate_unconstrained]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[intermediate_uri_constraint]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
nameConstraints = critical, permitted;URI:.bunker.example
[not_a_ca]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
";

/// An offline root: a P-384 key and self-signed certificate made by openssl in `dir`.
struct OfflineRoot {
    dir: TempDir,
}

impl OfflineRoot {
    fn new(extensions: &str) -> Self {
        let dir = TempDir::new().unwrap();
        write(dir.path(), "openssl.cnf", ROOT_CONFIG);
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-new",
                "-nodes",
                "-config",
                "openssl.cnf",
                "-extensions",
                extensions,
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-keyout",
                "root.key",
                "-out",
                "root.pem",
                "-days",
                "3650",
            ],
        );
        Self { dir }
    }

    fn pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("root.pem")).unwrap()
    }

    /// The root certificate made again for the same name and key (a new validity, serial and
    /// signature): the same trust anchor in a new certificate.
    fn reissue(&self) -> String {
        openssl(
            self.dir.path(),
            &[
                "req",
                "-x509",
                "-new",
                "-config",
                "openssl.cnf",
                "-extensions",
                "root",
                "-key",
                "root.key",
                "-out",
                "reissued.pem",
                "-days",
                "3000",
            ],
        );
        std::fs::read_to_string(self.dir.path().join("reissued.pem")).unwrap()
    }

    /// Signs `request` (PEM) with the root key, adding `extensions` and copying the request's
    /// own extensions when `copy` is set; returns the certificate PEM.
    fn sign(&self, request: &str, extensions: &str, copy: bool, days: &str) -> String {
        write(self.dir.path(), "request.pem", request);
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            "request.pem",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-set_serial",
            "0x5eed",
            "-days",
            days,
            "-extfile",
            "openssl.cnf",
            "-extensions",
            extensions,
            "-out",
            "signed.pem",
        ];
        if copy {
            args.extend(["-copy_extensions", "copy"]);
        }
        openssl(self.dir.path(), &args);
        std::fs::read_to_string(self.dir.path().join("signed.pem")).unwrap()
    }
}

/// A CA waiting for its chain, and the request it wrote.
fn awaiting(tpm: &TpmCa) -> (CertificateAuthority, String) {
    let mut ca = tpm.open(policy()).unwrap();
    let request = ca.csr_for_offline_root(&site()).unwrap();
    (ca, request)
}

#[test]
fn a_chain_from_the_offline_root_is_installed_and_leaves_verify_through_it() {
    let tpm = TpmCa::start();
    let (mut ca, request) = awaiting(&tpm);
    assert_eq!(ca.pending_request(), Some(request.as_str()));
    let err = ca
        .issue(
            &p256_csr(None, &["web.oslo.bunker.example"]),
            Profile::Service,
            None,
        )
        .unwrap_err();
    assert!(
        matches!(err, IssueError::NotReady(NotReady::AwaitingChain)),
        "{err}"
    );

    // The request asks for a constrained CA for leaves only, and is signed by the TPM key.
    let root = OfflineRoot::new("root");
    write(root.dir.path(), "ours.csr", &request);
    let text = openssl(
        root.dir.path(),
        &["req", "-in", "ours.csr", "-noout", "-text", "-verify"],
    );
    for expected in [
        "Subject: CN = Oslo-1 BunkerOS Site CA, O = Nordic Bunkers AS",
        "CA:TRUE, pathlen:0",
        "Certificate Sign, CRL Sign",
        "X509v3 Name Constraints: critical",
        "DNS:oslo.bunker.example",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(
        text.contains("verify OK") || text.contains("Certificate request self-signature verify OK"),
        "{text}"
    );

    let intermediate = root.sign(&request, "intermediate", true, "365");
    ca.install_chain(&format!("{intermediate}{}", root.pem()))
        .unwrap();
    let status = ca.status();
    assert_eq!(status.kind, Some(CaKind::Intermediate));
    assert_eq!(status.readiness, Ok(()));
    assert_eq!(ca.root_pem().unwrap().trim(), root.pem().trim());
    assert_eq!(pem_der(&ca.chain_pem()), pem_der(&intermediate));

    for (profile, cn, names, purpose, usage) in [
        (
            Profile::Service,
            None,
            vec!["web.oslo.bunker.example"],
            "sslserver",
            webpki::KeyUsage::server_auth(),
        ),
        (
            Profile::Operator,
            Some("alice"),
            vec!["uri:bunkeros:operator:alice"],
            "sslclient",
            webpki::KeyUsage::client_auth(),
        ),
        (
            Profile::Device,
            None,
            vec!["10.20.0.9"],
            "sslserver",
            webpki::KeyUsage::server_auth(),
        ),
    ] {
        let leaf = ca.issue(&p256_csr(cn, &names), profile, None).unwrap();
        let dir = TempDir::new().unwrap();
        write(dir.path(), "root.pem", root.pem());
        write(dir.path(), "chain.pem", &leaf.chain_pem);
        write(dir.path(), "intermediate.pem", &intermediate);
        write(dir.path(), "leaf.pem", &leaf.pem);
        openssl(
            dir.path(),
            &[
                "verify",
                "-CAfile",
                "root.pem",
                "-untrusted",
                "intermediate.pem",
                "-purpose",
                purpose,
                "leaf.pem",
            ],
        );
        // Without the intermediate the leaf does not verify: it is really signed by it.
        assert!(!openssl_status(dir.path(), &["verify", "-CAfile", "root.pem", "leaf.pem"]).0);
        webpki_verify(
            &pem_der(&root.pem()),
            &[pem_der(&intermediate)],
            &leaf.der,
            usage,
        )
        .unwrap_or_else(|e| panic!("{profile}: {e:?}"));
    }

    // trustd restarts: the installed chain comes back.
    drop(ca);
    let ca = tpm.open(policy()).unwrap();
    assert_eq!(ca.status().kind, Some(CaKind::Intermediate));
    ca.issue(
        &p256_csr(None, &["web.oslo.bunker.example"]),
        Profile::Service,
        None,
    )
    .unwrap();
}

#[test]
fn leaves_end_with_a_short_lived_intermediate() {
    let tpm = TpmCa::start();
    let (mut ca, request) = awaiting(&tpm);
    let root = OfflineRoot::new("root");
    let intermediate = root.sign(&request, "intermediate", true, "2");
    ca.install_chain(&format!("{intermediate}{}", root.pem()))
        .unwrap();
    let leaf = ca
        .issue(
            &p256_csr(None, &["oslo-1.hub.oslo.bunker.example"]),
            Profile::Hub,
            None,
        )
        .unwrap();
    assert_eq!(Some(leaf.not_after), ca.status().not_after);
    assert!((leaf.not_after - leaf.not_before).whole_days() <= 2);
}

#[test]
fn wrong_chains_are_refused_and_leave_the_ca_waiting() {
    let tpm = TpmCa::start();
    let (mut ca, request) = awaiting(&tpm);
    let root = OfflineRoot::new("root");
    let good = root.sign(&request, "intermediate", true, "365");
    let refused = |ca: &mut CertificateAuthority, chain: String| match ca.install_chain(&chain) {
        Err(CaError::Chain(err)) => err,
        other => panic!("expected a chain refusal, got {other:?}"),
    };

    // Signed by our root, but bundled with another root of the same name: the signature
    // check, not the name, catches it.
    let impostor = OfflineRoot::new("root");
    assert_eq!(
        refused(&mut ca, format!("{good}{}", impostor.pem())),
        ChainError::BadSignature(1)
    );
    // A certificate for another key (someone else's request signed by the same root).
    let stranger = TempDir::new().unwrap();
    openssl(
        stranger.path(),
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
            "k.pem",
            "-subj",
            "/CN=Oslo-1 BunkerOS Site CA/O=Nordic Bunkers AS",
            "-out",
            "r.pem",
        ],
    );
    let stranger_request = std::fs::read_to_string(stranger.path().join("r.pem")).unwrap();
    let foreign = root.sign(
        &stranger_request,
        "intermediate_unconstrained",
        false,
        "365",
    );
    assert_eq!(
        refused(&mut ca, format!("{foreign}{}", root.pem())),
        ChainError::NotOurKey
    );
    // Our key, but not made a CA.
    let leaf_only = root.sign(&request, "not_a_ca", false, "365");
    assert_eq!(
        refused(&mut ca, format!("{leaf_only}{}", root.pem())),
        ChainError::NotACa(1)
    );
    // No root in the bundle, or the wrong order.
    assert_eq!(refused(&mut ca, good.clone()), ChainError::NoRoot);
    assert_eq!(
        refused(&mut ca, format!("{}{good}", root.pem())),
        ChainError::NotOurKey
    );
    // A root that allows no CA below it.
    let strict = OfflineRoot::new("root_pathlen0");
    let under_strict = strict.sign(&request, "intermediate", true, "365");
    assert_eq!(
        refused(&mut ca, format!("{under_strict}{}", strict.pem())),
        ChainError::PathTooLong {
            position: 2,
            allowed: 0,
            below: 1
        }
    );
    // URI constraints would fail our hub and operator identities everywhere.
    let uri = root.sign(&request, "intermediate_uri_constraint", false, "365");
    assert_eq!(
        refused(&mut ca, format!("{uri}{}", root.pem())),
        ChainError::Constraints {
            position: 1,
            source: ConstraintError::Unsupported("URI")
        }
    );
    // Garbage.
    assert!(matches!(
        refused(&mut ca, "not pem".into()),
        ChainError::Empty
    ));
    let key_block = std::fs::read_to_string(root.dir.path().join("root.key")).unwrap();
    assert!(matches!(
        refused(&mut ca, format!("{good}{key_block}")),
        ChainError::NotACertificate { position: 2, .. }
    ));
    assert!(matches!(
        refused(&mut ca, "x".repeat(100_000)),
        ChainError::TooLarge(100_000)
    ));

    // Nothing was installed: still waiting, and the good chain still goes in.
    assert_eq!(ca.status().readiness, Err(NotReady::AwaitingChain));
    ca.install_chain(&format!("{good}{}", root.pem())).unwrap();
    assert_eq!(ca.status().readiness, Ok(()));
}

#[test]
fn an_offline_root_may_drop_the_requested_constraints() {
    let tpm = TpmCa::start();
    let (mut ca, request) = awaiting(&tpm);
    let root = OfflineRoot::new("root");
    let plain = root.sign(&request, "intermediate_unconstrained", false, "365");
    ca.install_chain(&format!("{plain}{}", root.pem())).unwrap();
    // trustd's own rules still hold without the constraints.
    let err = ca
        .issue(&p256_csr(None, &["bank.example"]), Profile::Service, None)
        .unwrap_err();
    assert!(matches!(err, IssueError::Names(_)), "{err}");
    ca.issue(
        &p256_csr(None, &["s9-1.devices.oslo.bunker.example"]),
        Profile::Device,
        None,
    )
    .unwrap();
}

#[test]
fn a_chain_is_expected_only_after_a_request() {
    let tpm = TpmCa::start();
    let mut ca = tpm.open(policy()).unwrap();
    let err = ca
        .install_chain("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
        .unwrap_err();
    assert!(matches!(err, CaError::NoChainExpected(_)), "{err}");
}

#[test]
fn the_request_is_shown_again_and_renewed_only_under_the_same_trust_anchor() {
    let tpm = TpmCa::start();
    let mut fresh = tpm.open(policy()).unwrap();
    assert!(
        matches!(fresh.intermediate_request(), Err(CaError::NoRequest(_))),
        "no request before one was written"
    );
    let request = fresh.csr_for_offline_root(&site()).unwrap();
    // Shown again as it was: the root's keeper signs the one the operator carried over.
    assert_eq!(fresh.intermediate_request().unwrap(), request);
    drop(fresh);
    let mut ca = tpm.open(policy()).unwrap();
    assert_eq!(
        ca.intermediate_request().unwrap(),
        request,
        "after a restart too"
    );

    let root = OfflineRoot::new("root");
    let first = root.sign(&request, "intermediate", true, "365");
    let installed = ca.install_chain(&format!("{first}{}", root.pem())).unwrap();
    assert!(!installed.renewal);
    assert_eq!(
        installed.subject,
        "CN=Oslo-1 BunkerOS Site CA, O=Nordic Bunkers AS"
    );
    assert_eq!(
        installed.issuer,
        "CN=Nordic Bunkers Offline Root, O=Nordic Bunkers AS"
    );
    assert_eq!(installed.root_subject, installed.issuer);
    assert_eq!(
        Some(installed.root_fingerprint.clone()),
        ca.status().root_fingerprint
    );
    let installed_der = pem_der(&ca.chain_pem());

    // An installed intermediate gets a fresh request with the same names, to renew.
    let renewal_request = ca.intermediate_request().unwrap();
    assert_ne!(renewal_request, request, "a new signature");
    write(root.dir.path(), "renewal.csr", &renewal_request);
    let text = openssl(
        root.dir.path(),
        &["req", "-in", "renewal.csr", "-noout", "-subject", "-verify"],
    );
    assert!(
        text.contains("subject=CN = Oslo-1 BunkerOS Site CA, O = Nordic Bunkers AS"),
        "{text}"
    );
    assert_eq!(
        pem_der(&ca.chain_pem()),
        installed_der,
        "asking changed nothing"
    );

    // Not a renewal: another offline root of the same name (another key), or another subject.
    let impostor = OfflineRoot::new("root");
    let under_impostor = impostor.sign(&renewal_request, "intermediate", true, "365");
    let err = ca
        .install_chain(&format!("{under_impostor}{}", impostor.pem()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            CaError::NotARenewal(crate::ca::RenewalError::OtherTrustAnchor { .. })
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("changing the trust anchor"),
        "{err}"
    );
    let other_site = SiteIdentity::new("Bergen-2", "Nordic Bunkers AS").unwrap();
    let renamed_request = hierarchy::intermediate_request(
        &other_site,
        &NameScope::from_policy(&policy()),
        &CaSigner::new(Arc::clone(&tpm.key) as Arc<dyn crate::ca_key::CaKey>),
    )
    .unwrap();
    let renamed = root.sign(&renamed_request, "intermediate", true, "365");
    let err = ca
        .install_chain(&format!("{renamed}{}", root.pem()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            CaError::NotARenewal(crate::ca::RenewalError::OtherSubject { .. })
        ),
        "{err}"
    );
    assert_eq!(
        pem_der(&ca.chain_pem()),
        installed_der,
        "refusals changed nothing"
    );

    // A renewal under the same root, even one re-issued for the same name and key, goes in.
    let reissued_root = root.reissue();
    assert_ne!(reissued_root, root.pem());
    let renewed = root.sign(&renewal_request, "intermediate", true, "400");
    let installed = ca
        .install_chain(&format!("{renewed}{reissued_root}"))
        .unwrap();
    assert!(installed.renewal);
    assert_eq!(pem_der(&ca.chain_pem()), pem_der(&renewed));
    assert_eq!(ca.status().readiness, Ok(()));
    // ... and survives a restart.
    drop(ca);
    let ca = tpm.open(policy()).unwrap();
    assert_eq!(pem_der(&ca.chain_pem()), pem_der(&renewed));
}

#[test]
fn a_self_signed_root_takes_no_request_and_no_chain() {
    let tpm = TpmCa::start();
    let mut ca = tpm.root_ca();
    let err = ca.intermediate_request().unwrap_err();
    assert!(matches!(err, CaError::NoRequest(_)), "{err}");
    let root = OfflineRoot::new("root");
    let err = ca.install_chain(&root.pem()).unwrap_err();
    assert!(
        err.to_string().contains("would replace that anchor"),
        "{err}"
    );
    assert_eq!(ca.status().kind, Some(CaKind::Root));
}
