//! The audit log as its users see it: append and reopen, crash recovery, tamper detection,
//! and seals verified with a real P-256 key.

use std::path::{Path, PathBuf};

use appliance::audit_log::seal::audit_statement;
use appliance::audit_log::{
    Anchor, AuditLog, Entry, OpenError, Record, SealOutcome, SealPolicy, SealProblem,
    SealSignature, SealSigner, SignError, SignFuture, Truncation, TrustedKey, VerifyError,
    VerifyOptions, verify_file,
};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::json;

/// Signs like trustd does, with a key held in memory.
struct KeySigner {
    key: SigningKey,
    service: &'static str,
}

impl KeySigner {
    fn new(seed: u8) -> Self {
        let key = SigningKey::from_bytes(&[seed; 32].into()).expect("a valid scalar");
        Self {
            key,
            service: "minerd",
        }
    }

    fn trusted(&self) -> TrustedKey {
        TrustedKey::from_sec1(self.key.verifying_key().to_encoded_point(true).as_bytes()).unwrap()
    }
}

impl SealSigner for KeySigner {
    fn sign(&self, digest: [u8; 32]) -> SignFuture<'_> {
        let signature: Signature = self.key.sign(&audit_statement(self.service, &digest));
        let signed = SealSignature {
            service: self.service.to_owned(),
            public_key_sec1: self
                .key
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
            signature_der: signature.to_der().as_bytes().to_vec(),
        };
        Box::pin(async move { Ok(signed) })
    }
}

/// A signer whose trustd is gone.
struct GoneSigner;

impl SealSigner for GoneSigner {
    fn sign(&self, _digest: [u8; 32]) -> SignFuture<'_> {
        Box::pin(async { Err(SignError::Unavailable("trustd is not on the bus".into())) })
    }
}

fn entry(n: u32) -> Entry {
    Entry::new(
        "operator:alice",
        "miner.reboot",
        format!("127.1.0.{n}"),
        json!({"n": n, "why": "stuck board", "nested": {"b": 1, "a": [1.5, null]}}),
    )
}

async fn log_with(dir: &Path, records: u32) -> PathBuf {
    let path = dir.join("audit.log");
    let (mut log, _) = AuditLog::open(&path, "minerd").await.unwrap();
    for n in 1..=records {
        log.append(entry(n)).await.unwrap();
    }
    path
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

async fn verify(path: &Path) -> Result<appliance::audit_log::VerifiedLog, VerifyError> {
    verify_file(path, &VerifyOptions::default()).await
}

#[tokio::test]
async fn appends_survive_reopen_and_the_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 3).await;
    let (mut log, report) = AuditLog::open(&path, "minerd").await.unwrap();
    assert_eq!(report.records, 3);
    assert!(!report.created);
    assert_eq!(report.torn_tail, None);
    let fourth = log.append(entry(4)).await.unwrap();
    assert_eq!(fourth.seq, 4);
    let third = Record::parse(lines(&path)[2].as_bytes()).unwrap();
    assert_eq!(fourth.prev, third.hash);
    assert!(fourth.time.ends_with('Z'), "UTC RFC 3339: {}", fourth.time);
    let verified = verify(&path).await.unwrap();
    assert_eq!(verified.records, 4);
    assert_eq!(verified.seals, 0);
    assert_eq!(verified.head, log.head());
}

#[tokio::test]
async fn a_torn_last_line_is_reported_and_cut_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 2).await;
    let whole = std::fs::read(&path).unwrap();
    // A crash in the middle of writing record 3: half its line reached the disk.
    let third = Record::chained(3, "2026-01-01T00:00:00Z".into(), entry(3), &[9; 32]).to_line();
    let mut torn = whole.clone();
    torn.extend_from_slice(&third[..third.len() / 2]);
    std::fs::write(&path, &torn).unwrap();
    assert!(matches!(
        verify(&path).await,
        Err(VerifyError::Truncated(Truncation::TornTail { line: 3 }))
    ));

    let (mut log, report) = AuditLog::open(&path, "minerd").await.unwrap();
    let cut = report.torn_tail.expect("the torn line is reported");
    assert_eq!((cut.line, cut.keep_bytes), (3, whole.len() as u64));
    assert_eq!(std::fs::read(&path).unwrap(), whole);
    assert_eq!(log.append(entry(3)).await.unwrap().seq, 3);
    assert_eq!(verify(&path).await.unwrap().records, 3);
}

#[tokio::test]
async fn an_edited_byte_is_detected_at_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 4).await;
    let mut all = lines(&path);
    all[1] = all[1].replace("127.1.0.2", "127.1.0.9");
    write_lines(&path, &all);
    assert!(matches!(
        verify(&path).await,
        Err(VerifyError::EditedRecord { seq: 2 })
    ));
    // The writer refuses it too and leaves the evidence as it is.
    let before = std::fs::read(&path).unwrap();
    assert!(matches!(
        AuditLog::open(&path, "minerd").await,
        Err(OpenError::Damaged {
            source: VerifyError::EditedRecord { seq: 2 },
            ..
        })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[tokio::test]
async fn an_edit_with_its_hash_recomputed_breaks_the_chain_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 4).await;
    let mut all = lines(&path);
    let mut second = Record::parse(all[1].as_bytes()).unwrap();
    second.actor = "operator:mallory".into();
    let forged = Record::chained(
        2,
        second.time.clone(),
        entry_of(&second),
        &second.prev_bytes(),
    );
    all[1] = String::from_utf8(forged.to_line())
        .unwrap()
        .trim_end()
        .to_owned();
    write_lines(&path, &all);
    assert!(matches!(
        verify(&path).await,
        Err(VerifyError::BrokenChain { seq: 3 })
    ));
}

fn entry_of(record: &Record) -> Entry {
    Entry::new(
        record.actor.clone(),
        record.action.clone(),
        record.target.clone(),
        record.detail.clone(),
    )
}

#[tokio::test]
async fn a_deleted_line_is_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 4).await;
    let mut all = lines(&path);
    all.remove(1);
    write_lines(&path, &all);
    assert!(matches!(
        verify(&path).await,
        Err(VerifyError::Truncated(Truncation::Gap {
            missing: 2,
            found: 3
        }))
    ));
}

#[tokio::test]
async fn reordered_lines_break_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 4).await;
    let mut all = lines(&path);
    all.swap(1, 2);
    write_lines(&path, &all);
    assert!(matches!(
        verify(&path).await,
        Err(VerifyError::BrokenChain { seq: 3 })
    ));
}

#[tokio::test]
async fn a_truncated_file_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 4).await;
    let head = verify(&path).await.unwrap().head.unwrap();
    let whole = std::fs::read(&path).unwrap();

    // Cut mid-line: the last line is unfinished.
    std::fs::write(&path, &whole[..whole.len() - 10]).unwrap();
    assert!(matches!(
        verify(&path).await,
        Err(VerifyError::Truncated(Truncation::TornTail { line: 4 }))
    ));

    // Cut at a line boundary: only a head remembered from before tells.
    let mut kept = lines(&path);
    kept.truncate(2);
    write_lines(&path, &kept);
    assert_eq!(verify(&path).await.unwrap().records, 2);
    let options = VerifyOptions {
        known_head: Some(head),
        ..VerifyOptions::default()
    };
    assert!(matches!(
        verify_file(&path, &options).await,
        Err(VerifyError::Truncated(Truncation::MissingTail {
            last_seq: 2,
            known_seq: 4
        }))
    ));
}

#[tokio::test]
async fn a_garbage_line_in_the_middle_is_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 3).await;
    let mut all = lines(&path);
    all.insert(1, "{not json".into());
    write_lines(&path, &all);
    assert!(matches!(
        verify(&path).await,
        Err(VerifyError::Malformed { line: 2, .. })
    ));
}

#[tokio::test]
async fn a_seal_verifies_with_the_signing_key_and_not_with_another() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 3).await;
    let signer = KeySigner::new(7);
    let (mut log, _) = AuditLog::open(&path, "minerd").await.unwrap();
    assert_eq!(
        log.seal(Some(&signer)).await.unwrap(),
        SealOutcome::Sealed { seq: 4 }
    );
    assert_eq!(
        log.seal(Some(&signer)).await.unwrap(),
        SealOutcome::NothingNew
    );
    log.append(entry(5)).await.unwrap();

    let options = VerifyOptions {
        key: Some(signer.trusted()),
        service: Some("minerd".into()),
        known_head: None,
    };
    let verified = verify_file(&path, &options).await.unwrap();
    assert_eq!(verified.seals, 1);
    assert_eq!(verified.last_sealed_seq, Some(3));
    assert_eq!(verified.unsealed_records, 1);
    assert_eq!(verified.records, 5);

    let wrong = VerifyOptions {
        key: Some(KeySigner::new(8).trusted()),
        ..options.clone()
    };
    assert!(matches!(
        verify_file(&path, &wrong).await,
        Err(VerifyError::BadSeal {
            seq: 4,
            problem: SealProblem::UnknownKey { .. }
        })
    ));
    let other_service = VerifyOptions {
        service: Some("sited".into()),
        ..options
    };
    assert!(matches!(
        verify_file(&path, &other_service).await,
        Err(VerifyError::BadSeal {
            seq: 4,
            problem: SealProblem::WrongService { .. }
        })
    ));
}

#[tokio::test]
async fn a_rewrite_of_the_whole_chain_fails_the_seal() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 3).await;
    let signer = KeySigner::new(7);
    let (mut log, _) = AuditLog::open(&path, "minerd").await.unwrap();
    log.seal(Some(&signer)).await.unwrap();
    drop(log);

    // Someone without the key edits record 2 and recomputes every hash after it.
    let mut prev = [0u8; 32];
    let mut rewritten = Vec::new();
    for (i, line) in lines(&path).iter().enumerate() {
        let mut record = Record::parse(line.as_bytes()).unwrap();
        if i == 1 {
            record.target = "127.1.0.99".into();
        }
        let again = Record::chained(record.seq, record.time.clone(), entry_of(&record), &prev);
        prev = again.recomputed_hash();
        rewritten.push(
            String::from_utf8(again.to_line())
                .unwrap()
                .trim_end()
                .to_owned(),
        );
    }
    write_lines(&path, &rewritten);
    assert!(verify(&path).await.is_ok(), "the chain alone cannot tell");
    let options = VerifyOptions {
        key: Some(signer.trusted()),
        ..VerifyOptions::default()
    };
    assert!(matches!(
        verify_file(&path, &options).await,
        Err(VerifyError::BadSeal {
            seq: 4,
            problem: SealProblem::BadSignature
        })
    ));
}

#[tokio::test]
async fn without_a_signer_the_log_says_the_seal_was_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 2).await;
    let (mut log, _) = AuditLog::open(&path, "minerd").await.unwrap();
    let policy = SealPolicy {
        every_records: 2,
        ..SealPolicy::default()
    };
    assert!(log.seal_due(&policy));
    assert!(matches!(
        log.seal(Some(&GoneSigner)).await.unwrap(),
        SealOutcome::Skipped { seq: 3, .. }
    ));
    assert!(!log.seal_due(&policy));
    log.append(entry(4)).await.unwrap();
    assert!(matches!(
        log.seal(None).await.unwrap(),
        SealOutcome::Skipped { seq: 5, .. }
    ));
    let key = KeySigner::new(7).trusted();
    let options = VerifyOptions {
        key: Some(key),
        ..VerifyOptions::default()
    };
    let verified = verify_file(&path, &options).await.unwrap();
    assert_eq!(verified.skipped_seals, 2);
    assert_eq!(verified.seals, 0);
    assert_eq!(verified.last_sealed_seq, None);
}

#[tokio::test]
async fn callers_cannot_write_seal_records() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, report) = AuditLog::open(&dir.path().join("new.log"), "minerd")
        .await
        .unwrap();
    assert!(report.created);
    let forged = Entry::new("minerd", "audit.seal", "", json!({}));
    assert!(log.append(forged).await.is_err());
    assert_eq!(log.head(), None::<Anchor>);
}

#[tokio::test]
async fn a_record_too_long_to_read_back_is_refused_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 1).await;
    let before = std::fs::read(&path).unwrap();
    let (mut log, _) = AuditLog::open(&path, "minerd").await.unwrap();
    let huge = Entry::new(
        "minerd",
        "miner.note",
        "m",
        json!("x".repeat(2 * 1024 * 1024)),
    );
    assert!(matches!(
        log.append(huge).await,
        Err(appliance::audit_log::AppendError::TooLarge { .. })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(log.append(entry(2)).await.unwrap().seq, 2);
}

#[tokio::test]
async fn a_service_name_trustd_would_refuse_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        AuditLog::open(&dir.path().join("a.log"), "Miner D").await,
        Err(OpenError::BadServiceName(_))
    ));
}

#[test]
fn seal_policy_refuses_sealing_every_record() {
    let policy = SealPolicy {
        every_records: 1,
        ..SealPolicy::default()
    };
    assert_eq!(
        policy.validate("audit.seal").unwrap_err().key,
        "audit.seal.every_records"
    );
    assert!(SealPolicy::default().validate("audit.seal").is_ok());
}
