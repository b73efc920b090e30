//! `bunkerctl site log verify` on sited's event log as sited writes it (appliance's
//! `open_service_log` in a state directory, then alarm records) and sealed with a P-256 key the
//! way trustd seals it for `sited`: an intact log verifies; an edited line, a file cut mid-line,
//! a tail cut after the head was remembered, and a seal made for another service are detected
//! and exit 1 with the sentence.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use appliance::audit_log::seal::audit_statement;
use appliance::audit_log::{Entry, SealSignature, SealSigner, SignFuture, open_service_log};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey as _;
use serde_json::json;

/// Signs like trustd does for `service`, with a key held in memory.
struct KeySigner {
    key: SigningKey,
    service: &'static str,
}

impl KeySigner {
    fn new(seed: u8, service: &'static str) -> Self {
        let key = SigningKey::from_bytes(&[seed; 32].into()).expect("a valid scalar");
        Self { key, service }
    }

    /// The public key as a PEM `PUBLIC KEY`, as an operator keeps trustd's key in a file.
    fn public_key_pem(&self) -> String {
        let der = self.key.verifying_key().to_public_key_der().unwrap();
        pem::encode(&pem::Pem::new("PUBLIC KEY", der.as_bytes().to_vec()))
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

/// sited's log in `state_dir`: the start, two alarm transitions, a seal, an acknowledgement
/// (chained, not yet sealed). `service` is who the log is opened and sealed for.
async fn write_log(state_dir: &Path, signer: &KeySigner) -> PathBuf {
    let log = open_service_log(state_dir, signer.service).await.unwrap();
    let mut log = log.lock().await;
    let raised = Entry::new(
        "sited",
        "alarm.raised",
        "door-1-open",
        json!({"severity": "warning", "summary": "shielded door hall-a door-1 open"}),
    );
    log.append(raised).await.unwrap();
    let escalated = Entry::new(
        "sited",
        "alarm.escalated",
        "door-1-open",
        json!({"step": 1, "notify": ["site-duty"]}),
    );
    log.append(escalated).await.unwrap();
    log.seal(Some(signer)).await.unwrap();
    let acknowledged = Entry::new(
        "operator:alice",
        "alarm.acknowledged",
        "door-1-open",
        json!({"note": "seal checked"}),
    );
    log.append(acknowledged).await.unwrap();
    log.path().to_owned()
}

fn verify(log: &Path, key: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "site",
        "log",
        "verify",
        "--log",
        log.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_bunkerctl"))
        .args(args)
        .output()
        .expect("bunkerctl runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A sited log and trustd's key in a PEM file beside it.
async fn sealed_site(dir: &Path) -> (PathBuf, PathBuf) {
    let signer = KeySigner::new(11, "sited");
    let log = write_log(dir, &signer).await;
    let key = dir.join("trustd.pem");
    std::fs::write(&key, signer.public_key_pem()).unwrap();
    (log, key)
}

#[tokio::test]
async fn an_intact_site_log_verifies_with_trustd_s_key() {
    let dir = tempfile::tempdir().unwrap();
    let (log, key) = sealed_site(dir.path()).await;
    let ok = verify(&log, &key, &[]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let text = stdout(&ok);
    assert!(
        text.starts_with(&format!("audit log {} verifies\n", log.display())),
        "{text}"
    );
    assert!(text.contains("  records       5\n"), "{text}");
    assert!(
        text.contains("  seals         1 verified with trustd key\n"),
        "{text}"
    );
    assert!(text.contains("  last sealed   record 3\n"), "{text}");
    assert!(
        text.contains("  unsealed      1 records after the last seal (chained, not yet signed)\n"),
        "{text}"
    );
}

#[tokio::test]
async fn an_edited_line_is_detected_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let (log, key) = sealed_site(dir.path()).await;
    let full = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, full.replacen("\"warning\"", "\"info\"", 1)).unwrap();
    let edited = verify(&log, &key, &[]);
    assert_eq!(edited.status.code(), Some(1));
    assert_eq!(stdout(&edited), "");
    assert_eq!(
        stderr(&edited),
        format!(
            "bunkerctl: the audit log {} does not verify: record 2 was edited: its hash does not \
             match its fields\n",
            log.display()
        )
    );
}

#[tokio::test]
async fn a_truncated_file_is_detected_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let (log, key) = sealed_site(dir.path()).await;
    let head = dir.path().join("sited.head");
    let first = verify(&log, &key, &["--known-head", head.to_str().unwrap()]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let whole = std::fs::read(&log).unwrap();

    // Cut mid-line.
    std::fs::write(&log, &whole[..whole.len() - 20]).unwrap();
    let torn = verify(&log, &key, &[]);
    assert_eq!(torn.status.code(), Some(1));
    assert_eq!(
        stderr(&torn),
        format!(
            "bunkerctl: the audit log {} does not verify: the log was truncated: line 5 is \
             unfinished\n",
            log.display()
        )
    );

    // Cut at a line boundary: the head remembered last time tells.
    let text = String::from_utf8(whole).unwrap();
    let kept: Vec<&str> = text.lines().take(4).collect();
    std::fs::write(&log, kept.join("\n") + "\n").unwrap();
    let cut = verify(&log, &key, &["--known-head", head.to_str().unwrap()]);
    assert_eq!(cut.status.code(), Some(1));
    assert_eq!(
        stderr(&cut),
        format!(
            "bunkerctl: the audit log {} does not verify: the log was truncated: it ends at \
             record 4, before record 5 seen earlier\n",
            log.display()
        )
    );
}

#[tokio::test]
async fn a_log_sealed_for_minerd_is_not_sited_s() {
    let dir = tempfile::tempdir().unwrap();
    let signer = KeySigner::new(11, "minerd");
    let log = write_log(dir.path(), &signer).await;
    let key = dir.path().join("trustd.pem");
    std::fs::write(&key, signer.public_key_pem()).unwrap();
    let wrong = verify(&log, &key, &[]);
    assert_eq!(wrong.status.code(), Some(1));
    assert_eq!(
        stderr(&wrong),
        format!(
            "bunkerctl: the audit log {} does not verify: the seal at record 4 is not valid: it \
             was signed for service `minerd`, not `sited`\n",
            log.display()
        )
    );
    // The same file is minerd's to verify.
    let as_mining = Command::new(env!("CARGO_BIN_EXE_bunkerctl"))
        .args(["mining", "audit", "verify", "--log"])
        .arg(&log)
        .arg("--key")
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(as_mining.status.code(), Some(0), "{}", stderr(&as_mining));
}

#[test]
fn the_default_log_is_sited_s() {
    // No sited runs where the tests run, so the default log is absent and named in the error.
    let absent = Command::new(env!("CARGO_BIN_EXE_bunkerctl"))
        .args(["site", "log", "verify"])
        .output()
        .unwrap();
    assert_eq!(absent.status.code(), Some(1));
    let sentence = stderr(&absent);
    assert!(
        sentence.starts_with(
            "bunkerctl: the audit log /var/lib/sited/audit.log does not verify: cannot \
             read the log: "
        ),
        "{sentence}"
    );
}
