//! `bunkerctl mining audit verify` on a real log written with `appliance::audit_log` and sealed
//! with a P-256 key the way trustd seals minerd's log: a log that verifies, an edited record,
//! the wrong key, and a tail cut after the head was remembered.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use appliance::audit_log::seal::audit_statement;
use appliance::audit_log::{AuditLog, Entry, SealSignature, SealSigner, SignFuture};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::json;

/// Signs like trustd does, with a key held in memory.
struct KeySigner(SigningKey);

impl KeySigner {
    fn new(seed: u8) -> Self {
        Self(SigningKey::from_bytes(&[seed; 32].into()).expect("a valid scalar"))
    }

    fn sec1(&self) -> Vec<u8> {
        self.0
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }
}

impl SealSigner for KeySigner {
    fn sign(&self, digest: [u8; 32]) -> SignFuture<'_> {
        let signature: Signature = self.0.sign(&audit_statement("minerd", &digest));
        let signed = SealSignature {
            service: "minerd".to_owned(),
            public_key_sec1: self.sec1(),
            signature_der: signature.to_der().as_bytes().to_vec(),
        };
        Box::pin(async move { Ok(signed) })
    }
}

/// minerd's log: three actions, a seal, two more actions (chained, not yet sealed).
async fn write_log(dir: &Path, signer: &KeySigner) -> PathBuf {
    let path = dir.join("audit.log");
    let (mut log, _) = AuditLog::open(&path, "minerd").await.unwrap();
    let reboot = |ip: &str| {
        Entry::new(
            "operator:alice",
            "miner.reboot",
            ip,
            json!({"job": "1", "ok": true}),
        )
    };
    for ip in ["10.1.0.2", "10.1.0.7", "10.1.0.10"] {
        log.append(reboot(ip)).await.unwrap();
    }
    log.seal(Some(signer)).await.unwrap();
    for ip in ["10.1.0.2", "10.1.0.7"] {
        log.append(reboot(ip)).await.unwrap();
    }
    path
}

fn bunkerctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bunkerctl"))
        .args(args)
        .output()
        .expect("bunkerctl runs")
}

fn verify(log: &Path, key: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "mining",
        "audit",
        "verify",
        "--log",
        log.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    bunkerctl(&args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn a_sealed_log_verifies_and_an_edited_one_fails_with_the_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let signer = KeySigner::new(7);
    let log = write_log(dir.path(), &signer).await;
    let key = dir.path().join("trustd.hex");
    std::fs::write(&key, hex(&signer.sec1())).unwrap();
    let head = dir.path().join("minerd.head");

    let ok = verify(&log, &key, &["--known-head", head.to_str().unwrap()]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let text = stdout(&ok);
    assert!(
        text.starts_with(&format!("audit log {} verifies\n", log.display())),
        "{text}"
    );
    assert!(text.contains("  records       6\n"), "{text}");
    assert!(
        text.contains("  seals         1 verified with trustd key\n"),
        "{text}"
    );
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "too wide for the console: {line:?}"
        );
    }
    assert!(text.contains("  last sealed   record 3\n"), "{text}");
    assert!(
        text.contains("  unsealed      2 records after the last seal (chained, not yet signed)\n"),
        "{text}"
    );
    let remembered = std::fs::read_to_string(&head).unwrap();
    assert!(remembered.starts_with("6:"), "{remembered}");
    let hash = remembered.trim().strip_prefix("6:").unwrap();
    assert!(
        text.contains(&format!(
            "  head          record 6, hash\n{:16}{hash}\n",
            ""
        )),
        "the head shown is the head remembered: {text}"
    );

    // The head is required next time: cutting the last record is caught.
    let full = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = full.lines().collect();
    lines.pop();
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let cut = verify(&log, &key, &["--known-head", head.to_str().unwrap()]);
    assert_eq!(cut.status.code(), Some(1));
    assert_eq!(
        stderr(&cut),
        format!(
            "bunkerctl: the audit log {} does not verify: the log was truncated: it ends at \
             record 5, before record 6 seen earlier\n",
            log.display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(&head).unwrap(),
        remembered,
        "a failed verification does not move the remembered head"
    );

    // An edited record.
    std::fs::write(&log, full.replacen("10.1.0.7", "10.1.0.8", 1)).unwrap();
    let edited = verify(&log, &key, &[]);
    assert_eq!(edited.status.code(), Some(1));
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
async fn a_seal_made_with_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_log(dir.path(), &KeySigner::new(7)).await;
    let other = KeySigner::new(9);
    let key = dir.path().join("other.hex");
    std::fs::write(&key, hex(&other.sec1())).unwrap();
    let wrong = verify(&log, &key, &[]);
    assert_eq!(wrong.status.code(), Some(1));
    let sentence = stderr(&wrong);
    assert!(
        sentence.starts_with(&format!(
            "bunkerctl: the audit log {} does not verify: the seal at record 4 is not valid: it \
             was signed by key ",
            log.display()
        )),
        "{sentence}"
    );
    assert!(sentence.ends_with(", not the trusted key\n"), "{sentence}");

    let garbage = dir.path().join("garbage.hex");
    std::fs::write(&garbage, "zz").unwrap();
    let refused = verify(&log, &garbage, &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stderr(&refused),
        format!("bunkerctl: the key in {} is not hex\n", garbage.display())
    );
}

/// trustd as far as `audit verify --trustd` asks it: `Status()` with the CA's public key.
struct StandInTrustd {
    public_key: String,
}

#[zbus::interface(name = "org.bunkeros.Trust1")]
impl StandInTrustd {
    fn status(&self) -> String {
        json!({"state": "ready", "reason": "", "public_key": self.public_key}).to_string()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_can_come_from_trustd_over_the_bus() {
    use appliance::dbus::contracts::TRUST;
    let dir = tempfile::tempdir().unwrap();
    let signer = KeySigner::new(7);
    let log = write_log(dir.path(), &signer).await;
    let bus = appliance::dbus::testbus::TestBus::start().expect("dbus-daemon starts");
    let run = |bus: &appliance::dbus::testbus::TestBus| {
        let args = [
            "mining",
            "audit",
            "verify",
            "--trustd",
            "--log",
            log.to_str().unwrap(),
        ];
        tokio::task::block_in_place(|| {
            Command::new(env!("CARGO_BIN_EXE_bunkerctl"))
                .args(args)
                .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
                .output()
                .expect("bunkerctl runs")
        })
    };
    let absent = run(&bus);
    assert_eq!(absent.status.code(), Some(1));
    assert_eq!(
        stderr(&absent),
        "bunkerctl: trustd is not running (org.bunkeros.Trust1 is not on the system bus)\n"
    );
    let trustd = StandInTrustd {
        public_key: hex(&signer.sec1()),
    };
    let _served = appliance::dbus::serve(&bus.bus(), TRUST.bus_name, TRUST.object_path, trustd)
        .await
        .unwrap();
    let ok = run(&bus);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(
        stdout(&ok).contains("  seals         1 verified with trustd key\n"),
        "{}",
        stdout(&ok)
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
