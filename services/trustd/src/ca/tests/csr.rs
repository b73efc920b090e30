//! Hostile and broken CSRs: each refusal has its own variant, and good requests from rcgen and
//! openssl pass.

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
};

use super::*;
use crate::ca::csr::{CsrError, MAX_CSR_BYTES};
use crate::ca::names::NameError;

/// An openssl-made CSR: `keygen` are the key options of `openssl req -newkey`.
fn openssl_csr(keygen: &[&str], extra: &[&str]) -> Vec<u8> {
    let dir = TempDir::new().unwrap();
    let mut args = vec![
        "req", "-new", "-nodes", "-keyout", "key.pem", "-out", "csr.pem",
    ];
    args.extend_from_slice(keygen);
    args.extend_from_slice(&["-subj", "/CN=web.oslo.bunker.example"]);
    args.extend_from_slice(extra);
    openssl(dir.path(), &args);
    std::fs::read(dir.path().join("csr.pem")).unwrap()
}

pub(super) fn refusal(bytes: &[u8]) -> CsrError {
    parse_csr(bytes).expect_err("the CSR should be refused")
}

/// Request parameters with these names and an empty subject (rcgen's default has a CN).
pub(super) fn params_with(names: &[&str]) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names = names.iter().map(|n| san(n)).collect();
    params
}

pub(super) fn der_of(params: &CertificateParams) -> Vec<u8> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    params.serialize_request(&key).unwrap().der().to_vec()
}

#[test]
fn good_requests_of_every_accepted_key_type_parse() {
    for (alg, kind) in [
        (&PKCS_ECDSA_P256_SHA256, KeyKind::EcdsaP256),
        (&PKCS_ECDSA_P384_SHA384, KeyKind::EcdsaP384),
        (&PKCS_ED25519, KeyKind::Ed25519),
    ] {
        let csr = parse_csr(&csr_with(
            alg,
            Some("web.oslo.bunker.example"),
            &["web.oslo.bunker.example", "10.20.1.2"],
        ))
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(csr.key(), kind);
        assert_eq!(csr.common_name(), Some("web.oslo.bunker.example"));
        assert_eq!(
            csr.names(),
            &[
                SubjectName::Dns(DnsName::parse("web.oslo.bunker.example").unwrap()),
                SubjectName::Ip("10.20.1.2".parse().unwrap()),
            ]
        );
    }
    // RSA-3072 from openssl, PEM with the default v3_req-style extensions openssl adds.
    let rsa = openssl_csr(
        &["-newkey", "rsa:3072"],
        &[
            "-addext",
            "subjectAltName=DNS:web.oslo.bunker.example",
            "-addext",
            "basicConstraints=CA:FALSE",
            "-addext",
            "keyUsage=digitalSignature,keyEncipherment",
            "-addext",
            "extendedKeyUsage=serverAuth,clientAuth",
        ],
    );
    assert_eq!(parse_csr(&rsa).unwrap().key(), KeyKind::Rsa { bits: 3072 });
    // Leading/trailing white space around PEM, and the old NEW CERTIFICATE REQUEST label.
    let text = String::from_utf8(rsa).unwrap();
    let relabelled = text.replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST");
    assert!(parse_csr(format!("\n  {relabelled}\n\n").as_bytes()).is_ok());
}

#[test]
fn wrong_key_types_and_sizes_are_refused() {
    let p521 = csr_with(
        &rcgen::PKCS_ECDSA_P521_SHA512,
        None,
        &["a.oslo.bunker.example"],
    );
    assert_eq!(
        refusal(&p521),
        CsrError::UnsupportedKeyType("ECDSA P-521".into())
    );
    let k1 = openssl_csr(
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
        &[],
    );
    assert_eq!(
        refusal(&k1),
        CsrError::UnsupportedKeyType("ECDSA secp256k1".into())
    );
    let rsa2048 = openssl_csr(&["-newkey", "rsa:2048"], &[]);
    assert_eq!(refusal(&rsa2048), CsrError::RsaKeySize { bits: 2048 });
    let dsa_dir = TempDir::new().unwrap();
    openssl(dsa_dir.path(), &["dsaparam", "-out", "p.pem", "2048"]);
    let dsa = openssl_csr(
        &[
            "-newkey",
            &format!("dsa:{}", dsa_dir.path().join("p.pem").display()),
        ],
        &[],
    );
    assert_eq!(refusal(&dsa), CsrError::UnsupportedKeyType("DSA".into()));
    let ed448 = openssl_csr(&["-newkey", "ed448"], &[]);
    assert_eq!(
        refusal(&ed448),
        CsrError::UnsupportedKeyType("Ed448".into())
    );
}

#[test]
fn sha1_signatures_are_refused_even_on_a_good_key() {
    let sha1 = openssl_csr(&["-newkey", "rsa:3072", "-sha1"], &[]);
    let err = refusal(&sha1);
    assert!(
        matches!(err, CsrError::UnsupportedSignatureAlgorithm(ref alg) if alg.contains("SHA-1")),
        "{err}"
    );
}

#[test]
fn a_tampered_request_fails_its_signature_check() {
    let mut der = csr_with(&PKCS_ECDSA_P256_SHA256, None, &["web.oslo.bunker.example"]);
    // The last byte is in the signature; a byte inside the name is in the signed info.
    let last = der.len() - 1;
    der[last] ^= 0x01;
    assert_eq!(refusal(&der), CsrError::BadSignature);
    let mut der = csr_with(&PKCS_ECDSA_P256_SHA256, None, &["web.oslo.bunker.example"]);
    let at = der.windows(3).position(|w| w == b"web").unwrap();
    der[at] = b'v';
    assert_eq!(refusal(&der), CsrError::BadSignature);
}

#[test]
fn envelopes_that_are_not_one_csr_are_refused() {
    assert_eq!(refusal(b""), CsrError::Empty);
    assert!(matches!(refusal(b"hello, CA"), CsrError::NotACsr(_)));
    assert!(matches!(refusal(&[0xff; 100]), CsrError::NotACsr(_)));
    let big = vec![0x30; 1024 * 1024];
    assert_eq!(refusal(&big), CsrError::TooLarge { len: 1024 * 1024 });
    assert!(MAX_CSR_BYTES < big.len());

    let der = csr_with(&PKCS_ECDSA_P256_SHA256, None, &["web.oslo.bunker.example"]);
    for cut in [1, 2, der.len() / 2, der.len() - 1] {
        assert!(
            matches!(refusal(&der[..cut]), CsrError::Malformed(_)),
            "cut at {cut}"
        );
    }
    let mut trailing = der.clone();
    trailing.extend_from_slice(b"\0\0\0");
    assert_eq!(refusal(&trailing), CsrError::TrailingData(3));

    let certificate = pem::encode(&pem::Pem::new("CERTIFICATE", der.clone()));
    assert_eq!(
        refusal(certificate.as_bytes()),
        CsrError::WrongPemLabel("CERTIFICATE".into())
    );
    let csr_pem = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
    let two = format!("{csr_pem}{csr_pem}");
    assert!(matches!(refusal(two.as_bytes()), CsrError::NotACsr(_)));
    let prefixed = format!("junk before\n{csr_pem}");
    assert!(matches!(refusal(prefixed.as_bytes()), CsrError::NotACsr(_)));
    let bad_base64 = csr_pem.replacen('M', "!", 1);
    assert!(matches!(
        refusal(bad_base64.as_bytes()),
        CsrError::NotACsr(_)
    ));
}

#[test]
fn oversized_and_malformed_names_are_refused() {
    let forty: Vec<String> = (0..40)
        .map(|i| format!("n{i}.oslo.bunker.example"))
        .collect();
    let forty: Vec<&str> = forty.iter().map(String::as_str).collect();
    assert_eq!(
        refusal(&der_of(&params_with(&forty))),
        CsrError::TooManyNames { count: 40 }
    );

    let mut long_cn = params_with(&[]);
    long_cn
        .distinguished_name
        .push(rcgen::DnType::CommonName, "c".repeat(65));
    assert_eq!(
        refusal(&der_of(&long_cn)),
        CsrError::CommonNameTooLong { len: 65 }
    );

    let dir = TempDir::new().unwrap();
    openssl(
        dir.path(),
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
            "/CN=a.oslo.bunker.example/CN=b.oslo.bunker.example",
            "-out",
            "csr.pem",
        ],
    );
    assert_eq!(
        refusal(&std::fs::read(dir.path().join("csr.pem")).unwrap()),
        CsrError::MultipleCommonNames(2)
    );

    let cases: [(&str, NameError); 6] = [
        ("Web.oslo.bunker.example", NameError::Uppercase),
        ("web\0.evil.example", NameError::Nul),
        (
            "-web.oslo.bunker.example",
            NameError::HyphenAtLabelEdge("-web".into()),
        ),
        ("a..oslo.bunker.example", NameError::EmptyLabel),
        (
            "web_1.oslo.bunker.example",
            NameError::InvalidCharacter('_'),
        ),
        ("a*.oslo.bunker.example", NameError::MisplacedWildcard),
    ];
    for (name, reason) in cases {
        let err = refusal(&der_of(&params_with(&[name])));
        assert!(
            matches!(&err, CsrError::BadDnsName { reason: r, .. } if *r == reason),
            "{name:?}: {err}"
        );
    }
    let too_long = format!("{}.oslo.bunker.example", vec!["a".repeat(60); 4].join("."));
    assert!(matches!(
        refusal(&der_of(&params_with(&[&too_long]))),
        CsrError::BadDnsName {
            reason: NameError::TooLong { .. },
            ..
        }
    ));
    assert!(matches!(
        refusal(&der_of(&params_with(&["uri:not a uri"]))),
        CsrError::BadUri { .. }
    ));
    assert!(matches!(
        refusal(&der_of(&params_with(&["email:Alice@oslo.bunker.example"]))),
        CsrError::BadEmail { .. }
    ));

    let mut other_name = params_with(&[]);
    other_name.subject_alt_names = vec![rcgen::SanType::OtherName((
        vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
        "admin@corp".into(),
    ))];
    assert_eq!(
        refusal(&der_of(&other_name)),
        CsrError::UnsupportedNameType("otherName")
    );
}

#[test]
fn requests_for_ca_powers_or_unknown_extensions_are_refused() {
    let mut ca = params_with(&["web.oslo.bunker.example"]);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    assert_eq!(refusal(&der_of(&ca)), CsrError::CaRequested);

    let mut not_ca = params_with(&["web.oslo.bunker.example"]);
    not_ca.is_ca = IsCa::ExplicitNoCa;
    assert!(parse_csr(&der_of(&not_ca)).is_ok(), "CA:FALSE is harmless");

    let mut cert_sign = params_with(&["web.oslo.bunker.example"]);
    cert_sign.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
    ];
    assert_eq!(
        refusal(&der_of(&cert_sign)),
        CsrError::ForbiddenKeyUsage("keyCertSign")
    );
    let mut crl_sign = params_with(&["web.oslo.bunker.example"]);
    crl_sign.key_usages = vec![KeyUsagePurpose::CrlSign];
    assert_eq!(
        refusal(&der_of(&crl_sign)),
        CsrError::ForbiddenKeyUsage("cRLSign")
    );

    let mut code = params_with(&["web.oslo.bunker.example"]);
    code.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::CodeSigning,
    ];
    assert_eq!(
        refusal(&der_of(&code)),
        CsrError::ForbiddenExtendedKeyUsage("codeSigning".into())
    );

    // OCSP must-staple (TLS feature), which certbot sends with --must-staple: not honoured.
    let mut staple = params_with(&["web.oslo.bunker.example"]);
    staple.custom_extensions = vec![CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 5, 5, 7, 1, 24],
        vec![0x30, 0x03, 0x02, 0x01, 0x05],
    )];
    assert_eq!(
        refusal(&der_of(&staple)),
        CsrError::UnsupportedExtension {
            oid: "1.3.6.1.5.5.7.1.24".into(),
            critical: false
        }
    );
    let mut name_constraints = params_with(&["web.oslo.bunker.example"]);
    let mut extension = CustomExtension::from_oid_content(&[2, 5, 29, 30], vec![0x30, 0x00]);
    extension.set_criticality(true);
    name_constraints.custom_extensions = vec![extension];
    assert_eq!(
        refusal(&der_of(&name_constraints)),
        CsrError::UnsupportedExtension {
            oid: "2.5.29.30".into(),
            critical: true
        }
    );
}

#[test]
fn duplicate_names_are_folded_and_nothing_else_is_kept() {
    let csr = parse_csr(&der_of(&params_with(&[
        "web.oslo.bunker.example",
        "web.oslo.bunker.example",
        "uri:bunkeros:hub:oslo",
    ])))
    .unwrap();
    assert_eq!(csr.names().len(), 2);
    // Subject attributes other than CN are ignored, never copied.
    let mut params = params_with(&["web.oslo.bunker.example"]);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Evil Corp");
    params
        .distinguished_name
        .push(rcgen::DnType::CountryName, "AQ");
    let csr = parse_csr(&der_of(&params)).unwrap();
    assert_eq!(csr.common_name(), None);
}

#[test]
fn refusals_quote_hostile_text_safely() {
    let err = refusal(&der_of(&params_with(&["a\u{7}b.oslo.bunker.example"])));
    let message = err.to_string();
    assert!(!message.contains('\u{7}'), "{message}");
    assert!(message.contains("\\u{7}"), "{message}");
}
