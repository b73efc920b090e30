//! A private software TPM for tests (feature `test-support`; never in production builds).
//!
//! Services that use the TPM are tested against the real thing, never a mock: [`Swtpm`] starts
//! `swtpm` (Debian package `swtpm`) as this process's child, serving the TPM 2.0 command channel
//! and its control channel on two free loopback ports, with its state in a temporary directory.
//! Clients reach it through the tpm2-tss `swtpm` TCTI ([`Swtpm::tcti`]).
//!
//! What the tests need from real hardware is modelled by the fixture:
//! - a reboot is [`Swtpm::restart`]: the process is killed (like a power cut) and started again
//!   on the same state and ports, so persistent state (seeds, NV) survives and PCRs are reset;
//! - another machine is simply a second [`Swtpm::start`]: fresh seeds, so nothing wrapped by the
//!   first TPM loads there;
//! - a cloned machine is [`Swtpm::start_from_state`] of a copy of the first one's state.
//!
//! The fixture knows nothing of TPM commands (the appliance library does not depend on
//! tss-esapi); services drive the TPM through their own stack. Only processes this fixture
//! started are ended, by PID, when it is dropped.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long swtpm may take to accept connections; it normally takes a few milliseconds.
const STARTUP: Duration = Duration::from_secs(20);
/// How often ports are picked again when another process took them between pick and bind.
const PORT_ATTEMPTS: usize = 20;
/// Name of swtpm's log inside the fixture's directory (its stderr and `--log` output).
const LOG_FILE: &str = "swtpm.log";

/// Why the software TPM could not start.
#[derive(Debug, thiserror::Error)]
pub enum SwtpmError {
    /// The temporary directory, the state copy or the log file could not be prepared.
    #[error("cannot prepare the swtpm directory: {0}")]
    Prepare(#[source] io::Error),
    /// No pair of free loopback ports could be found.
    #[error("cannot find two free consecutive loopback ports for swtpm: {0}")]
    Ports(#[source] io::Error),
    /// `swtpm` could not be executed.
    #[error("cannot run swtpm (Debian package swtpm): {0}")]
    Spawn(#[source] io::Error),
    /// swtpm exited during startup; its log says why.
    #[error("swtpm exited during startup ({status}); its log says:\n{log}")]
    Exited {
        /// How it exited.
        status: ExitStatus,
        /// The end of its log.
        log: String,
    },
    /// swtpm kept failing to bind its ports (other processes took them each time).
    #[error("swtpm could not bind free ports in {PORT_ATTEMPTS} attempts; last log:\n{log}")]
    PortsTaken {
        /// The end of its last log.
        log: String,
    },
    /// swtpm did not accept connections within the startup time.
    #[error("swtpm did not accept connections on port {port} within {timeout:?}")]
    Timeout {
        /// The TPM command port.
        port: u16,
        /// How long we waited.
        timeout: Duration,
    },
}

/// A running `swtpm`, killed (by PID) when dropped; its state directory is removed with it.
#[derive(Debug)]
pub struct Swtpm {
    process: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Swtpm {
    /// Starts a fresh software TPM: a new machine, with seeds nobody has seen before.
    pub fn start() -> Result<Self, SwtpmError> {
        let dir = new_dir()?;
        let (process, port) = spawn_on_free_ports(dir.path())?;
        Ok(Self { process, port, dir })
    }

    /// Starts a software TPM whose state is a copy of `state` (the directory of another
    /// [`Swtpm`], see [`Swtpm::state_dir`]): a clone of that machine's TPM, seeds and NV
    /// included. The original's directory is not touched.
    pub fn start_from_state(state: &Path) -> Result<Self, SwtpmError> {
        let dir = new_dir()?;
        copy_state_dir(state, &dir.path().join(STATE_SUBDIR)).map_err(SwtpmError::Prepare)?;
        let (process, port) = spawn_on_free_ports(dir.path())?;
        Ok(Self { process, port, dir })
    }

    /// The tpm2-tss TCTI configuration that reaches this TPM, e.g.
    /// `swtpm:host=127.0.0.1,port=40321`. It stays the same across [`Swtpm::restart`].
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// The TPM command port (the control channel is the next port).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the TPM's persistent state (`tpm2-00.permall`).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join(STATE_SUBDIR)
    }

    /// swtpm's log (its stderr), useful when a test fails.
    pub fn log(&self) -> String {
        log_tail(self.dir.path())
    }

    /// The swtpm process's PID.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Reboots the TPM: kills swtpm without warning (a power cut) and starts it again with the
    /// same state on the same ports. Persistent state survives; PCRs and loaded objects do not.
    /// Clients holding a connection see it break and must reconnect.
    pub fn restart(&mut self) -> Result<(), SwtpmError> {
        stop(&mut self.process);
        // The ports may linger for a moment after the kill; retry the same ones for a while.
        let deadline = Instant::now() + STARTUP;
        loop {
            match spawn(self.dir.path(), self.port) {
                Ok(process) => {
                    self.process = process;
                    return Ok(());
                }
                Err(Attempt::PortTaken(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(Attempt::PortTaken(log)) => return Err(SwtpmError::PortsTaken { log }),
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        stop(&mut self.process);
    }
}

/// Copies the files of a TPM state directory (flat: swtpm keeps only files there) into `to`,
/// creating it. Use it to snapshot a TPM before a test changes it, or to clone a machine.
pub fn copy_state_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        // The lock file belongs to the running swtpm that owns `from`.
        if entry.file_type()?.is_file() && entry.file_name() != ".lock" {
            fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// The TPM state lives in a subdirectory, so the log beside it is never mistaken for state.
const STATE_SUBDIR: &str = "state";

fn new_dir() -> Result<tempfile::TempDir, SwtpmError> {
    let dir = tempfile::Builder::new()
        .prefix("bunkeros-swtpm")
        .tempdir()
        .map_err(SwtpmError::Prepare)?;
    fs::create_dir_all(dir.path().join(STATE_SUBDIR)).map_err(SwtpmError::Prepare)?;
    Ok(dir)
}

/// Why one attempt to start swtpm on given ports failed.
enum Attempt {
    /// Another process holds one of the ports (it was free when we looked); the log is attached.
    PortTaken(String),
    /// Anything else: not worth retrying.
    Failed(SwtpmError),
}

/// Picks two free consecutive ports and starts swtpm on them, retrying when they were taken
/// between the pick and swtpm's bind.
fn spawn_on_free_ports(dir: &Path) -> Result<(Child, u16), SwtpmError> {
    let mut last_log = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let port = free_port_pair().map_err(SwtpmError::Ports)?;
        match spawn(dir, port) {
            Ok(process) => return Ok((process, port)),
            Err(Attempt::PortTaken(log)) => last_log = log,
            Err(Attempt::Failed(e)) => return Err(e),
        }
    }
    Err(SwtpmError::PortsTaken { log: last_log })
}

/// A port P such that P and P+1 were both free on loopback a moment ago.
fn free_port_pair() -> io::Result<u16> {
    for _ in 0..100 {
        let first = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = first.local_addr()?.port();
        let Some(next) = port.checked_add(1) else {
            continue;
        };
        if TcpListener::bind((Ipv4Addr::LOCALHOST, next)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no two consecutive free ports after 100 tries",
    ))
}

/// Starts swtpm on `port` (commands) and `port + 1` (control) and waits until it accepts.
fn spawn(dir: &Path, port: u16) -> Result<Child, Attempt> {
    let log_path = dir.join(LOG_FILE);
    let log = fs::File::create(&log_path).map_err(|e| Attempt::Failed(SwtpmError::Prepare(e)))?;
    let state = dir.join(STATE_SUBDIR);
    let mut process = Command::new("swtpm")
        .arg("socket")
        .arg("--tpm2")
        .arg("--server")
        .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
        .arg("--ctrl")
        .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
        // Self-initialised: it runs TPM2_Startup(CLEAR) itself, as firmware does at boot.
        .args(["--flags", "startup-clear,not-need-init"])
        .arg("--tpmstate")
        .arg(format!("dir={}", state.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| Attempt::Failed(SwtpmError::Spawn(e)))?;

    match wait_until_accepting(&mut process, port, &state) {
        Ok(()) => Ok(process),
        Err(e) => {
            stop(&mut process);
            let log = log_tail(dir);
            Err(match e {
                Some(_) if log.contains("Address already in use") => Attempt::PortTaken(log),
                Some(status) => Attempt::Failed(SwtpmError::Exited { status, log }),
                None => Attempt::Failed(SwtpmError::Timeout {
                    port,
                    timeout: STARTUP,
                }),
            })
        }
    }
}

/// Waits until both channels accept a connection and this swtpm has written its state (so the
/// ports answering are this process's, not another swtpm's that took them between the port
/// check and the bind). `Err(Some(status))` if swtpm exited, `Err(None)` on timeout.
///
/// The probe connections are closed at once; swtpm serves one client at a time, so it drops
/// them before the real client connects.
fn wait_until_accepting(
    process: &mut Child,
    port: u16,
    state: &Path,
) -> Result<(), Option<ExitStatus>> {
    let deadline = Instant::now() + STARTUP;
    let reachable = |port: u16| {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    };
    loop {
        if let Ok(Some(status)) = process.try_wait() {
            return Err(Some(status));
        }
        let ours = state.join("tpm2-00.permall").exists();
        if ours && reachable(port + 1) && reachable(port) {
            // Still running: one that lost the ports to another swtpm exits on its own.
            if let Ok(Some(status)) = process.try_wait() {
                return Err(Some(status));
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The last lines of swtpm's log (enough to say why it failed).
fn log_tail(dir: &Path) -> String {
    let text = fs::read_to_string(dir.join(LOG_FILE)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Kills our own child by PID (`Child::kill`) and reaps it, so no zombie is left behind.
fn stop(process: &mut Child) {
    if let Ok(None) = process.try_wait() {
        let _ = process.kill();
    }
    let _ = process.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_restarts_and_clones() {
        let mut tpm = Swtpm::start().unwrap();
        assert!(tpm.tcti().starts_with("swtpm:host=127.0.0.1,port="));
        let port = tpm.port();
        let first_pid = tpm.pid();
        assert!(
            tpm.state_dir().join("tpm2-00.permall").exists(),
            "{}",
            tpm.log()
        );

        tpm.restart().unwrap();
        assert_eq!(tpm.port(), port, "a reboot keeps the address");
        assert_ne!(tpm.pid(), first_pid);
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok());

        let other = Swtpm::start().unwrap();
        assert_ne!(other.port(), port);
        // The clone starts from the copied state (its own startup then updates its copy).
        let clone = Swtpm::start_from_state(&tpm.state_dir()).unwrap();
        assert!(clone.state_dir().join("tpm2-00.permall").exists());
        assert_ne!(clone.state_dir(), tpm.state_dir());
        assert_ne!(clone.port(), port);

        let pid = other.pid();
        drop(other);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "swtpm {pid} still runs after drop"
        );
    }
}
