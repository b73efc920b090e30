//! Requests crafted below rcgen's and openssl's safety nets: encodings, versions and extension
//! contents no well-behaved tool writes, each validly signed so the check under test is the one
//! that refuses.

use rcgen::{CustomExtension, KeyPair, PKCS_ECDSA_P256_SHA256};

use super::csr::{der_of, params_with, refusal};
use super::*;
use crate::ca::csr::CsrError;

/// A P-256 software key that writes its public key into requests as `point`, in whatever
/// encoding the test wants (a compressed point is something rcgen itself never writes).
struct PresentedPointKey {
    key: p256::ecdsa::SigningKey,
    point: Vec<u8>,
}

impl rcgen::PublicKeyData for PresentedPointKey {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for PresentedPointKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        use p256::ecdsa::signature::Signer as _;
        let signature: p256::ecdsa::Signature = self.key.sign(message);
        Ok(signature.to_der().as_bytes().to_vec())
    }
}

#[test]
fn a_compressed_ec_point_is_refused() {
    let key = p256::ecdsa::SigningKey::from_slice(&Sha256::digest(b"compressed")).unwrap();
    let point = key
        .verifying_key()
        .to_encoded_point(true)
        .as_bytes()
        .to_vec();
    assert_eq!(point.len(), 33);
    let signer = PresentedPointKey { key, point };
    let der = params_with(&["web.oslo.bunker.example"])
        .serialize_request(&signer)
        .unwrap()
        .der()
        .to_vec();
    let err = refusal(&der);
    assert!(
        matches!(err, CsrError::BadPublicKey(ref why) if why.contains("uncompressed")),
        "{err}"
    );
}

/// A DER tag-length-value (short or long form length).
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if content.len() < 0x80 {
        out.push(content.len() as u8);
    } else {
        out.extend([0x82, (content.len() >> 8) as u8, content.len() as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// A request whose extension request carries a SAN extension with `san_content` as its value.
fn with_raw_san(san_content: Vec<u8>) -> Vec<u8> {
    let mut params = params_with(&[]);
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        &[2, 5, 29, 17],
        san_content,
    )];
    der_of(&params)
}

#[test]
fn crafted_extension_contents_are_refused() {
    // An IP address name of 3 bytes.
    let ip = with_raw_san(tlv(0x30, &tlv(0x87, &[10, 20, 1])));
    assert_eq!(refusal(&ip), CsrError::BadIpAddress(3));
    // A DNS name that is not even text.
    let binary = with_raw_san(tlv(0x30, &tlv(0x82, &[0xff, 0xfe, b'.', b'x'])));
    assert!(matches!(
        refusal(&binary),
        CsrError::MalformedName | CsrError::MalformedExtension(_)
    ));
    // A SAN extension whose content is not a GeneralNames sequence.
    let garbage = with_raw_san(vec![0x04, 0x02, 0xde, 0xad]);
    assert_eq!(
        refusal(&garbage),
        CsrError::MalformedExtension("2.5.29.17".into())
    );
    // The same extension twice.
    let mut twice = params_with(&["a.oslo.bunker.example"]);
    twice.custom_extensions = vec![CustomExtension::from_oid_content(
        &[2, 5, 29, 17],
        tlv(0x30, &tlv(0x82, b"b.oslo.bunker.example")),
    )];
    assert_eq!(
        refusal(&der_of(&twice)),
        CsrError::DuplicateExtension("2.5.29.17".into())
    );
    // Two extensionRequest attributes, the second smuggling another name.
    let extension = tlv(
        0x30,
        &[
            tlv(0x06, &[0x55, 0x1d, 0x11]),
            tlv(0x04, &tlv(0x30, &tlv(0x82, b"b.oslo.bunker.example"))),
        ]
        .concat(),
    );
    let values = tlv(0x31, &tlv(0x30, &extension));
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let smuggled = params_with(&["a.oslo.bunker.example"])
        .serialize_request_with_attributes(
            &key,
            vec![rcgen::Attribute {
                oid: &[1, 2, 840, 113549, 1, 9, 14],
                values,
            }],
        )
        .unwrap();
    assert_eq!(refusal(smuggled.der()), CsrError::MultipleExtensionRequests);
}

/// Re-signs a modified CertificationRequestInfo with `key`, as a requester crafting a request
/// by hand would.
fn resigned(info: &[u8], key: &p256::ecdsa::SigningKey) -> Vec<u8> {
    use p256::ecdsa::signature::Signer as _;
    let signature: p256::ecdsa::Signature = key.sign(info);
    let ecdsa_with_sha256 = tlv(
        0x30,
        &tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]),
    );
    let mut bits = vec![0];
    bits.extend_from_slice(signature.to_der().as_bytes());
    tlv(
        0x30,
        &[info.to_vec(), ecdsa_with_sha256, tlv(0x03, &bits)].concat(),
    )
}

/// The first element inside the DER SEQUENCE `der`, header included.
fn first_element(der: &[u8]) -> &[u8] {
    let header = |d: &[u8]| {
        if d[1] < 0x80 {
            2
        } else {
            2 + usize::from(d[1] & 0x7f)
        }
    };
    let length = |d: &[u8]| {
        if d[1] < 0x80 {
            usize::from(d[1])
        } else {
            d[2..header(d)]
                .iter()
                .fold(0, |n, b| n << 8 | usize::from(*b))
        }
    };
    let content = &der[header(der)..];
    &content[..header(content) + length(content)]
}

#[test]
fn a_request_version_other_than_one_is_refused() {
    let key = p256::ecdsa::SigningKey::from_slice(&Sha256::digest(b"versioned")).unwrap();
    let signer = PresentedPointKey {
        point: key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec(),
        key: key.clone(),
    };
    let der = params_with(&["web.oslo.bunker.example"])
        .serialize_request(&signer)
        .unwrap()
        .der()
        .to_vec();
    let mut info = first_element(&der).to_vec();
    assert!(
        parse_csr(&resigned(&info, &key)).is_ok(),
        "the re-signing itself is sound"
    );
    let version_at = info
        .windows(3)
        .position(|w| w == [0x02, 0x01, 0x00])
        .unwrap();
    info[version_at + 2] = 0x01;
    assert_eq!(
        refusal(&resigned(&info, &key)),
        CsrError::UnsupportedVersion(1)
    );
}
