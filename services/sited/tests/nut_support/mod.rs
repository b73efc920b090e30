//! Test support: Debian's real NUT server (`upsd` with the `dummy-ups` driver) on loopback,
//! configured in a temporary directory, and helpers to read a driver's events.
#![allow(dead_code)] // each test file uses part of it

use appliance::testdaemon::free_port;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use sited::sensor::{SensorEvent, Value};
use tokio::sync::mpsc;

const UPSD: &str = "/lib/nut/upsd";
const DUMMY_UPS: &str = "/lib/nut/dummy-ups";
/// Bound that separates "started" from "hung" for the daemons (they are ready in milliseconds).
const START_LIMIT: Duration = Duration::from_secs(15);

/// The UPS name the tests configure.
pub const UPS: &str = "fakeups";
/// `upsd.users` login the tests configure.
pub const USER: &str = "monuser";
pub const PASSWORD: &str = "monpass";

/// A running upsd serving one dummy-ups UPS; both stopped by PID on drop.
pub struct NutServer {
    dir: tempfile::TempDir,
    port: u16,
    driver: Option<Child>,
    upsd: Option<Child>,
    /// Each rewrite of the .dev file moves its mtime a second on, so dummy-ups (which re-reads
    /// the file when its mtime changes) sees every rewrite however fast they come.
    rewrites: u64,
}

impl NutServer {
    /// Starts the driver and upsd with the UPS reporting `status` and `charge`.
    pub fn start(status: &str, charge: u32) -> NutServer {
        for program in [UPSD, DUMMY_UPS] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: the NUT tests need Debian's nut-server and nut-client \
                 (`make deps` installs them)"
            );
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        let mut server = NutServer {
            dir,
            port,
            driver: None,
            upsd: None,
            rewrites: 0,
        };
        server.write_configs();
        server.set(status, charge);
        server.start_driver();
        server.start_upsd();
        server
    }

    /// upsd's `HOST:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn etc(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn write_configs(&self) {
        let etc = self.etc();
        fs::create_dir_all(&etc).unwrap();
        fs::create_dir_all(self.state()).unwrap();
        fs::write(
            etc.join("ups.conf"),
            format!(
                "maxretry = 3\n[{UPS}]\n  driver = dummy-ups\n  port = {}\n  desc = \"test UPS\"\n  pollinterval = 1\n",
                etc.join("fakeups.dev").display()
            ),
        )
        .unwrap();
        fs::write(
            etc.join("upsd.conf"),
            format!("LISTEN 127.0.0.1 {}\nMAXAGE 15\n", self.port),
        )
        .unwrap();
        fs::write(
            etc.join("upsd.users"),
            format!("[{USER}]\n  password = {PASSWORD}\n  upsmon primary\n"),
        )
        .unwrap();
        fs::write(etc.join("nut.conf"), "MODE=standalone\n").unwrap();
    }

    /// Rewrites the UPS's state; dummy-ups reads it within about a second.
    pub fn set(&mut self, status: &str, charge: u32) {
        let path = self.etc().join("fakeups.dev");
        fs::write(
            &path,
            format!(
                "device.mfr: Fake\ndevice.model: FakeUPS 1500\ndevice.type: ups\n\
                 ups.status: {status}\nups.load: 23\nups.realpower: 207\n\
                 battery.charge: {charge}\nbattery.runtime: {}\n\
                 input.voltage: 230.0\noutput.voltage: 229.5\n",
                charge * 36
            ),
        )
        .unwrap();
        self.rewrites += 1;
        let mtime = SystemTime::now() + Duration::from_secs(self.rewrites);
        fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(mtime))
            .unwrap();
    }

    fn command(&self, program: &str, log: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("NUT_CONFPATH", self.etc())
            .env("NUT_STATEPATH", self.state())
            .env("NUT_ALTPIDPATH", self.state())
            .stdin(Stdio::null())
            .stdout(fs::File::create(self.dir.path().join(log)).unwrap())
            .stderr(fs::File::create(self.dir.path().join(format!("{log}.err"))).unwrap());
        // As root the daemons would switch to the `nut` user, who cannot read this directory.
        if is_root() {
            command.args(["-u", "root"]);
        }
        command
    }

    /// Starts dummy-ups in the foreground and waits for its socket.
    pub fn start_driver(&mut self) {
        let child = self
            .command(DUMMY_UPS, "dummy-ups.log")
            .args(["-a", UPS, "-F"])
            .spawn()
            .expect("start dummy-ups");
        self.driver = Some(child);
        let socket = self.state().join(format!("dummy-ups-{UPS}"));
        wait_until("dummy-ups's socket", || socket.exists());
    }

    /// Starts upsd in the foreground and waits until it accepts connections.
    pub fn start_upsd(&mut self) {
        let child = self
            .command(UPSD, "upsd.log")
            .arg("-F")
            .spawn()
            .expect("start upsd");
        self.upsd = Some(child);
        let address = self.address();
        wait_until("upsd listening", || {
            std::net::TcpStream::connect(&address).is_ok()
        });
    }

    /// Kills upsd (SIGKILL: it vanishes without a goodbye).
    pub fn kill_upsd(&mut self) {
        stop(self.upsd.take());
    }

    /// Kills the UPS driver; upsd stays up and says `DRIVER-NOT-CONNECTED`.
    pub fn kill_driver(&mut self) {
        stop(self.driver.take());
    }

    /// What the daemons logged, for failure messages.
    pub fn logs(&self) -> String {
        [
            "dummy-ups.log",
            "dummy-ups.log.err",
            "upsd.log",
            "upsd.log.err",
        ]
        .iter()
        .map(|name| {
            let text = fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            format!("--- {name}\n{text}")
        })
        .collect()
    }
}

impl Drop for NutServer {
    fn drop(&mut self) {
        stop(self.upsd.take());
        stop(self.driver.take());
    }
}

fn stop(child: Option<Child>) {
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < START_LIMIT,
            "{what}: not ready within {START_LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Bound that separates "the driver reported it" from "it never will".
pub const EVENT_LIMIT: Duration = Duration::from_secs(30);

/// Reads events until one matches, returning it and everything read before it.
pub async fn wait_for(
    events: &mut mpsc::Receiver<SensorEvent>,
    what: &str,
    mut matches: impl FnMut(&SensorEvent) -> bool,
) -> (SensorEvent, Vec<SensorEvent>) {
    let mut before = Vec::new();
    let found = tokio::time::timeout(EVENT_LIMIT, async {
        loop {
            let event = events.recv().await.expect("the driver stopped");
            if matches(&event) {
                return event;
            }
            before.push(event);
        }
    })
    .await;
    match found {
        Ok(event) => (event, before),
        Err(_) => panic!("no event {what} within {EVENT_LIMIT:?}; got {before:#?}"),
    }
}

/// A sample of `sensor` with exactly `value`.
pub fn is_sample(event: &SensorEvent, sensor: &str, value: Value) -> bool {
    matches!(event, SensorEvent::Sample { sensor: s, value: v, .. } if s.as_str() == sensor && *v == value)
}

/// `sensor` lost, for any reason.
pub fn is_lost(event: &SensorEvent, sensor: &str) -> bool {
    matches!(event, SensorEvent::Lost { sensor: s, .. } if s.as_str() == sensor)
}
