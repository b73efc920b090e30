//! Pure parsing and checking: JWS, JWK, nonces, URLs, tls-alpn-01 certificates.

use aws_lc_rs::rsa::KeySize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::super::encoding::b64url;
use super::super::model::Identifier;
use super::super::nonce::{NonceError, NonceStore};
use super::super::resources::{Resource, Urls};
use super::super::validation::check_tls_alpn_certificate;
use super::*;

/// RFC 7638 §3.1's example key and its thumbprint.
const RFC7638_JWK: &str = r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#;
const RFC7638_THUMBPRINT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

fn kind(result: Result<impl std::fmt::Debug, Problem>) -> ProblemType {
    result.expect_err("must be refused").kind
}

fn flattened(protected: &Value, payload: &str) -> Vec<u8> {
    json!({
        "protected": b64url(protected.to_string().as_bytes()),
        "payload": payload,
        "signature": b64url(b"not checked by the parser"),
    })
    .to_string()
    .into_bytes()
}

fn header(extra: Value) -> Value {
    let mut header = json!({"alg": "ES256", "nonce": "abc", "url": "https://x/new-order", "kid": "https://x/account/a"});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            header.as_object_mut().unwrap().remove(k);
        } else {
            header[k] = v.clone();
        }
    }
    header
}

#[test]
fn rfc7638_thumbprint_of_the_example_key() {
    let key = parse_jwk(RFC7638_JWK.as_bytes()).unwrap();
    assert_eq!(key.thumbprint(), RFC7638_THUMBPRINT);
    assert_eq!(key.algorithm(), JwsAlgorithm::Rs256);
}

#[test]
fn jwk_refusals_are_bad_public_key() {
    let p256 = TestKey::p256().jwk();
    let mut private = p256.clone();
    private["d"] = json!(b64url(&[1; 32]));
    let mut off_curve = p256.clone();
    off_curve["y"] = json!(b64url(&[7; 32]));
    let mut short = p256.clone();
    short["x"] = json!(b64url(&[1; 31]));
    let mut padded = p256.clone();
    padded["x"] = json!(format!("{}=", p256["x"].as_str().unwrap()));
    let rsa1024 = TestKey::rsa(KeySize::Rsa2048).jwk();
    let mut small = rsa1024.clone();
    small["n"] = json!(b64url(&[0xc5; 128]));
    let mut leading_zero = rsa1024.clone();
    let n = super::super::encoding::from_b64url(rsa1024["n"].as_str().unwrap()).unwrap();
    leading_zero["n"] = json!(b64url(&[&[0][..], &n].concat()));
    for (what, jwk) in [
        ("private member", private),
        ("point off the curve", off_curve),
        ("short coordinate", short),
        ("padded base64", padded),
        ("RSA-1024", small),
        ("RSA leading zero", leading_zero),
        (
            "P-521",
            json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
        ),
        ("secret key", json!({"kty": "oct", "k": "AAAA"})),
        ("not an object", json!("P-256")),
    ] {
        let bytes = jwk.to_string().into_bytes();
        assert_eq!(kind(parse_jwk(&bytes)), ProblemType::BadPublicKey, "{what}");
    }
    assert_eq!(kind(parse_jwk(b"{not json")), ProblemType::BadPublicKey);
}

#[test]
fn jwk_accepts_p256_p384_rsa2048_and_ed25519() {
    for key in [
        TestKey::p256(),
        TestKey::p384(),
        TestKey::rsa(KeySize::Rsa2048),
    ] {
        let parsed = parse_jwk(key.jwk().to_string().as_bytes()).unwrap();
        assert_eq!(parsed.algorithm().name(), key.alg());
        // The canonical form parses back to the same key.
        assert_eq!(AccountKey::from_json(&parsed.to_json()).unwrap(), parsed);
    }
    let ed = aws_lc_rs::signature::Ed25519KeyPair::generate().unwrap();
    use aws_lc_rs::signature::KeyPair as _;
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(ed.public_key().as_ref())});
    let key = parse_jwk(jwk.to_string().as_bytes()).unwrap();
    key.verify(JwsAlgorithm::EdDsa, b"m", ed.sign(b"m").as_ref())
        .unwrap();
}

#[test]
fn jws_structure_refusals_are_malformed() {
    let good_header = header(json!({}));
    let payload = b64url(b"{}");
    let mut unprotected: Value =
        serde_json::from_slice(&flattened(&good_header, &payload)).unwrap();
    unprotected["header"] = json!({"kid": "x"});
    let general = json!({"payload": payload, "signatures": []});
    let mut padded: Value = serde_json::from_slice(&flattened(&good_header, &payload)).unwrap();
    padded["payload"] = json!(format!("{payload}="));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"protected=x".to_vec()),
        ("unprotected header", unprotected.to_string().into_bytes()),
        ("general serialization", general.to_string().into_bytes()),
        ("padded payload", padded.to_string().into_bytes()),
        (
            "no signature",
            json!({"protected": "e30", "payload": ""})
                .to_string()
                .into_bytes(),
        ),
        (
            "jwk and kid",
            flattened(&header(json!({"jwk": TestKey::p256().jwk()})), &payload),
        ),
        (
            "neither jwk nor kid",
            flattened(&header(json!({"kid": null})), &payload),
        ),
        (
            "crit",
            flattened(&header(json!({"crit": ["exp"]})), &payload),
        ),
        ("no url", flattened(&header(json!({"url": null})), &payload)),
        (
            "url not a string",
            flattened(&header(json!({"url": 7})), &payload),
        ),
        (
            "payload is an array",
            flattened(&good_header, &b64url(b"[1]")),
        ),
        ("payload not JSON", flattened(&good_header, &b64url(b"{"))),
        (
            "duplicate header member",
            json!({
                "protected": b64url(br#"{"alg":"ES256","url":"a","url":"b","kid":"k"}"#),
                "payload": "", "signature": "AA"
            })
            .to_string()
            .into_bytes(),
        ),
    ];
    for (what, bytes) in cases {
        assert_eq!(kind(parse_jws(&bytes)), ProblemType::Malformed, "{what}");
    }
}

#[test]
fn jws_algorithm_refusals_list_the_accepted_ones() {
    for alg in ["none", "HS256", "RS1", "PS256", "ES512"] {
        let problem = parse_jws(&flattened(&header(json!({"alg": alg})), "")).unwrap_err();
        assert_eq!(problem.kind, ProblemType::BadSignatureAlgorithm, "{alg}");
        let document: Value = serde_json::from_slice(&problem.to_json()).unwrap();
        assert_eq!(
            document["algorithms"],
            json!(["ES256", "ES384", "RS256", "EdDSA"])
        );
        assert_eq!(
            document["type"],
            "urn:ietf:params:acme:error:badSignatureAlgorithm"
        );
    }
}

#[test]
fn jws_too_large_is_refused_before_parsing() {
    let problem = parse_jws(&vec![b' '; super::super::jws::MAX_JWS_BYTES + 1]).unwrap_err();
    assert_eq!(
        (problem.kind, problem.status),
        (ProblemType::Malformed, 413)
    );
}

#[test]
fn jws_signatures_verify_and_tampering_is_caught() {
    for key in [
        TestKey::p256(),
        TestKey::p384(),
        TestKey::rsa(KeySize::Rsa2048),
    ] {
        let mut header = json!({"alg": key.alg(), "nonce": "n", "url": "https://x/new-account", "jwk": key.jwk()});
        let bytes = jws_bytes(&key, &header, Some(&json!({"contact": []})));
        let jws = parse_jws(&bytes).unwrap();
        let Signer::Key(parsed) = &jws.header.signer else {
            panic!("jwk expected")
        };
        jws.verify(parsed).unwrap();
        assert!(!jws.is_post_as_get());

        let mut tampered: Value = serde_json::from_slice(&bytes).unwrap();
        tampered["payload"] = json!(b64url(br#"{"contact":["mailto:evil@x.example"]}"#));
        let jws = parse_jws(tampered.to_string().as_bytes()).unwrap();
        assert_eq!(kind(jws.verify(parsed)), ProblemType::Malformed);

        // A header claiming another algorithm than the key's.
        header["alg"] = json!(if key.alg() == "ES384" {
            "ES256"
        } else {
            "ES384"
        });
        let jws = parse_jws(&jws_bytes(&key, &header, None)).unwrap();
        assert_eq!(kind(jws.verify(parsed)), ProblemType::BadSignatureAlgorithm);
        assert!(jws.is_post_as_get());
    }
}

#[test]
fn nonces_are_single_use_and_bounded() {
    let mut nonces = NonceStore::new(3);
    let first = nonces.issue();
    assert_eq!(first.len(), 22);
    nonces.check(Some(&first)).unwrap();
    nonces.consume(Some(&first)).unwrap();
    assert_eq!(nonces.consume(Some(&first)), Err(NonceError::Unknown));
    assert_eq!(nonces.check(None), Err(NonceError::Missing));
    assert_eq!(nonces.check(Some("a b")), Err(NonceError::Malformed));
    let issued: Vec<String> = (0..4).map(|_| nonces.issue()).collect();
    assert_eq!(nonces.len(), 3);
    assert_eq!(
        nonces.check(Some(&issued[0])),
        Err(NonceError::Unknown),
        "the oldest is forgotten"
    );
    for nonce in &issued[1..] {
        nonces.consume(Some(nonce)).unwrap();
    }
    assert!(nonces.is_empty());
}

#[test]
fn urls_route_back_to_their_resources() {
    let urls = Urls::new(BASE);
    let id = super::super::encoding::random_id();
    for (url, resource) in [
        (urls.directory(), Resource::Directory),
        (urls.account(&id), Resource::Account(id.clone())),
        (
            urls.account_orders(&id),
            Resource::AccountOrders(id.clone()),
        ),
        (urls.finalize(&id), Resource::Finalize(id.clone())),
        (urls.challenge(&id), Resource::Challenge(id.clone())),
        (urls.certificate(&id), Resource::Certificate(id.clone())),
    ] {
        assert_eq!(Resource::from_path(path_of(&url)), Some(resource));
    }
    assert_eq!(urls.account_id_of(&urls.account(&id)), Some(id.clone()));
    assert_eq!(
        urls.account_id_of(&format!("https://elsewhere/account/{id}")),
        None
    );
    for path in [
        "/account/../directory",
        "/order/a%2fb",
        "/order/",
        "/account/a/b",
        "directory",
    ] {
        assert_eq!(Resource::from_path(path), None, "{path}");
    }
}

/// An RFC 8737 validation certificate, as a tls-alpn-01 responder would make it.
fn alpn_certificate(names: &[&str], key_authorization: &str, critical: bool) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let mut extension =
        rcgen::CustomExtension::new_acme_identifier(&Sha256::digest(key_authorization.as_bytes()));
    extension.set_criticality(critical);
    params.custom_extensions = vec![extension];
    params.self_signed(&key).unwrap().der().to_vec()
}

#[test]
fn tls_alpn_certificates_are_checked_per_rfc_8737() {
    let name = device("miner7");
    let identifier = Identifier::Dns(DnsName::parse(&name).unwrap());
    let key_authorization = "token.thumbprint";
    check_tls_alpn_certificate(
        &alpn_certificate(&[&name], key_authorization, true),
        &identifier,
        key_authorization,
    )
    .unwrap();
    for (what, der) in [
        (
            "wrong digest",
            alpn_certificate(&[&name], "token.other", true),
        ),
        (
            "not critical",
            alpn_certificate(&[&name], key_authorization, false),
        ),
        (
            "two names",
            alpn_certificate(&[&name, &device("other")], key_authorization, true),
        ),
        (
            "another name",
            alpn_certificate(&[&device("other")], key_authorization, true),
        ),
        ("garbage", b"not a certificate".to_vec()),
    ] {
        let problem = check_tls_alpn_certificate(&der, &identifier, key_authorization).unwrap_err();
        assert_eq!(
            problem.kind,
            ProblemType::IncorrectResponse,
            "{what}: {problem}"
        );
    }
}

#[test]
fn configuration_is_strict_and_profiles_pick_the_most_specific_suffix() {
    let config: AcmeConfig = serde_json::from_value(json!({
        "listen": "[::]:443",
        "base_url": "https://acme.oslo.bunker.example",
        "validation": {"http_port": 8080, "addresses": {"m1.devices.oslo.bunker.example": "10.20.0.7"}},
    }))
    .unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.validation.tls_port, 443,
        "defaults fill what is not given"
    );
    let selector = config.profile_selector(&site()).unwrap();
    let name = |n: &str| DnsName::parse(n).unwrap();
    assert_eq!(
        selector.for_dns(&name(&device("m1"))),
        Some(Profile::Device)
    );
    assert_eq!(
        selector.for_dns(&name(&format!("grafana.{SITE}"))),
        Some(Profile::Service)
    );
    assert_eq!(selector.for_dns(&name("bank.example")), None);
    assert_eq!(selector.for_ip(), None);

    let unknown = serde_json::from_value::<AcmeConfig>(json!({"listen": "[::]:443", "lisen": 1}));
    assert!(unknown.is_err(), "unknown fields are refused");
    for (field, value) in [
        ("base_url", json!("http://acme.oslo.bunker.example")),
        ("base_url", json!("https://acme.oslo.bunker.example/")),
        ("profiles", json!([{"suffix": SITE, "profile": "hub"}])),
        (
            "profiles",
            json!([{"suffix": SITE, "profile": "service"}, {"suffix": SITE, "profile": "device"}]),
        ),
        ("ip_identifier_profile", json!("operator")),
        ("validation", json!({"attempts": 0})),
    ] {
        let config: AcmeConfig =
            serde_json::from_value(json!({"listen": "[::]:443", field: value})).unwrap();
        assert!(
            config.validate().is_err(),
            "{field} = {value} must be refused"
        );
    }
}
