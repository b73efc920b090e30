//! The fixture of the trustd binary tests: one appliance's worth of real peers around a trustd
//! process (swtpm, a private `dbus-daemon`, a notify socket read like systemd reads it, free
//! loopback ports), and small clients (HTTP GET, CSRs, openssl, lego). Only processes these
//! tests started are signalled, by PID.

#![allow(dead_code)] // each test binary uses its own part of the fixture

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use appliance::dbus::contracts::Trust1Proxy;
use appliance::dbus::testbus::TestBus;
use appliance::testtpm::Swtpm;
use rustix::process::{Pid, Signal, kill_process};
use tempfile::TempDir;

/// Generous bound for what should be prompt, so a loaded machine does not fail the test.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// One appliance's worth of peers around a trustd process.
pub struct Appliance {
    pub tpm: Swtpm,
    pub bus: TestBus,
    pub dir: TempDir,
    pub notify: UnixDatagram,
    pub http_port: u16,
    pub metrics_port: u16,
    pub acme_port: u16,
    /// Where the ACME server expects http-01 responders (lego listens there).
    pub challenge_port: u16,
    pub child: Option<Child>,
}

/// The device name ACME clients ask for; the daemon validates it at 127.0.0.1.
pub const DEVICE: &str = "miner-1.devices.bunker.test";

pub use appliance::testdaemon::free_port;

impl Appliance {
    /// Peers ready, trustd not started; `site` is the site layer's extra TOML.
    pub fn new(site: &str) -> Self {
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

    pub fn command(&self) -> Command {
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

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state/trustd")
    }

    /// Starts trustd and waits for `READY=1`; returns the `STATUS=` sent with it.
    pub fn start(&mut self) -> String {
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
    pub fn notifications_until(&mut self, done: impl Fn(&str) -> bool) -> Vec<String> {
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
    pub fn stop(&mut self) -> (ExitStatus, Vec<String>) {
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

    pub async fn proxy(&self) -> Trust1Proxy<'static> {
        let connection = appliance::dbus::connect(&self.bus.bus()).await.unwrap();
        Trust1Proxy::new(&connection).await.unwrap()
    }

    pub fn http_get(&self, path: &str) -> (u16, Vec<u8>) {
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

pub fn status_of(message: &str) -> String {
    message
        .lines()
        .find_map(|line| line.strip_prefix("STATUS="))
        .unwrap_or_default()
        .to_owned()
}

pub fn stderr_of(child: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut text);
    }
    text
}

/// A minimal HTTP/1.1 GET: status code and body.
pub fn http_get(port: u16, path: &str) -> (u16, Vec<u8>) {
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
pub fn csr(names: &[&str]) -> String {
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

pub fn openssl(dir: &Path, args: &[&str]) -> Output {
    Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs (Debian package openssl)")
}

pub fn error_name(error: &zbus::Error) -> String {
    match error {
        zbus::Error::MethodError(name, _, _) => name.as_str().to_owned(),
        other => format!("not a method error: {other}"),
    }
}

/// Runs `program` with `args` in `dir`, killing it (our own child, by PID) after `PATIENCE`.
pub fn run_client(program: &str, args: &[String], env: &[(&str, &Path)], dir: &Path) -> Output {
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
