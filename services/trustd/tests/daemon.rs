//! The real `trustd` binary, as systemd runs it, against real peers: a software TPM (swtpm), a
//! private `dbus-daemon` standing in for the system bus, a notify socket this test reads like
//! systemd does, and `openssl` to check what it issues.

mod common;

use std::process::Command;
use std::time::Instant;

use appliance::dbus::contracts::trust_errors;
use common::*;
use serde_json::Value;
use tempfile::TempDir;

#[tokio::test(flavor = "multi_thread")]
async fn issues_over_dbus_logs_revokes_and_stops_cleanly() {
    // PCR 16 only: swtpm has no boot measurements, and the test must not depend on them.
    let mut appliance =
        Appliance::new("[policy]\nmode = \"pcr\"\npcrs = [16]\npcr11_prediction = \"\"\n");
    let ready = appliance.start();
    assert_eq!(
        ready,
        "ready: issuing as bunker BunkerOS Site CA (policy pcr 16)"
    );
    let trust = appliance.proxy().await;

    let status: Value = serde_json::from_str(&trust.status().await.unwrap()).unwrap();
    assert_eq!(status["state"], "ready", "{status}");
    assert_eq!(status["policy"]["mode"], "pcr");
    assert_eq!(status["policy"]["pcrs"], serde_json::json!([16]));
    assert_eq!(status["ca"]["kind"], "root");
    // the one certificate so far is the ACME listener's own, issued at start
    assert_eq!(status["certificates"]["issued"], 1);

    // issue, and check with openssl against the root trustd hands out
    let started = Instant::now();
    let (cert, chain, serial, index) = trust
        .issue(&csr(&["web.bunker.test"]), "service", "12h")
        .await
        .unwrap();
    eprintln!("one issuance over D-Bus: {:?}", started.elapsed());
    assert_eq!(index, 1);
    assert!(chain.starts_with(&cert), "the chain starts with the leaf");
    let root = trust.root_certificate().await.unwrap();
    let work = TempDir::new().unwrap();
    std::fs::write(work.path().join("root.pem"), &root).unwrap();
    std::fs::write(work.path().join("cert.pem"), &cert).unwrap();
    let verified = openssl(
        work.path(),
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-purpose",
            "sslserver",
            "cert.pem",
        ],
    );
    assert!(
        verified.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    let (_, root_over_http) = appliance.http_get("/root.pem");
    assert_eq!(String::from_utf8(root_over_http).unwrap(), root);

    // the certificate is in the log, and the proof verifies offline with the CA key
    let bundle = trust.inclusion_proof(index).await.unwrap();
    let parsed = trustd::translog::parse_proof_bundle(bundle.as_bytes()).unwrap();
    let (_, root_der) = x509_parser::pem::parse_x509_pem(root.as_bytes()).unwrap();
    let (_, root_cert) = x509_parser::parse_x509_certificate(&root_der.contents).unwrap();
    let ca_key = root_cert.public_key().subject_public_key.data.to_vec();
    parsed
        .verify(&ca_key)
        .expect("the inclusion proof verifies");
    let inclusion = parsed.inclusion.as_ref().unwrap();
    let (_, leaf_der) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
    assert_eq!(inclusion.entry.certificate_der(), &leaf_der.contents[..]);
    let (code, over_http) = appliance.http_get("/log/proof?index=1");
    assert_eq!(code, 200);
    trustd::translog::parse_proof_bundle(&over_http)
        .unwrap()
        .verify(&ca_key)
        .unwrap();
    let missing = trust.inclusion_proof(5).await.unwrap_err();
    assert_eq!(error_name(&missing), trust_errors::NOT_FOUND);

    // a second certificate, then a consistency proof from the head seen before it
    let old_head = trust.tree_head().await.unwrap();
    trust
        .issue(&csr(&["api.bunker.test"]), "service", "")
        .await
        .unwrap();
    let consistency = trust.consistency_proof(&old_head).await.unwrap();
    let parsed = trustd::translog::parse_proof_bundle(consistency.as_bytes()).unwrap();
    parsed
        .verify(&ca_key)
        .expect("the consistency proof verifies");
    assert_eq!(parsed.tree_head.head.size, 3);

    // refusals are D-Bus errors with a sentence, and change nothing
    let outside = trust
        .issue(&csr(&["web.elsewhere.example"]), "service", "")
        .await
        .unwrap_err();
    assert_eq!(error_name(&outside), trust_errors::INVALID_REQUEST);
    let bad_profile = trust
        .issue(&csr(&["web.bunker.test"]), "admin", "")
        .await
        .unwrap_err();
    assert_eq!(error_name(&bad_profile), trust_errors::INVALID_REQUEST);
    assert!(
        bad_profile
            .to_string()
            .contains("there is no certificate profile")
    );

    // list, revoke, and the CRL over HTTP names the serial
    let listed: Value = serde_json::from_str(&trust.list("").await.unwrap()).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    assert_eq!(listed[1]["serial"], serial);
    assert_eq!(
        listed[1]["requester"],
        format!("dbus:uid={}", rustix::process::getuid().as_raw())
    );
    trust.revoke(&serial, "keyCompromise").await.unwrap();
    let again = trust.revoke(&serial, "").await.unwrap_err();
    assert_eq!(error_name(&again), trust_errors::ALREADY_REVOKED);
    let revoked: Value =
        serde_json::from_str(&trust.list(r#"{"status": "revoked"}"#).await.unwrap()).unwrap();
    assert_eq!(revoked.as_array().unwrap().len(), 1);
    let (code, crl) = appliance.http_get("/crl");
    assert_eq!(code, 200);
    std::fs::write(work.path().join("crl.der"), &crl).unwrap();
    let crl_text = openssl(
        work.path(),
        &[
            "crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text", "-CAfile", "root.pem",
        ],
    );
    let crl_text = String::from_utf8_lossy(&crl_text.stdout).to_uppercase();
    assert!(crl_text.contains(&serial.to_uppercase()[..8]), "{crl_text}");

    // audit signatures: 32 bytes only
    let signature = trust.sign_audit_digest("hubd", &[7u8; 32]).await.unwrap();
    let hubd = trustd::authority::AuditService::new("hubd").unwrap();
    trustd::authority::verify_audit_signature(&ca_key, &hubd, &[7u8; 32], &signature)
        .expect("the audit signature verifies");
    let short = trust
        .sign_audit_digest("hubd", &[7u8; 31])
        .await
        .unwrap_err();
    assert_eq!(error_name(&short), trust_errors::INVALID_REQUEST);

    // metrics
    let (code, metrics) = http_get(appliance.metrics_port, "/metrics");
    assert_eq!(code, 200);
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("trustd_dbus_requests_total{method=\"Issue\",result=\"ok\"} 2"),
        "{metrics}"
    );

    // SIGTERM: STOPPING=1, exit 0, and the name is released
    let (status, messages) = appliance.stop();
    assert!(status.success(), "{status}");
    assert!(messages.iter().any(|m| m.contains("STOPPING=1")));
    assert!(trust.status().await.is_err(), "the bus name is released");

    // a restart loads the same key and the same root, and the state is intact
    let ready = appliance.start();
    assert!(ready.starts_with("ready: "), "{ready}");
    let trust = appliance.proxy().await;
    assert_eq!(trust.root_certificate().await.unwrap(), root);
    let status: Value = serde_json::from_str(&trust.status().await.unwrap()).unwrap();
    // three before, and the ACME listener's new certificate
    assert_eq!(status["certificates"]["issued"], 4);
    assert_eq!(status["certificates"]["revoked"], 1);
    appliance.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ca_enrolled_on_an_unpredicted_boot_starts_sealed_and_refuses() {
    // PCR 11 predicted as something this (swtpm) boot never produced
    let mut appliance = Appliance::new("");
    let prediction = appliance.dir.path().join("pcr11.expected");
    std::fs::write(&prediction, format!("{}\n", "ab".repeat(32))).unwrap();
    let site = appliance
        .dir
        .path()
        .join("root/var/lib/bunkeros/config/trustd.toml");
    let mut text = std::fs::read_to_string(&site).unwrap();
    text.push_str(&format!(
        "[policy]\nmode = \"pcr\"\npcrs = [11]\npcr11_prediction = \"{}\"\n",
        prediction.display()
    ));
    std::fs::write(&site, text).unwrap();

    let ready = appliance.start();
    assert!(
        ready.starts_with("sealed: PCR 11 of this boot differs"),
        "{ready}"
    );
    let trust = appliance.proxy().await;
    let status: Value = serde_json::from_str(&trust.status().await.unwrap()).unwrap();
    assert_eq!(status["state"], "sealed");
    assert_eq!(status["ca"], Value::Null, "no root could be signed");
    let refused = trust
        .issue(&csr(&["web.bunker.test"]), "service", "")
        .await
        .unwrap_err();
    assert_eq!(error_name(&refused), trust_errors::SEALED);
    assert!(refused.to_string().contains("sealed"), "{refused}");
    assert!(
        appliance.state_dir().join("ca-key.json").exists(),
        "the key was enrolled, bound to the prediction"
    );
    let (status, _) = appliance.stop();
    assert!(status.success());
    assert!(appliance.tpm.pid() > 0);
}

#[test]
fn a_bad_configuration_exits_78_and_names_the_line() {
    let appliance = Appliance::new("[crl]\nvalidity = \"1m\"\n");
    let output = appliance.command().arg("--check-config").output().unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("var/lib/bunkeros/config/trustd.toml:")
            && stderr.contains(":1: `crl.validity`: 1m is out of range"),
        "{stderr}"
    );
    // the service itself refuses the same way, before it opens the TPM or the bus
    let output = appliance.command().output().unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(!appliance.state_dir().join("ca-key.json").exists());

    let good = Appliance::new("");
    let output = good.command().arg("--check-config").output().unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("config OK: read "));
}

#[test]
fn help_and_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_trustd"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("trustd {}\n", env!("CARGO_PKG_VERSION"))
    );
    let output = Command::new(env!("CARGO_BIN_EXE_trustd"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("--check-config") && help.contains("--config"),
        "{help}"
    );
}
