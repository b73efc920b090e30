//! End-to-end tests: the test binary re-executes itself as a child "service" and plays systemd.
//!
//! The child runs the real [`Notifier`], [`Heartbeat`], [`spawn_watchdog`] and [`ShutdownSignal`]
//! with `NOTIFY_SOCKET` pointing at a datagram socket this test bound, exactly as systemd would
//! set it up. Nothing mutates the test process's own environment: the child gets its
//! environment through `Command::env`. Signals go only to the child this test started, by PID.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use tokio::signal::unix::{SignalKind, signal};

use super::{Heartbeat, Notifier, ShutdownSignal, spawn_watchdog};

/// Selects what the re-executed child does; absent in the normal test run.
const CHILD_ENV: &str = "APPLIANCE_SYSTEMD_CHILD";
/// The full name of [`child_service`], for libtest's `--exact` filter.
const CHILD_TEST: &str = "systemd::tests::child_service";
/// `WatchdogSec=` given to the child: short, so the test is quick.
const WATCHDOG: Duration = Duration::from_millis(200);
/// Generous bound for anything that should be prompt, so a loaded machine does not fail tests.
const PATIENCE: Duration = Duration::from_secs(20);

/// Entry point of the child service; does nothing unless re-executed by the tests below.
#[test]
#[ignore = "entry point of the child service that the systemd tests re-execute"]
fn child_service() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match mode.as_str() {
        "service" => runtime.block_on(run_service()),
        "unsupervised" => runtime.block_on(run_unsupervised()),
        other => panic!("unknown child mode {other:?}"),
    }
}

/// A miniature service: ready, beat every 20 ms, stall on SIGUSR1, stop on SIGTERM/SIGINT.
async fn run_service() {
    let notifier = Notifier::new();
    let shutdown = ShutdownSignal::install(notifier).expect("stop handlers");
    let mut stall = signal(SignalKind::user_defined1()).expect("SIGUSR1 handler");
    let heartbeat = Heartbeat::new();
    let watchdog = spawn_watchdog(heartbeat.clone(), shutdown.token());
    let on_off = if watchdog.is_some() { "on" } else { "off" };
    notifier
        .ready(&format!("serving; watchdog {on_off}"))
        .expect("READY=1");

    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut stalled = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = stall.recv() => {
                stalled = true;
                notifier.status("stalled").expect("STATUS=");
            }
            _ = tick.tick() => if !stalled { heartbeat.beat() },
        }
    }
    if let Some(watchdog) = watchdog {
        watchdog.await.expect("watchdog task ends cleanly");
    }
}

/// Outside systemd every call must succeed and do nothing.
async fn run_unsupervised() {
    let notifier = Notifier::new();
    assert!(!notifier.is_supervised());
    notifier.ready("serving").expect("READY=1 is a no-op");
    notifier.status("busy").expect("STATUS= is a no-op");
    notifier.watchdog_ping().expect("WATCHDOG=1 is a no-op");
    notifier.stopping().expect("STOPPING=1 is a no-op");
    let cancel = tokio_util::sync::CancellationToken::new();
    assert!(spawn_watchdog(Heartbeat::new(), cancel).is_none());
}

/// The `$NOTIFY_SOCKET` end, as systemd holds it.
struct NotifySocket {
    _dir: tempfile::TempDir,
    path: PathBuf,
    socket: UnixDatagram,
}

impl NotifySocket {
    fn bind() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        Self {
            _dir: dir,
            path,
            socket,
        }
    }

    /// Every datagram that arrives within `window`.
    fn collect_for(&self, window: Duration) -> Vec<String> {
        let deadline = Instant::now() + window;
        let mut messages = Vec::new();
        while let Some(message) = self.recv_before(deadline) {
            messages.push(message);
        }
        messages
    }

    /// Waits for a datagram with the assignment `line`; panics after [`PATIENCE`].
    fn expect_line(&self, line: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        while let Some(message) = self.recv_before(deadline) {
            if message.lines().any(|l| l == line) {
                return message;
            }
        }
        panic!("no {line:?} from the child within {PATIENCE:?}");
    }

    fn recv_before(&self, deadline: Instant) -> Option<String> {
        let left = deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        self.socket.set_read_timeout(Some(left)).expect("timeout");
        let mut buf = [0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("notify socket: {e}"),
        }
    }
}

fn watchdog_pings(messages: &[String]) -> usize {
    messages
        .iter()
        .flat_map(|m| m.lines())
        .filter(|l| *l == "WATCHDOG=1")
        .count()
}

/// The child service; killed (SIGKILL, by PID) if a test fails before it exits.
struct ChildService {
    child: Child,
}

impl ChildService {
    fn spawn(mode: &str, configure: impl FnOnce(&mut Command)) -> Self {
        let exe = std::env::current_exe().expect("test binary path");
        let mut command = Command::new(exe);
        command
            .args([CHILD_TEST, "--exact", "--ignored", "--test-threads=1"])
            .env(CHILD_ENV, mode)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        configure(&mut command);
        let child = command.spawn().expect("spawn child service");
        Self { child }
    }

    fn send(&self, signal: Signal) {
        kill_process(Pid::from_child(&self.child), signal).expect("signal the child");
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait for child") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("child service did not exit within {PATIENCE:?}");
    }
}

impl Drop for ChildService {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn supervised(notify: &NotifySocket, command: &mut Command) {
    command.env("NOTIFY_SOCKET", &notify.path);
}

#[test]
fn watchdog_pings_only_while_the_main_loop_beats_and_sigterm_stops_cleanly() {
    let notify = NotifySocket::bind();
    let mut service = ChildService::spawn("service", |c| {
        supervised(&notify, c);
        // WATCHDOG_PID is left out: systemd sets it to the service's PID, which a test cannot
        // know before spawning; sd-notify accepts an absent WATCHDOG_PID.
        c.env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string());
    });

    let ready = notify.expect_line("READY=1");
    assert!(
        ready.lines().any(|l| l == "STATUS=serving; watchdog on"),
        "READY=1 comes with a status line: {ready:?}"
    );

    let beating = notify.collect_for(5 * WATCHDOG);
    assert!(
        watchdog_pings(&beating) >= 4,
        "a beating main loop is pinged every half interval: {beating:?}"
    );

    service.send(Signal::USR1);
    notify.expect_line("STATUS=stalled");
    // Pings already justified by the last beat may still come for up to one interval.
    let _settling = notify.collect_for(WATCHDOG + WATCHDOG / 4);
    let stalled = notify.collect_for(WATCHDOG * 7 / 2);
    assert_eq!(
        watchdog_pings(&stalled),
        0,
        "a stalled main loop must not be pinged for > 3 intervals: {stalled:?}"
    );

    service.send(Signal::TERM);
    let stopping = notify.expect_line("STOPPING=1");
    assert!(
        stopping.lines().any(|l| l == "STATUS=stopping"),
        "{stopping:?}"
    );
    let status = service.wait_exit();
    assert!(status.success(), "child service exited with {status}");
}

#[test]
fn watchdog_stays_off_when_watchdog_pid_names_another_process_and_sigint_stops() {
    let notify = NotifySocket::bind();
    let mut service = ChildService::spawn("service", |c| {
        supervised(&notify, c);
        c.env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string())
            .env("WATCHDOG_PID", std::process::id().to_string());
    });

    let ready = notify.expect_line("READY=1");
    assert!(
        ready.lines().any(|l| l == "STATUS=serving; watchdog off"),
        "{ready:?}"
    );
    let quiet = notify.collect_for(3 * WATCHDOG);
    assert_eq!(watchdog_pings(&quiet), 0, "{quiet:?}");

    service.send(Signal::INT);
    notify.expect_line("STOPPING=1");
    let status = service.wait_exit();
    assert!(status.success(), "child service exited with {status}");
}

#[test]
fn without_notify_socket_every_notification_is_a_noop() {
    let mut service = ChildService::spawn("unsupervised", |_| {});
    let status = service.wait_exit();
    assert!(status.success(), "child exited with {status}");
}
