//! A service's real binary under test (feature `test-support`): its own directory (config,
//! state, log), a private bus address, and a notify socket standing in for systemd, so
//! READY=1, STATUS= and STOPPING=1 are seen as systemd sees them. Ended by PID (SIGKILL as a
//! crash or power cut would, or SIGTERM as systemd stops it).

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Far above what starting and converging take, far below a hang.
pub const CONVERGE: Duration = Duration::from_secs(60);

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One service process with its directory and notify socket.
pub struct ServiceProcess {
    pub dir: TempDir,
    pub bus_address: String,
    pub metrics: SocketAddr,
    binary: PathBuf,
    service: String,
    args: Vec<String>,
    notify: UnixDatagram,
    child: Option<Child>,
    /// Set on drop: a [`Self::discard_notifications`] thread stops.
    done: Arc<AtomicBool>,
}

impl ServiceProcess {
    /// `binary` (`env!("CARGO_BIN_EXE_<service>")`) with `config` written as `<service>.toml`
    /// and passed as `--config`; nothing starts yet.
    pub fn new(
        binary: &str,
        service: &str,
        config: &str,
        bus_address: &str,
        metrics: SocketAddr,
    ) -> ServiceProcess {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(format!("{service}.toml")), config).unwrap();
        fs::create_dir(dir.path().join("state")).unwrap();
        let notify = UnixDatagram::bind(dir.path().join("notify.sock")).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        ServiceProcess {
            dir,
            bus_address: bus_address.to_owned(),
            metrics,
            binary: PathBuf::from(binary),
            service: service.to_owned(),
            args: Vec::new(),
            notify,
            child: None,
            done: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Further command-line arguments for every start.
    pub fn arg(&mut self, arg: impl AsRef<Path>) -> &mut Self {
        self.args.push(arg.as_ref().to_string_lossy().into_owned());
        self
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join(format!("{}.toml", self.service))
    }

    pub fn start(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let level_variable = format!("{}_TEST_LOG", self.service.to_uppercase());
        let child = Command::new(&self.binary)
            .arg("--config")
            .arg(self.config_path())
            .args(&self.args)
            .env("BUNKEROS_ROOT", self.dir.path())
            .env("STATE_DIRECTORY", self.state())
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus_address)
            .env("NOTIFY_SOCKET", self.dir.path().join("notify.sock"))
            .env(
                "RUST_LOG",
                std::env::var(level_variable).unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", self.service));
        self.child = Some(child);
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.service))
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits for a notification containing `what` (e.g. `READY=1`); returns the whole message.
    pub fn wait_notify(&mut self, what: &str) -> String {
        let deadline = Instant::now() + CONVERGE;
        let mut buffer = [0u8; 4096];
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait().unwrap()
            {
                panic!(
                    "{} exited ({status}) before {what}; log:\n{}",
                    self.service,
                    self.log()
                );
            }
            if let Ok(n) = self.notify.recv(&mut buffer) {
                let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
                if message.contains(what) {
                    return message;
                }
            }
        }
        panic!("no {what} within {CONVERGE:?}; log:\n{}", self.log());
    }

    /// From now on reads and drops every notification on a thread of its own, as systemd
    /// consumes them: the kernel queues only a few datagrams (`net.unix.max_dgram_qlen`, 10 by
    /// default), after which a service sending a status line per change blocks in its send.
    /// For runs that cause many changes (the benchmarks); [`Self::wait_notify`] sees nothing
    /// after this. The thread ends with the fixture.
    pub fn discard_notifications(&mut self) {
        let socket = self.notify.try_clone().unwrap();
        let done = Arc::clone(&self.done);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            // The socket has a read timeout, so the flag is looked at every 200 ms.
            while !done.load(Ordering::Relaxed) {
                let _ = socket.recv(&mut buffer);
            }
        });
    }

    /// SIGKILL, as a crash or a power cut would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, as systemd stops it; returns the exit status.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = i32::try_from(child.id()).expect("a pid fits an i32");
        // SAFETY: kill(2) on the PID of a child this fixture spawned and has not reaped.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM sent");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        panic!(
            "{} did not stop on SIGTERM within 15 s; log:\n{}",
            self.service,
            self.log()
        );
    }

    /// The metrics page, as Prometheus scrapes it.
    pub fn scrape(&self) -> Option<String> {
        let mut stream = TcpStream::connect_timeout(&self.metrics, Duration::from_secs(1)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (_, body) = response.split_once("\r\n\r\n")?;
        Some(body.to_owned())
    }

    /// One sample's value (`name{labels}`), if present.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        self.scrape()?
            .lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == sample).then(|| value.parse().ok()).flatten()
            })
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        self.kill();
    }
}

/// Waits until `check` holds, panicking with `what` after [`CONVERGE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + CONVERGE;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {CONVERGE:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
