//! The real clients, Debian's certbot 2.1 and lego 4.9, against the ACME server over HTTPS on
//! 127.0.0.1, with the CA key in a software TPM. Each client trusts only the site root
//! (exported to `root.pem`); issued chains are checked with `openssl verify`, and each client
//! then revokes what it got.
//!
//! Missing clients fail the test with the command that installs them; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use appliance::state::StateDir;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use super::*;

/// Longest a client run may take (lego polls every few seconds).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

/// A CA, the ACME server over HTTPS in front of it, and a scratch directory.
struct Lab {
    dir: TempDir,
    ca: Arc<CaBackend>,
    directory: String,
    root: PathBuf,
    http_port: u16,
    tls_port: u16,
    cancel: CancellationToken,
}

impl Lab {
    /// Starts everything; `names` are resolved to 127.0.0.1 for validation.
    async fn start(names: &[&str]) -> Self {
        let ca = CaBackend::start();
        let dir = TempDir::new().unwrap();
        let root = dir.path().join("root.pem");
        std::fs::write(&root, ca.root_pem()).unwrap();
        let (http_port, tls_port) = (free_port(), free_port());
        let mut config = AcmeConfig::new("127.0.0.1:0".parse().unwrap());
        config.validation.http_port = http_port;
        config.validation.tls_port = tls_port;
        config.validation.system_resolver = false;
        config.validation.retry_delay_secs = 1;
        for name in names {
            config
                .validation
                .addresses
                .insert((*name).to_owned(), loopback().ip());
        }
        let server = AcmeServer::bind(
            config,
            &site(),
            &ca.server_identity(),
            Arc::clone(&ca) as Arc<dyn AcmeBackend>,
            StateDir::new(dir.path().join("acme-state")).unwrap(),
        )
        .await
        .unwrap();
        let directory = server.directory_url();
        let cancel = CancellationToken::new();
        tokio::spawn(server.serve(cancel.clone()));
        Self {
            dir,
            ca,
            directory,
            root,
            http_port,
            tls_port,
            cancel,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Checks `leaf` (with `chain`, if any) against the site root with openssl, for TLS
    /// servers, and that it names `name`.
    fn openssl_verify(&self, leaf: &Path, name: &str) {
        let (ok, output) = run_tool(
            "openssl",
            &[
                "verify",
                "-CAfile",
                path_text(&self.root),
                "-purpose",
                "sslserver",
                path_text(leaf),
            ],
            &[],
            self.dir.path(),
        );
        assert!(
            ok && output.contains(": OK"),
            "openssl verify failed:\n{output}"
        );
        let (ok, text) = run_tool(
            "openssl",
            &["x509", "-noout", "-text", "-in", path_text(leaf)],
            &[],
            self.dir.path(),
        );
        assert!(
            ok && text.contains(&format!("DNS:{name}")),
            "the certificate does not name {name}:\n{text}"
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn path_text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Fails unless `tool` is installed.
fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} is not installed; run `make deps` (Debian packages certbot, lego, openssl)"
    );
}

/// Runs `program` in `dir` with `env`, killing it (by its own PID) after [`CLIENT_TIMEOUT`].
/// Returns whether it succeeded and its stdout + stderr.
fn run_tool(program: &str, args: &[&str], env: &[(&str, &str)], dir: &Path) -> (bool, String) {
    let out = tempfile::NamedTempFile::new_in(dir).unwrap();
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(out.reopen().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}; run `make deps`"));
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(out.path()).unwrap_or_default();
    match status {
        Some(status) => (status.success(), output),
        None => (
            false,
            format!("{output}\n[killed after {CLIENT_TIMEOUT:?}]"),
        ),
    }
}

/// [`run_tool`] on the blocking pool, so the server keeps running on the runtime.
async fn run_client(
    program: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    dir: PathBuf,
) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_tool(program, &args, &env, &dir)
    })
    .await
    .unwrap()
}

fn der_of_pem_file(path: &Path) -> Vec<u8> {
    pem::parse(std::fs::read(path).unwrap())
        .unwrap()
        .into_contents()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certbot_obtains_and_revokes_a_device_certificate_over_http01() {
    require("certbot");
    require("openssl");
    let name = device("dev1");
    let lab = Lab::start(&[&name]).await;
    let dirs = |cmd: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        for (flag, sub) in [
            ("--config-dir", "config"),
            ("--work-dir", "work"),
            ("--logs-dir", "logs"),
        ] {
            args.push(flag.into());
            args.push(path_text(&lab.path(&format!("certbot/{sub}"))).into());
        }
        args.extend(["-n".into(), "--server".into(), lab.directory.clone()]);
        args
    };
    let env = vec![("REQUESTS_CA_BUNDLE", path_text(&lab.root).to_owned())];
    let log =
        || std::fs::read_to_string(lab.path("certbot/logs/letsencrypt.log")).unwrap_or_default();

    let port = lab.http_port.to_string();
    let mut args = dirs(&[
        "certonly",
        "--standalone",
        "--agree-tos",
        "--register-unsafely-without-email",
    ]);
    args.extend(
        [
            "--http-01-port",
            &port,
            "--http-01-address",
            "127.0.0.1",
            "--key-type",
            "ecdsa",
            "-d",
            &name,
        ]
        .map(String::from),
    );
    let (ok, output) = run_client("certbot", args, env.clone(), lab.dir.path().to_owned()).await;
    assert!(
        ok,
        "certbot certonly failed:\n{output}\n--- letsencrypt.log ---\n{}",
        log()
    );
    eprintln!("certbot certonly:\n{output}");
    let live = lab.path(&format!("certbot/config/live/{name}"));
    lab.openssl_verify(&live.join("cert.pem"), &name);
    lab.openssl_verify(&live.join("fullchain.pem"), &name);
    let issued = lab.ca.issued.lock().unwrap().clone();
    assert_eq!(
        issued.len(),
        2,
        "the server identity and certbot's certificate"
    );
    assert_eq!(issued[1].0, Profile::Device);

    let cert = live.join("cert.pem");
    let args = dirs(&[
        "revoke",
        "--cert-path",
        path_text(&cert),
        "--reason",
        "keycompromise",
        "--no-delete-after-revoke",
    ]);
    let (ok, output) = run_client("certbot", args, env, lab.dir.path().to_owned()).await;
    assert!(
        ok,
        "certbot revoke failed:\n{output}\n--- letsencrypt.log ---\n{}",
        log()
    );
    eprintln!("certbot revoke:\n{output}");
    let der = der_of_pem_file(&cert);
    assert!(lab.ca.was_revoked(&der));
    assert_eq!(lab.ca.revoked.lock().unwrap()[0].1, 1, "keyCompromise");
}

/// lego's common arguments for `name`, storing under `<lab>/lego`.
fn lego_args(lab: &Lab, name: &str, challenge: &[String], command: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--server",
        &lab.directory,
        "--accept-tos",
        "--email",
        &format!("ops@devices.{SITE}"),
        "--key-type",
        "ec256",
        "--path",
        path_text(&lab.path("lego")),
        "--domains",
        name,
    ]
    .map(String::from)
    .to_vec();
    args.extend(challenge.iter().cloned());
    args.extend(command.iter().map(|s| s.to_string()));
    args
}

async fn lego_obtains_and_revokes(challenge: &str) {
    require("lego");
    require("openssl");
    let name = device(if challenge == "http" { "dev2" } else { "dev3" });
    let lab = Lab::start(&[&name]).await;
    let flags = match challenge {
        "http" => vec![
            "--http".to_owned(),
            "--http.port".to_owned(),
            format!("127.0.0.1:{}", lab.http_port),
        ],
        _ => vec![
            "--tls".to_owned(),
            "--tls.port".to_owned(),
            format!("127.0.0.1:{}", lab.tls_port),
        ],
    };
    let env = vec![("LEGO_CA_CERTIFICATES", path_text(&lab.root).to_owned())];
    let (ok, output) = run_client(
        "lego",
        lego_args(&lab, &name, &flags, &["run"]),
        env.clone(),
        lab.dir.path().to_owned(),
    )
    .await;
    assert!(ok, "lego run ({challenge}) failed:\n{output}");
    eprintln!("lego run ({challenge}):\n{output}");
    let cert = lab.path(&format!("lego/certificates/{name}.crt"));
    lab.openssl_verify(&cert, &name);
    assert_eq!(lab.ca.issued.lock().unwrap()[1].0, Profile::Device);

    let (ok, output) = run_client(
        "lego",
        lego_args(&lab, &name, &flags, &["revoke", "--keep", "--reason", "4"]),
        env,
        lab.dir.path().to_owned(),
    )
    .await;
    assert!(ok, "lego revoke failed:\n{output}");
    eprintln!("lego revoke:\n{output}");
    assert!(lab.ca.was_revoked(&der_of_pem_file(&cert)));
    assert_eq!(lab.ca.revoked.lock().unwrap()[0].1, 4, "superseded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lego_obtains_and_revokes_a_device_certificate_over_http01() {
    lego_obtains_and_revokes("http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lego_obtains_and_revokes_a_device_certificate_over_tls_alpn01() {
    lego_obtains_and_revokes("tls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_speaks_tls13_only_and_asks_no_client_certificate() {
    require("openssl");
    let lab = Lab::start(&[]).await;
    let address = lab
        .directory
        .trim_start_matches("https://")
        .trim_end_matches("/directory")
        .to_owned();
    let s_client = |version: &'static str| {
        let args = vec![
            "s_client".to_owned(),
            "-connect".to_owned(),
            address.clone(),
            version.to_owned(),
            "-CAfile".to_owned(),
            path_text(&lab.root).to_owned(),
            "-verify_return_error".to_owned(),
        ];
        run_client("openssl", args, Vec::new(), lab.dir.path().to_owned())
    };
    let (ok, output) = s_client("-tls1_3").await;
    assert!(
        ok && output.contains("Verify return code: 0 (ok)"),
        "TLS 1.3 with the site root:\n{output}"
    );
    assert!(
        !output.contains("Acceptable client certificate CA names"),
        "{output}"
    );
    let (ok, output) = s_client("-tls1_2").await;
    assert!(!ok, "TLS 1.2 must be refused:\n{output}");
}
