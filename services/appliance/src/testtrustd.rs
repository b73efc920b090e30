//! A real trustd on a test's private bus (feature `test-support`), its CA key in a software TPM
//! (swtpm), as the appliance runs it: the image's trustd.toml with the TPM, PCR policy, HTTP and
//! ACME of a test. Services that ask trustd for certificates (hubd's hub certificate, sited's
//! uplink client) test against it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::dbus::Bus;
use crate::dbus::contracts::Trust1Proxy;
use crate::testtpm::Swtpm;
use tempfile::TempDir;

/// The site domain of the image's trustd.toml: service names lie under it.
pub const SITE_DOMAIN: &str = "bunker.test";

/// A running trustd, ended (by its PID) when dropped.
pub struct Trustd {
    child: Option<Child>,
    tpm: Swtpm,
    _dir: TempDir,
}

impl Trustd {
    /// Starts trustd on `bus` (with `site_config` appended to its site layer, e.g. an
    /// `[issuance.hub]` table) and returns it with its site root (PEM) once it serves.
    pub async fn start(bus: &str, site_config: &str) -> (Self, String) {
        let tpm = Swtpm::start().expect("swtpm starts (Debian package swtpm)");
        let dir = TempDir::new().unwrap();
        let defaults = dir.path().join("root/usr/share/bunkeros");
        fs::create_dir_all(&defaults).unwrap();
        fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../image/config/trustd.toml"),
            defaults.join("trustd.toml"),
        )
        .unwrap();
        let site = dir.path().join("root/var/lib/bunkeros/config");
        fs::create_dir_all(&site).unwrap();
        fs::write(
            site.join("trustd.toml"),
            format!(
                "[tpm]\ntcti = \"{}\"\n[policy]\nmode = \"pcr\"\npcrs = [16]\npcr11_prediction = \"\"\n\
                 [http]\nenabled = false\n[acme]\nenabled = false\n[metrics]\nlisten = \"{}\"\n\
                 {site_config}",
                tpm.tcti(),
                std::net::SocketAddr::from(([127, 0, 0, 1], crate::testdaemon::free_port()))
            ),
        )
        .unwrap();
        let child = Command::new(binary())
            .env("BUNKEROS_ROOT", dir.path().join("root"))
            .env("STATE_DIRECTORY", dir.path().join("state"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("TPM2TOOLS_TCTI")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("trustd starts");
        let trustd = Self {
            child: Some(child),
            tpm,
            _dir: dir,
        };
        let connection = crate::dbus::connect(&Bus::Address(bus.to_owned()))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(proxy) = Trust1Proxy::new(&connection).await
                && let Ok(root) = proxy.root_certificate().await
            {
                return (trustd, root);
            }
            assert!(
                Instant::now() < deadline,
                "trustd did not serve its root within 2 minutes"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The TCTI of trustd's swtpm (`swtpm:host=…,port=…`). swtpm serves one client at a time,
    /// so another client (e.g. `tpm2_pcrread` reading the PCR 11 a quote names) gets through
    /// only after [`Trustd::stop`]; the swtpm lives on until the fixture is dropped.
    pub fn tpm_tcti(&self) -> String {
        self.tpm.tcti()
    }

    /// Ends trustd (SIGKILL to its PID): the bus name goes with it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Trustd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The workspace's trustd binary in the running test's target directory (built here if not).
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    // target/<profile>/deps/<test> → target/<profile>/trustd
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("a test runs from target/<profile>/deps")
        .join("trustd");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let built = Command::new(cargo)
            .args(["build", "-p", "trustd", "--bin", "trustd"])
            .status()
            .expect("cargo runs");
        assert!(built.success(), "cannot build trustd for this test");
    }
    path
}
