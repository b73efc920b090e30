//! A private `dbus-daemon` for tests (feature `test-support`; never in production builds).
//!
//! There is no system bus where the tests run (PID 1 is not systemd), and tests must not touch a
//! real one anyway. [`TestBus`] starts Debian's `dbus-daemon` on a socket in its own temporary
//! directory with a permissive policy, so tests exercise the real bus protocol, name ownership
//! and signal routing. It is killed by PID (it runs with `--nofork`, as this process's child)
//! when the fixture is dropped.
//!
//! Other crates use it through `appliance = { workspace = true, features = ["test-support"] }`
//! in their `[dev-dependencies]`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::Bus;

/// How long `dbus-daemon` may take to print its address; it normally takes milliseconds.
const STARTUP: Duration = Duration::from_secs(20);

/// Why the private bus could not start.
#[derive(Debug, thiserror::Error)]
pub enum TestBusError {
    /// The temporary directory or the configuration file could not be written.
    #[error("cannot prepare the private dbus-daemon's directory")]
    Prepare(#[source] std::io::Error),
    /// `dbus-daemon` could not be executed.
    #[error("cannot run dbus-daemon (Debian package dbus-daemon)")]
    Spawn(#[source] std::io::Error),
    /// It exited (or closed stdout) without printing an address; its stderr says why.
    #[error("dbus-daemon exited before printing its address ({0:?}); see its stderr")]
    Exited(Option<ExitStatus>),
    /// It printed nothing within the startup time.
    #[error("dbus-daemon printed no address within {0:?}")]
    Timeout(Duration),
}

/// A running private `dbus-daemon`, stopped when dropped.
#[derive(Debug)]
pub struct TestBus {
    daemon: Child,
    address: String,
    config: PathBuf,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestBus {
    /// Starts a private bus and waits until it accepts connections.
    pub fn start() -> Result<Self, TestBusError> {
        let dir = tempfile::Builder::new()
            .prefix("bunkeros-testbus")
            .tempdir()
            .map_err(TestBusError::Prepare)?;
        let config = dir.path().join("bus.conf");
        let socket = dir.path().join("bus.sock");
        std::fs::write(&config, config_xml(&socket)).map_err(TestBusError::Prepare)?;
        let (daemon, address) = spawn_daemon(&config)?;
        Ok(Self {
            daemon,
            address,
            config,
            socket,
            _dir: dir,
        })
    }

    /// Stops the daemon (every connection to it breaks, every name is lost) and starts a new
    /// one on the same socket: what clients see when the system bus restarts. The new daemon
    /// has a new GUID, so [`address`](Self::address) changes; [`socket_bus`](Self::socket_bus)
    /// reaches either.
    pub fn restart(&mut self) -> Result<(), TestBusError> {
        stop(&mut self.daemon);
        let (daemon, address) = spawn_daemon(&self.config)?;
        self.daemon = daemon;
        self.address = address;
        Ok(())
    }

    /// The bus by its socket path alone (`unix:path=…`, no GUID), as clients find the system
    /// bus: a connection made with it works again after [`restart`](Self::restart).
    pub fn socket_bus(&self) -> Bus {
        Bus::Address(format!("unix:path={}", self.socket.display()))
    }

    /// The bus address, e.g. `unix:path=/tmp/bunkeros-testbusXXXX/bus.sock,guid=…`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The bus, for [`connect`](super::connect) and [`serve`](super::serve).
    pub fn bus(&self) -> Bus {
        Bus::Address(self.address.clone())
    }

    /// The daemon's PID.
    pub fn pid(&self) -> u32 {
        self.daemon.id()
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        stop(&mut self.daemon);
    }
}

/// Runs `dbus-daemon` with `config` and waits for its address.
fn spawn_daemon(config: &Path) -> Result<(Child, String), TestBusError> {
    let mut config_arg = std::ffi::OsString::from("--config-file=");
    config_arg.push(config);
    let mut daemon = Command::new("dbus-daemon")
        .arg(config_arg)
        .args(["--print-address=1", "--nofork", "--nopidfile"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(TestBusError::Spawn)?;
    match read_address(&mut daemon) {
        Ok(address) => Ok((daemon, address)),
        Err(e) => {
            stop(&mut daemon);
            Err(e)
        }
    }
}

/// Kills our own child by PID (`Child::kill`) and reaps it, so no zombie is left behind.
fn stop(daemon: &mut Child) {
    if let Ok(None) = daemon.try_wait() {
        let _ = daemon.kill();
    }
    let _ = daemon.wait();
}

/// Reads the first stdout line, which `--print-address=1` writes once the bus listens.
fn read_address(daemon: &mut Child) -> Result<String, TestBusError> {
    let stdout = daemon.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    // A thread, so a daemon that hangs without printing cannot hang the test forever.
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(read.map(|_| line));
    });
    match rx.recv_timeout(STARTUP) {
        Ok(Ok(line)) if !line.trim().is_empty() => Ok(line.trim().to_owned()),
        Ok(_) => {
            stop(daemon);
            Err(TestBusError::Exited(daemon.try_wait().ok().flatten()))
        }
        Err(_) => Err(TestBusError::Timeout(STARTUP)),
    }
}

/// A bus configuration that lets any local process connect, own any name and send anything:
/// tests check the services' behaviour, not the appliance's bus policy (that is in `image/`).
fn config_xml(socket: &Path) -> String {
    let socket = xml_escape(&socket.display().to_string());
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"#
    )
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
