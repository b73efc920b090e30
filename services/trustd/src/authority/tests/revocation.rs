//! Revocation and the CRL, checked by `openssl crl` and `openssl verify -crl_check`.

use time::OffsetDateTime;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::*;
use crate::ca::CertificateSerial;

/// Writes the root, the CRL and `leaves` (by name) as PEM into a scratch directory.
fn scratch(authority: &Authority, leaves: &[(&str, &Issued)]) -> TempDir {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("root.pem"), authority.root_pem().unwrap()).unwrap();
    std::fs::write(dir.path().join("crl.pem"), authority.crl_pem().unwrap()).unwrap();
    for (name, issued) in leaves {
        std::fs::write(dir.path().join(name), &issued.certificate.pem).unwrap();
    }
    dir
}

#[test]
fn a_revocation_is_in_the_next_crl_and_openssl_refuses_the_certificate() {
    let site = Site::start();
    let authority = site.open_root();
    let stolen = issue(&authority, "api");
    let fine = issue(&authority, "db");
    assert_eq!(authority.crl_status().unwrap().number, 1);

    let revocation = authority
        .revoke(
            &stolen.certificate.serial,
            RevocationReason::KeyCompromise,
            "test:operator",
        )
        .unwrap();
    assert_eq!(revocation.reason, RevocationReason::KeyCompromise);
    let crl = authority.crl_status().unwrap();
    assert_eq!(crl.number, 2);
    assert_eq!(crl.next_update - crl.this_update, time::Duration::hours(24));

    let dir = scratch(&authority, &[("stolen.pem", &stolen), ("fine.pem", &fine)]);
    let (ok, text) = openssl(
        dir.path(),
        &[
            "crl", "-in", "crl.pem", "-CAfile", "root.pem", "-noout", "-text",
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("verify OK"), "{text}");
    assert!(
        text.contains(
            &stolen
                .certificate
                .serial
                .to_hex()
                .trim_start_matches('0')
                .to_uppercase()
        ),
        "the revoked serial is listed:\n{text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(text.contains("X509v3 CRL Number"), "{text}");
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    let der = authority.crl_der().unwrap();
    let (_, parsed) = CertificateRevocationList::from_der(&der).unwrap();
    let listed: Vec<Vec<u8>> = parsed
        .iter_revoked_certificates()
        .map(|revoked| significant(revoked.raw_serial()))
        .collect();
    assert_eq!(listed, vec![stolen.certificate.serial.to_integer_bytes()]);

    let verify = |leaf: &str| {
        openssl(
            dir.path(),
            &[
                "verify",
                "-crl_check",
                "-CRLfile",
                "crl.pem",
                "-CAfile",
                "root.pem",
                leaf,
            ],
        )
    };
    let (ok, text) = verify("stolen.pem");
    assert!(!ok && text.contains("certificate revoked"), "{text}");
    let (ok, text) = verify("fine.pem");
    assert!(ok, "{text}");

    let record = authority
        .certificate(&stolen.certificate.serial)
        .unwrap()
        .unwrap();
    assert_eq!(record.revocation, Some(revocation));
    assert_eq!(authority.status().unwrap().revoked, 1);
}

#[test]
fn revoking_twice_or_an_unknown_serial_is_refused_and_changes_nothing() {
    let site = Site::start();
    let authority = site.open_root();
    let issued = issue(&authority, "api");
    authority
        .revoke(
            &issued.certificate.serial,
            RevocationReason::Superseded,
            "test:operator",
        )
        .unwrap();
    let before = Snapshot::take(&site);

    let again = authority
        .revoke(
            &issued.certificate.serial,
            RevocationReason::KeyCompromise,
            "test:operator",
        )
        .unwrap_err();
    assert!(
        matches!(again, AuthorityError::AlreadyRevoked { .. }),
        "{again}"
    );
    let message = again.to_string();
    assert!(
        message.contains("already revoked") && message.contains("superseded"),
        "{message}"
    );

    let unknown = CertificateSerial::random().unwrap();
    let error = authority
        .revoke(&unknown, RevocationReason::Unspecified, "test:operator")
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("no certificate with serial {unknown} was issued by this CA")
    );
    assert!(error.is_caller_error());

    assert_eq!(Snapshot::take(&site), before);
}

#[test]
fn the_crl_is_refreshed_before_it_expires_and_its_number_only_grows() {
    let site = Site::start();
    let authority = site.open_root();
    let issued = issue(&authority, "api");
    authority
        .revoke(
            &issued.certificate.serial,
            RevocationReason::CessationOfOperation,
            "test:operator",
        )
        .unwrap();
    let first = authority.crl_status().unwrap();
    assert_eq!(first.number, 2);

    // Due in the last quarter of its validity (the last 6 of 24 hours), not before.
    let margin_start = first.next_update - time::Duration::hours(6);
    assert!(!authority.needs_refresh(margin_start - time::Duration::seconds(1)));
    assert!(authority.needs_refresh(margin_start));
    assert_eq!(
        authority.refresh_crl(OffsetDateTime::now_utc()).unwrap(),
        None
    );
    drop(authority);

    // Across a restart: the stored CRL comes back, and the refresh takes the next number.
    let authority = site.open();
    assert_eq!(authority.crl_status().unwrap(), first);
    assert_eq!(authority.refresh_crl(margin_start).unwrap(), Some(3));
    let refreshed = authority.crl_status().unwrap();
    assert_eq!(
        refreshed.this_update,
        margin_start.replace_nanosecond(0).unwrap()
    );
    assert!(refreshed.next_update > first.next_update);

    // The refreshed CRL still lists the revocation, under the new number.
    let der = authority.crl_der().unwrap();
    let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
    assert_eq!(crl.crl_number().unwrap().to_u64_digits(), vec![3]);
    let listed: Vec<Vec<u8>> = crl
        .iter_revoked_certificates()
        .map(|revoked| significant(revoked.raw_serial()))
        .collect();
    assert_eq!(listed, vec![issued.certificate.serial.to_integer_bytes()]);
    let dir = scratch(&authority, &[]);
    let (ok, text) = openssl(
        dir.path(),
        &["crl", "-in", "crl.pem", "-CAfile", "root.pem", "-noout"],
    );
    assert!(ok && text.contains("verify OK"), "{text}");
}

#[test]
fn reason_codes_are_rfc_5280s_and_holds_are_refused() {
    for reason in RevocationReason::ALL {
        assert_eq!(RevocationReason::from_code(reason.code()).unwrap(), reason);
    }
    for code in [6, 7, 8, 11, 255] {
        let error = RevocationReason::from_code(code).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("revocation reason code {code} is not accepted"))
        );
    }
    assert_eq!(RevocationReason::KeyCompromise.to_string(), "keyCompromise");
}

/// A DER INTEGER's content without the leading zero bytes DER may add.
fn significant(raw: &[u8]) -> Vec<u8> {
    raw.iter().copied().skip_while(|b| *b == 0).collect()
}

/// An offline root's keeper signs the intermediate request with openssl, which names the
/// intermediate's key by its own (SHA-1) key identifier: the CRL must repeat that identifier,
/// not one computed another way, or verifiers cannot pair CRL and CA.
#[test]
fn an_intermediate_ca_publishes_crls_openssl_pairs_with_its_certificate() {
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
[intermediate]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
";
    let site = Site::start();
    let authority = site.open();
    let request = authority.csr_for_offline_root(&site_identity()).unwrap();
    let dir = TempDir::new().unwrap();
    let path = dir.path();
    std::fs::write(path.join("openssl.cnf"), ROOT_CONFIG).unwrap();
    std::fs::write(path.join("request.pem"), request).unwrap();
    for args in [
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
            "ec_paramgen_curve:P-256",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-days",
            "3650",
        ][..],
        &[
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
            "1000",
            "-extfile",
            "openssl.cnf",
            "-extensions",
            "intermediate",
            "-copy_extensions",
            "copy",
            "-out",
            "intermediate.pem",
        ][..],
    ] {
        let (ok, output) = openssl(path, args);
        assert!(ok, "{output}");
    }
    let intermediate = std::fs::read_to_string(path.join("intermediate.pem")).unwrap();
    let root = std::fs::read_to_string(path.join("root.pem")).unwrap();
    authority
        .install_chain(&format!("{intermediate}{root}"))
        .unwrap();
    // Installing the chain signs the first CRL under the intermediate.
    assert_eq!(authority.crl_status().unwrap().number, 1);

    let revoked = issue(&authority, "api");
    let kept = issue(&authority, "db");
    authority
        .revoke(
            &revoked.certificate.serial,
            RevocationReason::AffiliationChanged,
            "test:operator",
        )
        .unwrap();
    std::fs::write(path.join("crl.pem"), authority.crl_pem().unwrap()).unwrap();
    std::fs::write(path.join("revoked.pem"), &revoked.certificate.pem).unwrap();
    std::fs::write(path.join("kept.pem"), &kept.certificate.pem).unwrap();
    std::fs::write(path.join("both.pem"), format!("{intermediate}{root}")).unwrap();

    let (ok, text) = openssl(
        path,
        &[
            "crl", "-in", "crl.pem", "-CAfile", "both.pem", "-noout", "-text",
        ],
    );
    assert!(ok && text.contains("verify OK"), "{text}");
    assert!(text.contains("Affiliation Changed"), "{text}");
    let verify = |leaf: &str| {
        openssl(
            path,
            &[
                "verify",
                "-crl_check",
                "-CRLfile",
                "crl.pem",
                "-CAfile",
                "root.pem",
                "-untrusted",
                "intermediate.pem",
                leaf,
            ],
        )
    };
    let (ok, text) = verify("revoked.pem");
    assert!(!ok && text.contains("certificate revoked"), "{text}");
    let (ok, text) = verify("kept.pem");
    assert!(ok, "{text}");
}
