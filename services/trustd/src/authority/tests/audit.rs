//! Audit-digest signatures: verifiable for exactly one service and digest, and never usable as
//! anything else the CA key signs.

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::ecdsa::{Signature, VerifyingKey};

use super::*;
use crate::translog::{SignedTreeHead, TreeHead};

#[test]
fn an_audit_signature_verifies_for_its_service_and_digest_only() {
    let site = Site::start();
    let authority = site.open_root();
    let digest: [u8; 32] = Sha256::digest(b"hubd audit log, segment 41").into();
    let signature = authority.sign_audit_digest("hubd", digest).unwrap();
    let key = authority.public_key_sec1();
    let hubd = AuditService::new("hubd").unwrap();
    verify_audit_signature(key, &hubd, &digest, &signature).unwrap();

    let mut other_digest = digest;
    other_digest[0] ^= 1;
    assert_eq!(
        verify_audit_signature(key, &hubd, &other_digest, &signature),
        Err(AuditVerifyError::Mismatch)
    );
    // A shorter name that would read the same if names were not length-prefixed.
    let hub = AuditService::new("hub").unwrap();
    assert_eq!(
        verify_audit_signature(key, &hub, &digest, &signature),
        Err(AuditVerifyError::Mismatch)
    );
}

#[test]
fn an_audit_signature_is_neither_a_tree_head_nor_a_signature_over_the_raw_digest() {
    let site = Site::start();
    let authority = site.open_root();
    issue(&authority, "api");
    let head = authority.signed_tree_head().unwrap();
    let verifying = VerifyingKey::from_sec1_bytes(authority.public_key_sec1()).unwrap();

    // Let a hostile service choose the digest as the root of the real tree head.
    let signature = authority
        .sign_audit_digest("minerd", head.head.root)
        .unwrap();
    let forged = SignedTreeHead {
        head: head.head,
        signature: signature.clone(),
    };
    assert!(forged.verify(authority.public_key_sec1()).is_err());
    // ... or any head with that root.
    let other = SignedTreeHead {
        head: TreeHead {
            size: 1,
            root: head.head.root,
            timestamp_ms: 0,
        },
        signature: signature.clone(),
    };
    assert!(other.verify(authority.public_key_sec1()).is_err());

    // Not a signature over the digest as a prehash, nor over the digest as a message.
    let digest = [0x5a; 32];
    let signature = authority.sign_audit_digest("minerd", digest).unwrap();
    let parsed = Signature::from_der(&signature).unwrap();
    assert!(verifying.verify_prehash(&digest, &parsed).is_err());
    assert!(verifying.verify(&digest, &parsed).is_err());
    // It is exactly a signature over the documented statement.
    let mut statement = b"bunkeros-audit-v1\0".to_vec();
    statement.push(6);
    statement.extend_from_slice(b"minerd");
    statement.extend_from_slice(&digest);
    assert_eq!(
        statement,
        audit_signed_bytes(&AuditService::new("minerd").unwrap(), &digest)
    );
    verifying.verify(&statement, &parsed).unwrap();
}

#[test]
fn service_names_are_short_lowercase_labels() {
    for good in ["hubd", "minerd", "a", "site-2", &"x".repeat(32)] {
        AuditService::new(good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in [
        "",
        "Hubd",
        "hub d",
        "hubd\0",
        "hubd/log",
        "ü",
        &"x".repeat(33),
    ] {
        let error = AuditService::new(bad).unwrap_err();
        assert!(
            matches!(error, AuthorityError::BadServiceName(_)),
            "{bad:?}"
        );
        assert!(error.is_caller_error());
    }
    // Refused before the TPM is asked: no authority needed to tell.
    let site = Site::start();
    let authority = site.open_root();
    let message = authority
        .sign_audit_digest("Hub D", [0; 32])
        .unwrap_err()
        .to_string();
    assert!(message.contains("a-z, 0-9 and `-`"), "{message}");
}
