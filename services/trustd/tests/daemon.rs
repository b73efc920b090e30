//! The real `trustd` binary, as systemd runs it, against real peers: a software TPM (swtpm), a
//! private `dbus-daemon` standing in for the system bus, a notify socket this test reads like
//! systemd does, and `openssl` to check what it issues. Only processes this test started are
//! signalled, by PID.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use appliance::dbus::contracts::{Trust1Proxy, trust_errors};
use appliance::dbus::testbus::TestBus;
use appliance::testtpm::Swtpm;
use rustix::process::{Pid, Signal, kill_process};
use serde_json::Value;
use tempfile::TempDir;

/// Generous bound for what should be prompt, so a loaded machine does not fail the test.
const PATIENCE: Duration = Duration::from_secs(60);

/// One appliance's worth of peers around a trustd process.
struct Appliance {
    tpm: Swtpm,
    bus: TestBus,
    dir: TempDir,
    notify: UnixDatagram,
    http_port: u16,
    metrics_port: u16,
    acme_port: u16,
    /// Where the ACME server expects http-01 responders (lego listens there).
    challenge_port: u16,
    child: Option<Child>,
}

/// The device name ACME clients ask for; the daemon validates it at 127.0.0.1.
const DEVICE: &str = "miner-1.devices.bunker.test";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Appliance {
    /// Peers ready, trustd not started; `site` is the site layer's extra TOML.
    fn new(site: &str) -> Self {
        let tpm = Swtpm::start().expect("swtpm starts (Debian package swtpm)");
        let bus = TestBus::start().expect("dbus-daemon starts (Debian package dbus-daemon)");
        let dir = TempDir::new().unwrap();
        let notify = UnixDatagram::bind(dir.path().join("notify.sock")).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let (http_port, metrics_port) = (free_port(), free_port());
        let (acme_port, challenge_port) = (free_port(), free_port());
        let defaults = dir.path().join("root/usr/share/bunkeros");
        std::fs::create_dir_all(&defaults).unwrap();
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../image/config/trustd.toml"),
            defaults.join("trustd.toml"),
        )
        .unwrap();
        let site_dir = dir.path().join("root/var/lib/bunkeros/config");
        std::fs::create_dir_all(&site_dir).unwrap();
        std::fs::write(
            site_dir.join("trustd.toml"),
            format!(
                "[tpm]\ntcti = \"{}\"\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n\
                 [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
                 [issuance.service]\nip_ranges = [\"127.0.0.1/32\"]\n\
                 [acme]\nlisten = \"127.0.0.1:{acme_port}\"\n\
                 base_url = \"https://127.0.0.1:{acme_port}\"\n\
                 [acme.validation]\nhttp_port = {challenge_port}\nsystem_resolver = false\n\
                 retry_delay_secs = 1\n\
                 [acme.validation.addresses]\n\"{DEVICE}\" = \"127.0.0.1\"\n{site}",
                tpm.tcti()
            ),
        )
        .unwrap();
        Self {
            tpm,
            bus,
            dir,
            notify,
            http_port,
            metrics_port,
            acme_port,
            challenge_port,
            child: None,
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_trustd"));
        command
            .env("BUNKEROS_ROOT", self.dir.path().join("root"))
            .env("STATE_DIRECTORY", self.state_dir())
            .env("DBUS_SYSTEM_BUS_ADDRESS", self.bus.address())
            .env("NOTIFY_SOCKET", self.dir.path().join("notify.sock"))
            .env_remove("TPM2TOOLS_TCTI")
            .env_remove("WATCHDOG_USEC")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        command
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state/trustd")
    }

    /// Starts trustd and waits for `READY=1`; returns the `STATUS=` sent with it.
    fn start(&mut self) -> String {
        let child = self
            .command()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("trustd starts");
        self.child = Some(child);
        let messages = self.notifications_until(|m| m.contains("READY=1"));
        status_of(messages.last().unwrap())
    }

    /// Notifications until one matches `done`; fails the test (with trustd's stderr) if the
    /// process exits or `PATIENCE` runs out first.
    fn notifications_until(&mut self, done: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            if let Ok(n) = self.notify.recv(&mut buffer) {
                let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
                let finished = done(&message);
                seen.push(message);
                if finished {
                    return seen;
                }
            }
            let child = self.child.as_mut().unwrap();
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "trustd exited ({status}) after {seen:?}; stderr:\n{}",
                    stderr_of(child)
                );
            }
            assert!(
                Instant::now() < deadline,
                "no matching notification within {PATIENCE:?}; saw {seen:?}"
            );
        }
    }

    /// SIGTERM to our trustd; returns its exit status and the notifications it sent meanwhile.
    fn stop(&mut self) -> (ExitStatus, Vec<String>) {
        let child = self.child.as_mut().expect("trustd was started");
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
        kill_process(pid, Signal::TERM).unwrap();
        let messages = self.notifications_until(|m| m.contains("STOPPING=1"));
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return (status, messages);
            }
            assert!(
                Instant::now() < deadline,
                "trustd did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    async fn proxy(&self) -> Trust1Proxy<'static> {
        let connection = appliance::dbus::connect(&self.bus.bus()).await.unwrap();
        Trust1Proxy::new(&connection).await.unwrap()
    }

    fn http_get(&self, path: &str) -> (u16, Vec<u8>) {
        http_get(self.http_port, path)
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn status_of(message: &str) -> String {
    message
        .lines()
        .find_map(|line| line.strip_prefix("STATUS="))
        .unwrap_or_default()
        .to_owned()
}

fn stderr_of(child: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut text);
    }
    text
}

/// A minimal HTTP/1.1 GET: status code and body.
fn http_get(port: u16, path: &str) -> (u16, Vec<u8>) {
    use std::io::Write;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&response[..split]);
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, response[split + 4..].to_vec())
}

/// A P-256 CSR for `names` (PEM), made with rcgen.
fn csr(names: &[&str]) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0]);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn openssl(dir: &Path, args: &[&str]) -> Output {
    Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs (Debian package openssl)")
}

fn error_name(error: &zbus::Error) -> String {
    match error {
        zbus::Error::MethodError(name, _, _) => name.as_str().to_owned(),
        other => format!("not a method error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn issues_over_dbus_logs_revokes_and_stops_cleanly() {
    // PCR 16 only: swtpm has no boot measurements, and the test must not depend on them.
    let mut appliance = Appliance::new("[policy]\npcrs = [16]\npcr11_prediction = \"\"\n");
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
        "[policy]\npcrs = [11]\npcr11_prediction = \"{}\"\n",
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

/// Runs `program` with `args` in `dir`, killing it (our own child, by PID) after `PATIENCE`.
fn run_client(program: &str, args: &[String], env: &[(&str, &Path)], dir: &Path) -> Output {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs (Debian package {program}; `make deps`): {e}"));
    let deadline = Instant::now() + PATIENCE * 3;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn acme_clients_get_logged_certificates_through_the_daemon() {
    let mut appliance = Appliance::new("[policy]\npcrs = [16]\npcr11_prediction = \"\"\n");
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
