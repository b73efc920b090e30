//! Signed tree heads: the signed encoding, domain separation, and the strict JSON form.

use super::super::{SignedTreeHead, TREE_HEAD_DOMAIN, TreeHead, TreeHeadError, WireError};
use super::{SoftwareCaKey, single_bit_flips, synthetic_tree};
use crate::ca_key::{CaKey, SignError};

fn head() -> TreeHead {
    TreeHead {
        size: 0x0102_0304_0506_0708,
        root: synthetic_tree(5).root(),
        timestamp_ms: 0x1112_1314_1516_1718,
    }
}

#[test]
fn translog_tree_head_signed_bytes_are_prefix_size_timestamp_root() {
    let head = head();
    let mut expected = b"bunkeros-tree-head-v1\x00".to_vec();
    expected.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    expected.extend_from_slice(&[0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]);
    expected.extend_from_slice(&head.root);
    assert_eq!(head.signed_bytes(), expected);
    assert_eq!(TREE_HEAD_DOMAIN, b"bunkeros-tree-head-v1\x00");
}

#[test]
fn translog_tree_heads_signed_by_the_ca_key_verify_with_its_public_key_only() {
    let key = SoftwareCaKey::new(1);
    let signed = head().sign(&key).unwrap();
    signed.verify(key.public_key_sec1()).unwrap();

    let other = SoftwareCaKey::new(2);
    assert!(matches!(
        signed.verify(other.public_key_sec1()),
        Err(TreeHeadError::SignatureMismatch)
    ));
    assert!(matches!(
        signed.verify(&key.public_key_sec1()[..64]),
        Err(TreeHeadError::BadPublicKey)
    ));
}

#[test]
fn translog_every_single_bit_change_of_a_signed_head_is_rejected() {
    let key = SoftwareCaKey::new(1);
    let signed = head().sign(&key).unwrap();
    let public = key.public_key_sec1();
    for bit in 0..u64::BITS {
        let mut tampered = signed.clone();
        tampered.head.size ^= 1 << bit;
        assert!(tampered.verify(public).is_err(), "size bit {bit}");
        let mut tampered = signed.clone();
        tampered.head.timestamp_ms ^= 1 << bit;
        assert!(tampered.verify(public).is_err(), "timestamp bit {bit}");
    }
    for root in super::hash_flips(&signed.head.root) {
        let mut tampered = signed.clone();
        tampered.head.root = root;
        assert!(tampered.verify(public).is_err());
    }
    for signature in single_bit_flips(&signed.signature) {
        let tampered = SignedTreeHead {
            signature,
            ..signed.clone()
        };
        assert!(tampered.verify(public).is_err());
    }
}

#[test]
fn translog_signatures_made_for_another_domain_are_not_tree_heads() {
    let key = SoftwareCaKey::new(1);
    let head = head();
    let without_prefix = head.signed_bytes()[TREE_HEAD_DOMAIN.len()..].to_vec();
    let mut other_version = b"bunkeros-tree-head-v2\x00".to_vec();
    other_version.extend_from_slice(&without_prefix);
    let mut no_terminator = b"bunkeros-tree-head-v1".to_vec();
    no_terminator.extend_from_slice(&without_prefix);
    for message in [without_prefix, other_version, no_terminator] {
        let forged = SignedTreeHead {
            head,
            signature: key.sign_raw(&message),
        };
        assert!(matches!(
            forged.verify(key.public_key_sec1()),
            Err(TreeHeadError::SignatureMismatch)
        ));
    }
}

#[test]
fn translog_malformed_signatures_are_refused_before_verification() {
    let key = SoftwareCaKey::new(1);
    let mut signed = head().sign(&key).unwrap();
    for signature in [Vec::new(), vec![0x30, 0x00], vec![0x30; 73]] {
        signed.signature = signature;
        assert!(matches!(
            signed.verify(key.public_key_sec1()),
            Err(TreeHeadError::BadSignatureEncoding)
        ));
    }
}

/// A CA key that fails the way a TPM can: sealed, or returning garbage.
struct FaultyKey {
    public: Vec<u8>,
    sealed: bool,
}

impl CaKey for FaultyKey {
    fn public_key_sec1(&self) -> &[u8] {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        if self.sealed {
            return Err(SignError::Sealed("PCR 7 changed".into()));
        }
        // A valid signature, but by another key: what a confused TPM handle would produce.
        Ok(SoftwareCaKey::new(9).sign_raw(message))
    }
}

#[test]
fn translog_signing_fails_cleanly_when_the_key_is_sealed_or_inconsistent() {
    let public = SoftwareCaKey::new(1).public_key_sec1().to_vec();
    let sealed = FaultyKey {
        public: public.clone(),
        sealed: true,
    };
    assert!(matches!(
        head().sign(&sealed),
        Err(TreeHeadError::Sign(SignError::Sealed(_)))
    ));
    let confused = FaultyKey {
        public,
        sealed: false,
    };
    assert!(matches!(
        head().sign(&confused),
        Err(TreeHeadError::KeyInconsistent)
    ));
}

#[test]
fn translog_signed_tree_head_json_round_trips() {
    let key = SoftwareCaKey::new(1);
    let signed = head().sign(&key).unwrap();
    let json = signed.to_json();
    assert!(json.starts_with("{\"size\":72623859790382856,\"timestamp_ms\":"));
    assert!(json.contains(&format!("\"root\":\"{}\"", hex::encode(signed.head.root))));
    let parsed = SignedTreeHead::from_json(json.as_bytes()).unwrap();
    assert_eq!(parsed, signed);
    parsed.verify(key.public_key_sec1()).unwrap();
}

#[test]
fn translog_signed_tree_head_json_is_read_strictly() {
    let key = SoftwareCaKey::new(1);
    let signed = head().sign(&key).unwrap();
    let root = hex::encode(signed.head.root);
    let signature = hex::encode(&signed.signature);
    let doc = |size: &str, root: &str, signature: &str, extra: &str| {
        format!(
            "{{\"size\":{size},\"timestamp_ms\":5,\"root\":\"{root}\",\"signature\":\"{signature}\"{extra}}}"
        )
    };
    let parse = |text: String| SignedTreeHead::from_json(text.as_bytes());
    assert!(parse(doc("8", &root, &signature, "")).is_ok());

    // Shape: unknown, duplicate, missing fields; wrong number types.
    for bad in [
        doc("8", &root, &signature, ",\"extra\":1"),
        doc("8", &root, &signature, ",\"size\":8"),
        "{\"size\":8,\"timestamp_ms\":5,\"root\":\"00\"}".to_string(),
        doc("-1", &root, &signature, ""),
        doc("8.0", &root, &signature, ""),
        doc("18446744073709551616", &root, &signature, ""),
        doc("\"8\"", &root, &signature, ""),
    ] {
        assert!(
            matches!(parse(bad.clone()), Err(WireError::Json(_))),
            "{bad}"
        );
    }
    // Values: short or long root, upper-case or non-hex digits, odd or empty or huge signature.
    for (bad, field) in [
        (doc("8", &root[..62], &signature, ""), "tree_head.root"),
        (
            doc("8", &format!("{root}00"), &signature, ""),
            "tree_head.root",
        ),
        (
            doc("8", &root.to_uppercase(), &signature, ""),
            "tree_head.root",
        ),
        (
            doc("8", &format!("g{}", &root[1..]), &signature, ""),
            "tree_head.root",
        ),
        (doc("8", &root, &signature[1..], ""), "tree_head.signature"),
        (doc("8", &root, "", ""), "tree_head.signature"),
        (doc("8", &root, &"ab".repeat(73), ""), "tree_head.signature"),
    ] {
        match parse(bad.clone()) {
            Err(WireError::Field { field: named, .. }) => assert_eq!(named, field, "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    let huge = format!("{}{}", " ".repeat(5000), doc("8", &root, &signature, ""));
    assert!(matches!(parse(huge), Err(WireError::TooLarge { .. })));
}
