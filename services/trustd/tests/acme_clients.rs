//! An ACME client (Debian's lego) against the real `trustd` binary's ACME listener: the
//! certificate it obtains went through the same pipeline as one issued over D-Bus (stored with its
//! requester, logged, revocable), and the listener's own certificate is the CA's.

mod common;

use common::*;
use serde_json::Value;
use tempfile::TempDir;

#[tokio::test(flavor = "multi_thread")]
async fn acme_clients_get_logged_certificates_through_the_daemon() {
    let mut appliance =
        Appliance::new("[policy]\nmode = \"pcr\"\npcrs = [16]\npcr11_prediction = \"\"\n");
    appliance.start();
    let trust = appliance.proxy().await;
    let work = TempDir::new().unwrap();
    let root = work.path().join("root.pem");
    std::fs::write(&root, trust.root_certificate().await.unwrap()).unwrap();

    let lego = |command: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "--server",
            &format!("https://127.0.0.1:{}/directory", appliance.acme_port),
            "--accept-tos",
            "--email",
            "ops@devices.bunker.test",
            "--key-type",
            "ec256",
            "--path",
            work.path().join("lego").to_str().unwrap(),
            "--domains",
            DEVICE,
            "--http",
            "--http.port",
            &format!("127.0.0.1:{}", appliance.challenge_port),
        ]
        .map(String::from)
        .to_vec();
        args.extend(command.iter().map(|s| (*s).to_owned()));
        args
    };
    let env = [("LEGO_CA_CERTIFICATES", root.as_path())];
    let run =
        tokio::task::block_in_place(|| run_client("lego", &lego(&["run"]), &env, work.path()));
    assert!(
        run.status.success(),
        "lego run:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let cert = work.path().join(format!("lego/certificates/{DEVICE}.crt"));
    let verified = openssl(
        work.path(),
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            cert.to_str().unwrap(),
            cert.to_str().unwrap(),
        ],
    );
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );

    // the ACME certificate went through the same pipeline: stored with its requester, logged
    let devices: Value =
        serde_json::from_str(&trust.list(r#"{"profile": "device"}"#).await.unwrap()).unwrap();
    assert_eq!(devices.as_array().unwrap().len(), 1, "{devices}");
    assert_eq!(devices[0]["names"][0], DEVICE);
    assert!(
        devices[0]["requester"]
            .as_str()
            .unwrap()
            .starts_with("acme:"),
        "{devices}"
    );
    let listener: Value =
        serde_json::from_str(&trust.list(r#"{"name": "acme.bunker.test"}"#).await.unwrap())
            .unwrap();
    assert_eq!(
        listener[0]["requester"], "trustd:acme-listener",
        "{listener}"
    );

    let revoke = tokio::task::block_in_place(|| {
        run_client(
            "lego",
            &lego(&["revoke", "--keep", "--reason", "4"]),
            &env,
            work.path(),
        )
    });
    assert!(
        revoke.status.success(),
        "lego revoke:\n{}{}",
        String::from_utf8_lossy(&revoke.stdout),
        String::from_utf8_lossy(&revoke.stderr)
    );
    let revoked: Value =
        serde_json::from_str(&trust.list(r#"{"status": "revoked"}"#).await.unwrap()).unwrap();
    assert_eq!(revoked[0]["names"][0], DEVICE, "{revoked}");
    assert_eq!(revoked[0]["revocation"]["reason"], "superseded");
    appliance.stop();
}
