//! A service's audit log sealed by the real trustd over D-Bus (swtpm, private dbus-daemon),
//! verified offline with nothing but the CA certificate's key: proves that
//! `appliance::audit_log`'s copy of the audit statement is the one trustd signs.

mod common;

use appliance::audit_log::seal::SealDetail;
use appliance::audit_log::{
    AuditLog, Entry, Record, SealOutcome, SealProblem, TrustdSigner, TrustedKey, VerifyError,
    VerifyOptions, verify_file,
};
use common::*;
use serde_json::{Value, json};

fn entry(n: u32) -> Entry {
    Entry::new(
        "operator:alice",
        "miner.set-pools",
        format!("127.1.0.{n}"),
        json!({"pools": ["stratum+tcp://127.0.0.1:3333"]}),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn trustd_seals_an_audit_log_that_verifies_offline_with_the_ca_key() {
    // PCR 16 only: swtpm has no boot measurements, and the test must not depend on them.
    let mut appliance =
        Appliance::new("[policy]\nmode = \"pcr\"\npcrs = [16]\npcr11_prediction = \"\"\n");
    appliance.start();
    let connection = appliance::dbus::connect(&appliance.bus.bus())
        .await
        .unwrap();
    let signer = TrustdSigner::new(connection, "minerd").expect("a valid service name");

    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("audit.log");
    let (mut log, _) = AuditLog::open(&path, "minerd").await.unwrap();
    for n in 1..=3 {
        log.append(entry(n)).await.unwrap();
    }
    assert_eq!(
        log.seal(Some(&signer)).await.unwrap(),
        SealOutcome::Sealed { seq: 4 }
    );
    log.append(entry(4)).await.unwrap();

    // The verifier's key: the root certificate trustd hands out (what an auditor pins).
    let trust = appliance.proxy().await;
    let root = trust.root_certificate().await.unwrap();
    let (_, root_der) = x509_parser::pem::parse_x509_pem(root.as_bytes()).unwrap();
    let (_, root_cert) = x509_parser::parse_x509_certificate(&root_der.contents).unwrap();
    let ca_key = root_cert.public_key().subject_public_key.data.to_vec();
    let options = VerifyOptions {
        key: Some(TrustedKey::from_sec1(&ca_key).unwrap()),
        service: Some("minerd".into()),
        known_head: None,
    };
    let verified = verify_file(&path, &options).await.unwrap();
    assert_eq!(verified.seals, 1);
    assert_eq!(verified.last_sealed_seq, Some(3));
    assert_eq!(verified.records, 5);

    // trustd's own verifier agrees on the statement.
    let text = std::fs::read_to_string(&path).unwrap();
    let seal = Record::parse(text.lines().nth(3).unwrap().as_bytes()).unwrap();
    let detail = SealDetail::from_json(&seal.detail).unwrap();
    let minerd = trustd::authority::AuditService::new("minerd").unwrap();
    trustd::authority::verify_audit_signature(
        &ca_key,
        &minerd,
        &seal.prev_bytes(),
        &detail.signature_der,
    )
    .expect("trustd verifies the seal the log wrote");
    let status: Value = serde_json::from_str(&trust.status().await.unwrap()).unwrap();
    assert_eq!(status["public_key"], hex::encode(&ca_key));

    // Another key is refused.
    let other = p256::ecdsa::SigningKey::from_bytes(&[5u8; 32].into()).unwrap();
    let wrong = VerifyOptions {
        key: Some(TrustedKey::from_sec1(other.verifying_key().to_sec1_bytes().as_ref()).unwrap()),
        ..options.clone()
    };
    assert!(matches!(
        verify_file(&path, &wrong).await,
        Err(VerifyError::BadSeal {
            seq: 4,
            problem: SealProblem::UnknownKey { .. }
        })
    ));

    // trustd gone: the records stay chained and the log says the seal was skipped.
    let (stopped, _) = appliance.stop();
    assert!(stopped.success());
    log.append(entry(5)).await.unwrap();
    assert!(matches!(
        log.seal(Some(&signer)).await.unwrap(),
        SealOutcome::Skipped { seq: 7, .. }
    ));
    let verified = verify_file(&path, &options).await.unwrap();
    assert_eq!((verified.seals, verified.skipped_seals), (1, 1));
    assert_eq!(verified.unsealed_records, 3);
}
