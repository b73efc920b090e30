//! A self-signed site root and leaves of every profile, signed by the TPM key and checked by
//! openssl and rustls-webpki.

use std::time::Duration;

use rcgen::PublicKeyData as _;
use time::OffsetDateTime;

use super::*;
use crate::ca::issue::{IssueError, NotReady};

/// Issues `csr` and writes root and leaf PEMs into a scratch directory for openssl.
struct Issued {
    dir: TempDir,
    cert: IssuedCertificate,
    root_der: Vec<u8>,
}

fn issue(ca: &CertificateAuthority, csr: &ParsedCsr, profile: Profile) -> Issued {
    let cert = ca
        .issue(csr, profile, None)
        .unwrap_or_else(|e| panic!("{profile}: {e}"));
    let dir = TempDir::new().unwrap();
    let root_pem = ca.root_pem().unwrap();
    write(dir.path(), "root.pem", &root_pem);
    write(dir.path(), "leaf.pem", &cert.pem);
    Issued {
        dir,
        cert,
        root_der: pem_der(&root_pem),
    }
}

impl Issued {
    fn openssl_verify(&self, purpose: &str) -> (bool, String) {
        openssl_status(
            self.dir.path(),
            &[
                "verify", "-CAfile", "root.pem", "-purpose", purpose, "leaf.pem",
            ],
        )
    }

    fn text(&self) -> String {
        openssl(
            self.dir.path(),
            &["x509", "-in", "leaf.pem", "-noout", "-text"],
        )
    }
}

#[test]
fn the_site_root_is_a_constrained_ca_for_leaves_only() {
    let tpm = TpmCa::start();
    let ca = tpm.root_ca();
    let status = ca.status();
    assert_eq!(status.kind, Some(CaKind::Root));
    assert_eq!(status.readiness, Ok(()));
    assert_eq!(
        status.subject.as_deref(),
        Some("CN=Oslo-1 BunkerOS Site CA, O=Nordic Bunkers AS")
    );
    let not_after = status.not_after.unwrap();
    let years = (not_after - OffsetDateTime::now_utc()).whole_days() / 365;
    assert_eq!(years, 10);

    let dir = TempDir::new().unwrap();
    write(dir.path(), "root.pem", ca.root_pem().unwrap());
    let text = openssl(dir.path(), &["x509", "-in", "root.pem", "-noout", "-text"]);
    for expected in [
        "Issuer: CN = Oslo-1 BunkerOS Site CA, O = Nordic Bunkers AS",
        "X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0",
        "X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign",
        "X509v3 Name Constraints: critical",
        "Permitted:\n                  DNS:oslo.bunker.example\n                  IP:10.20.0.0/255.255.0.0\n",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
        "ecdsa-with-SHA256",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // Self-signed by the TPM key: openssl checks the signature.
    openssl(dir.path(), &["verify", "-CAfile", "root.pem", "root.pem"]);
    assert_eq!(
        status.root_fingerprint.unwrap(),
        hex::encode(Sha256::digest(pem_der(&ca.root_pem().unwrap())))
    );
}

#[test]
fn leaves_of_every_profile_verify_for_their_usages_only() {
    let tpm = TpmCa::start();
    let ca = tpm.root_ca();
    let cases = [
        (
            Profile::Hub,
            None,
            vec!["oslo-1.hub.oslo.bunker.example"],
            true,
            true,
        ),
        (
            Profile::Hub,
            None,
            vec!["uri:bunkeros:hub:oslo-2"],
            true,
            true,
        ),
        // What hubd asks for at every start (hubd::hub_identity): the URI repeated as the CN.
        (
            Profile::Hub,
            Some("bunkeros:hub:oslo-3"),
            vec!["uri:bunkeros:hub:oslo-3"],
            true,
            true,
        ),
        (
            Profile::Service,
            Some("grafana.oslo.bunker.example"),
            vec!["grafana.oslo.bunker.example", "metrics.oslo.bunker.example"],
            true,
            true,
        ),
        (
            Profile::Operator,
            Some("alice"),
            vec![
                "uri:bunkeros:operator:alice",
                "email:alice@oslo.bunker.example",
            ],
            false,
            true,
        ),
        (
            Profile::Device,
            None,
            vec!["s9-17.devices.oslo.bunker.example", "10.20.3.17"],
            true,
            true,
        ),
    ];
    for (profile, cn, names, server, client) in cases {
        let issued = issue(&ca, &p256_csr(cn, &names), profile);
        let (ok, output) = issued.openssl_verify("sslclient");
        assert_eq!(ok, client, "{profile} as TLS client: {output}");
        let (ok, output) = issued.openssl_verify("sslserver");
        assert_eq!(ok, server, "{profile} as TLS server: {output}");
        let webpki_server = webpki_verify(
            &issued.root_der,
            &[],
            &issued.cert.der,
            webpki::KeyUsage::server_auth(),
        );
        assert_eq!(
            webpki_server.is_ok(),
            server,
            "{profile}: {webpki_server:?}"
        );
        let webpki_client = webpki_verify(
            &issued.root_der,
            &[],
            &issued.cert.der,
            webpki::KeyUsage::client_auth(),
        );
        assert_eq!(
            webpki_client.is_ok(),
            client,
            "{profile}: {webpki_client:?}"
        );

        let text = issued.text();
        assert!(text.contains("CA:FALSE"), "{profile}: {text}");
        assert!(!text.contains("CA:TRUE"), "{profile}: {text}");
        let usages = if profile == Profile::Hub {
            "Digital Signature, Key Agreement"
        } else {
            "Digital Signature"
        };
        assert!(
            text.contains(&format!(
                "X509v3 Key Usage: critical\n                {usages}\n"
            )),
            "{profile}: {text}"
        );
        let eku = match (server, client) {
            (true, true) => "TLS Web Server Authentication, TLS Web Client Authentication",
            _ => "TLS Web Client Authentication",
        };
        assert!(text.contains(eku), "{profile}: {text}");
        for name in &issued.cert.names {
            let shown = match name {
                SubjectName::Dns(dns) => format!("DNS:{dns}"),
                SubjectName::Ip(ip) => format!("IP Address:{ip}"),
                SubjectName::Uri(uri) => format!("URI:{uri}"),
                SubjectName::Email(email) => format!("email:{email}"),
            };
            assert!(
                text.contains(&shown),
                "{profile}: {shown} missing in {text}"
            );
        }
        match cn {
            Some(cn) => assert!(text.contains(&format!("Subject: CN = {cn}\n")), "{text}"),
            None => assert!(
                text.contains("Subject: \n") || text.contains("Subject:\n"),
                "{text}"
            ),
        }
        assert_eq!(issued.cert.serial.as_bytes()[0] & 0x80, 0);
        assert!(tpm.serials.contains(&issued.cert.serial));
        assert!(issued.cert.chain_pem.starts_with(&issued.cert.pem));
    }
}

#[test]
fn every_accepted_key_type_is_certified() {
    let tpm = TpmCa::start();
    let ca = tpm.root_ca();
    for alg in [
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
        &rcgen::PKCS_RSA_SHA256,
    ] {
        let key = if alg == &rcgen::PKCS_RSA_SHA256 {
            KeyPair::generate_rsa_for(alg, rcgen::RsaKeySize::_3072).unwrap()
        } else {
            KeyPair::generate_for(alg).unwrap()
        };
        let csr = parse_csr(&csr_for_key(
            &key,
            None,
            &["s9-1.devices.oslo.bunker.example"],
        ))
        .unwrap();
        let issued = issue(&ca, &csr, Profile::Device);
        let (ok, output) = issued.openssl_verify("sslserver");
        assert!(ok, "{}: {output}", csr.key());
        webpki_verify(
            &issued.root_der,
            &[],
            &issued.cert.der,
            webpki::KeyUsage::server_auth(),
        )
        .unwrap_or_else(|e| panic!("{}: {e:?}", csr.key()));
        // The certificate carries exactly the requested key.
        let text = issued.text();
        let leaf_key = openssl(
            issued.dir.path(),
            &["x509", "-in", "leaf.pem", "-noout", "-pubkey"],
        );
        assert_eq!(pem_der(&leaf_key), key.subject_public_key_info(), "{text}");
    }
}

#[test]
fn lifetimes_are_cut_to_the_profile_and_to_the_ca() {
    let tpm = TpmCa::start();
    let ca = tpm.root_ca();
    let csr = p256_csr(None, &["oslo-1.hub.oslo.bunker.example"]);
    let lifetime = |cert: &IssuedCertificate| (cert.not_after - cert.not_before).whole_seconds();

    let default = ca.issue(&csr, Profile::Hub, None).unwrap();
    assert_eq!(lifetime(&default), 30 * 86_400 + 60);
    let long = ca
        .issue(&csr, Profile::Hub, Some(Duration::from_secs(90 * 86_400)))
        .unwrap();
    assert_eq!(lifetime(&long), 30 * 86_400 + 60);
    let short = ca
        .issue(&csr, Profile::Hub, Some(Duration::from_secs(3_600)))
        .unwrap();
    assert_eq!(lifetime(&short), 3_600 + 60);
    let operator = p256_csr(Some("alice"), &["uri:bunkeros:operator:alice"]);
    let shift = ca
        .issue(
            &operator,
            Profile::Operator,
            Some(Duration::from_secs(86_400)),
        )
        .unwrap();
    assert_eq!(lifetime(&shift), 12 * 3_600 + 60);

    let before = tpm.serials.len();
    let err = ca
        .issue(&csr, Profile::Hub, Some(Duration::from_secs(60)))
        .unwrap_err();
    assert!(matches!(err, IssueError::LifetimeTooShort { .. }), "{err}");
    assert_eq!(tpm.serials.len(), before, "a refusal reserves no serial");

    // Near the end of the root's life, leaves end with it; after it, nothing is issued.
    let root_end = ca.status().not_after.unwrap();
    let late = ca
        .issue_at(&csr, Profile::Hub, None, root_end - time::Duration::days(2))
        .unwrap();
    assert_eq!(late.not_after, root_end);
    let err = ca
        .issue_at(
            &csr,
            Profile::Hub,
            None,
            root_end - time::Duration::minutes(1),
        )
        .unwrap_err();
    assert!(matches!(err, IssueError::CaExpiresTooSoon(_)), "{err}");
    let err = ca
        .issue_at(
            &csr,
            Profile::Hub,
            None,
            root_end + time::Duration::seconds(1),
        )
        .unwrap_err();
    assert!(
        matches!(err, IssueError::NotReady(NotReady::Expired(_))),
        "{err}"
    );
}

#[test]
fn refused_names_change_nothing() {
    let tpm = TpmCa::start();
    let ca = tpm.root_ca();
    let before = tpm.serials.len();
    let err = ca
        .issue(&p256_csr(None, &["bank.example"]), Profile::Service, None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            IssueError::Names(NameRuleError::OutsideSuffixes { .. })
        ),
        "{err}"
    );
    let err = ca
        .issue(
            &p256_csr(None, &["*.oslo.bunker.example"]),
            Profile::Service,
            None,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            IssueError::Names(NameRuleError::WildcardNotAllowed { .. })
        ),
        "{err}"
    );
    assert_eq!(tpm.serials.len(), before);

    // Should a CA certificate exclude a name the policy still allows, issuance refuses it.
    let mut narrowed = tpm.open(policy()).unwrap();
    if let Stage::Active(active) = &mut narrowed.stage {
        active.scopes.push(constraints::NameScope {
            excluded_dns: vec![DnsName::parse("grafana.oslo.bunker.example").unwrap()],
            ..Default::default()
        });
    }
    let err = narrowed
        .issue(
            &p256_csr(None, &["grafana.oslo.bunker.example"]),
            Profile::Service,
            None,
        )
        .unwrap_err();
    assert!(
        matches!(err, IssueError::OutsideCaConstraints(ref name) if name == "grafana.oslo.bunker.example"),
        "{err}"
    );
    assert_eq!(tpm.serials.len(), before);

    // A policy widened after the root was made cannot exceed the root's constraints.
    let mut wider = policy();
    wider
        .device
        .ip_ranges
        .push("192.168.0.0/16".parse().unwrap());
    let err = tpm.open(wider).unwrap_err();
    assert!(
        matches!(err, CaError::PolicyOutsideCaScope(ref what) if what.contains("192.168.0.0/16")),
        "{err}"
    );
}

#[test]
fn a_sealed_key_stops_every_issuance_and_says_why() {
    let tpm = TpmCa::start();
    let ca = tpm.root_ca();
    let csr = p256_csr(None, &["grafana.oslo.bunker.example"]);
    ca.issue(&csr, Profile::Service, None).unwrap();

    tpm.tamper_boot();
    for _ in 0..3 {
        match ca.issue(&csr, Profile::Service, None) {
            Err(IssueError::Sealed(reason)) => assert!(reason.contains("PCR 16"), "{reason}"),
            other => panic!("expected a sealed refusal, got {other:?}"),
        }
    }
    // Setting up a CA is refused the same way, and leaves no state behind.
    let other_state = TempDir::new().unwrap();
    let mut fresh = CertificateAuthority::open(
        Arc::clone(&tpm.key) as Arc<dyn crate::ca_key::CaKey>,
        StateDir::new(other_state.path()).unwrap(),
        policy(),
        Arc::new(MemorySerialLedger::new()),
    )
    .unwrap();
    let err = fresh.create_root(&site()).unwrap_err();
    assert!(matches!(err, CaError::Sealed(_)), "{err}");
    let err = fresh.csr_for_offline_root(&site()).unwrap_err();
    assert!(matches!(err, CaError::Sealed(_)), "{err}");
    assert!(
        StateDir::new(other_state.path())
            .unwrap()
            .read("ca.json")
            .unwrap()
            .is_none()
    );
}

#[test]
fn the_ca_reopens_from_its_state_and_refuses_a_foreign_one() {
    let tpm = TpmCa::start();
    let root_pem = {
        let mut ca = tpm.open(policy()).unwrap();
        let err = ca
            .issue(
                &p256_csr(None, &["a.oslo.bunker.example"]),
                Profile::Service,
                None,
            )
            .unwrap_err();
        assert!(
            matches!(err, IssueError::NotReady(NotReady::Uninitialised)),
            "{err}"
        );
        ca.create_root(&site()).unwrap();
        let err = ca.create_root(&site()).unwrap_err();
        assert!(
            matches!(err, CaError::AlreadyInitialised(CaKind::Root)),
            "{err}"
        );
        let err = ca.install_chain(&ca.root_pem().unwrap()).unwrap_err();
        assert!(matches!(err, CaError::NoChainExpected(_)), "{err}");
        ca.root_pem().unwrap()
    };
    // trustd restarts: same root, still issuing.
    let ca = tpm.open(policy()).unwrap();
    assert_eq!(ca.root_pem().unwrap(), root_pem);
    let issued = issue(
        &ca,
        &p256_csr(None, &["a.oslo.bunker.example"]),
        Profile::Service,
    );
    assert!(issued.openssl_verify("sslserver").0);

    // The same state beside another TPM's key is refused, not used.
    let other = TpmCa::start();
    let foreign = CertificateAuthority::open(
        Arc::clone(&other.key) as Arc<dyn crate::ca_key::CaKey>,
        tpm.state.clone(),
        policy(),
        Arc::new(MemorySerialLedger::new()),
    )
    .unwrap_err();
    assert!(matches!(foreign, CaError::KeyMismatch { .. }), "{foreign}");

    // A tampered certificate in the state file is noticed at start.
    let stored = String::from_utf8(tpm.state.read("ca.json").unwrap().unwrap()).unwrap();
    let der = pem_der(&root_pem);
    let mut tampered = der.clone();
    let at = tampered.windows(6).position(|w| w == b"Oslo-1").unwrap();
    tampered[at] = b'X';
    let tampered_pem = hierarchy::certificate_pem(&tampered);
    let escaped = |pem: &str| pem.replace('\n', "\\n");
    tpm.state
        .write_atomic(
            "ca.json",
            stored
                .replace(&escaped(&root_pem), &escaped(&tampered_pem))
                .as_bytes(),
        )
        .unwrap();
    let err = tpm.open(policy()).unwrap_err();
    assert!(matches!(err, CaError::StoredStateInvalid(_)), "{err}");
}
