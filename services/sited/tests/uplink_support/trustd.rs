//! A real trustd on a private bus, its CA key in a software TPM (swtpm), configured as the
//! image configures it (the same fixture as hubd's renewal tests): the uplink's client
//! certificate comes from it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use appliance::dbus::Bus;
use appliance::dbus::contracts::Trust1Proxy;
use appliance::testtpm::Swtpm;
use tempfile::TempDir;

/// The site domain of the image's trustd.toml: service names lie under it.
pub const SITE_DOMAIN: &str = "bunker.test";
/// trustd starts in well under this (swtpm on a loaded machine can be slow).
const START_LIMIT: Duration = Duration::from_secs(120);

/// A running trustd, ended (by its PID) when dropped.
pub struct Trustd {
    child: Option<Child>,
    _tpm: Swtpm,
    _dir: TempDir,
}

impl Trustd {
    /// Starts trustd on the bus at `bus` and returns it with its site root (PEM) once it
    /// serves.
    pub async fn start(bus: &str) -> (Trustd, String) {
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
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        fs::write(
            site.join("trustd.toml"),
            format!(
                "[tpm]\ntcti = \"{}\"\n[policy]\nmode = \"pcr\"\npcrs = [16]\n\
                 pcr11_prediction = \"\"\n[http]\nenabled = false\n[acme]\nenabled = false\n\
                 [metrics]\nlisten = \"{metrics}\"\n",
                tpm.tcti(),
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
        let trustd = Trustd {
            child: Some(child),
            _tpm: tpm,
            _dir: dir,
        };
        let connection = appliance::dbus::connect(&Bus::Address(bus.to_owned()))
            .await
            .unwrap();
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Ok(proxy) = Trust1Proxy::new(&connection).await
                && let Ok(root) = proxy.root_certificate().await
            {
                return (trustd, root);
            }
            assert!(
                Instant::now() < deadline,
                "trustd did not serve its root within {START_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Trustd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The workspace's trustd binary in this test's target directory (built here if missing).
fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> → target/<profile>/trustd
    let path = exe.parent().unwrap().parent().unwrap().join("trustd");
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
